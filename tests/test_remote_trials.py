"""Trials on more machines: a 6-trial search through NNI's remote training service over two sshd
on 127.0.0.1 (each with its own keys and HOME), and the checks of `training_service:`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SHARED_DATA, free_port
from nni_hwnas.errors import UserError

import sshd

CONFIG = {"name": "remote6", "seed": 1, "dataset": {"name": "digits"}, "space": {"preset": "conv_net_small"},
          "strategy": {"name": "Random"}, "evaluator": {"epochs": 1, "train_subset": 256},
          "hardware": {"profile": "host-cpu-1t", "measure_latency": True},
          "experiment": {"max_trials": 6, "concurrency": 2}}
# a real MedMNIST subset for the data-root test: the shared copy, or the user's $NNI_HWNAS_DATA
BREASTMNIST = next((p for p in (SHARED_DATA / "breastmnist.npz",
                                Path(os.environ.get("NNI_HWNAS_DATA") or "/nonexistent") / "breastmnist.npz")
                    if p.is_file()), None)


@pytest.mark.skipif(not sshd.available(), reason="openssh-server is not installed (.ci/run installs it)")
def test_six_trials_spread_over_two_ssh_workers(tmp_path, nni_home):
    # The machines import this checkout (as an installed package at the same path would be).
    workers = [sshd.start_sshd(tmp_path / f"sshd{i}", env={"PYTHONPATH": str(REPO)}) for i in (1, 2)]
    try:
        work = tmp_path / "work"  # NNI uploads the working folder to every machine: keep it small
        work.mkdir()
        machines = [{"host": "127.0.0.1", "port": w.port, "user": w.user, "ssh_key_file": str(w.folder / "client_key")}
                    for w in workers]
        config = {**CONFIG, "experiment": {**CONFIG["experiment"], "working_directory": str(tmp_path / "exps")},
                  "training_service": {"platform": "remote", "machines": machines}}
        (work / "search.yaml").write_text(json.dumps(config))
        out = tmp_path / "out"
        script = Path(sys.executable).with_name("nni-hwnas")
        result = subprocess.run([str(script), "search", "--config", "search.yaml", "--port", str(free_port()),
                                 "--output", str(out)], cwd=work, capture_output=True, text=True, timeout=600,
                                env=dict(os.environ))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        trials = json.loads((out / "trials.json").read_text())
        assert len(trials) == 6 and all(t["status"] == "SUCCEEDED" for t in trials)
        for trial in trials:
            assert 0.0 <= trial["accuracy"] <= 1.0 and trial["latency_ms"] > 0 and trial["latency_measured_ms"] > 0
        run = json.loads((out / "run.json").read_text())
        experiment_id = run["experiment_id"]
        # Each machine's HOME holds the trials it ran: both took some, and together all six.
        ran = {w.port: {p.name for p in (w.home / "nni-experiments" / experiment_id).glob("environments/*/trials/*")}
               for w in workers}
        assert all(ran.values()), ran
        assert set().union(*ran.values()) == {t["trial_id"] for t in trials}
        assert run["config"]["training_service"]["platform"] == "remote"
    finally:
        for worker in workers:
            worker.stop()


def _search(work: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("nni-hwnas")
    result = subprocess.run([str(script), "search", "--config", "search.yaml", "--port", str(free_port()),
                             "--output", str(out), *extra], cwd=work, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _trials_on(worker) -> dict[str, str]:
    """Trial id -> that trial's stderr, for every trial the worker ran (its HOME holds them)."""
    return {p.name: (p / "trial.stderr").read_text() if (p / "trial.stderr").is_file() else ""
            for p in (worker.home / "nni-experiments").glob("*/environments/*/trials/*")}


