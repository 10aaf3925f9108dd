"""``hw_evolution`` inside a real NNI 3.0 experiment: it runs, is stopped mid-trial, is resumed
through our workarounds, and finishes with every trial present once and none repeated.

The experiment is driven by :func:`drive` in a child process: NNI fixes its experiment-list path
(``~/nni-experiments``) when ``nni`` is first imported, so only a fresh process with ``HOME`` set
keeps it out of the real home; NNI's atexit hooks and global serializer stay out of pytest too.
Trial processes import :func:`toy_trial` from this module (``PYTHONPATH`` points at ``tests/``).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, decode, free_port, rest
from nni_hwnas.errors import UserError

CHOICES = {"depth": [1, 2], "filters": [4, 8], "kernel": [3], "batch_norm": [False, True], "dropout": [0.0, 0.5]}
SHAPE, CLASSES = (1, 8, 8), 10
STRATEGY_ARGS = {"population_size": 4, "sample_size": 2, "initial_random": 2, "objectives": ["score", "cost"]}
FIRST_TRIALS, TOTAL_TRIALS, CONCURRENCY = 4, 7, 2


def toy_trial(model, sleep_s: float = 0.0) -> None:
    """The evaluator, run by NNI in each trial process: a dict of metrics from the frozen model."""
    import nni

    from nni_hwnas.hardware.cost_model import estimate_cost

    cost = estimate_cost(model.layer_specs)
    accuracy = round(1.0 - math.exp(-cost.params / 3000.0), 6)
    time.sleep(sleep_s)  # long enough for the test to stop the experiment mid-trial
    nni.report_final_result({"default": accuracy, "accuracy": accuracy, "latency_ms": cost.flops / 1e4,
                             "params": cost.params})


def in_process_trial(model) -> None:
    """The evaluator of the in-process tests: fails on purpose for one kind of network."""
    import nni

    from nni_hwnas.hardware.cost_model import estimate_cost

    if model.sample["depth"] == 2 and model.sample["conv1_bn"]:
        raise RuntimeError("toy failure")
    cost = estimate_cost(model.layer_specs)
    accuracy = 1.0 - math.exp(-cost.params / 3000.0)
    nni.report_final_result({"default": accuracy, "accuracy": accuracy, "latency_ms": cost.flops / 1e4,
                             "params": cost.params})



def drive(work: str) -> None:
    """Run, stop mid-trial, resume; write what NNI and the strategy saw to ``work/report.json``."""
    from nni.nas.evaluator import FunctionalEvaluator

    from search_spaces import make_model_space
    from nni_hwnas.nni_compat.resume import ResumableNasExperiment, resume_experiment
    from strategies.nni_strategy import make_hw_evolution

    work_dir, report = Path(work), {}
    exps = work_dir / "exps"

    def parts():
        return (make_model_space("conv_net", CHOICES, SHAPE, CLASSES),
                FunctionalEvaluator(toy_trial, sleep_s=2.0), make_hw_evolution(STRATEGY_ARGS, seed=3))

    space, evaluator, strategy = parts()
    first = ResumableNasExperiment(space, evaluator, strategy)
    first.config.max_trial_number = FIRST_TRIALS
    first.config.trial_concurrency = CONCURRENCY
    first.config.experiment_working_directory = str(exps)
    port, errors = free_port(), []

    def run_first():
        try:
            first.start(port)
        except BaseException as exc:  # the stop below ends the strategy's loop with an error
            errors.append(repr(exc))

    runner = threading.Thread(target=run_first, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 150
        while runner.is_alive() and time.monotonic() < deadline:
            try:
                statuses = [job["status"] for job in rest(port, "/trial-jobs") or []]
            except (OSError, ValueError):  # the REST server is still starting (no body yet)
                statuses = []
            if statuses.count("SUCCEEDED") >= 2 and ("RUNNING" in statuses or "WAITING" in statuses):
                break
            time.sleep(0.5)
        report["first_jobs"] = rest(port, "/trial-jobs")
        report["first_pending"] = strategy.core.pending
        report["first_history"] = strategy.core.history
    finally:
        first.stop()
    runner.join(30)
    report["first_errors"] = errors
    report["experiment_id"] = first.id
    checkpoint = exps / first.id / "checkpoint" / "state.ckpt.json"
    report["checkpoint"] = json.loads(checkpoint.read_text())["strategy"]["core"]

    space, evaluator, strategy = parts()
    port = free_port()
    resumed = resume_experiment(first.id, space, evaluator, strategy, port=port, working_directory=exps,
                                max_trials=TOTAL_TRIALS)
    try:
        report["jobs"] = rest(port, "/trial-jobs")
        report["metric_data"] = rest(port, "/metric-data")
        report["history"] = strategy.core.history
        report["pending"] = strategy.core.pending
        report["pareto"] = strategy.export_pareto()
        report["top"] = resumed.export_top_models(top_k=3, formatter="dict")
        report["backup"] = str(resumed.checkpoint_backup)
    finally:
        resumed.stop()
    (work_dir / "report.json").write_text(json.dumps(report, default=str))


def declared(sample: dict, definition) -> dict:
    """Values as the space declares them (NNI's manager re-encodes JSON: 0.0 comes back as 0)."""
    labels = definition.labels()
    return {k: next((v for v in labels[k] if v == x and isinstance(v, bool) == isinstance(x, bool)), x)
            for k, x in sample.items()}



def test_hw_evolution_stops_mid_trial_resumes_and_never_repeats_a_trial(tmp_path):
    home = tmp_path / "home"
    (home / "nni-config").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "NNI_CONFIG_DIR": str(home / "nni-config"),
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", f"import test_nni_strategy as t; t.drive({str(tmp_path)!r})"],
                            cwd=REPO / "tests", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=480)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output[-6000:]
    report = json.loads((tmp_path / "report.json").read_text())

    from search_spaces import make_definition

    definition = make_definition("conv_net", CHOICES, SHAPE, CLASSES)

    # The stop caught trials mid-run; the checkpoint holds them as pending, the finished ones as history.
    first_done = {j["trialJobId"] for j in report["first_jobs"] if j["status"] == "SUCCEEDED"}
    interrupted = {j["trialJobId"] for j in report["first_jobs"] if j["status"] in ("RUNNING", "WAITING")}
    assert len(first_done) >= 2 and len(interrupted) >= 1, report["first_jobs"]
    assert len(report["checkpoint"]["pending"]) >= 1
    assert [r["id"] for r in report["checkpoint"]["history"]] == [r["id"] for r in report["first_history"]]

    # NNI's REST API (what the web UI shows): every trial once, all finished, with dict metrics.
    jobs, finals = report["jobs"], [m for m in report["metric_data"] if m["type"] == "FINAL"]
    assert len(jobs) == TOTAL_TRIALS and all(j["status"] == "SUCCEEDED" for j in jobs)
    assert first_done | interrupted <= {j["trialJobId"] for j in jobs}  # NNI re-ran the interrupted ones
    assert len(finals) == TOTAL_TRIALS and len({m["trialJobId"] for m in finals}) == TOTAL_TRIALS
    samples = {}
    for job in jobs:
        record = decode(job["hyperParameters"][0])
        samples[int(record["parameter_id"])] = declared(record["parameters"]["sample"], definition)
    ran = {int(m["parameterId"]): decode(m["data"]) for m in finals}  # parameterId is authoritative
    assert sorted(ran) == list(range(TOTAL_TRIALS))
    arch_ids = [definition.arch_id(samples[pid]) for pid in ran]
    assert len(set(arch_ids)) == TOTAL_TRIALS, "an architecture was trained twice"
    assert all({"default", "accuracy", "latency_ms", "params"} <= set(m) for m in ran.values())

    # The resumed strategy knows every trial exactly once, with the metrics NNI recorded.
    history = report["history"]
    assert len(history) == TOTAL_TRIALS and report["pending"] == []
    assert all(r["status"] == "succeeded" for r in history)
    by_arch = {definition.arch_id(samples[pid]): metrics for pid, metrics in ran.items()}
    for record in history:
        assert record["metrics"] == {k: float(v) for k, v in by_arch[record["id"]].items()}
    restored = [r["id"] for r in report["checkpoint"]["history"]]
    assert [r["id"] for r in history[:len(restored)]] == restored  # from the checkpoint, not re-trained

    # Exports: the Pareto set, and NNI's export_top_models through our list_models.
    assert report["pareto"] and {r["id"] for r in report["pareto"]} <= set(by_arch)
    assert report["top"] and all(definition.arch_id(s) in by_arch for s in report["top"])
    assert Path(report["backup"]).is_dir()


