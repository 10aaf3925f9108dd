"""Progressive search: the searched values widen on the configured schedule, the population is
kept, and `progressive: off` searches everything from the start."""

from __future__ import annotations

import numpy as np
import pytest

from nni_hwnas.errors import UserError
from search_spaces.registry import load_preset, make_definition
from search_spaces.staged_net import PROGRESSIVE_STAGES
from strategies.hw_evolution import HwEvolution
from strategies.progressive import ProgressiveSchedule

LABELS = {"op": ("a", "b", "c", "d", "e"), "width": (1, 2, 3, 4, 5), "attn": ("none", "x")}
STAGES = [["a", "b", "none"], ["c", "d"], ["e", "x"]]


def toy_metrics(sample: dict) -> dict:
    """A toy trade-off: later-stage values score higher and cost more."""
    rank = {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4}[sample["op"]] + (sample["attn"] == "x")
    return {"default": 0.5 + 0.08 * rank + 0.01 * sample["width"], "latency_ms": 1.0 + rank + sample["width"]}


def run(evo: HwEvolution, n: int, metrics=toy_metrics) -> list[tuple[int, dict]]:
    seen = []
    for _ in range(n):
        sample = evo.ask()
        stage = evo.stage  # the stage the proposal came from
        seen.append((stage, sample))
        evo.tell(sample, metrics(sample))
    return seen


def allowed(stage: int) -> set:
    return {v for s in STAGES[: stage + 1] for v in s} | set(LABELS["width"])


def test_progressive_widens_after_the_configured_trial_counts():
    evo = HwEvolution(LABELS, seed=0, population_size=6, sample_size=3, initial_random=3,
                      progressive={"stages": STAGES, "after_trials": [6, 12]})
    seen = run(evo, 24)
    assert evo.widenings == [{"stage": 1, "after_trials": 6}, {"stage": 2, "after_trials": 12}]
    assert [stage for stage, _ in seen] == [0] * 6 + [1] * 6 + [2] * 12
    for stage, sample in seen:
        assert set(sample.values()) <= allowed(stage), (stage, sample)
    later = {s["op"] for stage, s in seen if stage == 2} | {s["attn"] for stage, s in seen if stage == 2}
    assert later & {"e", "x"}  # the new values are reached
    assert len(evo.population) == 6  # the population was kept across widenings


def test_progressive_widens_when_the_front_stagnates():
    evo = HwEvolution(LABELS, seed=1, population_size=8, sample_size=2, initial_random=2,
                      progressive={"stages": STAGES, "patience": 3})
    flat = lambda sample: {"default": 0.5, "latency_ms": 1.0 + sample["width"]}  # nothing beats width 1
    seen = run(evo, 12, flat)
    first = evo.widenings[0]["after_trials"]
    # The front changes when a trial ties or beats the cheapest so far (equal scores); the space
    # widens once 3 trials in a row did not.
    best, since, expected = float("inf"), 0, None
    for i, (_, sample) in enumerate(seen):
        cost = flat(sample)["latency_ms"]
        since = 0 if cost <= best else since + 1
        best = min(best, cost)
        if since >= 3:
            expected = i + 1
            break
    assert first == expected and evo.stage >= 1
    assert all(stage == 0 for stage, _ in seen[:first])


def test_progressive_widens_a_used_up_stage_instead_of_stopping():
    labels = {"op": ("a", "b", "c"), "width": (1, 2)}
    evo = HwEvolution(labels, seed=0, initial_random=2, progressive={"stages": [["a"], ["b", "c"]], "after_trials": [50]})
    seen = run(evo, 6, lambda s: {"default": 0.5, "latency_ms": float(s["width"])})
    assert [stage for stage, _ in seen] == [0, 0, 1, 1, 1, 1]
    assert evo.widenings == [{"stage": 1, "after_trials": 2}]


def test_progressive_off_searches_every_value_from_the_start():
    evo = HwEvolution(LABELS, seed=0, initial_random=20, progressive="off")
    values = {v for _, s in run(evo, 20) for v in s.values()}
    assert {"e", "x"} <= values and evo.stage == 0 and evo.progressive is None
    assert ProgressiveSchedule.create(False) is None  # YAML's `off` reads as false


def test_progressive_stage_survives_a_state_round_trip():
    make = lambda: HwEvolution(LABELS, seed=0, progressive={"stages": STAGES, "after_trials": [4, 8]})
    evo = make()
    run(evo, 9)
    again = make()
    again.load_state_dict(evo.state_dict())
    assert again.stage == evo.stage == 2 and again.widenings == evo.widenings
    assert again.ask() == evo.ask()


@pytest.mark.parametrize("value,message", [
    ({"after_trials": [10, 5]}, "increasing"),
    ({"patience": 0}, ">= 1"),
    ({"stages": STAGES}, "needs `after_trials`"),
    ({"after_trials": 5, "speed": 2}, "unknown key"),
    ("on", "must be 'off' or a mapping"),
    ({"after_trials": [1, 2, 3], "stages": STAGES}, "3 entries for 2 widening"),
])
def test_progressive_config_errors_are_one_line(value, message):
    with pytest.raises(UserError, match=message):
        ProgressiveSchedule.create(value)


def test_progressive_without_stages_needs_a_space_that_has_them():
    with pytest.raises(UserError, match="needs `stages`"):
        HwEvolution(LABELS, progressive={"after_trials": [3]})


def test_staged_net_stages_restrict_the_whole_space_to_stage_one():
    definition = make_definition("staged_net", load_preset("staged_net_s3")[1], (1, 8, 8), 10)
    schedule = ProgressiveSchedule.create({"after_trials": [10, 20]}).with_stages(PROGRESSIVE_STAGES)
    first = schedule.restrict(definition.mutable_labels(), 0)
    assert set(first["s0_b0_op"]) == set(load_preset("staged_net_s1")[1]["op"])
    assert first["s0_b0_attn"] == ("none",) and first["s1_b1_width"] == (0.5, 1.0)
    assert schedule.restrict(definition.mutable_labels(), 2) == definition.mutable_labels()
    rng = np.random.default_rng(0)
    assert definition.describe(definition.complete({k: v[int(rng.integers(len(v)))] for k, v in first.items()}))


def test_progressive_on_a_space_without_stages_fails_before_nni_starts():
    from strategies.nni_strategy import make_hw_evolution

    conv = make_definition("conv_net", None, (1, 8, 8), 10)
    with pytest.raises(UserError, match="space 'conv_net' defines none"):
        make_hw_evolution({"progressive": {"after_trials": [5]}}, 0, definition=conv)
    staged = make_definition("staged_net", None, (1, 8, 8), 10)
    assert make_hw_evolution({"progressive": {"after_trials": [5]}}, 0, definition=staged).settings["progressive"]
