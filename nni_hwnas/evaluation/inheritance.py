"""Weight inheritance: a child network starts from its parent's trained weights where they fit.

EfficientNAS (seed 001) pairs evolution with gradient steps on the offspring: a child differs from
its parent in one or two choices, so most of its layers exist in the parent with the same shapes.
Networks built by :func:`search_spaces.layers.build_network` name parameters by position
(``3.0.weight``: block 3, its first module), so "the same layer" is the same name and shape; a
changed op or width changes the shapes (or the names) at that block only, which then keeps its
fresh initialisation. BatchNorm running statistics are buffers and are inherited the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn


@dataclass(frozen=True)
class Inherited:
    """What :func:`inherit_weights` did: tensors copied and left fresh (by count of values)."""

    copied: int
    fresh: int

    @property
    def fraction(self) -> float:
        total = self.copied + self.fresh
        return self.copied / total if total else 0.0


def inherit_weights(child: nn.Module, parent_state: Mapping[str, torch.Tensor]) -> Inherited:
    """Copy every parameter and buffer of ``parent_state`` whose name and shape ``child`` shares.

    Args:
        child: The freshly initialised child network (modified in place).
        parent_state: The trained parent's ``state_dict()``.

    Returns:
        Counts of values copied and left at their initialisation.
    """
    own = child.state_dict()
    copied = fresh = 0
    with torch.no_grad():
        for name, tensor in own.items():
            source = parent_state.get(name)
            if source is not None and source.shape == tensor.shape and source.dtype == tensor.dtype:
                tensor.copy_(source)
                copied += tensor.numel()
            else:
                fresh += tensor.numel()
    return Inherited(copied=copied, fresh=fresh)
