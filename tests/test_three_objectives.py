"""Three objectives at once (accuracy, latency, params): the 3-D hypervolume against an exact
inclusion-exclusion reference, the strategy's 3-D front against brute force, and the results files."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from nni_hwnas.errors import UserError
from nni_hwnas.reporting.pareto import hypervolume
from nni_hwnas.reporting.results import front_hypervolume, write_results
from strategies.hw_evolution import HwEvolution
from strategies.objectives import ObjectiveConfig


def inclusion_exclusion_hv(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume as the volume of a union of boxes, by inclusion-exclusion over every
    subset (2^n terms): an independent formula, fine for n <= 12."""
    points = points[np.all(points < ref, axis=1)]
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(range(len(points)), size):
            corner = points[list(subset)].max(axis=0)
            total += (-1) ** (size + 1) * float(np.prod(ref - corner))
    return total


def grid_hv(points: np.ndarray, ref: np.ndarray) -> float:
    """Brute force on integer points: count the unit cells some point dominates."""
    count = 0
    for cell in itertools.product(*(range(int(r)) for r in ref)):
        if any(np.all(p <= np.array(cell)) for p in points):
            count += 1
    return float(count)


@pytest.mark.parametrize("seed", range(12))
def test_3d_hypervolume_matches_inclusion_exclusion(seed):
    rng = np.random.default_rng(seed)
    points = rng.random((int(rng.integers(1, 11)), 3)) * 1.1  # some beyond the reference
    ref = np.ones(3)
    assert hypervolume(points, ref) == pytest.approx(inclusion_exclusion_hv(points, ref), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_3d_hypervolume_matches_cell_counting_with_ties(seed):
    rng = np.random.default_rng(50 + seed)
    points = rng.integers(0, 6, size=(int(rng.integers(1, 15)), 3)).astype(float)
    assert hypervolume(points, np.full(3, 6.0)) == grid_hv(points, np.full(3, 6.0))


def brute_front(rows: list[dict], keys=("default", "latency_ms", "params")) -> set[str]:
    losses = {r["id"]: np.array([-r["metrics"][keys[0]], r["metrics"][keys[1]], r["metrics"][keys[2]]]) for r in rows}
    return {i for i, a in losses.items()
            if not any(np.all(b <= a) and np.any(b < a) for j, b in losses.items() if j != i)}


def test_hw_evolution_ranks_and_reports_a_3d_front():
    labels = {"a": tuple(range(6)), "b": tuple(range(6)), "c": (0, 1, 2)}
    evo = HwEvolution(labels, seed=3, population_size=10, sample_size=4, initial_random=6,
                      objectives=["score", "cost", "second_cost"])
    for _ in range(40):
        s = evo.ask()
        # accuracy grows with a and b; latency with a, params with b: a real 3-way trade-off
        evo.tell(s, {"default": 0.3 + 0.1 * s["a"] + 0.05 * s["b"] - 0.01 * s["c"],
                     "latency_ms": 1.0 + s["a"] + s["c"], "params": 100.0 * (1 + s["b"])})
    assert evo.front_objectives() == ["default", "latency_ms", "params"]
    ok = [r for r in evo.history if r["status"] == "succeeded"]
    front = {r["id"] for r in evo.pareto_front()}
    assert front == brute_front(ok)
    losses2 = {r["id"]: (-r["metrics"]["default"], r["metrics"]["latency_ms"]) for r in ok}
    front2 = {i for i, a in losses2.items() if not any(b[0] <= a[0] and b[1] <= a[1] and b != a for b in losses2.values())}
    assert len(front) > len(front2)  # size is a third trade-off: more architectures are optimal


def test_second_cost_must_differ_from_the_cost():
    with pytest.raises(UserError, match="second_cost_metric"):
        ObjectiveConfig(use=("score", "cost", "second_cost"), second_cost_metric="latency_ms")
    # Two objectives with `cost_metric: params` (the CIFAR-10 recipe) must not clash with the unused default.
    assert ObjectiveConfig(cost_metric="params").second_cost_metric == "params"


def test_results_with_three_objectives_write_matrix_parallel_plot_and_3d_hypervolume(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"trial_id": f"t{i}", "status": "SUCCEEDED", "accuracy": float(rng.random()),
             "latency_ms": float(rng.random() + 0.1), "params": float(rng.integers(100, 1000)), "within_budget": 1}
            for i in range(15)]
    objectives = ("accuracy", "latency_ms", "params")
    paths = write_results(tmp_path, rows, {"seed": 0}, objectives=objectives, title="toy")
    pareto = json.loads(paths["pareto.json"].read_text())
    expected = {r["trial_id"] for r in rows if not any(
        o["accuracy"] >= r["accuracy"] and o["latency_ms"] <= r["latency_ms"] and o["params"] <= r["params"]
        and (o["accuracy"], o["latency_ms"], o["params"]) != (r["accuracy"], r["latency_ms"], r["params"]) for o in rows)}
    assert {r["trial_id"] for r in pareto["front"]} == expected
    assert paths["pareto_parallel.png"].stat().st_size > 10_000 and paths["pareto.png"].stat().st_size > 10_000
    # the stated normalisation: accuracy in [0, 1], each cost in [0, 1.1 x max]; reference (1, 1, 1)
    hi_lat, hi_par = 1.1 * max(r["latency_ms"] for r in rows), 1.1 * max(r["params"] for r in rows)
    pts = np.array([[1 - r["accuracy"], r["latency_ms"] / hi_lat, r["params"] / hi_par] for r in rows])
    assert pareto["hypervolume"]["value"] == pytest.approx(inclusion_exclusion_hv(
        pts[[r["trial_id"] in expected for r in rows]], np.ones(3)))
    assert front_hypervolume(rows, objectives)["value"] == pareto["hypervolume"]["value"]


def test_report_adds_3d_hypervolume_with_bounds_shared_by_every_run(tmp_path):
    from nni_hwnas.reporting.report import write_report

    def run(points):
        return [{"trial_id": f"t{i}", "status": "SUCCEEDED", "accuracy": a, "latency_ms": l, "params": p,
                 "within_budget": 1} for i, (a, l, p) in enumerate(points)]

    groups = {"A": [run([(0.9, 1.0, 100.0), (0.5, 0.5, 50.0)])], "B": [run([(0.8, 2.0, 200.0)])]}
    write_report(tmp_path, groups, title="t")
    rows = {r["strategy"]: r for r in json.loads((tmp_path / "report.json").read_text())["rows"]}
    lat, par = 2.2, 220.0  # 1.1 x the largest latency and params of ANY run
    a = inclusion_exclusion_hv(np.array([[0.1, 1.0 / lat, 100 / par], [0.5, 0.5 / lat, 50 / par]]), np.ones(3))
    b = inclusion_exclusion_hv(np.array([[0.2, 2.0 / lat, 200 / par]]), np.ones(3))
    assert rows["A"]["hv3d_median"] == pytest.approx(a) and rows["B"]["hv3d_median"] == pytest.approx(b)
    assert "hv3d_median" in (tmp_path / "report.md").read_text()
