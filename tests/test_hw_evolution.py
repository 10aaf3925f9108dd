"""The evolution core and its steps, without NNI: each step computes something checkable."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from nni_hwnas.errors import UserError
from nni_hwnas.reporting.pareto import hypervolume, normalize, pareto_mask
from strategies.hw_evolution import HwEvolution, SpaceExhausted
from strategies.objectives import (LabelEncoder, ObjectiveConfig, budget_penalty, cost_diversity, loss_matrix,
                                   novelty, pairwise_distance)
from strategies.operators import mutate, random_sample, uniform_crossover
from strategies.selection import rank_and_crowding, tournament

# --------------------------------------------------------------------------- a toy problem
# Six ordinal knobs buy score at a unit cost each, with decreasing value per unit; ``pad`` only
# adds cost. The true front is known by brute force over all 5**7 = 78,125 architectures.
WEIGHTS = np.array([6, 5, 4, 3, 2, 1], dtype=float)
TOY = {**{f"x{i}": (0, 1, 2, 3, 4) for i in range(6)}, "pad": (0, 1, 2, 3, 4)}
LOWER, UPPER, REF = np.array([-1.0, 1.0]), np.array([0.0, 29.0]), np.array([1.1, 1.1])


def toy_metrics(sample: dict) -> dict:
    x = np.array([sample[f"x{i}"] for i in range(6)], dtype=float)
    return {"default": float(WEIGHTS @ x / (4 * WEIGHTS.sum())), "latency_ms": float(1 + x.sum() + sample["pad"])}


def toy_hv(rows: list[dict]) -> float:
    losses = np.array([[-r["default"], r["latency_ms"]] for r in rows])
    return hypervolume(normalize(losses, LOWER, UPPER), REF)


def toy_truth() -> tuple[float, dict[float, float]]:
    """True hypervolume, and the best score at every cost."""
    grid = np.array(list(itertools.product(range(5), repeat=7)))
    score = grid[:, :6] @ WEIGHTS / (4 * WEIGHTS.sum())
    cost = 1.0 + grid[:, :6].sum(axis=1) + grid[:, 6]
    best = {float(c): float(score[cost == c].max()) for c in np.unique(cost)}
    return hypervolume(normalize(np.stack([-score, cost], axis=1), LOWER, UPPER), REF), best


def run(evo: HwEvolution, n: int, evaluate=toy_metrics) -> list[dict]:
    rows = []
    for _ in range(n):
        sample = evo.ask()
        metrics = evaluate(sample)
        evo.tell(sample, metrics)
        rows.append(metrics)
    return rows


def random_search(seed: int, n: int) -> list[dict]:
    rng, seen, rows = np.random.default_rng(seed), set(), []
    while len(rows) < n:
        sample = random_sample(TOY, rng)
        key = tuple(sorted(sample.items()))
        if key not in seen:
            seen.add(key)
            rows.append(toy_metrics(sample))
    return rows


# --------------------------------------------------------------------------- operators


def test_mutate_changes_at_least_one_label_to_a_new_value():
    rng = np.random.default_rng(0)
    parent = {"a": 1, "b": True, "c": 0.5}
    labels = {"a": (1, 2, 3), "b": (False, True), "c": (0.0, 0.5)}
    for _ in range(200):
        child = mutate(parent, labels, rng, mutation_prob=0.0)
        changed = [k for k in parent if child[k] != parent[k] or type(child[k]) is not type(parent[k])]
        assert len(changed) == 1 and child[changed[0]] in labels[changed[0]]
    assert parent == {"a": 1, "b": True, "c": 0.5}  # not modified in place
    always = mutate(parent, labels, rng, mutation_prob=1.0)
    assert always["a"] != 1 and always["b"] is False and always["c"] == 0.0


def test_mutate_leaves_single_valued_labels_alone():
    rng = np.random.default_rng(1)
    labels = {"fixed": (7,), "free": (0, 1)}
    for _ in range(50):
        assert mutate({"fixed": 7, "free": 0}, labels, rng, 0.5) == {"fixed": 7, "free": 1}
    assert mutate({"fixed": 7}, {"fixed": (7,)}, rng, 1.0) == {"fixed": 7}


def test_uniform_crossover_takes_each_label_from_a_parent_half_the_time():
    rng = np.random.default_rng(2)
    labels = {f"l{i}": (0, 1) for i in range(10)}
    first, second = {k: 0 for k in labels}, {k: 1 for k in labels}
    children = [uniform_crossover(first, second, labels, rng) for _ in range(2000)]
    share = np.mean([[child[k] for k in labels] for child in children], axis=0)
    assert np.all(np.abs(share - 0.5) < 0.05)


def test_random_sample_draws_every_value():
    rng = np.random.default_rng(3)
    draws = [random_sample({"k": (3, 5, 7)}, rng)["k"] for _ in range(300)]
    assert set(draws) == {3, 5, 7}


# --------------------------------------------------------------------------- objectives


def test_distance_is_ordinal_for_numbers_categorical_otherwise_and_max_for_absent_labels():
    labels = {"filters": (16, 32, 64, 96, 128), "bn": (False, True), "layer2": (3, 5)}
    enc = LabelEncoder(labels)
    a = enc.encode({"filters": 16, "bn": False, "layer2": 3})
    b = enc.encode({"filters": 32, "bn": True})  # layer2 absent (unused layer)
    c = enc.encode({"filters": 128, "bn": False})
    d = pairwise_distance(np.stack([a, b]), np.stack([b, c]), enc.ordinal)
    assert d[0, 0] == pytest.approx((0.25 + 1 + 1) / 3)   # a-b: one rank step of 4, bn differs, layer2 absent in b
    assert d[0, 1] == pytest.approx((1.0 + 0 + 1) / 3)    # a-c: far filters, same bn, layer2 absent in c
    assert d[1, 0] == 0.0                                 # b-b
    assert d[1, 1] == pytest.approx((0.75 + 1 + 0) / 3)   # b-c: both lack layer2: same


def test_novelty_is_mean_distance_to_k_nearest_others():
    ordinal = np.array([True])
    archive = np.array([[0.0], [0.1], [0.3], [1.0]])
    members = archive[[0, 3]]
    got = novelty(members, archive, np.array([0, 3]), k=2, ordinal=ordinal)
    assert got == pytest.approx([(0.1 + 0.3) / 2, (0.7 + 0.9) / 2])
    # k larger than the archive: average over every other member
    assert novelty(members, archive, np.array([0, 3]), k=10, ordinal=ordinal)[0] == pytest.approx((0.1 + 0.3 + 1.0) / 3)


def test_cost_diversity_compares_log_costs_with_nearest_neighbours():
    got = cost_diversity(np.array([1.0, 10.0, 100.0, 1000.0]), k=2)
    third = 1 / 3
    assert got == pytest.approx([(third + 2 * third) / 2, third, third, (third + 2 * third) / 2])
    assert np.all(cost_diversity(np.array([5.0, 5.0, 5.0]), k=2) == 0)
    assert cost_diversity(np.array([5.0]), k=2).tolist() == [0.0]


def test_budget_penalty_grows_with_relative_excess():
    costs = np.array([5.0, 10.0, 15.0, 30.0])
    assert budget_penalty(costs, 10.0, "linear", 1.0) == pytest.approx([0, 0, 0.5, 2.0])
    assert budget_penalty(costs, 10.0, "quadratic", 2.0) == pytest.approx([0, 0, 0.5, 8.0])
    assert np.all(budget_penalty(costs, 10.0, "none", 1.0) == 0)
    assert np.all(budget_penalty(costs, None, "linear", 1.0) == 0)


def test_loss_matrix_minimises_every_column_and_penalises_the_score():
    rows = [{"default": 0.9, "latency_ms": 2.0}, {"default": 0.5, "latency_ms": 1.0}]
    config = ObjectiveConfig(use=("score", "cost", "cost_diversity"))
    losses = loss_matrix(rows, config, budget=1.0)
    assert losses[:, 0] == pytest.approx([-0.9 + 1.0, -0.5])  # 100% over budget costs 1.0 score
    assert losses[:, 1] == pytest.approx([math.log(2.0), 0.0])
    assert losses[:, 2] == pytest.approx([-1.0, -1.0])
    only_cost = loss_matrix(rows, ObjectiveConfig(use=("cost",)), budget=1.0)
    assert only_cost[:, 0] == pytest.approx([math.log(2.0) + 1.0, 0.0])  # no score column: penalty on cost


def test_objective_config_names_the_bad_setting():
    with pytest.raises(UserError, match="novelty"):
        ObjectiveConfig.create(["score", "noveltyy"])
    with pytest.raises(UserError, match="cost_metric"):
        ObjectiveConfig(cost_metric="accuracy")
    with pytest.raises(UserError, match="score_metric"):
        ObjectiveConfig(score_metric="params")
    with pytest.raises(UserError, match="budgett|allowed"):
        ObjectiveConfig.create({"use": ["score"], "budgett": 3})
    assert ObjectiveConfig.create({"use": ["score", "novelty"], "novelty_k": 3}).novelty_k == 3
    assert ObjectiveConfig.create(None).use == ("score", "cost")


# --------------------------------------------------------------------------- selection


def test_rank_and_crowding_ranks_fronts_and_crowds_within_each():
    losses = np.array([[0, 3], [1, 1], [3, 0], [2, 2], [4, 4]], dtype=float)
    ranks, crowding = rank_and_crowding(losses)
    assert ranks.tolist() == [0, 0, 0, 1, 2]
    assert np.isinf(crowding[[0, 2]]).all() and np.isfinite(crowding[1])
    assert np.isinf(crowding[3]) and np.isinf(crowding[4])  # alone in their fronts


def test_tournament_prefers_lower_rank_then_larger_crowding():
    rng = np.random.default_rng(0)
    ranks = np.array([1, 0, 0, 2])
    crowding = np.array([np.inf, 0.5, 2.0, np.inf])
    assert {tournament(ranks, crowding, rng, sample_size=4) for _ in range(20)} == {2}
    assert {tournament(ranks, crowding, rng, sample_size=4, exclude=2) for _ in range(20)} == {1}
    picks = [tournament(ranks, crowding, rng, sample_size=1) for _ in range(400)]
    assert set(picks) == {0, 1, 2, 3}  # size 1 = uniform draw


# --------------------------------------------------------------------------- the strategy


def _mixed_run(seed: int, n: int = 30) -> list[dict]:
    """Proposals of a run where every 7th trial fails: failures must not break determinism."""
    evo = HwEvolution(TOY, seed=seed)
    out = []
    for i in range(n):
        sample = evo.ask()
        out.append(sample)
        evo.tell(sample, None if i % 7 == 3 else toy_metrics(sample), failed=i % 7 == 3)
    return out


def test_seeded_strategy_proposes_the_same_sequence_twice():
    assert _mixed_run(5) == _mixed_run(5)
    assert _mixed_run(5) != _mixed_run(6)


def test_state_dict_round_trip_mid_run_gives_the_same_next_proposals():
    kwargs = dict(seed=11, objectives=["score", "cost", "novelty", "cost_diversity"],
                  screen=lambda s: toy_metrics(s)["latency_ms"], budget=20.0)
    straight = HwEvolution(TOY, **kwargs)
    run(straight, 15)
    pending = straight.ask()  # one trial still running at the checkpoint
    state = json.loads(json.dumps(straight.state_dict()))  # what a JSON checkpoint stores

    resumed = HwEvolution(TOY, **{**kwargs, "seed": 999})  # the seed must come from the state
    resumed.load_state_dict(state)
    assert resumed.pending == [pending]
    for evo in (straight, resumed):
        evo.tell(pending, toy_metrics(pending))
    assert run(straight, 12) == run(resumed, 12)
    assert straight.history == resumed.history


def test_never_proposes_an_architecture_twice_by_identity_even_after_failures():
    # A conditional space: layer labels beyond ``depth`` don't change the network, so the
    # identity ignores them (as SpaceDefinition.arch_id does). 2 + 2*2 + 2*2*2... = 14 networks.
    labels = {"depth": (1, 2, 3), "w0": (8, 16), "w1": (8, 16), "w2": (8, 16)}

    def canonical(sample):
        return {"depth": sample["depth"], **{f"w{i}": sample[f"w{i}"] for i in range(sample["depth"])}}

    def identity(sample):
        return json.dumps(canonical(sample), sort_keys=True)

    evo = HwEvolution(labels, seed=3, population_size=4, sample_size=2, initial_random=2,
                      identity=identity, canonical=canonical, objectives=["score", "cost", "novelty"])
    seen = []
    for i in range(14):
        sample = evo.ask()
        seen.append(identity(sample))
        failed = i % 3 == 0
        metrics = {"default": sample["depth"] / 3 + sample["w0"] / 100, "latency_ms": float(sum(
            sample[f"w{j}"] for j in range(sample["depth"])))}
        evo.tell(sample, None if failed else metrics, failed=failed)
    assert len(set(seen)) == 14
    with pytest.raises(SpaceExhausted):
        evo.ask()


def test_failed_architectures_are_remembered_and_not_proposed_again():
    labels = {"a": (0, 1, 2), "b": (0, 1, 2)}
    evo = HwEvolution(labels, seed=0, population_size=3, sample_size=2, initial_random=2)
    first = evo.ask()
    evo.tell(first, None, failed=True)
    missing = evo.ask()
    evo.tell(missing, {"default": 0.5})  # no latency_ms: counts as failed, with the reason
    later = [evo.ask() for _ in range(7)]
    assert first not in later and missing not in later
    history = evo.history
    assert [r["status"] for r in history] == ["failed", "failed"]
    assert "latency_ms" in history[1]["reason"] and evo.population == []
    assert evo.tell(first, {"default": 1.0, "latency_ms": 1.0}) is False  # told once, forever


def test_population_ages_out_the_oldest_member():
    evo = HwEvolution(TOY, seed=0, population_size=3, sample_size=2)
    told = []
    for _ in range(5):
        sample = evo.ask()
        evo.tell(sample, toy_metrics(sample))
        told.append(sample)
    assert [r["sample"] for r in evo.population] == told[-3:]
    assert len(evo.history) == 5


def test_screening_rejects_children_predicted_far_over_budget():
    predicted = lambda s: toy_metrics(s)["latency_ms"]  # a perfect predictor of the cost
    evo = HwEvolution(TOY, seed=4, budget=8.0, screen=predicted, screen_slack=0.25)
    rows = run(evo, 40)
    assert all(r["latency_ms"] <= 8.0 * 1.25 for r in rows)
    state = evo.state_dict()
    assert len(state["screened"]) > 0 and all(v > 10.0 for v in state["screened"].values())
    history = evo.history  # each trial says how it was proposed and what the screen predicted
    assert all(r["predicted_cost"] == r["metrics"]["latency_ms"] for r in history)
    assert [r["origin"] for r in history[:8]] == ["random"] * 8 and {r["origin"] for r in history[8:]} == {"model"}
    # Random sampling alone would have spent most of those trials over budget.
    rng = np.random.default_rng(0)
    over = np.mean([toy_metrics(random_sample(TOY, rng))["latency_ms"] > 10.0 for _ in range(1000)])
    assert over > 0.8


def test_screening_falls_back_to_the_cheapest_child_when_nothing_fits():
    evo = HwEvolution(TOY, seed=4, budget=0.5, screen=lambda s: toy_metrics(s)["latency_ms"], max_attempts=30)
    sample = evo.ask()  # nothing costs under 0.5: propose the cheapest found rather than stall
    assert toy_metrics(sample)["latency_ms"] <= 8.0


def test_toy_front_recovered_better_than_random_at_equal_budget():
    true_hv, _ = toy_truth()
    n, seeds = 60, range(10)
    evolved = np.array([toy_hv(run(HwEvolution(TOY, seed=seed), n)) for seed in seeds]) / true_hv
    randomly = np.array([toy_hv(random_search(seed, n)) for seed in seeds]) / true_hv
    # Measured: evolution reaches 0.84 of the true hypervolume on average, random search 0.77.
    assert evolved.mean() > randomly.mean() + 0.04
    assert evolved.mean() > 0.82
    assert np.mean(evolved > randomly) >= 0.8


def test_small_toy_front_found_point_by_point():
    """On 4 knobs + pad with 4 values each (1,024 networks), 60 trials find the exact front's
    points several times as often as random search does."""
    labels = {**{f"x{i}": (0, 1, 2, 3) for i in range(4)}, "pad": (0, 1, 2, 3)}
    weights = np.array([4, 3, 2, 1], dtype=float)

    def metrics(sample):
        x = np.array([sample[f"x{i}"] for i in range(4)], dtype=float)
        return {"default": float(weights @ x / (3 * weights.sum())), "latency_ms": float(1 + x.sum() + sample["pad"])}

    grid = [dict(zip(labels, values)) for values in itertools.product(range(4), repeat=5)]
    truth = [metrics(s) for s in grid]
    front = {(truth[i]["latency_ms"], truth[i]["default"])
             for i in np.flatnonzero(pareto_mask(np.array([[-m["default"], m["latency_ms"]] for m in truth])))}

    def recall(rows):
        return len(front & {(r["latency_ms"], r["default"]) for r in rows}) / len(front)

    evolved, randomly = [], []
    for seed in range(10):
        evolved.append(recall(run(HwEvolution(labels, seed=seed), 60, metrics)))
        rng, order = np.random.default_rng(seed), []
        for i in rng.permutation(len(grid))[:60]:
            order.append(truth[i])
        randomly.append(recall(order))
    # Measured: 29% of the 13 front points found by evolution, 7% by random search.
    assert np.mean(evolved) > 0.2
    assert np.mean(evolved) > 2.5 * np.mean(randomly)


def test_pareto_front_is_the_non_dominated_set_within_budget():
    evo = HwEvolution(TOY, seed=1, budget=15.0)
    run(evo, 30)
    ok = [r for r in evo.history if r["status"] == "succeeded" and r["metrics"]["latency_ms"] <= 15.0]
    losses = np.array([[-r["metrics"]["default"], r["metrics"]["latency_ms"]] for r in ok])
    expected = {ok[i]["id"] for i in np.flatnonzero(pareto_mask(losses))}
    front = evo.pareto_front()
    assert {r["id"] for r in front} == expected
    assert [r["metrics"]["latency_ms"] for r in front] == sorted(r["metrics"]["latency_ms"] for r in front)


def test_load_state_dict_refuses_a_state_of_other_choices():
    state = HwEvolution(TOY, seed=0).state_dict()
    other = HwEvolution({**TOY, "x0": (0, 1)}, seed=0)
    with pytest.raises(ValueError, match="other choices"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="format"):
        other.load_state_dict({"format": "something else"})


def test_bad_settings_are_one_line_errors_naming_the_argument():
    with pytest.raises(UserError, match="`population_size` must be an integer >= 2"):
        HwEvolution(TOY, population_size=1)
    with pytest.raises(UserError, match="`sample_size` must be <= `population_size`"):
        HwEvolution(TOY, population_size=4, sample_size=5)
    with pytest.raises(UserError, match="`mutation_prob`"):
        HwEvolution(TOY, mutation_prob=1.5)
    with pytest.raises(UserError, match="`budget`"):
        HwEvolution(TOY, budget=0)


def test_importing_strategies_does_not_import_nni_nas():
    code = ("import sys, strategies; strategies.HwEvolution; strategies.ObjectiveConfig; "
            "print(any(m == 'nni.nas' or m.startswith('nni.nas.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
