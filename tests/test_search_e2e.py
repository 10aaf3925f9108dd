"""End to end: `nni-hwnas search` starts a real NNI experiment; its web UI's REST API shows the
trials and their dict metrics, the results directory is complete, and Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BUNDLED_1T_TABLE, REPO, decode, default_sigint, free_port, rest

CONFIG = """
name: e2e
seed: 7
dataset: {name: digits}
space: {preset: conv_net_small}
strategy: {name: Random}
evaluator: {epochs: 1, latency_repeats: 5}
experiment: {max_trials: 3, concurrency: 2, working_directory: exps}
"""




def check_web_ui(port: int, trial_ids: list[str], shots: Path) -> None:
    """Headless Chromium opens the overview and trials pages; every trial id is in the DOM."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's package)")
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=15000"]
    artifacts = Path(os.environ.get("NNI_HWNAS_ARTIFACTS", shots))
    artifacts.mkdir(parents=True, exist_ok=True)
    for page in ("oview", "detail"):
        url = f"http://127.0.0.1:{port}/{page}"
        dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        missing = [t for t in trial_ids if t not in dom]
        assert not missing, f"trials {missing} not shown on {url}"
        shot = artifacts / f"webui-{page}.png"
        subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, timeout=120)
        assert shot.stat().st_size > 10_000


def test_search_runs_through_nni_and_writes_results(tmp_path, nni_home):
    config = tmp_path / "e2e.yaml"
    config.write_text(CONFIG)
    out, port = tmp_path / "results", free_port()
    script = Path(sys.executable).with_name("nni-hwnas")
    proc = subprocess.Popen([str(script), "search", "--config", str(config), "--port", str(port),
                             "--output", str(out), "--keep-ui"], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 300
        while not (out / "run.json").exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "search did not finish in 300 s"
            time.sleep(1)
        time.sleep(1)  # run.json is written last

        # The web UI's data: three finished trials, each with the whole metric dict.
        jobs = rest(port, "/trial-jobs")
        assert len(jobs) == 3 and all(job["status"] == "SUCCEEDED" for job in jobs)
        finals = [decode(m["data"]) for m in rest(port, "/metric-data") if m["type"] == "FINAL"]
        assert len(finals) == 3
        for metrics in finals:
            assert {"default", "accuracy", "latency_ms", "params", "flops", "peak_mem_kb", "within_budget"} <= set(metrics)
            assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["default"] == metrics["accuracy"]
            assert metrics["params"] > 0 and metrics["latency_ms"] > 0
        intermediate = [m for m in rest(port, "/metric-data") if m["type"] == "PERIODICAL"]
        assert len(intermediate) == 3  # one epoch each

        # The results directory agrees with NNI.
        trials = json.loads((out / "trials.json").read_text())
        assert sorted(t["trial_id"] for t in trials) == sorted(j["trialJobId"] for j in jobs)
        assert sorted(t["accuracy"] for t in trials) == sorted(m["accuracy"] for m in finals)
        assert all(t["arch.depth"] in (1, 2, 3) for t in trials)
        pareto = json.loads((out / "pareto.json").read_text())
        assert 1 <= len(pareto["front"]) <= 3 and pareto["objectives"] == ["accuracy", "latency_ms"]
        run = json.loads((out / "run.json").read_text())
        assert run["seed"] == 7 and run["versions"]["nni"] == "3.0" and run["machine"]["cpu_model"]
        assert (out / "pareto.png").stat().st_size > 1000 and (out / "trials.csv").exists()
        assert (tmp_path / "exps" / run["experiment_id"]).is_dir()  # our working directory, not ~

        # The same trials in NNI's web UI, rendered by a real browser.
        check_web_ui(port, [j["trialJobId"] for j in jobs], tmp_path)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0
    # The experiment was stopped: its manager no longer answers.
    time.sleep(1)
    try:
        rest(port, "/check-status")
        alive = True
    except OSError:
        alive = False
    assert not alive

    # The finished experiment's report, read from NNI's own database (no manager running).
    run = json.loads((out / "run.json").read_text())
    result = subprocess.run([str(script), "report", run["experiment_id"], "--experiment-dir", str(tmp_path / "exps"),
                             "--output", str(tmp_path / "report")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["rows"][0]["trials"] == 3
    assert report["rows"][0]["best_accuracy"] == max(t["accuracy"] for t in trials)
    assert (tmp_path / "report" / "report.md").read_text().startswith("# nni-hwnas report")
    assert (tmp_path / "report" / "hypervolume.png").exists() and (tmp_path / "report" / "fronts.png").exists()


COST_ONLY = """
name: cost-only
seed: 3
dataset: {name: digits}
space: {preset: conv_net_small}
strategy: {name: Random}
evaluator: {kind: cost, cost_metric: latency_ms}
hardware: {profile: host-cpu-1t, table: """ + str(BUNDLED_1T_TABLE) + """, budgets: {latency_ms: 0.06}}
experiment: {max_trials: 4, concurrency: 2, working_directory: exps}
"""


def test_cost_only_evaluator_in_a_real_experiment_marks_budgets(tmp_path, nni_home):
    """The latency-predictor evaluator (no training) through NNI: predicted costs, budget flags, front."""
    config = tmp_path / "cost.yaml"
    config.write_text(COST_ONLY)
    script = Path(sys.executable).with_name("nni-hwnas")
    result = subprocess.run([str(script), "search", "--config", str(config), "--port", str(free_port()),
                             "--output", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trials = json.loads((tmp_path / "out" / "trials.json").read_text())
    assert len(trials) == 4 and all(t["status"] == "SUCCEEDED" for t in trials)

    from nni_hwnas.hardware.costs import load_predictor
    from nni_hwnas.hardware.profiles import load_profile
    from search_spaces import load_preset, make_definition

    space, choices = load_preset("conv_net_small")
    predictor = load_predictor(load_profile("host-cpu-1t"), make_definition(space, choices, (1, 8, 8), 10), BUNDLED_1T_TABLE)
    for trial in trials:
        sample = {k[5:]: v for k, v in trial.items() if k.startswith("arch.")}
        assert trial["latency_ms"] == pytest.approx(predictor.predict(sample))
        assert trial["default"] == pytest.approx(-trial["latency_ms"])
        assert trial["within_budget"] == int(trial["latency_ms"] <= 0.06)
    front = json.loads((tmp_path / "out" / "pareto.json").read_text())["front"]
    assert all(t["within_budget"] == 1 for t in front)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["hardware"]["profile"] == "host-cpu-1t" and run["hardware"]["budgets"] == {"latency_ms": 0.06}
