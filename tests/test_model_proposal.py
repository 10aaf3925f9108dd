"""The model-based proposal's parts: exact hypervolume gains, a model that learns, and the ranking."""

from __future__ import annotations

import numpy as np

from nni_hwnas.reporting.pareto import hypervolume
from strategies.model_proposal import PairwiseOneHot, RidgeEnsemble, exclusive_hv_2d, rank_candidates


def test_exclusive_hv_2d_equals_the_hypervolume_difference():
    rng = np.random.default_rng(0)
    reference = np.array([1.1, 1.1])
    for _ in range(20):
        front = rng.random((int(rng.integers(1, 12)), 2))
        points = rng.random((30, 2)) * 1.2  # some beyond the reference: they add nothing
        base = hypervolume(front, reference)
        expected = [hypervolume(np.vstack([front, p]), reference) - base for p in points]
        assert np.allclose(exclusive_hv_2d(front, points, reference), expected, atol=1e-12)


def test_exclusive_hv_2d_of_an_empty_front_is_the_points_own_box():
    points = np.array([[0.5, 0.5], [1.0, 0.0]])
    assert np.allclose(exclusive_hv_2d(np.empty((0, 2)), points, np.array([1.0, 1.0])), [0.25, 0.0])


def test_pairwise_encoding_has_one_column_per_value_and_per_pair_of_labels():
    labels = {"a": (0, 1, 2), "b": ("x", "y")}
    row = PairwiseOneHot(labels).encode([{"a": 2, "b": "y"}])[0]
    assert row.shape == (5 + 3 * 2,)
    assert row[:5].tolist() == [0, 0, 1, 0, 1] and row[5:].sum() == 1  # only the (a=2, b=y) pair is on
    assert PairwiseOneHot(labels).encode([{"a": 2}])[0][5:].sum() == 0  # an absent label has no pairs


def test_ridge_learns_an_additive_target():
    rng = np.random.default_rng(1)
    x = (rng.random((60, 12)) < 0.5).astype(float)
    weights = rng.normal(size=12)
    y = (x @ weights)[:, None]
    model = RidgeEnsemble(n_models=1, alpha=1e-3).fit(x[:40], y[:40], rng)
    assert np.corrcoef(model.predict(x[40:])[0, :, 0], y[40:, 0])[0, 1] > 0.99


def test_rank_candidates_prefers_the_predicted_improvement_of_the_front():
    # Objective 0 falls with feature 0, objective 1 (a cost) rises with feature 1: the candidate
    # with feature 0 on and feature 1 off dominates everything told.
    rng = np.random.default_rng(2)
    told = np.array([[0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1], [0, 0, 0], [0, 1, 0]], dtype=float)
    losses = np.column_stack([1.0 - told[:, 0] + 0.1 * told[:, 2], 1.0 + told[:, 1] + 0.1 * told[:, 2]])
    candidates = np.array([[0, 1, 1], [1, 0, 0], [0, 0, 1]], dtype=float)
    assert rank_candidates(told, losses, candidates, rng, n_models=1)[0] == 1
