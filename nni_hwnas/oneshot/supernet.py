"""A super-network of one of our spaces: every sample is a slice of one set of shared weights.

Each :class:`~search_spaces.layers.LayerSpec` a sample describes is run by a *slot* of shared
weights, chosen by :func:`slot_key` (op, position in the network, flatten, input resolution), so
the same layer position at the same resolution always reuses the same tensors, as in OFA / SPOS:

- width sharing: every tensor of a layer is the leading slice of the slot's largest one (output
  and input channels, hidden units, SE / CBAM bottlenecks, BN vectors);
- kernel sharing: a ``k x k`` (or 1-D, ECA) kernel is the centre of the slot's largest kernel, so
  ``conv1x1`` is the centre of ``conv3x3`` and ``dw3x3`` of ``dw5x5``;
- op choice: each op (conv, depthwise, dilated, pools and skip with their projections) has its
  own slot per position; attention modules (SE, CBAM, ECA) live in the slot of the op they follow;
- batch norm, conv bias and projections are kept per slot, as the frozen model builds them.

Nothing here is specific to one space or op: the layer is the module ``build_layer`` builds (a
template on the meta device, no memory), run by ``torch.func.functional_call`` with the slot's
slices in place of its tensors. A tensor's *role* in the slot is its place in the block (``op`` or
the attention it belongs to, module class and count, tensor name), so a residual wrapper or a
dropout that shifts module indices still finds the same weights. The frozen model and the
super-network therefore compute the same function by construction, and a new op needs no code.

The slot sizes come from :func:`covering_samples`: every structure (``depth``, ``stages``,
``blocks``) with every pair of values on neighbouring positions of every choice, so each position
sees every (previous width, own width, op, attention) its samples can have.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import torch
from torch import nn
from torch.func import functional_call

from search_spaces.definition import SpaceDefinition
from search_spaces.layers import LayerSpec, build_layer, build_network
from search_spaces.ops import ATTENTIONS

SlotKey = tuple[str, int, bool, int]
STRUCTURE_LABELS = ("depth", "stages", "blocks")  # labels that change which positions exist
ATTENTION_TYPES = tuple(entry.build for entry in ATTENTIONS.values())
BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


def slot_key(position: int, spec: LayerSpec) -> SlotKey:
    """Which shared weights run layer ``position`` of a network (see the module docstring)."""
    return (spec.op, position, spec.flatten, spec.in_hw)


@dataclass(frozen=True)
class Role:
    """One tensor of a block, named independently of module indices (see the module docstring)."""

    name: str  # e.g. "op:Conv2d0:weight", "se:Linear1:bias" (no dots: a parameter name)
    module: str  # the module class, for initialisation
    is_parameter: bool
    centred: bool  # a conv kernel: spatial dims are cut from the centre, not the start


@functools.lru_cache(maxsize=None)
def template(spec: LayerSpec) -> nn.Module:
    """The block ``build_layer`` builds for ``spec``, on the meta device (structure only, no memory)."""
    with torch.device("meta"):
        return build_layer(spec)


@functools.lru_cache(maxsize=None)
def roles(spec: LayerSpec) -> tuple[tuple[str, Role, tuple[int, ...]], ...]:
    """(state-dict name, role, shape) of every tensor of ``spec``'s block."""
    module = template(spec)
    groups = {name: next(a for a, entry in ATTENTIONS.items() if isinstance(m, entry.build))
              for name, m in module.named_modules() if isinstance(m, ATTENTION_TYPES)}
    counts: dict[tuple[str, str], int] = {}
    out = []
    for name, m in module.named_modules():
        tensors = [(t, True) for t in m.named_parameters(recurse=False)] + \
                  [(t, False) for t in m.named_buffers(recurse=False)]
        if not tensors:
            continue
        group = next((g for prefix, g in groups.items() if name.startswith(prefix + ".")), "op")
        cls = type(m).__name__
        index = counts.get((group, cls), 0)
        counts[(group, cls)] = index + 1
        for (tensor_name, tensor), is_parameter in tensors:
            role = Role(f"{group}:{cls}{index}:{tensor_name}", cls, is_parameter,
                        isinstance(m, nn.modules.conv._ConvNd) and tensor_name == "weight")
            out.append((f"{name}.{tensor_name}" if name else tensor_name, role, tuple(tensor.shape)))
    return tuple(out)


