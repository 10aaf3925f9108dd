"""The operator registry: one :class:`Operator` per ``LayerSpec.op`` value.

Everything that must agree about an operator lives in its entry: the torch modules it builds,
its parameter count, multiply-accumulates (MACs) and activation sizes, the compute-kernel class
the latency predictor's correction groups it by, and the input its latency is measured on.
Building, the cost model, the latency table's keys and the profiler all look operators up here,
so a new operator is one entry (and, for its timing, the shape of its input), not a new code path.

Attention (SE, CBAM, ECA) is a second, smaller registry: it decorates any spatial op's output, so
its cost adds to the block's. Residual blocks are a ``LayerSpec`` flag handled by
:func:`search_spaces.layers.build_layer`: ``y = x + attention(op(x))``, then the optional pool.

Spec fields the entries read (see :class:`~search_spaces.layers.LayerSpec`): ``in_ch``,
``out_ch``, ``in_hw``, ``kernel``, ``stride``, ``batch_norm``, ``relu``, ``flatten``, ``dropout``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

if TYPE_CHECKING:  # layers.py imports this module; the spec type is only needed for hints
    from .layers import LayerSpec

DILATION = 2  # ``dil_conv``: a 3x3 kernel with dilation 2 sees a 5x5 window (DARTS' dil_conv_3x3)
REDUCTION = 4  # SE and CBAM hidden width = channels // 4 (at least 1): small nets have few channels
CBAM_KERNEL = 7  # CBAM's spatial-attention kernel, as in Woo et al. 2018


def conv_hw(spec: "LayerSpec") -> int:
    """Spatial size after the op (same padding): ``ceil(in_hw / stride)``."""
    return -(-spec.in_hw // spec.stride)


def _norm_act(spec: "LayerSpec", channels: int) -> list[nn.Module]:
    modules: list[nn.Module] = [nn.BatchNorm2d(channels)] if spec.batch_norm else []
    return modules + ([nn.ReLU(inplace=True)] if spec.relu else [])


def _bias_or_bn(spec: "LayerSpec", channels: int) -> int:
    """Parameters after a conv: BN's weight and bias, or the conv's own bias."""
    return 2 * channels if spec.batch_norm else channels


@dataclass(frozen=True)
class Operator:
    """One operator: how to build, cost, classify and time a :class:`LayerSpec` of it.

    Attributes:
        name: The ``LayerSpec.op`` value.
        build: spec -> the modules in execution order (wrapped in ``nn.Sequential`` by the caller).
        params: spec -> trainable parameters.
        macs: spec -> multiply-accumulates of one forward pass at batch 1.
        activations: spec -> (input values, largest intermediate/output values) at batch 1.
        kernel_class: spec -> the compute kernel that runs it (``conv3``, ``dw_conv5``, ``pool``);
            the predictor's correction learns the cost of switching between classes.
        input_shape: spec -> the shape of one input at batch 1 (what the profiler times it on).
        spatial: Whether the op keeps a feature map (``out_hw`` follows stride and pool) or
            ends in a vector (``out_hw`` = 1).
    """

    name: str
    build: Callable[["LayerSpec"], list[nn.Module]]
    params: Callable[["LayerSpec"], int]
    macs: Callable[["LayerSpec"], int]
    activations: Callable[["LayerSpec"], tuple[int, int]]
    kernel_class: Callable[["LayerSpec"], str]
    input_shape: Callable[["LayerSpec"], tuple[int, ...]]
    spatial: bool = True


def _map_input(spec: "LayerSpec") -> tuple[int, ...]:
    return (spec.in_ch, spec.in_hw, spec.in_hw)


def _map_activations(spec: "LayerSpec") -> tuple[int, int]:
    return spec.in_ch * spec.in_hw * spec.in_hw, max(spec.in_ch, spec.out_ch) * conv_hw(spec) ** 2


def _stride_suffix(spec: "LayerSpec") -> str:
    return f"s{spec.stride}" if spec.stride != 1 else ""


# --------------------------------------------------------------------------- convolutions


def _conv_build(spec: "LayerSpec", dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(spec.in_ch, spec.out_ch, spec.kernel, stride=spec.stride, dilation=dilation,
                      padding=dilation * (spec.kernel // 2), bias=not spec.batch_norm), *_norm_act(spec, spec.out_ch)]


def _conv_params(spec: "LayerSpec") -> int:
    return spec.kernel * spec.kernel * spec.in_ch * spec.out_ch + _bias_or_bn(spec, spec.out_ch)


def _conv_macs(spec: "LayerSpec") -> int:
    return conv_hw(spec) ** 2 * spec.kernel * spec.kernel * spec.in_ch * spec.out_ch


def _conv_activations(spec: "LayerSpec") -> tuple[int, int]:
    return spec.in_ch * spec.in_hw * spec.in_hw, spec.out_ch * conv_hw(spec) ** 2


def _dw_build(spec: "LayerSpec") -> list[nn.Module]:
    """Depthwise-separable (MobileNet): depthwise k x k -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU."""
    return [nn.Conv2d(spec.in_ch, spec.in_ch, spec.kernel, stride=spec.stride, padding=spec.kernel // 2,
                      groups=spec.in_ch, bias=not spec.batch_norm), *_norm_act(spec, spec.in_ch),
            nn.Conv2d(spec.in_ch, spec.out_ch, 1, bias=not spec.batch_norm), *_norm_act(spec, spec.out_ch)]


def _dw_params(spec: "LayerSpec") -> int:
    return (spec.kernel * spec.kernel * spec.in_ch + _bias_or_bn(spec, spec.in_ch)
            + spec.in_ch * spec.out_ch + _bias_or_bn(spec, spec.out_ch))


def _dw_macs(spec: "LayerSpec") -> int:
    return conv_hw(spec) ** 2 * (spec.kernel * spec.kernel * spec.in_ch + spec.in_ch * spec.out_ch)


# --------------------------------------------------------------------------- pooling and skip


def _projection(spec: "LayerSpec") -> list[nn.Module]:
    """A 1x1 conv when the block changes the channel count (ResNet's projection shortcut)."""
    if spec.in_ch == spec.out_ch:
        return []
    return [nn.Conv2d(spec.in_ch, spec.out_ch, 1, bias=not spec.batch_norm), *_norm_act(spec, spec.out_ch)]


def _projection_params(spec: "LayerSpec") -> int:
    return 0 if spec.in_ch == spec.out_ch else spec.in_ch * spec.out_ch + _bias_or_bn(spec, spec.out_ch)


def _projection_macs(spec: "LayerSpec") -> int:
    return 0 if spec.in_ch == spec.out_ch else conv_hw(spec) ** 2 * spec.in_ch * spec.out_ch


def _pool_build(kind: type[nn.Module]) -> Callable[["LayerSpec"], list[nn.Module]]:
    def build(spec: "LayerSpec") -> list[nn.Module]:
        options = {"count_include_pad": False} if kind is nn.AvgPool2d else {}
        return [kind(spec.kernel, stride=spec.stride, padding=spec.kernel // 2, **options), *_projection(spec)]
    return build


def _skip_build(spec: "LayerSpec") -> list[nn.Module]:
    if spec.stride != 1:
        raise ValueError("skip keeps the resolution; use a pool to downsample")
    return _projection(spec) or [nn.Identity()]


# --------------------------------------------------------------------------- classifiers


def _linear_build(spec: "LayerSpec", flatten: bool | None = None) -> list[nn.Module]:
    modules: list[nn.Module] = [nn.Flatten()] if (spec.flatten if flatten is None else flatten) else []
    if spec.dropout > 0:
        modules.append(nn.Dropout(spec.dropout))
    modules.append(nn.Linear(spec.in_ch, spec.out_ch))
    return modules + ([nn.ReLU(inplace=True)] if spec.relu else [])


def _gap_linear_build(spec: "LayerSpec") -> list[nn.Module]:
    """Global average pool over the map, then the linear classifier (``in_ch`` = channels)."""
    return [nn.AdaptiveAvgPool2d(1), *_linear_build(spec, flatten=True)]


def _linear_params(spec: "LayerSpec") -> int:
    return spec.in_ch * spec.out_ch + spec.out_ch


def _linear_macs(spec: "LayerSpec") -> int:
    return spec.in_ch * spec.out_ch


OPERATORS: dict[str, Operator] = {op.name: op for op in (
    Operator("conv", _conv_build, _conv_params, _conv_macs, _conv_activations,
             lambda s: f"conv{s.kernel}{_stride_suffix(s)}", _map_input),
    Operator("dil_conv", lambda s: _conv_build(s, DILATION), _conv_params, _conv_macs, _conv_activations,
             lambda s: f"dil_conv{s.kernel}{_stride_suffix(s)}", _map_input),
    Operator("dw_conv", _dw_build, _dw_params, _dw_macs, _map_activations,
             lambda s: f"dw_conv{s.kernel}{_stride_suffix(s)}", _map_input),
    Operator("max_pool", _pool_build(nn.MaxPool2d), _projection_params, _projection_macs, _map_activations,
             lambda s: "pool" if s.in_ch == s.out_ch else "pool_proj", _map_input),
    Operator("avg_pool", _pool_build(nn.AvgPool2d), _projection_params, _projection_macs, _map_activations,
             lambda s: "pool" if s.in_ch == s.out_ch else "pool_proj", _map_input),
    Operator("skip", _skip_build, _projection_params, _projection_macs, _map_activations,
             lambda s: "skip" if s.in_ch == s.out_ch else "conv1", _map_input),
    Operator("linear", _linear_build, _linear_params, _linear_macs, lambda s: (s.in_ch, s.out_ch),
             lambda s: "linear", lambda s: (s.in_ch,), spatial=False),
    Operator("gap_linear", _gap_linear_build, _linear_params,
             _linear_macs, lambda s: (s.in_ch * s.in_hw ** 2, s.out_ch),
             lambda s: "linear", _map_input, spatial=False),
)}


def operator(name: str) -> Operator:
    """The registry entry for ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    try:
        return OPERATORS[name]
    except KeyError:
        raise ValueError(f"unknown layer op {name!r}; known: {', '.join(OPERATORS)}") from None


# --------------------------------------------------------------------------- attention


class SqueezeExcite(nn.Module):
    """SE (Hu et al. 2018): channel weights from the global average, through a bottleneck MLP."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(1, channels // REDUCTION)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels),
                                nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3)))[:, :, None, None]


