"""Trials on more machines: a 6-trial search through NNI's remote training service over two sshd
on 127.0.0.1 (each with its own keys and HOME), and the checks of `training_service:`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, free_port
from nni_hwnas.errors import UserError

import sshd

CONFIG = {"name": "remote6", "seed": 1, "dataset": {"name": "digits"}, "space": {"preset": "conv_net_small"},
          "strategy": {"name": "Random"}, "evaluator": {"epochs": 1, "train_subset": 256},
          "hardware": {"profile": "host-cpu-1t", "measure_latency": True},
          "experiment": {"max_trials": 6, "concurrency": 2}}


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
        ({"platform": "remote", "machines": [{**good, "host": "10.1.2.3"}]}, "`training_service.nni_manager_ip` is required"),
        ({"platform": "local", "machines": [good]}, "is for `platform: remote`"),
    ]
    for section, fragment in cases:
        with pytest.raises(UserError) as info:
            training_service(parse_config({"training_service": section}))
        assert fragment in str(info.value) and "\n" not in str(info.value)
