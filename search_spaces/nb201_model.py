"""``nb201`` as an NNI ``ModelSpace``: NAS-Bench-201's macro skeleton around the searched cell.

Stem conv 3x3 -> ``cells_per_stage`` cells -> residual reduction -> cells -> reduction -> cells ->
BN-ReLU -> global pool -> linear, as in the benchmark (which stacks 5 cells per stage at 16
channels; 1 by default here, so a frozen model is quick to build and run). The tabular evaluator
never trains it: it reads the benchmark's results for the sample. The model exists so NNI's
strategies see the same labels as every other space and a chosen cell can be exported and trained.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

import nni
import torch
from nni.mutable import ensure_frozen
from nni.nas.nn.pytorch import ModelSpace
from nni.nas.space import model_context
from torch import nn

from .nb201 import EDGES, N_NODES, Nb201Definition, edge_label


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def _relu_conv_bn(channels: int, kernel: int) -> nn.Module:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(channels))


def make_op(name: str, channels: int) -> nn.Module:
    """One edge operation of NAS-Bench-201 at ``channels`` (stride 1, shape preserving)."""
    if name == "none":
        return _Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    return _relu_conv_bn(channels, 1 if name == "nor_conv_1x1" else 3)


class Cell(nn.Module):
    """Node ``j`` = sum of ``op(node i)`` over edges ``i -> j``; node 3 is the output."""

    def __init__(self, ops: Mapping[str, str], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict({edge_label(to, s): make_op(ops[edge_label(to, s)], channels) for to, s in EDGES})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to in range(1, N_NODES):
            nodes.append(sum(self.edges[edge_label(to, s)](nodes[s]) for s in range(to)))
        return nodes[-1]


class _Reduction(nn.Module):
    """NAS-Bench-201's residual block between stages: halves the map, doubles the channels."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                                  nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class Nb201Space(ModelSpace):
    """The searched cell's 6 edge labels as NNI choices (same labels as :class:`Nb201Definition`).

    ``definition_cls`` lets :func:`strategies.nni_strategy.find_definition` rebuild the definition
    from NNI's simplified space: without it ``hw_evolution`` on ``NasExperiment`` ran without the
    space's ``arch_id``/``canonical`` and proposed cells that differ only in unused edges.
    """

    definition_cls: ClassVar[type[Nb201Definition]] = Nb201Definition

    def __init__(self, choices: Mapping[str, Sequence] | None = None, input_shape: Sequence[int] = (3, 32, 32),
                 num_classes: int = 10, channels: int = 16, cells_per_stage: int = 1) -> None:
        super().__init__()
        self.definition = Nb201Definition.create(choices, input_shape, num_classes)
        sample: dict[str, Any] = {}
        for label, values in self.definition.labels().items():
            sample[label] = values[0] if len(values) == 1 else ensure_frozen(self.add_mutable(nni.choice(label, list(values))))
        self.sample = sample
        layers: list[nn.Module] = [nn.Conv2d(self.definition.input_shape[0], channels, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(channels)]
        width = channels
        for stage in range(3):
            if stage:
                layers.append(_Reduction(width, width * 2))
                width *= 2
            layers.extend(Cell(sample, width) for _ in range(cells_per_stage))
        layers += [nn.BatchNorm2d(width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def freeze(self, sample: dict[str, Any]) -> "Nb201Space":
        with model_context(sample):
            return self.__class__(*self.trace_args, **self.trace_kwargs)
