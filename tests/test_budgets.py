"""One budgets object end to end: parsed once, one rule (:meth:`Budgets.admits`), and every reader
(strategy penalty, screening and front, trials, ``pareto.json``, hypervolume reference, report,
dashboard) reads that object."""

from __future__ import annotations

import json

import pytest

from nni_hwnas.budgets import Budgets
from nni_hwnas.errors import UserError


def test_admits_trusts_a_trials_verdict_and_checks_costs_without_one():
    budgets = Budgets(latency_ms=0.1, params=1000)
    assert budgets.admits({"latency_ms": 0.5, "within_budget": 1})  # checked in the trial (e.g. another settings)
    assert not budgets.admits({"latency_ms": 0.01, "within_budget": 0})  # over a budget the row does not carry
    assert budgets.admits({"latency_ms": 0.1, "params": 1000})  # limits are inclusive
    assert not budgets.admits({"latency_ms": 0.1, "params": 1001})
    assert budgets.admits({"accuracy": 0.9})  # nothing to judge it by
    assert Budgets().admits({"latency_ms": 1e9})


def test_limit_mapping_round_trip_replaces_a_profiles_budgets_exactly():
    from nni_hwnas.hardware.profiles import load_profile

    profile = load_profile("mcu-cortex-m7")
    assert profile.budgets.limits()  # the bundled profile sets some
    run = profile.budgets.merged({"param_kb": None, "params": 5000.0})
    trial = profile.with_budgets(run.as_mapping())  # what a trial builds from the mapping it is handed
    assert trial.budgets == run and trial.budgets.limit("param_kb") is None and run.limit("params") == 5000.0
    assert run.limit("accuracy") is None


def test_a_strategy_budget_joins_the_runs_budgets_or_is_refused():
    budgets = Budgets(latency_ms=0.15)
    assert budgets.with_limit("latency_ms", 0.15) == budgets
    assert budgets.with_limit("params", 5e4) == Budgets(latency_ms=0.15, params=5e4)
    with pytest.raises(UserError, match="disagrees with the run's latency_ms budget 0.15"):
        budgets.with_limit("latency_ms", 0.1)
    with pytest.raises(UserError, match="a budget can limit"):
        budgets.with_limit("train_seconds", 3.0)


def test_config_strategy_budget_and_profile_budget_are_one_object(tmp_path):
    from nni_hwnas.experiment.config import parse_config
    from nni_hwnas.experiment.trial_args import run_budgets, trial_hardware_args

    config = parse_config({"hardware": {"profile": "host-cpu-1t", "budgets": {"latency_ms": 0.15}},
                           "strategy": {"name": "hw_evolution", "args": {"budget": 0.15}}})
    budgets = run_budgets(config)
    assert budgets.limit("latency_ms") == 0.15
    assert Budgets.of(trial_hardware_args(config)["budgets"]) == budgets
    clash = parse_config({"hardware": {"profile": "host-cpu-1t", "budgets": {"latency_ms": 0.15}},
                          "strategy": {"name": "hw_evolution", "args": {"budget": 0.1}}})
    with pytest.raises(UserError, match="strategy hw_evolution: `budget` 0.1 disagrees"):
        run_budgets(clash)
    # Without a profile a strategy budget still reaches the trials (measured costs are checked).
    measured = parse_config({"strategy": {"name": "hw_evolution", "args": {"budget": 5.0, "cost_metric": "params"}}})
    assert trial_hardware_args(measured) == {"profile": None, "budgets": Budgets(params=5.0).as_mapping()}
    assert trial_hardware_args(parse_config({})) is None


def test_make_hw_evolution_reads_the_runs_budgets():
    from strategies.nni_strategy import make_hw_evolution

    strategy = make_hw_evolution({"cost_metric": "flops"}, seed=0, budgets=Budgets(flops=300.0, latency_ms=1.0))
    assert strategy.budgets == Budgets(flops=300.0, latency_ms=1.0)
    with pytest.raises(UserError, match="disagrees"):
        make_hw_evolution({"cost_metric": "flops", "budget": 200.0}, seed=0, budgets=Budgets(flops=300.0))