def eca_kernel(channels: int) -> int:
    """ECA's adaptive 1-D kernel size (Wang et al. 2020, gamma=2, b=1): odd, grows with log2(C)."""
    t = int(abs((math.log2(channels) + 1) / 2))
    return t if t % 2 else t + 1


class EfficientChannelAttention(nn.Module):
    """ECA: channel weights from a 1-D conv across the global averages (no bottleneck)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        k = eca_kernel(channels)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.conv(x.mean((2, 3))[:, None, :]))
        return x * weights[:, 0, :, None, None]


class ConvBlockAttention(nn.Module):
    """CBAM (Woo et al. 2018): channel attention from average and max pooling through one shared
    MLP, then spatial attention from a 7x7 conv over the channel mean and max."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(1, channels // REDUCTION)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, channels, bias=False))
        self.spatial = nn.Conv2d(2, 1, CBAM_KERNEL, padding=CBAM_KERNEL // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = torch.sigmoid(self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3))))
        x = x * channel[:, :, None, None]
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


@dataclass(frozen=True)
class Attention:
    """An attention module applied to a block's output: ``channels`` and ``hw`` are the output's."""

    name: str
    build: Callable[[int], nn.Module]
    params: Callable[[int], int]
    macs: Callable[[int, int], int]


def _se_params(c: int) -> int:
    h = max(1, c // REDUCTION)
    return 2 * c * h + h + c


def _cbam_params(c: int) -> int:
    return 2 * c * max(1, c // REDUCTION) + 2 * CBAM_KERNEL ** 2


ATTENTIONS: dict[str, Attention] = {a.name: a for a in (
    Attention("se", SqueezeExcite, _se_params, lambda c, hw: 2 * c * max(1, c // REDUCTION) + c * hw * hw),
    Attention("eca", EfficientChannelAttention, eca_kernel, lambda c, hw: c * eca_kernel(c) + c * hw * hw),
    Attention("cbam", ConvBlockAttention, _cbam_params,
              lambda c, hw: 4 * c * max(1, c // REDUCTION) + 2 * c * hw * hw + 2 * CBAM_KERNEL ** 2 * hw * hw),
)}
NO_ATTENTION = "none"


def attention(name: str) -> Attention | None:
    """The attention entry, ``None`` for ``"none"``; an unknown name is a ``ValueError``."""
    if name == NO_ATTENTION:
        return None
    try:
        return ATTENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown attention {name!r}; known: {NO_ATTENTION}, {', '.join(ATTENTIONS)}") from None