# --------------------------------------------------------------------------- in process (no NNI manager)


def _in_process(strategy, n_models: int, state: dict | None = None):
    """Run ``strategy`` on NNI's sequential engine: ask -> freeze -> submit -> events -> tell, in this process."""
    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import SimplifiedModelSpace

    from search_spaces import make_model_space

    space = SimplifiedModelSpace.from_model(make_model_space("conv_net", CHOICES, SHAPE, CLASSES),
                                            FunctionalEvaluator(in_process_trial))
    strategy.initialize(space, SequentialExecutionEngine(max_model_count=n_models, continue_on_failure=True))
    if state is not None:
        strategy.load_state_dict(state)
    strategy.run()
    return strategy


def test_strategy_in_process_learns_dict_metrics_and_remembers_failures():
    from search_spaces import make_definition
    from strategies.nni_strategy import make_hw_evolution

    strategy = _in_process(make_hw_evolution(STRATEGY_ARGS, seed=1), 14)
    definition = make_definition("conv_net", CHOICES, SHAPE, CLASSES)
    history = strategy.core.history
    assert len(history) == 14 and strategy.core.pending == []
    assert len({definition.arch_id(r["sample"]) for r in history}) == 14  # found the definition's identity
    failed = [r for r in history if r["status"] == "failed"]
    assert failed and all(r["sample"]["depth"] == 2 and r["sample"]["conv1_bn"] for r in failed)
    ok = [r for r in history if r["status"] == "succeeded"]
    assert all({"default", "accuracy", "latency_ms", "params"} <= set(r["metrics"]) for r in ok)  # the whole dict
    front = strategy.export_pareto()
    assert front and {r["id"] for r in front} <= {r["id"] for r in ok}
    top = list(strategy.list_models(limit=3))
    assert [m.sample for m in top][:1] == [max(front, key=lambda r: r["metrics"]["default"])["sample"]]
    assert all(isinstance(m.metric, float) for m in top)


