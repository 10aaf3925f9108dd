"""Pareto ranking, crowding and hypervolume for minimisation problems (pure numpy).

Every function takes a ``losses`` matrix of shape ``(n_points, n_objectives)`` in which
**smaller is better in every column**; callers flip higher-is-better metrics beforehand
(see :func:`nni_hwnas.metrics.to_losses`). Keeping one direction here means ranking,
crowding and hypervolume never need to know which metric they are looking at.

Values must be finite: a failed trial has no meaningful place on a front, so drop or
penalise it before calling these functions. Wrong shapes raise :class:`ValueError`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "dominates",
    "non_dominated_sort",
    "pareto_mask",
    "pareto_front_indices",
    "crowding_distance",
    "hypervolume",
    "hypervolume_history",
    "normalize",
]

# Rows per block when building the pairwise dominance matrix, so that the temporary
# (block, n, d) comparison arrays stay small even for many thousands of points.
_BLOCK_ELEMENTS = 4_000_000


# --------------------------------------------------------------------------- validation


def _check_losses(losses: np.ndarray, name: str = "losses") -> np.ndarray:
    """Return ``losses`` as a finite float array of shape (n, d); raise ValueError otherwise.

    An empty 1-D input (``[]``) is accepted as "no points" and returned with shape (0, 0).
    """
    arr = np.asarray(losses, dtype=float)
    if arr.ndim == 1 and arr.size == 0:
        return arr.reshape(0, 0)
    if arr.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array of shape (n_points, n_objectives); got shape {arr.shape}"
        )
    if arr.shape[0] > 0 and arr.shape[1] == 0:
        raise ValueError(f"`{name}` has {arr.shape[0]} points but no objectives (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        row = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise ValueError(
            f"`{name}` must be finite; row {row} is {arr[row].tolist()} "
            "(drop or penalise failed trials first)"
        )
    return arr


def _check_vector(values: np.ndarray, name: str, n_objectives: int) -> np.ndarray:
    """Return a finite float vector of shape (n_objectives,); raise ValueError otherwise."""
    vec = np.asarray(values, dtype=float)
    if vec.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array of shape (n_objectives,); got shape {vec.shape}")
    if n_objectives and vec.shape[0] != n_objectives:
        raise ValueError(
            f"`{name}` has {vec.shape[0]} values but losses have {n_objectives} objectives"
        )
    if not np.all(np.isfinite(vec)):
        raise ValueError(f"`{name}` must be finite; got {vec.tolist()}")
    return vec


# --------------------------------------------------------------------------- dominance


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Return True when point ``a`` Pareto-dominates point ``b`` (minimisation).

    ``a`` dominates ``b`` when it is no worse in every objective and strictly better in at
    least one; equal points therefore do not dominate each other.

    Args:
        a: Loss vector, shape (n_objectives,).
        b: Loss vector, shape (n_objectives,).

    Raises:
        ValueError: If ``a`` and ``b`` are not 1-D vectors of the same length.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"`a` and `b` must be 1-D loss vectors; got shapes {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise ValueError(f"`a` has {a.shape[0]} objectives but `b` has {b.shape[0]}")
    return bool(np.all(a <= b) and np.any(a < b))


def _dominance_matrix(losses: np.ndarray) -> np.ndarray:
    """Return ``D`` of shape (n, n) with ``D[i, j]`` True when point i dominates point j.

    Built in row blocks so the (block, n, d) temporaries stay bounded in memory.
    """
    n, d = losses.shape
    out = np.empty((n, n), dtype=bool)
    block = max(1, _BLOCK_ELEMENTS // max(1, n * d))
    for start in range(0, n, block):
        rows = losses[start:start + block, None, :]
        cols = losses[None, :, :]
        out[start:start + block] = np.all(rows <= cols, axis=2) & np.any(rows < cols, axis=2)
    return out


def non_dominated_sort(losses: np.ndarray) -> np.ndarray:
    """Rank points into successive Pareto fronts (Deb et al.'s fast non-dominated sort).

    Rank 0 is the non-dominated front; rank k holds the points dominated only by points of
    ranks < k. NSGA-style selection uses the rank as its primary key. Identical points never
    dominate each other, so exact duplicates share a rank.

    Args:
        losses: Loss matrix, shape (n_points, n_objectives), smaller is better.

    Returns:
        Integer ranks, shape (n_points,); empty for no points.

    Raises:
        ValueError: If ``losses`` is not a finite 2-D array.
    """
    losses = _check_losses(losses)
    n = losses.shape[0]
    ranks = np.full(n, -1, dtype=int)
    if n == 0:
        return ranks
    dom = _dominance_matrix(losses)
    # domination_count[j]: how many not-yet-ranked points dominate j.
    domination_count = dom.sum(axis=0).astype(np.int64)
    front = np.flatnonzero(domination_count == 0)
    rank = 0
    while front.size:
        ranks[front] = rank
        # Remove the current front: every point it dominates loses one dominator.
        domination_count -= dom[front].sum(axis=0)
        domination_count[front] = -1  # never selected again
        front = np.flatnonzero(domination_count == 0)
        rank += 1
    return ranks


def pareto_mask(losses: np.ndarray) -> np.ndarray:
    """Mark the non-dominated points (rank 0), e.g. to highlight the front in a plot.

    Args:
        losses: Loss matrix, shape (n_points, n_objectives), smaller is better.

    Returns:
        Boolean mask, shape (n_points,); duplicates of a front point are all marked.
    """
    losses = _check_losses(losses)
    if losses.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return ~_dominance_matrix(losses).any(axis=0)


def pareto_front_indices(losses: np.ndarray) -> np.ndarray:
    """Return the indices of the non-dominated points, ordered for drawing a front line.

    Points are sorted by the first objective, ties broken by the following objectives and
    finally by index, so the order is deterministic.

    Args:
        losses: Loss matrix, shape (n_points, n_objectives), smaller is better.

    Returns:
        Integer indices into ``losses``, shape (n_front,).
    """
    losses = _check_losses(losses)
    idx = np.flatnonzero(pareto_mask(losses))
    if idx.size == 0:
        return idx.astype(int)
    front = losses[idx]
    # np.lexsort sorts by the last key first, so pass objectives in reverse order.
    keys = (idx,) + tuple(front[:, k] for k in range(front.shape[1] - 1, -1, -1))
    return idx[np.lexsort(keys)]


# --------------------------------------------------------------------------- crowding


def crowding_distance(losses: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within the given set (pass one front at a time).

    The distance rewards points in sparse regions so that truncating a front keeps it spread
    out. Per objective, points are sorted and each interior point adds the gap between its
    two neighbours divided by the objective's range; boundary points (every point attaining
    the objective's minimum or maximum) get ``inf`` so the extremes always survive.
    Objectives with zero range contribute nothing (no ``inf``, no division by zero).
    Interior ties within one objective are ordered by row (stable sort), as in the textbook
    algorithm, so only then does the result depend on row order.

    With 1 or 2 points every distance is ``inf``. Exact duplicates are handled like pymoo
    does: the distance is computed over the distinct points, the first copy of a point gets
    it and later copies get 0, so selection does not keep clones for their "diversity".

    Args:
        losses: Loss matrix of one front, shape (n_points, n_objectives), smaller is better.

    Returns:
        Float distances, shape (n_points,), never NaN.
    """
    losses = _check_losses(losses)
    n = losses.shape[0]
    if n <= 2:
        return np.full(n, np.inf)
    _, first = np.unique(losses, axis=0, return_index=True)
    first = np.sort(first)  # index of the first copy of each distinct point
    unique = losses[first]
    m = unique.shape[0]
    if m <= 2:
        distinct = np.full(m, np.inf)
    else:
        distinct = np.zeros(m)
        for k in range(unique.shape[1]):
            col = unique[:, k]
            lo, hi = col.min(), col.max()
            span = hi - lo
            if span <= 0:
                continue
            order = np.argsort(col, kind="stable")
            s = col[order]
            gaps = np.empty(m)
            gaps[1:-1] = (s[2:] - s[:-2]) / span
            gaps[0] = gaps[-1] = 0.0
            distinct[order] += gaps
            distinct[(col == lo) | (col == hi)] = np.inf
    out = np.zeros(n)
    out[first] = distinct
    return out


# --------------------------------------------------------------------------- hypervolume


def _non_dominated_unique(points: np.ndarray) -> np.ndarray:
    """Drop duplicates and dominated points; they never change a hypervolume."""
    points = np.unique(points, axis=0)
    if points.shape[0] <= 1:
        return points
    return points[~_dominance_matrix(points).any(axis=0)]


def _hv2d(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume by a sweep along x; points must lie strictly inside ``ref``."""
    if points.shape[0] == 0:
        return 0.0
    order = np.lexsort((points[:, 1], points[:, 0]))
    x = points[order, 0]
    best_y = np.minimum.accumulate(points[order, 1])
    widths = np.diff(np.append(x, ref[0]))
    return float(np.sum(widths * (ref[1] - best_y)))


def _hv(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of points strictly inside ``ref`` (any dimension).

    d=1 and d=2 are closed form / a sweep; d>=3 slices along the last axis: between two
    consecutive distinct last coordinates, the cross-section is the (d-1)-dimensional
    hypervolume of every point at or below the slab. For d=3 this is O(n^2 log n).
    """
    n, d = points.shape
    if n == 0:
        return 0.0
    if d == 1:
        return float(ref[0] - points[:, 0].min())
    if d == 2:
        return _hv2d(points, ref)
    points = _non_dominated_unique(points)
    points = points[np.argsort(points[:, -1], kind="stable")]
    z = points[:, -1]
    bounds = np.append(z, ref[-1])
    total = 0.0
    for i in range(points.shape[0]):
        thickness = bounds[i + 1] - bounds[i]
        if thickness <= 0:
            continue  # same level as the next point: its slab starts there
        total += thickness * _hv(points[: i + 1, :-1], ref[:-1])
    return float(total)


def hypervolume(losses: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume dominated by ``losses`` and bounded by ``reference``.

    The hypervolume is the standard single-number quality of a front: it grows when a point
    improves any trade-off, and a fixed reference makes runs comparable. Points that do not
    strictly dominate ``reference`` in every coordinate contribute nothing. Exact for every
    dimension: a sweep for d=2, slicing into 2-D sweeps for d=3 (O(n^2 log n)), and recursive
    slicing for d>=4 (exponential in d; meant for small fronts).

    Args:
        losses: Loss matrix, shape (n_points, n_objectives), smaller is better.
        reference: Reference (nadir) point, shape (n_objectives,). After :func:`normalize`,
            a common choice is 1.1 per objective.

    Returns:
        The hypervolume; 0.0 for no points.

    Raises:
        ValueError: If shapes disagree or values are not finite.
    """
    losses = _check_losses(losses)
    ref = _check_vector(reference, "reference", losses.shape[1])
    if losses.shape[0] == 0:
        return 0.0
    inside = losses[np.all(losses < ref, axis=1)]
    return _hv(inside, ref)


def hypervolume_history(losses: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Hypervolume of the first ``i + 1`` points for every ``i``: the "HV after each trial" curve.

    Only the current non-dominated archive is kept, and the hypervolume is recomputed only
    when a new point enters it (a weakly dominated point cannot add volume), so long runs
    stay cheap. The curve is non-decreasing.

    Args:
        losses: Loss matrix in trial order, shape (n_points, n_objectives), smaller is better.
        reference: Reference point, shape (n_objectives,).

    Returns:
        Float array, shape (n_points,).

    Raises:
        ValueError: If shapes disagree or values are not finite.
    """
    losses = _check_losses(losses)
    ref = _check_vector(reference, "reference", losses.shape[1])
    n = losses.shape[0]
    history = np.zeros(n)
    archive = np.empty((0, losses.shape[1]))
    current = 0.0
    for i in range(n):
        p = losses[i]
        if np.all(p < ref) and not np.any(np.all(archive <= p, axis=1)):
            keep = ~np.all(p <= archive, axis=1)  # drop archive points p now dominates
            archive = np.vstack([archive[keep], p])
            # max() guards against a last-bit rounding dip; exact arithmetic never decreases.
            current = max(current, _hv(archive, ref))
        history[i] = current
    return history


# --------------------------------------------------------------------------- scaling


def normalize(losses: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Map each objective to [0, 1] using fixed, known bounds (values outside are clipped).

    Objectives live on wildly different scales (accuracy vs. milliseconds vs. parameter
    counts); with fixed bounds rather than per-run min/max, hypervolumes of different runs
    are computed in the same space and can be compared. A usual choice of reference point
    afterwards is 1.1 per objective, so points on the upper bound still count; callers may
    pick any reference.

    Args:
        losses: Loss matrix, shape (n_points, n_objectives), smaller is better.
        lower: Value mapped to 0 per objective, shape (n_objectives,).
        upper: Value mapped to 1 per objective, shape (n_objectives,); must exceed ``lower``.

    Returns:
        Float array of the same shape as ``losses`` with values in [0, 1].

    Raises:
        ValueError: If shapes disagree, values are not finite, or ``upper <= lower`` somewhere.
    """
    losses = _check_losses(losses)
    lo = _check_vector(lower, "lower", losses.shape[1])
    hi = _check_vector(upper, "upper", losses.shape[1])
    if lo.shape != hi.shape:
        raise ValueError(f"`lower` has {lo.shape[0]} values but `upper` has {hi.shape[0]}")
    bad = np.flatnonzero(hi <= lo)
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"`upper` must exceed `lower` for every objective; objective {k}: "
                         f"lower={lo[k]}, upper={hi[k]}")
    if losses.shape[0] == 0:
        return np.zeros((0, lo.shape[0]))
    return np.clip((losses - lo) / (hi - lo), 0.0, 1.0)
