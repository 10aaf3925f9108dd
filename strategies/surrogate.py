"""Rank candidate children before a trial is spent on one (BANANAS / LINAS style screening).

A small tree ensemble (scikit-learn's ``ExtraTreesRegressor``) learns the loss vector (e.g.
``-accuracy``, ``latency_ms``) of every architecture told so far from a one-hot encoding of its
*canonical* sample (labels that matter; an inactive label is all zeros). Each candidate child gets
the ensemble's mean and spread over trees; the child whose optimistic point (mean - spread) adds
the most hypervolume to the front found so far is the one evaluated. When none would add any, the
one closest to the front (smallest additive epsilon) is taken, so selection never turns random.

Pure numpy/scikit-learn: no NNI, no trials; the evolution core calls :func:`pick_child`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from nni_hwnas.reporting.pareto import hypervolume, pareto_front_indices

__all__ = ["OneHot", "pick_child"]


class OneHot:
    """Samples as 0/1 rows, one column per (label, value); absent labels are all zeros."""

    def __init__(self, labels: Mapping[str, tuple]) -> None:
        self.columns: dict[tuple[str, Any], int] = {}
        for label, values in labels.items():
            for value in values:
                self.columns[(label, _key(value))] = len(self.columns)

    def encode(self, samples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        rows = np.zeros((len(samples), len(self.columns)))
        for i, sample in enumerate(samples):
            for label, value in sample.items():
                column = self.columns.get((label, _key(value)))
                if column is not None:
                    rows[i, column] = 1.0
        return rows


def pick_child(known_x: np.ndarray, known_losses: np.ndarray, candidate_x: np.ndarray,
               rng: np.random.Generator, n_trees: int = 30, optimism: float = 1.0) -> int:
    """Index of the candidate to evaluate.

    Args:
        known_x: ``(n_known, n_features)`` encodings of the architectures evaluated so far.
        known_losses: ``(n_known, n_objectives)`` their losses (smaller is better).
        candidate_x: ``(n_candidates, n_features)`` encodings of the children on offer.
        rng: The strategy's generator (seeds the ensemble, so a seeded run is reproducible).
        n_trees: Ensemble size; 30 keeps a fit on 200 architectures around 50 ms.
        optimism: Spreads subtracted from the mean (0 = trust the mean).
    """
    from sklearn.ensemble import ExtraTreesRegressor

    lower, upper = known_losses.min(axis=0), known_losses.max(axis=0)
    span = np.where(upper > lower, upper - lower, 1.0)
    scaled = (known_losses - lower) / span
    model = ExtraTreesRegressor(n_estimators=n_trees, random_state=int(rng.integers(2**31 - 1)))
    model.fit(known_x, scaled)
    per_tree = np.stack([tree.predict(candidate_x) for tree in model.estimators_])  # (trees, n, objectives)
    per_tree = per_tree.reshape(n_trees, len(candidate_x), -1)
    optimistic = per_tree.mean(axis=0) - optimism * per_tree.std(axis=0)
    front = scaled[pareto_front_indices(scaled)]
    reference = np.full(scaled.shape[1], 1.1)
    base = hypervolume(front, reference)
    gain = np.array([hypervolume(np.vstack([front, point]), reference) - base for point in optimistic])
    if gain.max() > 1e-12:
        return int(np.argmax(gain))
    # Additive epsilon: how far each candidate must improve in its worst objective to reach the front.
    behind = (optimistic[:, None, :] - front[None, :, :]).max(axis=2).min(axis=1)
    return int(np.argmin(behind))


def _key(value: Any) -> tuple:
    return (type(value) is bool, value)