def test_strategy_state_dict_resume_in_process_continues_the_same_run():
    from strategies.nni_strategy import make_hw_evolution

    straight = _in_process(make_hw_evolution(STRATEGY_ARGS, seed=2), 12)
    first = _in_process(make_hw_evolution(STRATEGY_ARGS, seed=2), 6)
    state = json.loads(json.dumps(first.state_dict()))  # what a JSON checkpoint keeps
    second = _in_process(make_hw_evolution(STRATEGY_ARGS, seed=99), 6, state=state)
    assert [r["sample"] for r in second.core.history] == [r["sample"] for r in straight.core.history]


def test_make_hw_evolution_checks_arguments_before_nni_starts():
    from strategies.nni_strategy import CONFIG_ARGS, make_hw_evolution

    with pytest.raises(UserError, match="did you mean 'population_size'"):
        make_hw_evolution({"population_siz": 8}, seed=0)
    with pytest.raises(UserError, match="`sample_size` must be <= `population_size`"):
        make_hw_evolution({"population_size": 4, "sample_size": 8}, seed=0)
    with pytest.raises(UserError, match="objective"):
        make_hw_evolution({"objectives": ["score", "speed"]}, seed=0)
    from nni_hwnas.budgets import Budgets

    strategy = make_hw_evolution({"objectives": ["score", "cost", "novelty"]}, seed=5, budgets=Budgets(latency_ms=3.0))
    assert strategy.settings["seed"] == 5 and strategy.budgets.limit("latency_ms") == 3.0
    assert "screen" not in CONFIG_ARGS and "population_size" in CONFIG_ARGS


def test_a_resume_that_failed_before_loading_does_not_overwrite_the_checkpoint(tmp_path):
    from nni.nas.evaluator import FunctionalEvaluator

    from search_spaces import make_model_space
    from nni_hwnas.nni_compat.resume import ResumableNasExperiment
    from strategies.nni_strategy import make_hw_evolution

    experiment = ResumableNasExperiment(make_model_space("conv_net", CHOICES, SHAPE, CLASSES),
                                        FunctionalEvaluator(in_process_trial),
                                        make_hw_evolution(STRATEGY_ARGS, seed=0), id="guarded")
    experiment.config.experiment_working_directory = str(tmp_path)
    checkpoint = tmp_path / "guarded" / "checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.ckpt.json").write_text('{"saved": "by the first run"}')
    # As after a resume whose strategy failed to initialise or to load the state: NNI's stop()
    # would now save the new, empty strategy over the first run's state.
    experiment._action, experiment._engine = "resume", object()
    experiment.save_checkpoint()
    assert (checkpoint / "state.ckpt.json").read_text() == '{"saved": "by the first run"}'