def test_unmeasured_trial_checks_the_runs_budgets_on_measured_costs():
    import torch

    from nni_hwnas.evaluation.trial import hardware_costs
    from search_spaces import make_definition

    definition = make_definition("conv_net", {"depth": [1], "filters": [16], "kernel": [3], "batch_norm": [False],
                                              "dropout": [0.0]}, (1, 8, 8), 10)
    sample = definition.complete({})
    specs = definition.describe(sample)
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    free = hardware_costs(specs, definition, None, (1, 8, 8), network, 1, 3)
    tight = hardware_costs(specs, definition, {"profile": None, "budgets": Budgets(params=1.0).as_mapping()},
                           (1, 8, 8), network, 1, 3)
    assert free["within_budget"] == 1 and tight["within_budget"] == 0 and tight["params"] > 1.0


def test_results_front_reference_and_report_read_one_budgets_object(tmp_path):
    from nni_hwnas.reporting.report import report_command
    from nni_hwnas.reporting.results import write_results

    rows = [{"trial_id": "cheap", "status": "SUCCEEDED", "accuracy": 0.7, "latency_ms": 0.05},
            {"trial_id": "dear", "status": "SUCCEEDED", "accuracy": 0.9, "latency_ms": 0.3}]  # no verdicts
    run = {"seed": 0, "hardware": {"profile": "p", "budgets": {"latency_ms": 0.1}}}
    write_results(tmp_path, rows, run)  # budgets read from run_info, as run.json records them
    pareto = json.loads((tmp_path / "pareto.json").read_text())
    assert [r["trial_id"] for r in pareto["front"]] == ["cheap"]
    reference = json.loads((tmp_path / "hypervolume.json").read_text())["reference"]
    assert reference["cost_worst"] == 0.1  # the budget is the reference
    report_command(str(tmp_path), None)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["budgets"] == {"latency_ms": 0.1} and report["reference"]["cost_worst"] == 0.1
    assert report["rows"][0]["best_accuracy"] == 0.9 and report["rows"][0]["hv_median"] > 0
    from nni_hwnas.dashboard.sources import results_dir_data

    data = results_dir_data(tmp_path)
    assert data.budgets == Budgets(latency_ms=0.1)


def test_report_of_a_resumed_run_with_changed_settings_is_per_settings(tmp_path):
    """``--allow-changes``: trials record the settings they ran under; ``report`` keeps them apart."""
    from nni_hwnas.reporting.report import report_command
    from nni_hwnas.reporting.results import write_results

    old = [{"trial_id": f"o{i}", "status": "SUCCEEDED", "accuracy": 0.95, "latency_ms": 0.12, "within_budget": 1,
            "settings": 0} for i in range(2)]  # within the old budget (0.15)
    new = [{"trial_id": f"n{i}", "status": "SUCCEEDED", "accuracy": 0.6 + 0.1 * i, "latency_ms": 0.03 + 0.01 * i,
            "within_budget": 1, "settings": 1} for i in range(2)]  # the new budget is 0.05
    run = {"seed": 0, "hardware": {"profile": "p", "budgets": {"latency_ms": 0.05}}}
    write_results(tmp_path, old + new, run, current_settings=1)
    assert {r["trial_id"] for r in json.loads((tmp_path / "pareto.json").read_text())["front"]} == {"n0", "n1"}
    report_command(str(tmp_path), None)
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {r["strategy"]: r for r in report["rows"]}
    assert set(rows) == {f"{tmp_path.name} settings 0", f"{tmp_path.name} settings 1"}
    assert rows[f"{tmp_path.name} settings 1"]["best_accuracy"] == pytest.approx(0.7)  # never the old 0.95
    assert rows[f"{tmp_path.name} settings 0"]["trials"] == 2
    assert "2 settings" in (tmp_path / "report.md").read_text()
    # the front written again by `report` still holds the last settings' trials only
    assert {r["trial_id"] for r in json.loads((tmp_path / "pareto.json").read_text())["front"]} == {"n0", "n1"}
