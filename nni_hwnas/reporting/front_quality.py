"""How close a search's front is to the known true front: hypervolume share and IGD+.

Objectives are normalised to the bounds of the *whole* table (every architecture's losses), so
the reference point (1, 1) is the worst error and the largest cost of the space, and runs,
strategies and seeds compare on one scale. The hypervolume share is the run's hypervolume divided
by the true front's; IGD+ (Ishibuchi et al., EMO 2015) is the mean distance from each true-front
point to the nearest found point, counting only the directions in which the found point is worse,
so it is Pareto-compliant and 0 means the whole true front was found.
"""

from __future__ import annotations

import numpy as np

from nni_hwnas.reporting.pareto import hypervolume, hypervolume_history, normalize, pareto_front_indices

REFERENCE = np.array([1.0, 1.0])


def front_indices_2d(losses: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of an ``(n, 2)`` loss matrix, in O(n log n), cheapest first.

    Sorted by the first objective (ties: the second), a row is on the front when its second
    objective is strictly below every earlier row's; exact duplicates keep the first.
    """
    order = np.lexsort((losses[:, 1], losses[:, 0]))
    best = np.minimum.accumulate(losses[order, 1])
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = losses[order[1:], 1] < best[:-1]
    return order[keep]


class FrontYardstick:
    """Scores found points against all ``(n_cells, n_objectives)`` losses of a table (minimised)."""

    def __init__(self, all_losses: np.ndarray) -> None:
        all_losses = np.asarray(all_losses, dtype=float)
        self.lower = all_losses.min(axis=0)
        self.upper = all_losses.max(axis=0)
        scaled = self.scale(all_losses)
        # The O(n^2) dominance matrix of pareto.py would need ~250 MB for a 15,625-cell table: sort first.
        self.true_front = scaled[front_indices_2d(scaled)] if scaled.shape[1] == 2 else scaled[pareto_front_indices(scaled)]
        self.true_hv = hypervolume(self.true_front, REFERENCE)

    def scale(self, losses: np.ndarray) -> np.ndarray:
        return normalize(np.asarray(losses, dtype=float).reshape(-1, len(self.lower)), self.lower, self.upper)

    def hv_share(self, losses: np.ndarray) -> float:
        """Hypervolume of ``losses`` over the true front's, in [0, 1]."""
        return hypervolume(self.scale(losses), REFERENCE) / self.true_hv

    def hv_share_curve(self, losses: np.ndarray) -> np.ndarray:
        """``(n_points,)`` share after each point, in trial order."""
        return hypervolume_history(self.scale(losses), REFERENCE) / self.true_hv

    def igd_plus(self, losses: np.ndarray) -> float:
        """Mean over true-front points of the distance to the nearest found point (worse-only parts)."""
        found = self.scale(losses)
        if len(found) == 0:
            return float("inf")
        worse = np.maximum(found[None, :, :] - self.true_front[:, None, :], 0.0)
        return float(np.sqrt((worse ** 2).sum(axis=2)).min(axis=1).mean())
