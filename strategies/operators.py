"""Variation operators over a sample: a dict ``label -> value`` drawn from ``labels[label]``.

Pure functions of their inputs and a ``numpy.random.Generator``, so a seeded strategy proposes
the same children every time. ``labels`` maps each searched label to the tuple of values it may
take (what :meth:`search_spaces.definition.SpaceDefinition.mutable_labels` returns); labels with a
single value are never changed.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["random_sample", "uniform_crossover", "mutate"]

Labels = Mapping[str, tuple]
Sample = dict[str, Any]


def random_sample(labels: Labels, rng: np.random.Generator) -> Sample:
    """One value per label, uniformly at random (the initial population's draw)."""
    return {label: values[int(rng.integers(len(values)))] for label, values in labels.items()}


def uniform_crossover(first: Mapping[str, Any], second: Mapping[str, Any], labels: Labels,
                      rng: np.random.Generator) -> Sample:
    """Each label comes from ``first`` or ``second`` with equal probability.

    Uniform rather than one-point crossover because our labels have no meaningful order
    (``depth`` sits next to ``dropout`` only by convention); the CIFAR-10 study and NNI's
    ``RegularizedEvolution(crossover=True)`` do the same.
    """
    take_second = rng.random(len(labels)) < 0.5
    return {label: (second if flip else first)[label] for label, flip in zip(labels, take_second)}


def mutate(sample: Mapping[str, Any], labels: Labels, rng: np.random.Generator,
           mutation_prob: float, only: Sequence[str] | None = None) -> Sample:
    """Resample each label with probability ``mutation_prob``, always changing at least one.

    A changed label always takes a *different* value (NNI's evolution may redraw the same one,
    wasting a trial on a clone). When no label was picked by chance, one mutable label is forced
    to change, so a child never equals its parent.

    Args:
        sample: The parent, label -> value.
        labels: label -> candidate values; labels with one value are left alone.
        rng: The caller's generator.
        mutation_prob: Per-label probability of a change, in [0, 1].
        only: Mutate only these labels (e.g. the ones that matter for ``sample``,
            ``SpaceDefinition.canonical``); ``None`` = every label. When none of them is mutable,
            every label is.

    Returns:
        A new dict; ``sample`` is not modified.
    """
    child = dict(sample)
    mutable = [label for label, values in labels.items() if len(values) > 1]
    if only is not None:
        chosen = set(only)
        mutable = [label for label in mutable if label in chosen] or mutable
    if not mutable:
        return child
    picked = [label for label, hit in zip(mutable, rng.random(len(mutable)) < mutation_prob) if hit]
    if not picked:
        picked = [mutable[int(rng.integers(len(mutable)))]]
    for label in picked:
        values = labels[label]
        others = [v for v in values if not _same(v, child.get(label))]
        child[label] = others[int(rng.integers(len(others)))]
    return child


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps ``True`` apart from ``1`` but ``0`` equal to ``0.0`` (JSON round trips)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b
