"""Weight inheritance: a child network starts from its parent's trained weights where they fit.

EfficientNAS (seed 001) pairs evolution with gradient steps on the offspring: a child differs from
its parent in one or two choices, so most of its layers exist in the parent with the same shapes.
Networks built by :func:`search_spaces.layers.build_network` name parameters by position
(``3.0.weight``: block 3, its first module), so "the same layer" is the same name and shape; a
changed op or width changes the shapes (or the names) at that block only, which then keeps its
fresh initialisation. BatchNorm running statistics are buffers and are inherited the same way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

_log = logging.getLogger("nni_hwnas.inheritance")


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


# ---------------------------------------------------------------------- inside a search's trials
#
# ``evaluator.inherit_weights: true``: the driver gives the trials' evaluator an ``inherit``
# argument, ``{"dir": <experiment folder>/weights}``; ``hw_evolution`` adds, per submitted model,
# the child's own architecture id and its parent's (:func:`with_lineage`). The trial starts from
# ``<dir>/<parent>.pt`` where it exists (:func:`start_from_parent`), trains, and saves
# ``<dir>/<id>.pt`` (:func:`save_trained`) for its own children. Files are keyed by architecture
# id, not trial id, because that is what the strategy knows when it proposes a child.


def with_lineage(model: Any, child_id: str, parent_id: str | None) -> Any:
    """``model`` (a frozen NNI executable model) with its own evaluator naming ``child_id`` and
    ``parent_id``, when the experiment's evaluator asks for inheritance; else ``model`` as is.

    NNI serialises each submitted model's evaluator with it (``SimplifiedModelSpace._dump``), so a
    per-model copy is how the parent's id reaches the child's trial process.
    """
    evaluator = getattr(model, "evaluator", None)
    arguments = getattr(evaluator, "arguments", None)
    if not isinstance(arguments, dict) or not isinstance(arguments.get("inherit"), dict):
        return model
    from nni.nas.evaluator import FunctionalEvaluator

    inherit = {**arguments["inherit"], "id": child_id, "parent": parent_id}
    model.evaluator = FunctionalEvaluator(evaluator.function, **{**arguments, "inherit": inherit})
    return model


def _weights_file(inherit: Mapping[str, Any], arch_id: str) -> Path:
    return Path(inherit["dir"]) / f"{arch_id}.pt"


def start_from_parent(network: nn.Module, inherit: Mapping[str, Any] | None) -> Inherited:
    """Copy the parent's trained weights (``inherit['parent']``) into ``network`` where they fit.

    No parent (a random proposal) or no file (the parent failed, or ran on another machine):
    nothing is copied and ``network`` keeps its seeded initialisation.
    """
    parent = (inherit or {}).get("parent")
    if not parent:
        return Inherited(copied=0, fresh=sum(t.numel() for t in network.state_dict().values()))
    path = _weights_file(inherit, parent)
    if not path.is_file():
        _log.warning("nni-hwnas: parent %s has no saved weights at %s; training from scratch", parent, path)
        return Inherited(copied=0, fresh=sum(t.numel() for t in network.state_dict().values()))
    return inherit_weights(network, torch.load(path, map_location="cpu", weights_only=True))


def save_trained(network: nn.Module, inherit: Mapping[str, Any] | None) -> Path | None:
    """Save ``network``'s weights as ``<dir>/<id>.pt`` for its children (atomically: a child
    reading while this trial writes sees the old file or none, never half of one)."""
    if not inherit or not inherit.get("id"):
        return None
    path = _weights_file(inherit, inherit["id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, partial)
    os.replace(partial, path)
    return path
