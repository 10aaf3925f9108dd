"""Parent selection: a tournament decided by Pareto rank, then crowding distance.

Survival in regularized evolution is by age only (the oldest member dies when a child joins,
Real et al. 2019, https://arxiv.org/abs/1802.01548): good old architectures cannot dominate the
population forever, which is what keeps aging evolution robust to noisy scores. The quality
pressure comes from the tournament here: NSGA-II's crowded comparison (Deb et al. 2002), so a
lower front wins and, within a front, the member in the emptier region wins.
"""

from __future__ import annotations

import numpy as np

from nni_hwnas.reporting.pareto import crowding_distance, non_dominated_sort

__all__ = ["rank_and_crowding", "tournament"]


def rank_and_crowding(losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pareto rank of every member and its crowding distance within its own front.

    Args:
        losses: Population losses, shape ``(n, n_objectives)``, smaller is better.

    Returns:
        ``(ranks, crowding)``, both shape ``(n,)``; crowding is ``inf`` at a front's extremes.
    """
    ranks = non_dominated_sort(losses)
    crowding = np.zeros(ranks.shape[0])
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        crowding[members] = crowding_distance(np.asarray(losses)[members])
    return ranks, crowding


def tournament(ranks: np.ndarray, crowding: np.ndarray, rng: np.random.Generator, sample_size: int,
               exclude: int | None = None) -> int:
    """Draw ``sample_size`` distinct members at random; return the best by (rank, -crowding).

    Ties (same rank and crowding) go to the member drawn first, which is random, so equal
    members are picked equally often.

    Args:
        ranks: Pareto ranks, shape ``(n,)``.
        crowding: Crowding distances, shape ``(n,)``.
        rng: The caller's generator.
        sample_size: Contestants; capped at the number of eligible members.
        exclude: A member that may not win (the first parent, when picking the second), unless it
            is the only one.

    Returns:
        Index of the winner.
    """
    n = int(ranks.shape[0])
    if n == 0:
        raise ValueError("tournament needs at least one member")
    eligible = np.array([i for i in range(n) if i != exclude]) if exclude is not None and n > 1 else np.arange(n)
    size = max(1, min(int(sample_size), eligible.shape[0]))
    contestants = rng.choice(eligible, size=size, replace=False)
    # lexsort: last key first; stable, so ties keep the (random) draw order.
    order = np.lexsort((np.arange(size), -crowding[contestants], ranks[contestants]))
    return int(contestants[order[0]])
