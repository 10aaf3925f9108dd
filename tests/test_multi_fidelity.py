"""MO-ASHA: the pure rule, its config, and real NNI experiments that it stops (both routes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import REPO, decode, free_port, rest
from nni_hwnas.errors import UserError
from strategies.multi_fidelity import DEFAULT_RUNG_METRIC, MoAsha, default_rungs

BIN = Path(sys.executable).parent


def test_default_rungs_follow_the_geometric_ladder():
    assert default_rungs(9) == [1, 3]
    assert default_rungs(27, 1, 3) == [1, 3, 9]
    assert default_rungs(10, 1, 2) == [1, 2, 4, 8]
    assert default_rungs(12, 2, 2.5) == [2, 5]


def test_mo_asha_keeps_the_front_and_stops_the_dominated():
    rule = MoAsha([1, 3], reduction_factor=3, score_metric="accuracy", cost_metric="latency_ms")
    assert rule.report("a", 1, {"accuracy": 0.5, "latency_ms": 1.0})  # first at the rung: nothing to compare
    assert not rule.report("b", 1, {"accuracy": 0.4, "latency_ms": 2.0})  # dominated by a
    assert rule.report("c", 1, {"accuracy": 0.6, "latency_ms": 3.0})  # more accurate: on the front
    assert rule.report("d", 1, {"accuracy": 0.3, "latency_ms": 0.5})  # cheaper: on the front
    # 5 at the rung: quota ceil(5/3) = 2, but the front {a, c, d} starts inside it: all kept.
    assert not rule.report("e", 1, {"accuracy": 0.45, "latency_ms": 1.5})  # dominated by a
    assert rule.report("a", 2, {"accuracy": 0.1, "latency_ms": 1.0})  # not a rung: goes on
    assert not rule.report("b", 2, {"accuracy": 0.9, "latency_ms": 2.0})  # stopped stays stopped
    assert rule.stopped() == {"b": 1, "e": 1}
    assert [(s.epoch, s.reached, s.stopped) for s in rule.stats()] == [(1, 5, 2), (3, 0, 0)]


def test_mo_asha_quota_is_one_over_eta_of_the_rung():
    """Score alone (ASHA): on a chain of strictly better trials arriving worst first, all go on;
    arriving best first, a trial goes on only while it is within the best ceil(n/eta)."""
    rule = MoAsha([2], reduction_factor=2, score_metric="accuracy", cost_metric=None)
    assert all(rule.report(f"up{i}", 2, {"accuracy": 0.1 * i}) for i in range(1, 6))
    rule = MoAsha([2], reduction_factor=2, score_metric="accuracy", cost_metric=None)
    decisions = [rule.report(f"down{i}", 2, {"accuracy": 1 - 0.1 * i}) for i in range(6)]
    # n = 1..6, quota ceil(n/2) = 1,1,2,2,3,3; trial i has i better ones: goes on iff i < quota
    assert decisions == [True, False, False, False, False, False]
    rng = np.random.default_rng(0)
    rule = MoAsha([1], reduction_factor=3, score_metric="accuracy", cost_metric=None)
    kept = sum(rule.report(str(i), 1, {"accuracy": float(a)}) for i, a in enumerate(rng.random(300)))
    assert 100 <= kept <= 300 / 3 + 40  # about 1/eta of a random stream goes on (first ones are lenient)


def test_mo_asha_ranks_a_loss_rung_metric_lower_first():
    """``train_loss`` as the rung signal is lower-is-better, read from the metric contract."""
    rule = MoAsha([1], reduction_factor=3, score_metric="train_loss", cost_metric=None)
    assert rule.objectives == ["train_loss"]
    assert rule.report("a", 1, {"train_loss": 0.5, "accuracy": 0.73})
    assert rule.report("b", 1, {"train_loss": 0.3, "accuracy": 0.73})  # lower loss at equal accuracy: best
    assert not rule.report("c", 1, {"train_loss": 0.6, "accuracy": 0.90})  # accuracy is not the rung's signal


def test_mo_asha_never_stops_on_a_missing_metric_and_round_trips_its_state():
    rule = MoAsha([1], reduction_factor=2)
    assert rule.report("a", 1, {"accuracy": 0.9, "latency_ms": 1.0})
    assert rule.report("b", 1, {"accuracy": 0.1})  # no cost: can't judge, goes on
    assert rule.report("c", 1, {"accuracy": float("nan"), "latency_ms": 1.0})
    assert not rule.report("d", 1, {"accuracy": 0.2, "latency_ms": 2.0})
    assert rule.unjudged == {"latency_ms": 1}  # the NaN one had both: not missing, just not judged
    assert "`latency_ms` (1 reports)" in rule.missing_objective_message()
    copy = MoAsha([1], reduction_factor=2)
    copy.load_state_dict(json.loads(json.dumps(rule.state_dict())))
    assert copy.stopped() == {"d": 1} and copy.unjudged == {"latency_ms": 1}
    assert not copy.report("e", 1, {"accuracy": 0.1, "latency_ms": 3.0})  # behind a and d
    with pytest.raises(UserError, match="saved rungs"):
        MoAsha([2]).load_state_dict(rule.state_dict())


@pytest.mark.parametrize("kwargs, message", [
    ({"rungs": [3, 1]}, "ascending"), ({"rungs": []}, "ascending"), ({"rungs": [1], "reduction_factor": 1}, "> 1"),
    ({"rungs": [1], "score_metric": "acc"}, "not a reported metric")])
def test_mo_asha_rejects_bad_settings(kwargs, message):
    with pytest.raises(UserError, match=message):
        MoAsha(**kwargs)


def test_multi_fidelity_config_is_checked_before_nni_starts(tmp_path):
    from nni_hwnas.experiment.config import parse_config
    from nni_hwnas.experiment.launch import multi_fidelity_rule

    base = {"evaluator": {"epochs": 9}, "multi_fidelity": {"enabled": True}}
    assert multi_fidelity_rule(parse_config(base)).rungs == [1, 3]
    assert multi_fidelity_rule(parse_config(base)).objectives == [DEFAULT_RUNG_METRIC, "latency_ms"]
    assert multi_fidelity_rule(parse_config({"evaluator": {"epochs": 9}})) is None
    with pytest.raises(UserError, match="below the trials' epochs"):
        multi_fidelity_rule(parse_config({**base, "multi_fidelity": {"enabled": True, "rungs": [1, 9]}}))
    with pytest.raises(UserError, match="no rung fits"):
        multi_fidelity_rule(parse_config({"evaluator": {"epochs": 1}, "multi_fidelity": {"enabled": True}}))
    with pytest.raises(UserError, match="needs `evaluator.kind: train`"):
        multi_fidelity_rule(parse_config({**base, "evaluator": {"kind": "cost"}}))
    with pytest.raises(UserError, match="unknown key `multi_fidelity.rung`"):
        parse_config({"multi_fidelity": {"rung": [1]}})


class _FakeNni:
    """The two REST calls the stopper makes, over trial views the test edits."""

    def __init__(self) -> None:
        self.views: list = []
        self.killed: list[str] = []

    def trials(self) -> list:
        return list(self.views)

    def kill_trial(self, trial_id: str) -> None:
        self.killed.append(trial_id)


def test_stopper_state_file_continues_the_rungs_and_a_rerun_counts_epochs_afresh(tmp_path):
    from nni_hwnas.experiment.nni_rest import TrialView, assemble_trials
    from strategies.nni_multi_fidelity import RestEarlyStopper

    def rule() -> MoAsha:
        return MoAsha([1], 2, "accuracy", "params")

    def report(acc: float, params: int) -> dict:
        return {"accuracy": acc, "params": params}

    state = tmp_path / "mo_asha_state.json"
    nni = _FakeNni()
    first = RestEarlyStopper(rule(), nni, state_path=state)
    assert not first.resumed
    nni.views = [TrialView("a", "SUCCEEDED", 0, intermediate=[report(0.9, 10)] * 3),
                 TrialView("b", "RUNNING", 1, intermediate=[report(0.5, 20)])]
    first.poll()
    assert nni.killed == ["b"] and state.is_file()
    first.settle({"a": "SUCCEEDED", "b": "RUNNING"})  # an interrupted run: b's kill still pending
    assert first.killed == {"b": 1} and first.too_late == {}
    # A new stopper on the same file (a resumed search) knows a and b; c, b's equal, goes on only
    # because the rung's quota grew to 2 of 3, exactly as in one uninterrupted run.
    again = RestEarlyStopper(rule(), nni, state_path=state)
    assert again.resumed and again.killed == {"b": 1}
    nni.views.append(TrialView("c", "RUNNING", 2, intermediate=[report(0.5, 20)]))
    again.poll()
    assert nni.killed == ["b"] and again.rule.stats()[0].reached == 3
    uninterrupted = rule()
    assert [uninterrupted.report(t, 1, r) for t, r in (("a", report(0.9, 10)), ("b", report(0.5, 20)),
                                                        ("c", report(0.5, 20)))] == [True, False, True]
    # NNI re-runs a trial under its id after a resume: its epochs start again, not after the old ones.
    records = [{"trialJobId": "c", "type": "PERIODICAL", "timestamp": t, "sequence": q, "data": str(q)}
               for t, q in ((1, 0), (2, 1), (3, 0), (4, 1), (5, 2))]
    view = assemble_trials([{"trialJobId": "c", "status": "RUNNING", "hyperParameters": []}], records)[0]
    assert len(view.intermediate) == 3


def test_a_stop_that_lands_after_the_trial_ended_is_not_counted_as_a_kill(tmp_path):
    from nni_hwnas.experiment.nni_rest import TrialView
    from strategies.nni_multi_fidelity import RestEarlyStopper

    nni, state = _FakeNni(), tmp_path / "mo_asha_state.json"
    stopper = RestEarlyStopper(MoAsha([1], 2, "accuracy", "params"), nni, state_path=state)
    nni.views = [TrialView("a", "SUCCEEDED", 0, intermediate=[{"accuracy": 0.9, "params": 10}] * 3),
                 TrialView("b", "RUNNING", 1, intermediate=[{"accuracy": 0.5, "params": 20}])]
    stopper.poll()
    assert nni.killed == ["b"]
    stopper.settle({"a": "SUCCEEDED", "b": "SUCCEEDED"})  # b finished before the kill reached it
    assert stopper.killed == {} and stopper.too_late == {"b": 1}
    assert stopper.summary()["stopped_too_late"] == {"b": 1} and stopper.summary()["killed"] == {}
    again = RestEarlyStopper(MoAsha([1], 2, "accuracy", "params"), nni, state_path=state)
    assert again.too_late == {"b": 1} and again.killed == {}
    again.poll()  # b is not judged or killed again
    assert nni.killed == ["b"]


def test_assessor_judges_nnis_trial_history():
    from nni.assessor import AssessResult

    from strategies.nni_multi_fidelity import MoAshaAssessor

    assessor = MoAshaAssessor(rungs=[1], reduction_factor=2, cost_metric="params")
    assert assessor.assess_trial("t1", [{"default": 0.8, "accuracy": 0.8, "params": 100}]) is AssessResult.Good
    assert assessor.assess_trial("t2", [{"default": 0.7, "accuracy": 0.7, "params": 200}]) is AssessResult.Bad
    assert assessor.assess_trial("t1", [{"accuracy": 0.8, "params": 100}] * 2) is AssessResult.Good
    by_loss = MoAshaAssessor(rungs=[1], reduction_factor=2, score_metric="train_loss", cost_metric="params")
    assert by_loss.assess_trial("t1", [{"accuracy": 0.8, "train_loss": 0.4, "params": 100}]) is AssessResult.Good
    assert by_loss.assess_trial("t2", [{"accuracy": 0.9, "train_loss": 0.5, "params": 200}]) \
        is AssessResult.Bad  # judged on the training loss, not the accuracy


def test_assessor_says_once_when_the_trials_do_not_report_the_rung_metric(caplog):
    """A trial script reporting a bare number has no ``accuracy``: its trials run on unjudged, and
    the log says so once, naming the fix, rather than the search silently never stopping a trial."""
    from nni.assessor import AssessResult

    from strategies.nni_multi_fidelity import MoAshaAssessor

    assessor = MoAshaAssessor(rungs=[1], reduction_factor=2, cost_metric=None)
    with caplog.at_level("WARNING", logger="nni_hwnas.multi_fidelity"):
        assert all(assessor.assess_trial(f"t{i}", [0.1 * i]) is AssessResult.Good for i in range(4))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "`accuracy` (1 reports)" in warnings[0] and "set score_metric" in warnings[0]
    assert assessor.rule.unjudged == {"accuracy": 4}


# ---------------------------------------------------------------------- real NNI experiments

#: 4 trials one at a time, 12 epochs each, judged after epoch 1 against (the rung metric, params):
#: params are exact (no timing noise), so the rule's decisions are reproducible.
TRAINING = {"epochs": 12, "train_subset": 300, "batch_size": 32, "latency_repeats": 3}
RULE = {"rungs": [1], "reduction_factor": 2, "cost_metric": "params"}


def offline_decisions(trials: list[tuple[str, dict]], score_metric: str = DEFAULT_RUNG_METRIC) -> dict[str, bool]:
    """The same rule replayed on the trials' epoch-1 reports, in the order the trials ran."""
    rule = MoAsha(RULE["rungs"], RULE["reduction_factor"], score_metric, RULE["cost_metric"])
    return {trial: rule.report(trial, 1, first) for trial, first in trials}


