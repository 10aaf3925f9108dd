"""Device profiles, budgets, analytic costs at a profile's precision, and unreachable budgets."""

from __future__ import annotations

import os

import pytest

from nni_hwnas.hardware.cost_model import estimate_cost
from nni_hwnas.evaluation.cost_trial import check_budgets_reachable, smallest_costs
from nni_hwnas.hardware.costs import cost_metrics
from nni_hwnas.errors import UserError
from nni_hwnas.hardware.profiles import Budgets, load_profile, profile_names
from nni_hwnas.reporting.results import pareto_rows
from search_spaces import make_definition


def test_bundled_profiles_load_with_their_facts():
    assert {"host-cpu", "host-cpu-1t", "cuda", "mcu-cortex-m7"} <= set(profile_names())
    assert load_profile("host-cpu").threads == os.cpu_count()
    one = load_profile("host-cpu-1t")
    assert (one.kind, one.threads, one.batch_size, one.precision) == ("cpu", 1, 1, "float32")
    assert one.latency_table.name == "host-cpu-1t.json" and one.latency_table.parent.name == "tables"
    mcu = load_profile("mcu-cortex-m7")
    assert mcu.kind == "budget-only" and mcu.latency_table is None and not mcu.measures_latency
    assert mcu.bytes_per_value == 1 and mcu.budgets.limits() == {"peak_mem_kb": 256.0, "param_kb": 768.0}


def test_unknown_profile_lists_the_bundled_names():
    with pytest.raises(UserError, match=r"unknown device profile 'host-cpu-2t'.*did you mean.*allowed: .*mcu-cortex-m7"):
        load_profile("host-cpu-2t")


@pytest.mark.parametrize("text, fragment", [
    ("name: x\nkind: cpu\nthread: 1\nlatency_table: t.json\n", "unknown key `thread` (did you mean 'threads'?)"),
    ("name: x\nkind: gpu\nlatency_table: t.json\n", "`kind` is 'gpu'"),
    ("name: x\nkind: cpu\nthreads: 0\nlatency_table: t.json\n", "`threads` must be a positive integer or 'all'"),
    ("name: x\nkind: cpu\n", "`latency_table`"),
    ("name: x\nkind: budget-only\nbudgets: {latency_ms: 1}\n", "can't have a `latency_ms` budget"),
    ("name: x\nkind: budget-only\nbudgets: {param_kb: -1}\n", "budget `param_kb` must be a positive number"),
    ("name: x\nkind: budget-only\nbudgets: {params_kb: 1}\n", "did you mean 'param_kb'"),
    ("name: [x\n", "not valid YAML"),
])
def test_bad_profile_yaml_is_one_line_error(tmp_path, text, fragment):
    path = tmp_path / "dev.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_profile(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_profile_table_path_resolves_beside_the_yaml(tmp_path):
    (tmp_path / "dev.yaml").write_text("name: dev\nkind: cpu\nthreads: all\nlatency_table: tables/dev.json\n")
    profile = load_profile(tmp_path / "dev.yaml")
    assert profile.latency_table == (tmp_path / "tables" / "dev.json").resolve()
    assert profile.threads == os.cpu_count()


def test_budget_check_names_each_violation_and_its_size():
    budgets = Budgets(latency_ms=2.0, params=1000)
    assert budgets.check({"latency_ms": 2.0, "params": 1000}).within
    result = budgets.check({"latency_ms": 2.5, "params": 900})
    assert not result.within
    (violation,) = result.violations
    assert (violation.metric, violation.excess) == ("latency_ms", 0.5)
    assert violation.excess_ratio == pytest.approx(0.25) and result.worst_ratio == pytest.approx(0.25)
    with pytest.raises(KeyError, match="params"):
        budgets.check({"latency_ms": 1.0})  # a set budget without its metric must not pass silently


def test_experiment_budgets_override_the_profiles_key_by_key():
    mcu = load_profile("mcu-cortex-m7").with_budgets({"param_kb": 100, "peak_mem_kb": None})
    assert mcu.budgets.limits() == {"param_kb": 100.0}
    with pytest.raises(UserError, match="budget-only and has no latency"):
        load_profile("mcu-cortex-m7").with_budgets({"latency_ms": 1.0})
    with pytest.raises(UserError, match="unknown budget `latency`"):
        load_profile("host-cpu-1t").with_budgets({"latency": 1.0})


def test_cost_metrics_count_memory_at_the_profiles_precision():
    definition = make_definition("conv_net", None, (1, 28, 28), 4)
    specs = definition.describe(definition.extreme_sample("max"))
    fp32 = cost_metrics(specs, None, load_profile("host-cpu-1t"))
    int8 = cost_metrics(specs, None, load_profile("mcu-cortex-m7"))
    cost = estimate_cost(specs)
    assert fp32["params"] == int8["params"] == cost.params
    assert fp32["peak_mem_kb"] == pytest.approx(cost.peak_mem_kb)
    assert int8["param_kb"] == pytest.approx(cost.params / 1024)  # one byte per int8 weight
    assert int8["peak_mem_kb"] == pytest.approx(fp32["peak_mem_kb"] / 4)
    assert "latency_ms" not in int8 and int8["within_budget"] == 0  # the largest conv_net is far over 768 KiB


def test_smallest_costs_match_brute_force_over_a_small_space():
    choices = {"depth": [1, 2, 3], "filters": [16, 32], "kernel": [3, 5], "batch_norm": [False, True], "dropout": [0.0]}
    definition = make_definition("conv_net", choices, (1, 8, 8), 10)
    profile = load_profile("mcu-cortex-m7")
    brute = {m: min(cost_metrics(definition.describe(s), None, profile)[m] for s in definition.all_samples())
             for m in ("params", "flops", "peak_mem_kb", "param_kb")}
    smallest = smallest_costs(definition, profile)
    assert {m: smallest[m].value for m in brute} == pytest.approx(brute)


def test_unreachable_budget_is_reported_before_launch_with_the_smallest_cost():
    definition = make_definition("conv_net", None, (1, 28, 28), 4)
    profile = load_profile("mcu-cortex-m7")
    check_budgets_reachable(definition, profile)  # the shipped MCU budgets are reachable
    smallest = smallest_costs(definition, profile)["param_kb"].value
    tight = profile.with_budgets({"param_kb": smallest * 0.9})
    with pytest.raises(UserError, match=rf"meets the budget param_kb <= .*smallest achievable is {smallest:.4g}"):
        check_budgets_reachable(definition, tight)
    check_budgets_reachable(definition, profile.with_budgets({"param_kb": smallest}))


def test_pareto_front_keeps_only_in_budget_architectures():
    budgets = Budgets(latency_ms=0.8)
    trials = [{"trial": "fast-enough", "accuracy": 0.80, "latency_ms": 0.5},
              {"trial": "too-slow", "accuracy": 0.95, "latency_ms": 1.0},
              {"trial": "dominated", "accuracy": 0.70, "latency_ms": 0.6},
              {"trial": "slow-but-worse", "accuracy": 0.60, "latency_ms": 1.2}]
    rows = [{**t, "status": "SUCCEEDED", "within_budget": int(budgets.check(t).within)} for t in trials]
    assert [r["within_budget"] for r in rows] == [1, 0, 1, 0]
    assert [r["trial"] for r in pareto_rows(rows)] == ["fast-enough"]
    unfiltered = {r["trial"] for r in pareto_rows(rows, only_within_budget=False)}
    assert unfiltered == {"fast-enough", "too-slow"}