@pytest.mark.skipif(not sshd.available(), reason="openssh-server is not installed (.ci/run installs it)")
@pytest.mark.skipif(BREASTMNIST is None, reason="needs breastmnist.npz in ../shared/data or $NNI_HWNAS_DATA")
def test_machine_data_roots_and_resume_on_ssh_workers(tmp_path, nni_home):
    """Each machine reads the data from its own `data_root` (one absolute, one under its ~), and
    `--resume` continues the search on the same remote machines."""
    workers = [sshd.start_sshd(tmp_path / f"sshd{i}", env={"PYTHONPATH": str(REPO)}) for i in (1, 2)]
    try:
        roots = [tmp_path / "machine1-data", workers[1].home / "data"]
        for root in [tmp_path / "driver-data", *roots]:
            root.mkdir(parents=True)
            shutil.copy(BREASTMNIST, root / "breastmnist.npz")
        work = tmp_path / "work"
        work.mkdir()
        machines = [{"host": "127.0.0.1", "port": w.port, "user": w.user, "ssh_key_file": str(w.folder / "client_key"),
                     "data_root": root} for w, root in zip(workers, [str(roots[0]), "~/data"])]
        config = {"name": "roots", "seed": 2, "dataset": {"name": "breastmnist", "data_root": str(tmp_path / "driver-data")},
                  "space": {"preset": "conv_net_small", "choices": {"depth": [1, 2]}}, "strategy": {"name": "Random"},
                  "evaluator": {"epochs": 1, "train_subset": 128, "latency_repeats": 5},
                  "experiment": {"max_trials": 4, "concurrency": 2, "working_directory": str(tmp_path / "exps")},
                  "training_service": {"platform": "remote", "machines": machines}}
        (work / "search.yaml").write_text(json.dumps(config))
        out = tmp_path / "out"
        _search(work, out)
        first = json.loads((out / "trials.json").read_text())
        assert len(first) == 4 and all(t["status"] == "SUCCEEDED" for t in first)
        ran = [_trials_on(w) for w in workers]
        assert all(ran), "both machines ran trials"
        for worker_trials, root in zip(ran, roots):
            for trial_id, stderr in worker_trials.items():
                assert f"data from {root}" in stderr, (trial_id, stderr[-1500:])

        experiment_id = json.loads((out / "run.json").read_text())["experiment_id"]
        resumed = _search(work, out, "--resume", experiment_id, "--max-trials", "6")
        assert "resuming" in resumed.stdout
        trials = json.loads((out / "trials.json").read_text())
        assert len(trials) == 6 and all(t["status"] == "SUCCEEDED" for t in trials)
        assert {t["trial_id"] for t in first} < {t["trial_id"] for t in trials}
        after = [_trials_on(w) for w in workers]
        assert set(after[0]) | set(after[1]) == {t["trial_id"] for t in trials}  # the new ones ran there too
        for worker_trials, root in zip(after, roots):
            assert all(f"data from {root}" in stderr for stderr in worker_trials.values())
    finally:
        for worker in workers:
            worker.stop()


def test_training_service_is_checked_in_one_line(tmp_path):
    from nni_hwnas.experiment.config import parse_config
    from nni_hwnas.experiment.launch import training_service

    key = tmp_path / "id"
    key.write_text("not really a key")
    good = {"host": "127.0.0.1", "user": "me", "ssh_key_file": str(key)}
    assert training_service(parse_config({})) == (None, None)
    service, ip = training_service(parse_config({"training_service": {"platform": "remote", "machines": [good]}}))
    assert ip == "127.0.0.1" and service.machine_list[0].port == 22
    assert service.machine_list[0].python_path == str(Path(sys.executable).parent)  # NAS trials run this path
    cases = [
        ({"platform": "remot"}, "did you mean 'remote'"),
        ({"platform": "remote"}, "must list at least one machine"),
        ({"platform": "remote", "machines": [{**good, "hots": "x"}]}, "unknown key `training_service.machines[0].hots`"),
        ({"platform": "remote", "machines": [{**good, "ssh_key_file": str(tmp_path / "nope")}]}, "does not exist"),
        ({"platform": "remote", "machines": [{**good, "port": 0}]}, "must be an integer in 1..65535"),
        ({"platform": "remote", "machines": [{**good, "python_path": "venv/bin"}]}, "must be an absolute folder"),
        ({"platform": "remote", "machines": [{**good, "data_root": "data"}]}, "must be a folder on that machine"),
        ({"platform": "remote", "machines": [{**good, "host": "10.1.2.3"}]}, "`training_service.nni_manager_ip` is required"),
        ({"platform": "local", "machines": [good]}, "is for `platform: remote`"),
    ]
    for section, fragment in cases:
        with pytest.raises(UserError) as info:
            training_service(parse_config({"training_service": section}))
        assert fragment in str(info.value) and "\n" not in str(info.value)
