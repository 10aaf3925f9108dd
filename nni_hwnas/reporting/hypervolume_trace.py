"""Hypervolume of accuracy vs cost after every trial, against a stated, fixed reference.

Objectives are normalised with fixed bounds (accuracy in [0, 1]; cost in [0, ``cost_worst``])
so curves of different runs compare when they share the reference; the reference point is the
normalised worst corner (1, 1): accuracy 0 at cost ``cost_worst``. The reference is written next
to every curve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from nni_hwnas.budgets import Budgets
from nni_hwnas.metrics import direction
from nni_hwnas.reporting.pareto import hypervolume_history, normalize


@dataclass(frozen=True)
class HvReference:
    """Bounds of the normalised objective space; the reference point is the worst corner."""

    score: str = "accuracy"
    cost: str = "latency_ms"
    score_worst: float = 0.0
    score_best: float = 1.0
    cost_worst: float = 1.0
    cost_best: float = 0.0
    #: "linear", or "log": cost enters as log10(cost / cost_best) (``cost_best`` > 0, a floor), so a
    #: network 10x cheaper gains as much volume at any scale; on a linear axis up to the space's
    #: largest cost, every network under ~5% of it is nearly free and the cheap end barely counts.
    cost_scale: str = "linear"

    def __post_init__(self) -> None:
        if self.cost_scale not in ("linear", "log"):
            raise ValueError(f"cost_scale must be 'linear' or 'log', got {self.cost_scale!r}")
        if self.cost_scale == "log" and not 0 < self.cost_best < self.cost_worst:
            raise ValueError(f"a log cost axis needs 0 < cost_best < cost_worst, got {self.cost_best}, {self.cost_worst}")

    def cost_value(self, cost: float) -> float:
        """The cost on this reference's axis (log10 of cost / floor on a log axis)."""
        return float(np.log10(cost / self.cost_best)) if self.cost_scale == "log" else float(cost)

    def describe(self) -> str:
        """One line for benchmark output: the axes, their bounds and the reference point."""
        axis = (f"log10({self.cost} / {self.cost_best:.4g}) over [0, {self.cost_value(self.cost_worst):.4f}]"
                if self.cost_scale == "log" else f"{self.cost} over [{self.cost_best:.4g}, {self.cost_worst:.4g}] (linear)")
        return (f"{self.score} over [{self.score_worst:.4f}, {self.score_best:.4f}] vs {axis}; "
                f"reference point {self.score}={self.score_worst:.4f} at {self.cost}={self.cost_worst:.4g}")

    def as_dict(self) -> dict:
        return {**asdict(self), "reference_point_normalised": [1.0, 1.0],
                "meaning": f"{self.score}={self.score_worst} at {self.cost}={self.cost_worst}"}


def default_reference(row_sets: Iterable[Sequence[Mapping]], score: str = "accuracy", cost: str = "latency_ms",
                      budgets: Budgets | None = None) -> HvReference:
    """The run's budget on ``cost`` when there is one, else 1.1x the largest cost any run observed."""
    limit = Budgets.of(budgets).limit(cost)
    if limit is not None:
        worst = limit
    else:
        costs = [float(r[cost]) for rows in row_sets for r in rows if _usable(r, score, cost)]
        worst = 1.1 * max(costs) if costs else 1.0
    return HvReference(score=score, cost=cost, cost_worst=worst)


def _usable(row: Mapping, score: str, cost: str) -> bool:
    return row.get("status", "SUCCEEDED") == "SUCCEEDED" and all(
        isinstance(row.get(k), (int, float)) for k in (score, cost))


def hypervolume_curve(rows: Sequence[Mapping], reference: HvReference, budgets: Budgets | None = None) -> np.ndarray:
    """Hypervolume after each row (in the given trial order); failed and over-budget rows
    (:meth:`Budgets.admits`) add nothing."""
    budgets = Budgets.of(budgets)
    lower, upper, points = [], [], []
    for name, worst, best in ((reference.score, reference.score_worst, reference.score_best),
                              (reference.cost, reference.cost_value(reference.cost_worst),
                               reference.cost_value(reference.cost_best))):
        sign = -1.0 if direction(name) else 1.0
        lo, hi = sorted((sign * worst, sign * best))
        lower.append(lo)
        upper.append(hi)
    for row in rows:
        if _usable(row, reference.score, reference.cost) and budgets.admits(row):
            points.append([-float(row[reference.score]) if direction(reference.score) else float(row[reference.score]),
                           -reference.cost_value(row[reference.cost]) if direction(reference.cost)
                           else reference.cost_value(row[reference.cost])])
        else:
            points.append([np.inf, np.inf])  # contributes nothing, keeps the trial's place
    if not points:
        return np.zeros(0)
    losses = np.asarray(points, dtype=float)
    finite = np.isfinite(losses).all(axis=1)
    normalised = np.full_like(losses, 2.0)  # outside the reference box: no volume
    if finite.any():
        normalised[finite] = normalize(losses[finite], np.array(lower), np.array(upper))
    return hypervolume_history(normalised, np.array([1.0, 1.0]))
