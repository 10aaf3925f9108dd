"""Search strategies: plain ask/tell cores, plus thin NNI adapters.

Names are imported on first use (PEP 562), so ``import strategies`` stays cheap: the NNI adapter
imports ``nni.nas`` (~4.5 s, it pulls pytorch_lightning and torchvision), the cores only numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HwEvolution": "strategies.hw_evolution",
    "SpaceExhausted": "strategies.hw_evolution",
    "ObjectiveConfig": "strategies.objectives",
    "HwEvolutionStrategy": "strategies.nni_strategy",
    "make_hw_evolution": "strategies.nni_strategy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'strategies' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