def check_stopped_as_configured(jobs: list[dict], metric_data: list[dict]) -> None:
    reports: dict[str, list[dict]] = {j["trialJobId"]: [] for j in jobs}
    for record in sorted(metric_data, key=lambda r: (r["timestamp"], r["sequence"])):
        if record["type"] == "PERIODICAL":
            reports[record["trialJobId"]].append(decode(record["data"]))
    ordered = sorted(jobs, key=lambda j: j["startTime"])
    expected = offline_decisions([(j["trialJobId"], reports[j["trialJobId"]][0]) for j in ordered])
    assert not all(expected.values()), "no trial was dominated at the rung: the test proves nothing"
    for job in ordered:
        n = len(reports[job["trialJobId"]])
        if expected[job["trialJobId"]]:
            assert job["status"] == "SUCCEEDED" and n == TRAINING["epochs"], (job["status"], n)
        else:
            assert job["status"] in ("USER_CANCELED", "EARLY_STOPPED") and n < TRAINING["epochs"], (job["status"], n)
            assert {"accuracy", "train_loss", "val_loss", "params", "latency_ms"} <= set(reports[job["trialJobId"]][0])


def write_mo_asha_config(tmp_path: Path, name: str, seed: int, max_trials: int, **rule: Any) -> Path:
    """A digits search with Random and MO-ASHA (``RULE``, updated by ``rule``), one trial at a time, as YAML."""
    config = {"name": name, "seed": seed, "dataset": {"name": "digits"}, "space": {"preset": "conv_net_small"},
              "strategy": {"name": "Random"}, "evaluator": TRAINING,
              "multi_fidelity": {"enabled": True, **RULE, **rule, "poll_interval_s": 0.2},
              "experiment": {"max_trials": max_trials, "concurrency": 1, "working_directory": str(tmp_path / "exps")}}
    path = tmp_path / "mo_asha.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_search_stops_dominated_trials_in_a_nas_experiment(tmp_path, nni_home):
    path = write_mo_asha_config(tmp_path, "mo-asha", seed=3, max_trials=4, score_metric="train_loss")
    out, port = tmp_path / "results", free_port()
    done = subprocess.run([str(BIN / "nni-hwnas"), "search", "--config", str(path), "--port", str(port),
                           "--output", str(out)], cwd=REPO, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((out / "multi_fidelity.json").read_text())
    rows = json.loads((out / "trials.json").read_text())
    rows = sorted(rows["trials"] if isinstance(rows, dict) else rows, key=lambda r: r["parameter_id"])
    assert len(rows) == 4 and summary["rungs"] == [1] and summary["objectives"] == ["train_loss", "params"]
    # One trial at a time, in parameter order: replay the rule on what each trial reported at the rung.
    # The summary stores losses, here the metrics themselves: train_loss and params, both lower-is-better.
    first = [(r["trial_id"], dict(zip(["train_loss", "params"], summary["rung_losses"]["1"][r["trial_id"]])))
             for r in rows]
    expected = offline_decisions(first, score_metric="train_loss")
    assert not all(expected.values()), "no trial was dominated at the rung: the test proves nothing"
    # A stop can land after a fast trial has ended: the summary then lists it as too late, not killed.
    assert set(summary["killed"]) | set(summary["stopped_too_late"]) == {t for t, go_on in expected.items() if not go_on}
    assert summary["killed"], "every stop came too late: nothing was cancelled"
    for row in rows:
        if expected[row["trial_id"]] or row["trial_id"] in summary["stopped_too_late"]:
            assert row["status"] == "SUCCEEDED" and row["epochs_reported"] == TRAINING["epochs"], row
        else:
            assert row["status"] == "USER_CANCELED" and row["epochs_reported"] < TRAINING["epochs"], row
    assert f"MO-ASHA stopped {len(summary['killed'])} trial(s)" in done.stdout
    assert json.loads((out / "run.json").read_text())["config"]["multi_fidelity"]["enabled"] is True


def test_resumed_search_continues_the_saved_rungs(tmp_path, nni_home):
    """Stop after 3 trials, ``--resume`` to 6: the rungs hold both runs' results, trials 4-6 are
    judged against trials 1-3 exactly as in one uninterrupted run, and the summary lists every stop."""
    path = write_mo_asha_config(tmp_path, "mo-asha-resume", seed=5, max_trials=3)
    out = tmp_path / "results"
    search = [str(BIN / "nni-hwnas"), "search", "--config", str(path), "--output", str(out), "--no-dashboard"]
    first = subprocess.run([*search, "--port", str(free_port())], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    experiment_id = json.loads((out / "run.json").read_text())["experiment_id"]
    before = json.loads((out / "multi_fidelity.json").read_text())
    assert len(before["rung_losses"]["1"]) == 3
    again = subprocess.run([*search, "--port", str(free_port()), "--resume", experiment_id, "--max-trials", "6"],
                           cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    summary = json.loads((out / "multi_fidelity.json").read_text())
    rows = json.loads((out / "trials.json").read_text())
    rows = sorted(rows["trials"] if isinstance(rows, dict) else rows, key=lambda r: r["parameter_id"])
    assert len(rows) == 6 and set(summary["rung_losses"]["1"]) == {r["trial_id"] for r in rows}
    for trial, losses in before["rung_losses"]["1"].items():  # the first run's results kept, not re-judged
        assert summary["rung_losses"]["1"][trial] == losses
    assert set(before["killed"]) <= set(summary["killed"])
    signs = np.array([-1.0, 1.0])  # the summary stores losses: -accuracy, params
    expected = offline_decisions([(r["trial_id"], dict(zip(["accuracy", "params"], signs * summary["rung_losses"]["1"][r["trial_id"]])))
                                  for r in rows])
    assert not all(expected.values()), "no trial was dominated at the rung: the test proves nothing"
    late = set(summary["stopped_too_late"])
    assert set(summary["killed"]) | late == {t for t, go_on in expected.items() if not go_on}
    assert summary["per_rung"][0]["reached"] == 6 and summary["per_rung"][0]["stopped"] == len(summary["killed"]) + len(late)
    for row in rows:
        assert row["status"] == ("SUCCEEDED" if expected[row["trial_id"]] or row["trial_id"] in late
                                 else "USER_CANCELED"), row
    assert "continuing its saved rungs" in again.stdout


@pytest.mark.parametrize("trial_module", ["nni_hwnas.evaluation.hpo_trial", "nni_hwnas.warm_trials"])
def test_assessor_stops_dominated_trials_under_nnictl(tmp_path, trial_module):
    """Cold trials, and warm ones: NNI's stop reaches a trial forked from the warm server."""
    home = tmp_path / "home"
    (home / "nni-config").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "NNI_CONFIG_DIR": str(home / "nni-config"),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NNI_HWNAS_WARM_IDLE_S": "5"}
    run = lambda *cmd: subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)  # noqa: E731
    assert run(str(BIN / "nni-hwnas"), "register").returncode == 0
    assert "MoAsha" in run(str(BIN / "nnictl"), "algo", "list").stdout

    experiment = tmp_path / "quick.yaml"
    experiment.write_text(yaml.safe_dump({"seed": 3, "dataset": {"name": "digits"}, "space": {"preset": "conv_net_small"},
                                          "evaluator": TRAINING}))
    config = yaml.safe_load((REPO / "experiments" / "nnictl" / "digits.yml").read_text())
    config.update(maxTrialNumber=4, trialConcurrency=1, trialCodeDirectory=str(tmp_path),
                  searchSpaceFile=str(REPO / "experiments" / "nnictl" / "digits_space.json"),
                  experimentWorkingDirectory=str(tmp_path / "exps"),
                  trialCommand=f"python3 -m {trial_module} --config {experiment}",
                  tuner={"name": "Random", "classArgs": {"seed": 3}},
                  assessor={"name": "MoAsha", "classArgs": {**RULE, "max_epochs": TRAINING["epochs"]}})
    (tmp_path / "exp.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    created = run(str(BIN / "nnictl"), "create", "--config", str(tmp_path / "exp.yml"), "--port", str(port))
    assert created.returncode == 0, created.stderr
    experiment_id = next(line.split('"nnictl stop ')[1].split('"')[0] for line in created.stdout.splitlines()
                         if "nnictl stop " in line)
    try:
        deadline = time.monotonic() + 300
        while True:
            status = rest(port, "/check-status")["status"]
            assert status != "ERROR", (tmp_path / "exps" / experiment_id / "log" / "dispatcher.log").read_text()[-3000:]
            jobs = rest(port, "/trial-jobs") or []
            if status in ("DONE", "NO_MORE_TRIAL") and len(jobs) == 4 and all(
                    j["status"] not in ("WAITING", "RUNNING") for j in jobs):
                break
            assert time.monotonic() < deadline, f"status {status}, jobs {[j['status'] for j in jobs]}"
            time.sleep(2)
        check_stopped_as_configured(jobs, rest(port, "/metric-data"))
        assert "Traceback" not in (tmp_path / "exps" / experiment_id / "log" / "dispatcher.log").read_text()
    finally:
        stopped = run(str(BIN / "nnictl"), "stop", experiment_id)
        run(str(BIN / "nni-hwnas"), "unregister")
    assert stopped.returncode == 0
    warm_log = tmp_path / "exps" / experiment_id / "log" / "warm_trials.log"
    if trial_module == "nni_hwnas.warm_trials":
        from nni_hwnas.warm_trials.protocol import read_log

        events = read_log(warm_log)
        ends = [e for e in events if e["event"] == "end"]
        assert len(ends) == 4 and {e["exit"] for e in ends} >= {0, 130}  # stopped ones got NNI's SIGINT
        server = next(e["server_pid"] for e in events if e["event"] == "serving")
        from nni_hwnas.experiment.manager_guard import pid_alive
        from test_warm_trials import wait_until

        assert wait_until(lambda: not pid_alive(server), 30)  # left once idle
    else:
        assert not warm_log.exists()


def test_log_cost_axis_gives_the_closed_form_hypervolume():
    from nni_hwnas.reporting.hypervolume_trace import HvReference, hypervolume_curve

    reference = HvReference(score_worst=0.0, cost_best=1.0, cost_worst=100.0, cost_scale="log")
    rows = [{"accuracy": 0.5, "latency_ms": 10.0}, {"accuracy": 0.9, "latency_ms": 1000.0}]
    # log10(10 / 1) / log10(100 / 1) = 0.5 of the cost axis left: 0.5 x 0.5; the second is outside the box
    assert hypervolume_curve(rows, reference) == pytest.approx([0.25, 0.25])
    linear = HvReference(score_worst=0.0, cost_best=0.0, cost_worst=100.0)
    assert hypervolume_curve(rows[:1], linear) == pytest.approx([0.5 * 0.9])
    with pytest.raises(ValueError, match="0 < cost_best"):
        HvReference(cost_best=0.0, cost_scale="log")


def test_check_nnictl_names_an_unregistered_assessor(tmp_path, monkeypatch):
    from nni_hwnas.experiment.nnictl_check import check_nnictl_config

    monkeypatch.setenv("NNI_CONFIG_DIR", str(tmp_path))  # nothing registered here
    config = {"tuner": {"name": "TPE"}, "assessor": {"name": "MoAsha", "classArgs": {"max_epochs": 9}}}
    (tmp_path / "exp.yml").write_text(yaml.safe_dump(config))
    with pytest.raises(UserError, match="assessor 'MoAsha' is not known .* run `nni-hwnas register` first"):
        check_nnictl_config(tmp_path / "exp.yml")
    config["assessor"] = {"name": "Medianstop", "classArgs": {"optimize_mode": "maximize"}}  # NNI's built-in
    (tmp_path / "exp.yml").write_text(yaml.safe_dump(config))
    assert "assessor Medianstop is known to NNI and takes its classArgs" in check_nnictl_config(tmp_path / "exp.yml")


def test_benchmark_measures_what_a_real_trial_spends_outside_its_epochs(tmp_path, monkeypatch):
    """The benchmark charges each trial a measured fixed CPU cost, not a guess, for cold trials and
    for warm ones (whose server's start-up is charged once)."""
    import argparse

    from experiments.benchmarks.compare_strategies import dataset_setup
    from experiments.benchmarks.multi_fidelity import TRAINING, measure_trial_overhead, overhead_arg

    monkeypatch.setenv("HOME", str(tmp_path))
    setup = dataset_setup("digits", tmp_path, {**TRAINING, "epochs": 6}, "conv_net_small")
    measured = measure_trial_overhead(setup, rounds=1)
    cold, warm = measured["cold"], measured["warm"]
    for launcher in (cold, warm):
        [(one_epoch, three_epochs)] = launcher["cpu_s_1_and_3_epochs"]
        assert launcher["overhead_s"] == pytest.approx((3 * one_epoch - three_epochs) / 2, abs=2e-3)  # both rounded
    assert cold["overhead_s"] > 0.5 and cold["once_s"] == 0  # torch's import alone costs more
    assert warm["once_s"] > 0.5  # the warm server imported torch once...
    assert warm["overhead_s"] < cold["overhead_s"] / 2  # ...so its trials did not
    assert overhead_arg("measure") == "measure" and overhead_arg("2.5") == 2.5
    with pytest.raises(argparse.ArgumentTypeError, match="expected 'measure' or seconds >= 0, got '-1'"):
        overhead_arg("-1")


def test_a_re_summary_scores_saved_runs_with_their_own_settings(tmp_path, capsys):
    """``--from-runs`` takes the dataset, space and budget from the saved ``run.json``: the command
    line's defaults would score PneumoniaMNIST runs against BreastMNIST's reference."""
    import argparse

    from experiments.benchmarks.multi_fidelity import adopt_saved_settings

    (tmp_path / "runs.json").write_text("[]")
    args = argparse.Namespace(from_runs=str(tmp_path / "runs.json"), dataset="breastmnist", preset="conv_net",
                              epochs=9, train_subset=None, min_epochs="1,3", reduction_factor=3.0, ties="keep",
                              trials=30, seeds=5, rung_metric="accuracy,train_loss,val_loss")
    adopt_saved_settings(args)
    assert "command line's settings" in capsys.readouterr().out and args.dataset == "breastmnist"
    saved = {"dataset": "pneumoniamnist", "preset": "conv_net", "epochs": 6, "train_subset": 300,
             "min_epochs": "1", "reduction_factor": 3.0, "ties": "keep", "trials": 12, "seeds": [0, 1, 2]}
    (tmp_path / "run.json").write_text(json.dumps({"config": saved}))
    adopt_saved_settings(args)
    assert (args.dataset, args.epochs, args.train_subset, args.min_epochs, args.trials, args.seeds) == \
        ("pneumoniamnist", 6, 300, "1", 12, 3)
