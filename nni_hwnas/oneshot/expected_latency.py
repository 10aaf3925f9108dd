"""The latency predictor as a differentiable function of choice probabilities (expected latency).

With independent categorical choices ``p[label][value]``, the expected predicted latency is

    E[latency] = overhead + sum over terms t of  sum_{v in values(scope_t)}  prod_{l in scope_t} p[l][v_l] * c_t(v)

because the predictor is affine in its parts (``LatencyCorrection``: overhead + scale * sum of
layer times + per-layer + kernel-switch costs): each layer and each consecutive pair of layers
contributes a term ``c_t`` that depends on a few labels only (its *scope*). The term tables are
computed once from the predictor's public API (``describe``, ``layer_ms``, ``correction.predict``);
for one-hot probabilities the sum is exactly ``LatencyPredictor.predict(sample)``, and the gradient
reaches the logits through the probabilities (DARTS' mixed ops, FBNet, ProxylessNAS's expected latency).

Scopes: ``conv_net`` layer ``j`` depends on ``depth`` and conv ``j-1``/``j``'s labels; any space
whose label grid is small (``medmnist_cnn``: 30 combinations) is tabulated whole, in one term.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from search_spaces.definition import SpaceDefinition
from search_spaces.layers import LayerSpec

#: A space whose mutable label grid is at most this large is tabulated in one term.
WHOLE_GRID_LIMIT = 50_000
#: Labels that never change the executed network (dropout is identity at inference).
INERT_LABELS = ("dropout",)


@dataclass(frozen=True)
class Term:
    """``costs[i1, ..., ik]``: the contribution (ms) for ``labels[0] = values[0][i1]``, ..."""

    labels: tuple[str, ...]
    costs: torch.Tensor


def _conv_net_scopes(definition: SpaceDefinition) -> list[tuple[str, tuple[str, ...]]]:
    """(part, scope) per position of a ``conv_net`` chain: layer ``j`` and the switch into it."""
    max_depth = max(definition.labels()["depth"])
    scopes = []
    for j in range(max_depth + 1):
        own = [f"conv{j}_filters", f"conv{j}_kernel", f"conv{j}_bn"] if j < max_depth else []
        before = [f"conv{j - 1}_filters"] if j > 0 else []
        scopes.append((f"layer{j}", ("depth", *before, *own)))
        kernels = [f"conv{j - 1}_kernel"] if j > 0 else []
        kernels += [f"conv{j}_kernel"] if j < max_depth else []
        scopes.append((f"switch{j}", ("depth", *kernels)))
    scopes.append(("switch_wrap", ("depth", "conv0_kernel", *(f"conv{j}_kernel" for j in range(max_depth)))))
    return scopes


SCOPES: dict[str, Callable[[SpaceDefinition], list[tuple[str, tuple[str, ...]]]]] = {"conv_net": _conv_net_scopes}


class ExpectedLatency:
    """Differentiable expected latency (ms) of a space under per-label probabilities.

    Args:
        predictor: a :class:`~nni_hwnas.hardware.predictor.LatencyPredictor` of the space.
    """

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.definition: SpaceDefinition = predictor.definition
        self.labels = {k: v for k, v in self.definition.mutable_labels().items() if k not in INERT_LABELS}
        self.base_ms = float(predictor.correction.predict(0.0, 0, {}))
        self.terms = self._build_terms()

    # --- tabulation ---------------------------------------------------------------------
    def _layer_part(self, spec: LayerSpec) -> float:
        return float(self.predictor.correction.predict(self.predictor.layer_ms(spec), 1, {})) - self.base_ms

    def _switch_part(self, before: LayerSpec, after: LayerSpec) -> float:
        from nni_hwnas.hardware.latency_table import LayerKey
        from nni_hwnas.hardware.predictor import switch_counts

        classes = [LayerKey.from_spec(before).kernel_class, LayerKey.from_spec(after).kernel_class]
        if classes[0] == classes[1]:
            return 0.0
        pair = switch_counts(classes)  # counts both directions of a 2-cycle: keep one
        one = {k: 1 for k in pair}
        return float(self.predictor.correction.predict(0.0, 0, one)) - self.base_ms

    def _part(self, name: str, specs: list[LayerSpec]) -> float:
        if name == "whole":
            return float(self.predictor.predict_specs(specs)) - self.base_ms
        if name.startswith("layer"):
            j = int(name[5:])
            return self._layer_part(specs[j]) if j < len(specs) else 0.0
        if name == "switch_wrap":
            return self._switch_part(specs[-1], specs[0])
        j = int(name[6:])
        return self._switch_part(specs[j - 1], specs[j]) if 0 < j < len(specs) else 0.0

    def _build_terms(self) -> list[Term]:
        grid = math.prod(len(v) for v in self.labels.values())
        if grid <= WHOLE_GRID_LIMIT or self.definition.name not in SCOPES:
            if grid > WHOLE_GRID_LIMIT:
                raise ValueError(f"expected latency: space {self.definition.name!r} has {grid} label combinations "
                                 f"and no scopes in nni_hwnas.oneshot.expected_latency.SCOPES")
            parts = [("whole", tuple(self.labels))]
        else:
            parts = [(name, tuple(dict.fromkeys(l for l in scope if l in self.labels)))
                     for name, scope in SCOPES[self.definition.name](self.definition)]
        terms = []
        for name, scope in parts:
            values = [self.labels[label] for label in scope]
            costs = torch.zeros([len(v) for v in values], dtype=torch.float64)
            for index in itertools.product(*(range(len(v)) for v in values)):
                sample = {label: vals[i] for label, vals, i in zip(scope, values, index)}
                specs = self.definition.describe(self._fill(sample))
                costs[index] = self._part(name, specs)
            terms.append(Term(scope, costs))
        return terms

    def _fill(self, partial: Mapping[str, Any]) -> dict[str, Any]:
        return {**{label: values[0] for label, values in self.definition.mutable_labels().items()}, **partial}

    # --- evaluation ---------------------------------------------------------------------
    def __call__(self, probs: Mapping[str, Any]) -> torch.Tensor:
        """Expected latency (ms, a 0-d tensor) for ``probs``: label -> probabilities over its values.

        Each entry is a 1-D tensor in the order of ``definition.labels()[label]`` (differentiable),
        or a ``{value: probability}`` dict (NNI's ``export_probs()`` format). Inert or single-valued
        labels may be missing.
        """
        vectors = {label: self._vector(label, probs.get(label)) for label in self.labels}
        total = torch.tensor(self.base_ms, dtype=torch.float64)
        for term in self.terms:
            value = term.costs
            for label in reversed(term.labels):
                value = value @ vectors[label]
            total = total + value
        return total

    def _vector(self, label: str, given: Any) -> torch.Tensor:
        values = self.labels[label]
        if given is None:
            raise ValueError(f"expected latency: no probabilities for choice {label!r}")
        if isinstance(given, Mapping):
            found = {}
            for key, p in given.items():
                matches = [i for i, v in enumerate(values) if v == key or str(v) == str(key)]
                if not matches:
                    raise ValueError(f"expected latency: choice {label!r} has no value {key!r}; values: {list(values)}")
                found[matches[0]] = p
            given = torch.stack([torch.as_tensor(found.get(i, 0.0), dtype=torch.float64) for i in range(len(values))])
        vector = torch.as_tensor(given)
        if vector.shape != (len(values),):
            raise ValueError(f"expected latency: choice {label!r} needs {len(values)} probabilities, got shape "
                             f"{tuple(vector.shape)}")
        return vector.to(torch.float64)

    def one_hot(self, sample: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The probabilities that put all mass on ``sample`` (for checks and for scoring a sample)."""
        full = self.definition.complete(sample)
        return {label: torch.tensor([1.0 if v == full[label] else 0.0 for v in values], dtype=torch.float64)
                for label, values in self.labels.items()}
