"""Analytic costs of a network from its :class:`~search_spaces.layers.LayerSpec` list.

No torch, no timing: microseconds per architecture, so strategies can screen candidates freely.
Units are in the names: ``flops`` counts multiply-accumulates (MACs) of one forward pass at batch 1
(the convention of NNI's FLOPs profiler and most NAS papers), ``peak_mem_kb`` is the largest
input+output activation pair of any layer at batch 1 in float32 (what an inference runtime that
frees each tensor after use must hold at once), in KiB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from search_spaces.layers import LayerSpec, parameter_count
from search_spaces.ops import attention, conv_hw, operator

BYTES_PER_VALUE = 4  # float32


@dataclass(frozen=True)
class Cost:
    params: int
    flops: int
    peak_mem_kb: float
    param_kb: float

    def as_metrics(self) -> dict[str, float]:
        return {"params": self.params, "flops": self.flops, "peak_mem_kb": self.peak_mem_kb}


def layer_macs(spec: LayerSpec) -> int:
    """Multiply-accumulates of one layer (convolution at its pre-pool output size), from the
    operator registry (:mod:`search_spaces.ops`), attention included."""
    extra = attention(spec.attention)
    hw = conv_hw(spec)
    return operator(spec.op).macs(spec) + (extra.macs(spec.out_ch, hw) if extra else 0)


def layer_activation_values(spec: LayerSpec) -> tuple[int, int]:
    """(input values, largest intermediate/output values) of one layer at batch 1."""
    return operator(spec.op).activations(spec)


def estimate_cost(specs: Sequence[LayerSpec]) -> Cost:
    """Params, MACs and peak activation memory of a whole network."""
    params = parameter_count(specs)
    flops = sum(layer_macs(spec) for spec in specs)
    peak = max((sum(layer_activation_values(spec)) for spec in specs), default=0)
    return Cost(params=params, flops=flops, peak_mem_kb=peak * BYTES_PER_VALUE / 1024,
                param_kb=params * BYTES_PER_VALUE / 1024)
