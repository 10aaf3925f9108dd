"""NNI 3.0 freezes a model space into a network whose weights come from torch's *global*,
unseeded RNG ("Unseeded freeze" in ``docs/nni-quirks.md``): the same architecture would score
differently in every trial. Trials rebuild the network under the run's seed instead."""

from __future__ import annotations

from typing import Sequence

import torch


def reinitialise(layer_specs: Sequence, seed: int) -> torch.nn.Module:
    """Build the candidate's network afresh under ``seed`` (same architecture, same weights)."""
    from search_spaces.layers import build_network

    torch.manual_seed(seed)
    return build_network(layer_specs)