def _pair_patterns(values: tuple) -> list[tuple[Any, Any]]:
    return [(a, b) for a in values for b in values] if len(values) > 1 else [(values[0], values[0])]


def covering_samples(definition: SpaceDefinition) -> Iterator[dict[str, Any]]:
    """Samples that together put every pair of neighbouring values at every position.

    Labels with the same value list form a group (all ``conv{i}_filters``, all ``s*_b*_op``); each
    group alternates one ordered pair of its values along its labels, so position ``i`` meets every
    (value at ``i - 1``, value at ``i``) combination; structure labels take every value.
    """
    labels = definition.mutable_labels()
    structure = [label for label in STRUCTURE_LABELS if label in labels]
    groups: dict[tuple, list[str]] = {}
    for label, values in labels.items():
        if label not in structure:
            groups.setdefault(tuple(values), []).append(label)
    options = [_pair_patterns(values) for values in groups]
    for shape in itertools.product(*(labels[label] for label in structure)):
        for patterns in itertools.product(*options):
            sample = dict(zip(structure, shape))
            for members, (even, odd) in zip(groups.values(), patterns):
                sample.update({label: even if i % 2 == 0 else odd for i, label in enumerate(members)})
            yield sample


def slot_roles(definition: SpaceDefinition) -> dict[SlotKey, dict[str, tuple[Role, tuple[int, ...]]]]:
    """Every slot's roles at their largest shape over :func:`covering_samples`."""
    slots: dict[SlotKey, dict[str, tuple[Role, tuple[int, ...]]]] = {}
    seen: set[tuple[int, LayerSpec]] = set()
    for sample in covering_samples(definition):
        for position, spec in enumerate(definition.describe(sample)):
            if (position, spec) in seen:
                continue
            seen.add((position, spec))
            slot = slots.setdefault(slot_key(position, spec), {})
            for _, role, shape in roles(spec):
                old = slot.get(role.name, (role, shape))[1]
                slot[role.name] = (role, tuple(max(a, b) for a, b in zip(old, shape)))
    return slots


def _initial(role: Role, shape: tuple[int, ...], fan_in: int, generator: torch.Generator) -> torch.Tensor:
    """PyTorch's default initialisation of the role's module, at the slot's largest shape."""
    tensor = torch.empty(shape, dtype=torch.long if role.name.endswith("num_batches_tracked") else torch.float32)
    tail = role.name.rsplit(":", 1)[1]
    if role.module.startswith("BatchNorm"):
        return tensor.fill_(1.0 if tail in ("weight", "running_var") else 0)
    if tail == "weight":
        nn.init.kaiming_uniform_(tensor, a=math.sqrt(5), generator=generator)
        return tensor
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
    return tensor.uniform_(-bound, bound, generator=generator)


class _Slot(nn.Module):
    """Shared tensors of one slot, one parameter or buffer per role (named by the role)."""

    def __init__(self, role_shapes: Mapping[str, tuple[Role, tuple[int, ...]]], generator: torch.Generator) -> None:
        super().__init__()
        self.roles = {name: role for name, (role, _) in role_shapes.items()}
        for name, (role, shape) in role_shapes.items():
            weight = role_shapes.get(name.rsplit(":", 1)[0] + ":weight")
            fan_in = math.prod(weight[1][1:]) if weight is not None else 0
            tensor = _initial(role, shape, fan_in, generator)
            if role.is_parameter:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    def tensor(self, role: str) -> torch.Tensor:
        return getattr(self, role)


