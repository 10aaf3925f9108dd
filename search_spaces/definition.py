"""A search space as plain data, independent of NNI.

:class:`SpaceDefinition` holds the allowed values of each choice (from a YAML preset), the input
shape and the class count, and maps a *sample* (choice label -> value, NNI's format) to the
:class:`~search_spaces.layers.LayerSpec` list of the network it describes. Cost models, latency
tables and strategies use it directly: building an NNI ``ModelSpace`` costs milliseconds, a
description costs microseconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
from abc import ABC, abstractmethod
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import numpy as np

from nni_hwnas.errors import UserError, unknown

from .layers import LayerSpec

# Above this many samples, describing every one to enumerate layers is too slow (~20 µs each).
ENUMERATE_BY_SAMPLES_LIMIT = 200_000


@dataclass(frozen=True)
class ChoiceRule:
    """What values a choice kind may take in this space (the outer bounds a preset may widen to)."""

    kind: type
    low: float | None = None
    high: float | None = None
    odd: bool = False
    allowed: tuple[str, ...] = ()  # for ``kind=str``: the names a value may be

    def describe(self) -> str:
        if self.kind is bool:
            return "true/false"
        if self.kind is str:
            return "one of " + ", ".join(self.allowed)
        text = f"{self.kind.__name__}s in [{self.low}, {self.high}]" if self.high is not None else \
            f"{self.kind.__name__}s >= {self.low}"
        return text + (", odd" if self.odd else "")

    def check(self, space: str, name: str, value: Any) -> Any:
        """Return ``value`` coerced to the rule's type, or raise a one-line :class:`UserError`."""
        bad = UserError(f"space {space!r}: choice {name!r} has value {value!r}; allowed: {self.describe()}")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind is str:
            if value not in self.allowed:
                raise bad
            return str(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if self.kind is int:
            if float(value) != int(value):
                raise bad
            value = int(value)
        else:
            value = float(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise bad
        if self.odd and value % 2 != 1:
            raise bad
        return value


# Bounds several spaces share, kept in one place: how deep, how wide, how much dropout.
DEPTH_RULE = ChoiceRule(int, 1, 8)
FILTERS_RULE = ChoiceRule(int, 1, 1024)
DROPOUT_RULE = ChoiceRule(float, 0.0, 0.95)


@dataclass(frozen=True)
class SpaceDefinition(ABC):
    """Base for our spaces' pure descriptions. Subclasses set ``name``, ``rules`` and ``defaults``
    and implement :meth:`labels` and :meth:`describe`."""

    choices: Mapping[str, tuple]
    input_shape: tuple[int, int, int]
    num_classes: int

    name: ClassVar[str] = ""
    rules: ClassVar[dict[str, ChoiceRule]] = {}
    defaults: ClassVar[dict[str, list]] = {}

    @classmethod
    def create(cls, choices: Mapping[str, Sequence] | None, input_shape: Sequence[int],
               num_classes: int) -> "SpaceDefinition":
        """Validate preset choices (missing kinds take the defaults) and the data shape."""
        merged: dict[str, tuple] = {}
        given = dict(choices or {})
        for key in given:
            if key not in cls.rules:
                raise unknown(f"choice of space {cls.name!r}", key, cls.rules)
        for key, rule in cls.rules.items():
            values = given.get(key, cls.defaults[key])
            if not isinstance(values, (list, tuple)) or len(values) == 0:
                raise UserError(f"space {cls.name!r}: choice {key!r} must be a non-empty list of values, got {values!r}")
            checked = tuple(rule.check(cls.name, key, v) for v in values)
            merged[key] = tuple(dict.fromkeys(checked))  # drop repeats, keep order
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3 or min(shape) < 1 or shape[1] != shape[2]:
            raise UserError(f"space {cls.name!r}: input shape must be (channels, size, size) with square images, got {shape}")
        if int(num_classes) < 1:
            raise UserError(f"space {cls.name!r}: num_classes must be >= 1, got {num_classes}")
        return cls(merged, shape, int(num_classes))

    # --- what subclasses define ---------------------------------------------------------
    @abstractmethod
    def labels(self) -> dict[str, tuple]:
        """Every choice label of the space with its candidate values (stable, human-readable)."""
        ...

    @abstractmethod
    def describe(self, sample: Mapping[str, Any]) -> list[LayerSpec]:
        """The layers of the network ``sample`` selects."""
        ...

    def active_labels(self, sample: Mapping[str, Any]) -> list[str]:
        """Labels that change the network for this full sample (others, e.g. of unused layers, don't)."""
        return list(self.labels())

    # --- shared behaviour ---------------------------------------------------------------
    def labels_per_position(self, prefixes: Sequence[str], parts: Mapping[str, str]) -> dict[str, tuple]:
        """``{prefix}_{part}`` -> the choice list of kind ``parts[part]``, position by position (the
        per-layer/per-block labels every chain space has), in a stable order."""
        return {f"{prefix}_{part}": self.choices[kind] for prefix in prefixes for part, kind in parts.items()}

    def mutable_labels(self) -> dict[str, tuple]:
        """Labels with more than one value: what a strategy searches over."""
        return {label: values for label, values in self.labels().items() if len(values) > 1}

    def complete(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Check every given value and fill what the network doesn't use.

        Single-valued labels and labels that are inactive for this sample (the layers beyond
        ``depth``) may be missing; they take their first value. A missing active label is an error.
        """
        full: dict[str, Any] = {}
        for label, values in self.labels().items():
            if label not in sample:
                full[label] = values[0]
                continue
            value = sample[label]
            # Keep the declared value, not the given one: NNI's manager re-encodes JSON (0.0 comes
            # back as 0) and identities hash the values. Booleans never match numbers.
            matches = [v for v in values if v == value and isinstance(v, bool) == isinstance(value, bool)]
            if not matches:
                raise UserError(f"space {self.name!r}: choice {label!r} = {value!r} is not one of {list(values)}")
            full[label] = matches[0]
        missing = [label for label in self.active_labels(full)
                   if label not in sample and len(self.labels()[label]) > 1]
        if missing:
            raise UserError(f"space {self.name!r}: sample lacks choice(s) {', '.join(missing)}")
        return full

    def canonical(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """The sample reduced to its active labels: two samples name the same network iff equal."""
        full = self.complete(sample)
        return {label: full[label] for label in sorted(self.active_labels(full))}

    def arch_id(self, sample: Mapping[str, Any]) -> str:
        """A short stable hash of the canonical sample, for caches and deduplication."""
        text = json.dumps(self.canonical(sample), sort_keys=True, default=str)
        return hashlib.sha1(f"{self.name}:{text}".encode()).hexdigest()[:12]

    def random_sample(self, rng: np.random.Generator) -> dict[str, Any]:
        labels = self.mutable_labels()
        return {label: values[int(rng.integers(len(values)))] for label, values in labels.items()}

    def extreme_sample(self, pick: str) -> dict[str, Any]:
        """Every label at its smallest (``"min"``) or largest (``"max"``) value; bools: False < True."""
        choose = min if pick == "min" else max
        return {label: choose(values) for label, values in self.mutable_labels().items()}

    def size(self) -> int:
        """Number of label combinations (an upper bound on distinct networks)."""
        return math.prod(len(v) for v in self.mutable_labels().values())

    def all_samples(self) -> Iterator[dict[str, Any]]:
        """Every label combination (``size()`` of them): for small spaces and for tests."""
        labels = self.mutable_labels()
        for values in itertools.product(*labels.values()):
            yield dict(zip(labels, values))

    def enumerate_layers(self) -> list[LayerSpec]:
        """Every distinct layer the space can produce, ``dropout`` set to 0 (identity at inference).

        What the latency profiler measures. This default describes every sample, so it only suits
        small spaces; subclasses enumerate by position instead (input resolution is fixed per
        position, in-channels range over the previous position's filter choices).
        """
        if self.size() > ENUMERATE_BY_SAMPLES_LIMIT:
            raise ValueError(f"{type(self).__name__} has {self.size()} samples, too many to describe one by one: "
                             "give it an enumerate_layers() that enumerates by layer position")
        seen: dict[LayerSpec, None] = {}
        for sample in self.all_samples():
            for spec in self.describe(sample):
                seen.setdefault(dataclasses.replace(spec, dropout=0.0))
        return list(seen)

    def cheapest_candidates(self) -> list[dict[str, Any]]:
        """One sample per ``depth`` value with every other label at its smallest value.

        In our spaces every cost (params, MACs, activation memory, latency) grows with filters,
        hidden units, kernel size and batch-norm, but not with depth (a deeper net can shrink the
        classifier); so the cheapest network of the space, by any of these costs or all of them
        at once, is among these candidates. Used to tell a user that no architecture can meet a budget.
        """
        smallest = self.extreme_sample("min")
        depths = self.mutable_labels().get("depth")
        if depths is None:
            return [smallest]
        return [{**smallest, "depth": depth} for depth in depths]
