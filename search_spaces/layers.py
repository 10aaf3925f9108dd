"""Architectures as plain data: a frozen model is a list of :class:`LayerSpec`.

One description drives everything that must agree: the torch modules that train, the analytic
cost model (params, MACs, activation memory), and the latency lookup table, whose rows are keyed
by the same fields at the granularity the runtime executes (conv+BN+ReLU+pool fused per layer).
A new operator is a new ``op`` value plus one branch in :func:`build_layer`, not a new code path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

from torch import nn

OPS = ("conv", "linear")


@dataclass(frozen=True)
class LayerSpec:
    """One executed block. Spatial sizes are square: ``in_hw`` is both height and width.

    ``conv``: Conv2d(kernel, stride, same padding) -> optional BatchNorm -> optional ReLU -> optional
    2x2 max-pool. ``linear``: optional flatten -> optional dropout (training only) -> Linear ->
    optional ReLU.
    """

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
    dropout: float = 0.0

    @property
    def out_hw(self) -> int:
        """Output height/width: same padding keeps ``ceil(in/stride)``; pooling halves (floor)."""
        if self.op != "conv":
            return 1
        hw = -(-self.in_hw // self.stride)
        return hw // 2 if self.pool else hw

    def as_dict(self) -> dict:
        return asdict(self)


def build_layer(spec: LayerSpec) -> nn.Module:
    """Build the torch modules one :class:`LayerSpec` describes."""
    modules: list[nn.Module] = []
    if spec.op == "conv":
        modules.append(
            nn.Conv2d(spec.in_ch, spec.out_ch, spec.kernel, stride=spec.stride,
                      padding=spec.kernel // 2, bias=not spec.batch_norm)
        )
        if spec.batch_norm:
            modules.append(nn.BatchNorm2d(spec.out_ch))
        if spec.relu:
            modules.append(nn.ReLU(inplace=True))
        if spec.pool:
            modules.append(nn.MaxPool2d(2))
    elif spec.op == "linear":
        if spec.flatten:
            modules.append(nn.Flatten())
        if spec.dropout > 0:
            modules.append(nn.Dropout(spec.dropout))
        modules.append(nn.Linear(spec.in_ch, spec.out_ch))
        if spec.relu:
            modules.append(nn.ReLU(inplace=True))
    else:
        raise ValueError(f"unknown layer op {spec.op!r}; known: {', '.join(OPS)}")
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


def parameter_count(specs: Sequence[LayerSpec]) -> int:
    """Trainable parameters, computed from the description alone (BN counts weight and bias)."""
    total = 0
    for spec in specs:
        if spec.op == "conv":
            total += spec.kernel * spec.kernel * spec.in_ch * spec.out_ch
            total += 2 * spec.out_ch if spec.batch_norm else spec.out_ch
        elif spec.op == "linear":
            total += spec.in_ch * spec.out_ch + spec.out_ch
    return total
