"""A super-network of one of our spaces: every sample is a slice of one set of shared weights.

Each :class:`~search_spaces.layers.LayerSpec` a sample describes is run by a *slot* of shared
weights, chosen by :func:`slot_key` (op, position in the network, flatten, input resolution), so
the same layer position at the same resolution always reuses the same tensors, as in OFA / SPOS:

- width sharing: a conv with ``f`` filters uses output channels ``[:f]`` (and input channels
  ``[:c]``) of the slot's largest weight; a linear layer likewise;
- kernel sharing: a ``k x k`` kernel is the centre of the slot's largest kernel;
- batch-norm and bias: both are kept per slot (a sample with BN uses the slot's BN, sliced;
  without BN the conv bias), as the frozen model builds them.

The slot sizes come from the largest sample at every depth (every cost grows with every choice in
our spaces, see ``SpaceDefinition.cheapest_candidates``), so nothing here is specific to one space:
a new op needs one slicing function in :func:`_run_slot`. :func:`extract_subnet` copies a sample's
slices into the plain ``nn.Sequential`` that ``build_network`` (and NNI's frozen model) builds, so
the sub-network can be trained further, exported and checked against the super-network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.definition import SpaceDefinition
from search_spaces.layers import LayerSpec, build_network

SlotKey = tuple[str, int, bool, int]


def slot_key(position: int, spec: LayerSpec) -> SlotKey:
    """Which shared weights run layer ``position`` of a network (see the module docstring)."""
    return (spec.op, position, spec.flatten, spec.in_hw)


@dataclass(frozen=True)
class SlotShape:
    op: str
    in_ch: int
    out_ch: int
    kernel: int


def slot_shapes(definition: SpaceDefinition) -> dict[SlotKey, SlotShape]:
    """The largest layer each slot must hold, from the largest sample at every depth."""
    largest = definition.extreme_sample("max")
    depths = definition.labels().get("depth", (None,))
    shapes: dict[SlotKey, SlotShape] = {}
    for depth in depths:
        sample = largest if depth is None else {**largest, "depth": depth}
        for position, spec in enumerate(definition.describe(sample)):
            key = slot_key(position, spec)
            old = shapes.get(key, SlotShape(spec.op, 0, 0, 0))
            shapes[key] = SlotShape(spec.op, max(old.in_ch, spec.in_ch), max(old.out_ch, spec.out_ch),
                                    max(old.kernel, spec.kernel))
    return shapes


class _Slot(nn.Module):
    """Shared weights of one slot: the largest conv (with bias and BN) or linear layer."""

    def __init__(self, shape: SlotShape) -> None:
        super().__init__()
        if shape.op == "conv":
            template = nn.Conv2d(shape.in_ch, shape.out_ch, shape.kernel, padding=shape.kernel // 2)
            self.bn = nn.BatchNorm2d(shape.out_ch)
        elif shape.op == "linear":
            template = nn.Linear(shape.in_ch, shape.out_ch)
        else:
            raise ValueError(f"super-network: no weight sharing for op {shape.op!r}")
        self.weight = template.weight  # default PyTorch init of the largest layer
        self.bias = template.bias


def _conv_weight(slot: _Slot, spec: LayerSpec) -> torch.Tensor:
    big = slot.weight.shape[-1]
    start = (big - spec.kernel) // 2
    return slot.weight[:spec.out_ch, :spec.in_ch, start:start + spec.kernel, start:start + spec.kernel]


def _run_slot(slot: _Slot, spec: LayerSpec, x: torch.Tensor, batch_stats: bool) -> torch.Tensor:
    """The layer ``spec`` through its slot's slices, exactly as ``build_layer`` would compute it."""
    if spec.op == "conv":
        x = F.conv2d(x, _conv_weight(slot, spec), None if spec.batch_norm else slot.bias[:spec.out_ch],
                     stride=spec.stride, padding=spec.kernel // 2)
        if spec.batch_norm:
            bn = slot.bn
            use_batch = batch_stats or bn.training
            # training updates the running statistics' first out_ch entries in place (views of the buffers)
            keep = bn.training or not use_batch
            x = F.batch_norm(x, bn.running_mean[:spec.out_ch] if keep else None,
                             bn.running_var[:spec.out_ch] if keep else None,
                             bn.weight[:spec.out_ch], bn.bias[:spec.out_ch], training=use_batch,
                             momentum=bn.momentum, eps=bn.eps)
        if spec.relu:
            x = F.relu(x)
        if spec.pool:
            x = F.max_pool2d(x, 2)
        return x
    if spec.flatten:
        x = x.flatten(1)
    if spec.dropout > 0:
        x = F.dropout(x, spec.dropout, training=slot.training)
    x = F.linear(x, slot.weight[:spec.out_ch, :spec.in_ch], slot.bias[:spec.out_ch])
    return F.relu(x) if spec.relu else x


class SuperNet(nn.Module):
    """Shared weights for every sample of ``definition``; ``forward(x, sample)`` runs one sub-network.

    BN layers are used with batch statistics in training; in eval mode either with the slot's
    running statistics (``batch_stats=False``: shared by all widths, what :func:`extract_subnet`
    copies) or with the batch's own statistics (``batch_stats=True``), which is how a sample is scored:
    running statistics averaged over many sub-networks fit none of them (OFA recalibrates them; scoring
    on large validation batches with their own statistics does the same in one pass).
    """

    def __init__(self, definition: SpaceDefinition) -> None:
        super().__init__()
        self.definition = definition
        shapes = slot_shapes(definition)
        self.keys = list(shapes)
        self.slots = nn.ModuleList(_Slot(shapes[key]) for key in self.keys)
        self._index = {key: i for i, key in enumerate(self.keys)}
        self.batch_stats = False

    def specs(self, sample: Mapping[str, Any]) -> list[LayerSpec]:
        return self.definition.describe(sample)

    def slot_for(self, position: int, spec: LayerSpec) -> _Slot:
        key = slot_key(position, spec)
        if key not in self._index:
            raise ValueError(f"super-network has no slot for layer {position} ({spec}); the sample is outside the space")
        return self.slots[self._index[key]]

    def forward(self, x: torch.Tensor, sample: Mapping[str, Any]) -> torch.Tensor:
        for position, spec in enumerate(self.specs(sample)):
            x = _run_slot(self.slot_for(position, spec), spec, x, self.batch_stats)
        return x


@torch.no_grad()
def extract_subnet(supernet: SuperNet, sample: Mapping[str, Any]) -> nn.Sequential:
    """The plain network of ``sample`` (``build_network``'s layout) holding copies of its shared slices.

    Its ``state_dict`` loads into NNI's frozen model of the same sample (``space.freeze(sample).net``).
    """
    specs = supernet.specs(sample)
    network = build_network(specs)
    for position, (spec, block) in enumerate(zip(specs, network)):
        slot = supernet.slot_for(position, spec)
        layer = block[0] if spec.op == "conv" else next(m for m in block if isinstance(m, nn.Linear))
        if spec.op == "conv":
            layer.weight.copy_(_conv_weight(slot, spec))
            if spec.batch_norm:
                bn = block[1]
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(bn, name).copy_(getattr(slot.bn, name)[:spec.out_ch])
            else:
                layer.bias.copy_(slot.bias[:spec.out_ch])
        else:
            layer.weight.copy_(slot.weight[:spec.out_ch, :spec.in_ch])
            layer.bias.copy_(slot.bias[:spec.out_ch])
    return network