def _slice(big: torch.Tensor, shape: tuple[int, ...], centred: bool) -> torch.Tensor:
    index = tuple(slice((b - s) // 2, (b - s) // 2 + s) if centred and d >= 2 else slice(0, s)
                  for d, (b, s) in enumerate(zip(big.shape, shape)))
    return big[index]


BnStats = dict[int, dict[str, torch.Tensor]]  # position -> state name -> recalibrated BN statistic


class SuperNet(nn.Module):
    """Shared weights for every sample of ``definition``; ``forward(x, sample)`` runs one sub-network.

    BN layers are used with batch statistics in training; in eval mode either with the slot's
    running statistics (``batch_stats=False``: shared by all widths, what :func:`extract_subnet`
    copies), with the batch's own statistics (``batch_stats=True``), or with statistics recalibrated
    for the sample (:meth:`calibrate`, passed as ``stats``). Running statistics averaged over many
    sub-networks fit none of them; OFA recalibrates them per sub-network on a few training batches.
    """

    def __init__(self, definition: SpaceDefinition, seed: int = 0) -> None:
        super().__init__()
        self.definition = definition
        shapes = slot_roles(definition)
        self.keys = list(shapes)
        # Its own generator: drawing from torch's global one made the initial weights (and so a
        # conditioned run's architectures) depend on what the process had drawn before.
        generator = torch.Generator().manual_seed(int(seed))
        self.slots = nn.ModuleList(_Slot(shapes[key], generator) for key in self.keys)
        self._index = {key: i for i, key in enumerate(self.keys)}
        self.batch_stats = False

    def specs(self, sample: Mapping[str, Any]) -> list[LayerSpec]:
        return self.definition.describe(sample)

    def slot_for(self, position: int, spec: LayerSpec) -> _Slot:
        key = slot_key(position, spec)
        if key not in self._index:
            raise ValueError(f"super-network has no slot for layer {position} ({spec}); the sample is outside the space")
        return self.slots[self._index[key]]

    def sliced(self, position: int, spec: LayerSpec) -> dict[str, torch.Tensor]:
        """The block's state dict as views of its slot (gradients and BN updates reach the slot)."""
        slot = self.slot_for(position, spec)
        out = {}
        for name, role, shape in roles(spec):
            big = slot.tensor(role.name)
            if any(s > b for s, b in zip(shape, big.shape)):
                raise ValueError(f"super-network slot of layer {position} is smaller than {spec}; "
                                 "the sample is outside the space")
            out[name] = _slice(big, shape, role.centred)
        return out

    def forward(self, x: torch.Tensor, sample: Mapping[str, Any], stats: BnStats | None = None) -> torch.Tensor:
        for position, spec in enumerate(self.specs(sample)):
            tensors = self.sliced(position, spec)
            block = template(spec)
            block.train(self.training)
            if stats is not None:
                tensors.update(stats[position])
            elif self.batch_stats and not self.training:
                tensors.update({name: None for name, role, _ in roles(spec)
                                if role.name.rsplit(":", 1)[1] in BN_STATS[:2]})
            x = functional_call(block, tensors, (x,))
        return x

    @torch.no_grad()
    def calibrate(self, sample: Mapping[str, Any], batches: list[torch.Tensor]) -> BnStats:
        """BN statistics of ``sample`` alone: fresh running averages over ``batches`` (OFA's recalibration).

        Only batch norm sees training mode (cumulative average, ``momentum=None``); dropout stays off
        and the shared weights and statistics are untouched.
        """
        specs = self.specs(sample)
        stats: BnStats = {p: {name: torch.zeros_like(t) if not name.endswith("running_var") else torch.ones_like(t)
                              for name, t in self.sliced(p, spec).items() if name.rsplit(".", 1)[-1] in BN_STATS}
                          for p, spec in enumerate(specs)}
        norms = [m for spec in specs for m in template(spec).modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for xb in batches:
            x = xb
            for position, spec in enumerate(specs):
                block = template(spec)
                block.eval()
                for m in block.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.train()
                        m.momentum = None
                x = functional_call(block, {**self.sliced(position, spec), **stats[position]}, (x,))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        return stats


@torch.no_grad()
def extract_subnet(supernet: SuperNet, sample: Mapping[str, Any], stats: BnStats | None = None) -> nn.Sequential:
    """The plain network of ``sample`` (``build_network``'s layout) holding copies of its shared slices.

    Its ``state_dict`` loads into NNI's frozen model of the same sample (``space.freeze(sample).net``);
    with ``stats`` (:meth:`SuperNet.calibrate`) its BN statistics are the recalibrated ones.
    """
    specs = supernet.specs(sample)
    network = build_network(specs)
    for position, (spec, block) in enumerate(zip(specs, network)):
        tensors = supernet.sliced(position, spec)
        if stats is not None:
            tensors.update(stats[position])
        block.load_state_dict({name: t.clone() for name, t in tensors.items()})
    return network
