"""Architectures as plain data: a frozen model is a list of :class:`LayerSpec`.

One description drives everything that must agree: the torch modules that train, the analytic
cost model (params, MACs, activation memory), and the latency lookup table, whose rows are keyed
by the same fields at the granularity the runtime executes (conv+BN+ReLU+pool fused per layer).
What each ``op`` means lives in one registry entry (:mod:`search_spaces.ops`): a new operator is a
new entry, not a new branch here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import torch
from torch import nn

from .ops import NO_ATTENTION, OPERATORS, attention, operator

OPS = tuple(OPERATORS)


@dataclass(frozen=True)
class ExecutedBlock:
    """What inference executes of one block: the fields a latency-table row is keyed by
    (:class:`~nni_hwnas.hardware.latency_table.LayerKey`). :class:`LayerSpec` adds what only
    training sees (``dropout``), so the table's key can never drift from the spec."""

    op: str
    in_ch: int
    out_ch: int
    in_hw: int = 1
    kernel: int = 1
    stride: int = 1
    batch_norm: bool = False
    relu: bool = True
    pool: bool = False
    flatten: bool = False
    attention: str = NO_ATTENTION
    residual: bool = False


@dataclass(frozen=True)
class LayerSpec(ExecutedBlock):
    """One executed block. Spatial sizes are square: ``in_hw`` is both height and width.

    ``conv``: Conv2d(kernel, stride, same padding) -> optional BatchNorm -> optional ReLU -> optional
    2x2 max-pool. ``linear``: optional flatten -> optional dropout (training only) -> Linear ->
    optional ReLU. Other ops: see :data:`search_spaces.ops.OPERATORS`. A spatial block may add
    ``attention`` (``se``, ``cbam``, ``eca``) on its output and a ``residual`` connection
    (``x + attention(op(x))``, same shape in and out), both before the optional pool.
    """

    dropout: float = 0.0

    @property
    def out_hw(self) -> int:
        """Output height/width: same padding keeps ``ceil(in/stride)``; pooling halves (floor)."""
        if not operator(self.op).spatial:
            return 1
        hw = -(-self.in_hw // self.stride)
        return hw // 2 if self.pool else hw

    def as_dict(self) -> dict:
        return asdict(self)


class Residual(nn.Module):
    """``x + body(x)``: the skip path of a residual block (shapes must match)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def build_layer(spec: LayerSpec) -> nn.Module:
    """Build the torch modules one :class:`LayerSpec` describes.

    Plain blocks are one flat ``nn.Sequential`` (the module names of ``conv_net`` checkpoints);
    a residual block wraps op and attention in :class:`Residual`.
    """
    entry = operator(spec.op)
    modules = entry.build(spec)
    extra = attention(spec.attention)
    if extra is not None or spec.residual:
        if not entry.spatial:
            raise ValueError(f"op {spec.op!r} has no feature map: attention and residual need a spatial op")
        if extra is not None:
            modules.append(extra.build(spec.out_ch))
    if spec.residual:
        if spec.in_ch != spec.out_ch or spec.stride != 1:
            raise ValueError(f"residual block needs in_ch == out_ch and stride 1, got {spec}")
        modules = [Residual(nn.Sequential(*modules))]
    if spec.pool:
        modules.append(nn.MaxPool2d(2))
    return nn.Sequential(*modules)


def build_network(specs: Iterable[LayerSpec]) -> nn.Sequential:
    """A plain ``nn.Sequential`` (no NNI types): what gets trained, scripted and exported."""
    return nn.Sequential(*(build_layer(spec) for spec in specs))


def should_pool(in_hw: int) -> bool:
    """The shrink rule of our spaces: pool 2x2 only while the map is at least 2x2.

    Pooling is skipped (not the layer) once the map reaches 1x1, so a deep network on a small
    input (5 layers on 8x8 digits) is still valid and never produces an empty feature map.
    """
    return in_hw >= 2


def layer_params(spec: LayerSpec) -> int:
    """Trainable parameters of one block: its op plus its attention."""
    extra = attention(spec.attention)
    return operator(spec.op).params(spec) + (extra.params(spec.out_ch) if extra else 0)


def parameter_count(specs: Sequence[LayerSpec]) -> int:
    """Trainable parameters, computed from the description alone (BN counts weight and bias)."""
    return sum(layer_params(spec) for spec in specs)
