"""Tests for nni_hwnas.reporting.pareto against brute-force reference implementations."""

from __future__ import annotations


import numpy as np
import pytest

from nni_hwnas.reporting.pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_history,
    non_dominated_sort,
    normalize,
    pareto_front_indices,
    pareto_mask,
)

# --------------------------------------------------------------------------- brute force


def _dom(a, b) -> bool:
    """Independent scalar-loop dominance check (minimisation)."""
    no_worse = all(x <= y for x, y in zip(a, b))
    better = any(x < y for x, y in zip(a, b))
    return no_worse and better


def _peel_ranks(points: np.ndarray) -> np.ndarray:
    """O(n^2) per front: repeatedly remove the points no remaining point dominates."""
    n = len(points)
    ranks = np.full(n, -1)
    remaining = set(range(n))
    rank = 0
    while remaining:
        front = [i for i in remaining if not any(_dom(points[j], points[i]) for j in remaining)]
        assert front, "peeling must make progress"
        for i in front:
            ranks[i] = rank
        remaining -= set(front)
        rank += 1
    return ranks


def _cell_hv(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume by cell counting on the grid of all distinct coordinates and the reference.

    A grid cell [lo, hi] is inside the dominated region iff some point p has p <= lo in every
    coordinate (its box [p, ref] then contains the whole cell).
    """
    d = len(ref)
    axes = []
    for k in range(d):
        coords = np.unique(np.append(points[:, k][points[:, k] < ref[k]], ref[k])) if len(points) else np.array([ref[k]])
        axes.append(coords)
    if any(len(a) < 2 for a in axes):
        return 0.0
    lows = np.meshgrid(*[a[:-1] for a in axes], indexing="ij")
    widths = np.meshgrid(*[np.diff(a) for a in axes], indexing="ij")
    lo = np.stack([g.ravel() for g in lows], axis=1)  # (cells, d)
    vol = np.prod(np.stack([g.ravel() for g in widths], axis=1), axis=1)
    covered = np.any(np.all(points[None, :, :] <= lo[:, None, :], axis=2), axis=1)
    return float(vol[covered].sum())


def _random_sets(d: int, count: int, seed: int):
    """Yield a mix of continuous sets and small-integer sets full of ties and duplicates."""
    rng = np.random.default_rng(seed)
    for t in range(count):
        n = int(rng.integers(0, 25))
        if t % 2:
            pts = rng.integers(0, 4, size=(n, d)).astype(float)
        else:
            pts = rng.random((n, d))
        if n and t % 3 == 0:  # force exact duplicate rows
            pts = np.vstack([pts, pts[rng.integers(0, n, size=3)]])
        yield pts


# --------------------------------------------------------------------------- dominates


def test_dominates_strict_and_equal_cases():
    assert dominates([1, 2], [1, 3])
    assert dominates([0, 0, 0], [1, 1, 1])
    assert not dominates([1, 3], [1, 2])
    assert not dominates([1, 2], [1, 2])  # equal points do not dominate
    assert not dominates([0, 3], [1, 2])  # trade-off


def test_dominates_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="objectives"):
        dominates([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="1-D"):
        dominates([[1, 2]], [1, 2])


# --------------------------------------------------------------------------- sorting


@pytest.mark.parametrize("d", [2, 3])
def test_non_dominated_sort_matches_bruteforce_peeling(d):
    checked = 0
    for pts in _random_sets(d, count=120, seed=d):
        got = non_dominated_sort(pts)
        assert got.shape == (len(pts),)
        assert np.issubdtype(got.dtype, np.integer)
        np.testing.assert_array_equal(got, _peel_ranks(pts))
        checked += 1
    assert checked == 120


def test_non_dominated_sort_duplicates_share_rank():
    pts = np.array([[1, 1], [1, 1], [2, 2], [2, 2], [0, 3]], dtype=float)
    np.testing.assert_array_equal(non_dominated_sort(pts), [0, 0, 1, 1, 0])


def test_non_dominated_sort_chain_gives_increasing_ranks():
    pts = np.array([[3, 3], [0, 0], [2, 2], [1, 1]], dtype=float)
    np.testing.assert_array_equal(non_dominated_sort(pts), [3, 0, 2, 1])


def test_non_dominated_sort_empty_returns_empty():
    assert non_dominated_sort(np.zeros((0, 2))).shape == (0,)
    assert non_dominated_sort([]).shape == (0,)


def test_pareto_mask_is_rank_zero():
    for pts in _random_sets(3, count=30, seed=7):
        np.testing.assert_array_equal(pareto_mask(pts), non_dominated_sort(pts) == 0)


def test_pareto_front_indices_sorted_by_first_objective():
    pts = np.array([[3, 1], [2, 2], [5, 5], [1, 3], [2, 2], [4, 4]], dtype=float)
    idx = pareto_front_indices(pts)
    np.testing.assert_array_equal(idx, [3, 1, 4, 0])
    assert np.all(np.diff(pts[idx, 0]) >= 0)
    assert pareto_front_indices(np.zeros((0, 2))).shape == (0,)


# --------------------------------------------------------------------------- crowding


def test_crowding_distance_hand_computed_example():
    pts = np.array([[0, 4], [1, 2], [2, 1], [4, 0]], dtype=float)
    cd = crowding_distance(pts)
    # interior: (2-0)/4 + (4-1)/4 = 1.25 and (4-1)/4 + (2-0)/4 = 1.25
    np.testing.assert_allclose(cd, [np.inf, 1.25, 1.25, np.inf])
    pts = np.array([[0, 10], [1, 6], [3, 5], [6, 2], [10, 0]], dtype=float)
    # obj0 gaps /10: .3 .5 .7; obj1 gaps /10: .5 (6 vs 10-5) .4 .5
    np.testing.assert_allclose(crowding_distance(pts), [np.inf, 0.8, 0.9, 1.2, np.inf])


def test_crowding_distance_boundary_points_are_inf():
    rng = np.random.default_rng(0)
    x = np.sort(rng.random(10))
    pts = np.stack([x, 1 - x, rng.random(10)], axis=1)
    cd = crowding_distance(pts)
    for k in range(3):
        assert np.isinf(cd[np.argmin(pts[:, k])])
        assert np.isinf(cd[np.argmax(pts[:, k])])
    assert not np.any(np.isnan(cd))


def test_crowding_distance_tied_extremes_all_inf():
    # three points share the minimum of objective 0; all of them are boundary points
    pts = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [2, 1, 0], [1, 1, 1], [0, 1.5, 1.5]])
    cd = crowding_distance(pts)
    assert np.all(np.isinf(cd[[0, 1, 2, 3, 5]]))
    assert np.isfinite(cd[4])


def test_crowding_distance_independent_of_row_order():
    rng = np.random.default_rng(3)
    for _ in range(20):
        pts = rng.random((9, 3))  # no ties: interior ties are broken by row order by design
        perm = rng.permutation(len(pts))
        np.testing.assert_array_equal(crowding_distance(pts)[perm], crowding_distance(pts[perm]))


@pytest.mark.parametrize("n", [1, 2])
def test_crowding_distance_one_or_two_points_all_inf(n):
    cd = crowding_distance(np.arange(2 * n, dtype=float).reshape(n, 2))
    assert cd.shape == (n,)
    assert np.all(np.isinf(cd))


def test_crowding_distance_empty():
    assert crowding_distance(np.zeros((0, 2))).shape == (0,)


def test_crowding_distance_duplicates_no_nan():
    pts = np.array([[0, 4], [1, 2], [1, 2], [2, 1], [4, 0], [1, 2]], dtype=float)
    cd = crowding_distance(pts)
    assert not np.any(np.isnan(cd))
    np.testing.assert_allclose(cd, [np.inf, 1.25, 0.0, 1.25, np.inf, 0.0])
    # all points identical: distinct set has one point, later copies get 0
    same = crowding_distance(np.ones((4, 2)))
    assert not np.any(np.isnan(same))
    np.testing.assert_array_equal(same, [np.inf, 0, 0, 0])


def test_crowding_distance_constant_objective_contributes_zero():
    pts = np.array([[0, 4, 7], [1, 2, 7], [2, 1, 7], [4, 0, 7]], dtype=float)
    np.testing.assert_allclose(crowding_distance(pts), [np.inf, 1.25, 1.25, np.inf])


# --------------------------------------------------------------------------- hypervolume


@pytest.mark.parametrize("n", [1, 2, 5, 17])
def test_hypervolume_2d_staircase_closed_form(n):
    k = np.arange(1, n + 1, dtype=float)
    pts = np.stack([k, n + 1 - k], axis=1)
    assert hypervolume(pts, [n + 1, n + 1]) == pytest.approx(n * (n + 1) / 2)


def test_hypervolume_3d_hand_example():
    pts = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    # three 1x2x2 boxes: 3*4 - 3*2 + 1 (inclusion-exclusion)
    assert hypervolume(pts, [2, 2, 2]) == pytest.approx(7.0)
    assert hypervolume([[0, 0, 0]], [1, 2, 3]) == pytest.approx(6.0)


def test_hypervolume_1d_is_distance_of_best_point():
    assert hypervolume([[3.0], [1.0], [5.0]], [4.0]) == pytest.approx(3.0)


@pytest.mark.parametrize("d", [2, 3, 4])
def test_hypervolume_matches_cell_counting(d):
    max_n = {2: 25, 3: 14, 4: 8}[d]
    rng = np.random.default_rng(100 + d)
    for t in range(40):
        n = int(rng.integers(0, max_n))
        if t % 2:
            pts = rng.integers(0, 5, size=(n, d)).astype(float)
            ref = np.full(d, 4.0)  # some points sit on / beyond the reference
        else:
            pts = rng.random((n, d)) * 1.2
            ref = np.full(d, 1.0)
        if n and t % 3 == 0:
            pts = np.vstack([pts, pts[: min(3, n)]])
        assert hypervolume(pts, ref) == pytest.approx(_cell_hv(pts, ref), rel=1e-12, abs=1e-12)


def test_hypervolume_ignores_points_outside_reference():
    inside = np.array([[1.0, 1.0]])
    outside = np.array([[0.0, 2.0], [2.0, 0.0], [5.0, 5.0], [-1.0, 3.0]])
    ref = [2.0, 2.0]
    assert hypervolume(inside, ref) == pytest.approx(1.0)
    assert hypervolume(np.vstack([inside, outside]), ref) == pytest.approx(1.0)
    assert hypervolume(outside, ref) == 0.0


def test_hypervolume_empty_is_zero():
    assert hypervolume(np.zeros((0, 3)), [1, 1, 1]) == 0.0
    assert hypervolume([], [1, 1]) == 0.0


@pytest.mark.parametrize("d", [2, 3, 4])
def test_hypervolume_history_matches_prefixes_and_never_decreases(d):
    rng = np.random.default_rng(200 + d)
    n = {2: 30, 3: 20, 4: 10}[d]
    for pts in (rng.random((n, d)) * 1.1, rng.integers(0, 4, size=(n, d)).astype(float)):
        ref = np.full(d, 1.0) if pts.max() < 2 else np.full(d, 3.0)
        hist = hypervolume_history(pts, ref)
        assert hist.shape == (n,)
        assert np.all(np.diff(hist) >= 0)
        expected = [hypervolume(pts[: i + 1], ref) for i in range(n)]
        np.testing.assert_allclose(hist, expected, rtol=1e-12, atol=1e-12)


def test_hypervolume_history_empty():
    assert hypervolume_history(np.zeros((0, 2)), [1, 1]).shape == (0,)


# --------------------------------------------------------------------------- normalize


def test_normalize_maps_bounds_and_clips():
    losses = np.array([[0.0, 10.0], [5.0, 20.0], [-1.0, 40.0]])
    out = normalize(losses, [0.0, 10.0], [10.0, 30.0])
    np.testing.assert_allclose(out, [[0.0, 0.0], [0.5, 0.5], [0.0, 1.0]])


def test_normalize_rejects_empty_range():
    with pytest.raises(ValueError, match="upper"):
        normalize([[1.0, 2.0]], [0.0, 2.0], [1.0, 2.0])


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("fn", [non_dominated_sort, pareto_mask, pareto_front_indices, crowding_distance])
@pytest.mark.parametrize("bad", [np.ones(3), np.ones((2, 2, 2)), np.ones((3, 0))])
def test_invalid_losses_shape_raises(fn, bad):
    with pytest.raises(ValueError):
        fn(bad)


def test_non_finite_losses_raise():
    with pytest.raises(ValueError, match="finite"):
        non_dominated_sort([[0.0, np.nan]])
    with pytest.raises(ValueError, match="finite"):
        hypervolume([[0.0, np.inf]], [1.0, 1.0])


def test_hypervolume_reference_length_mismatch_raises():
    with pytest.raises(ValueError, match="`reference` has 2 values but losses have 3 objectives"):
        hypervolume(np.zeros((2, 3)), [1.0, 1.0])
    with pytest.raises(ValueError, match="reference"):
        hypervolume_history(np.zeros((2, 3)), [[1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="losses"):
        hypervolume(np.zeros(3), [1.0, 1.0, 1.0])


def test_normalize_bounds_length_mismatch_raises():
    with pytest.raises(ValueError, match="`lower` has 1 values but losses have 2 objectives"):
        normalize(np.zeros((2, 2)), [0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="upper"):
        normalize(np.zeros((2, 2)), [0.0, 0.0], [1.0, 1.0, 1.0])
