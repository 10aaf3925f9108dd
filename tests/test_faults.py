"""The fault suite: each fault is really caused (two searches on one port, ``kill -9`` of the CLI,
a resume with a changed config, a rerun into an existing results directory, bad command-line
values, Ctrl-C) and must end in one line and exit code 2 (130 for Ctrl-C), losing nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nni_hwnas.cli import main
from nni_hwnas.experiment import manager_guard, run_settings

from conftest import BUNDLED_1T_TABLE, REPO, default_sigint, end_managers_under, free_port, rest

SCRIPT = Path(sys.executable).with_name("nni-hwnas")

# Cost-only trials (predicted latency, no training): a real NNI experiment in ~seconds per trial.
COST_ONLY = """
name: faults
seed: 3
dataset: {{name: digits}}
space: {{preset: conv_net_small}}
strategy: {{name: {strategy}}}
evaluator: {{kind: cost, cost_metric: latency_ms}}
hardware: {{profile: host-cpu-1t, table: """ + str(BUNDLED_1T_TABLE) + """, budgets: {{latency_ms: {budget}}}}}
experiment: {{max_trials: {trials}, concurrency: 2, working_directory: exps}}
"""

# Trials that train (slow enough to be caught running).
TRAINING = """
name: faults-train
seed: 1
dataset: {name: digits}
space: {preset: conv_net_small}
strategy: {name: Random}
evaluator: {epochs: 40, latency_repeats: 3}
experiment: {max_trials: 6, concurrency: 1, working_directory: exps}
"""


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ))


def one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    """Exit code 2, the message in one line on stderr, and no traceback anywhere."""
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("nni-hwnas: error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout


def refused(capsys, *args: str) -> str:
    """Run the CLI in this process (a refusal comes before NNI starts): exit 2, one line, no traceback."""
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nni-hwnas: error:"), err
    return err


def wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process ended first:\n{proc.stdout.read()[-3000:]}")
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.5)


def port_answers(port: int) -> bool:
    try:
        rest(port, "/check-status")
        return True
    except OSError:
        return False


def start_search(tmp_path: Path, config: Path, port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([str(SCRIPT), "search", "--config", str(config), "--port", str(port), *extra],
                            cwd=tmp_path, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, preexec_fn=default_sigint)


def end_group(proc: subprocess.Popen) -> None:
    """Kill what a test started (the CLI's process group, NNI's manager included) if still there."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(autouse=True)
def no_manager_left(tmp_path):
    """After each test (with or without ``nni_home``), end any NNI manager working under its temp folder."""
    yield
    end_managers_under(tmp_path)


# ------------------------------------------------------------------ command-line values (no NNI)

@pytest.mark.parametrize("args, fragment", [
    (["--max-trials", "0"], "--max-trials must be >= 1, got 0"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--port", "80"], "--port must be >= 1024, got 80"),
])
def test_search_flags_are_checked_like_config_values(tmp_path, capsys, args, fragment):
    config = write(tmp_path, "dataset: {name: digits}\n")
    assert main(["search", "--config", str(config), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


def test_max_duration_in_words_is_one_line(tmp_path, capsys):
    config = write(tmp_path, "experiment: {max_duration: ten minutes}\n")
    assert main(["search", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "`experiment.max_duration` is 'ten minutes'" in err and "'30m'" in err


def test_train_epochs_below_one_refused_and_old_export_kept(tmp_path, capsys):
    from test_retrain import make_results

    results = make_results(tmp_path / "r")
    good = results / "retrain-fast"
    good.mkdir()
    (good / "retrain.json").write_text('{"test_accuracy": 0.9}')
    for epochs in ("-2", "0"):
        assert main(["train", "--from", str(results), "--pick", "fast", "--epochs", epochs]) == 2
        assert f"--epochs must be >= 1, got {epochs}" in capsys.readouterr().err
    assert (good / "retrain.json").read_text() == '{"test_accuracy": 0.9}'
    assert sorted(p.name for p in results.iterdir() if p.name.startswith("retrain")) == ["retrain-fast"]


def test_retrain_gets_its_own_folder_each_run(tmp_path):
    from nni_hwnas.evaluation.retrain import next_free_dir

    base = tmp_path / "retrain-t1"
    assert next_free_dir(base) == base
    base.mkdir()
    assert next_free_dir(base) == tmp_path / "retrain-t1-2"
    (tmp_path / "retrain-t1-2").mkdir()
    assert next_free_dir(base) == tmp_path / "retrain-t1-3"


def test_train_into_existing_output_needs_overwrite(tmp_path, capsys):
    from test_retrain import make_results

    results = make_results(tmp_path / "r")
    taken = tmp_path / "export"
    taken.mkdir()
    (taken / "model.onnx").write_text("keep me")
    assert main(["train", "--from", str(results), "--pick", "fast", "--epochs", "1", "--output", str(taken)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (taken / "model.onnx").read_text() == "keep me"


def test_missing_data_names_the_config_key_not_a_flag(tmp_path, capsys):
    config = write(tmp_path, f"dataset: {{name: octmnist, data_root: {tmp_path / 'none'}}}\n")
    assert main(["search", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "octmnist.npz not found" in err and "--download" not in err and "`dataset.download: true`" in err


def test_bundled_configs_keep_their_data_inside_the_repo_or_the_env_var():
    import yaml

    from nni_hwnas.experiment.config import load_config

    for path in sorted((REPO / "experiments").glob("*.yaml")):
        if "dataset" not in yaml.safe_load(path.read_text()):
            continue  # a comparison config: its base config is checked itself
        root = load_config(path).dataset.data_root
        assert root is None or Path(root).is_relative_to(REPO), f"{path.name}: data_root {root} is outside the repo"


# ------------------------------------------------------------------ results directories

def test_search_into_existing_results_refused_before_nni_starts(tmp_path, nni_home):
    out = tmp_path / "results"
    out.mkdir()
    (out / "run.json").write_text('{"experiment_id": "older"}')
    (out / "trials.csv").write_text("trial_id\nkeep\n")
    config = write(tmp_path, COST_ONLY.format(strategy="Random", budget=0.1, trials=2))
    result = cli("search", "--config", str(config), "--port", str(free_port()), "--output", str(out), cwd=tmp_path)
    one_line_error(result, "already holds the results of experiment older")
    assert (out / "trials.csv").read_text() == "trial_id\nkeep\n"
    assert not (tmp_path / "exps").exists()  # NNI never started


# ------------------------------------------------------------------ resume with changed settings

def test_trial_meaning_names_changed_keys(tmp_path):
    from nni_hwnas.experiment.config import parse_config

    before = run_settings.trial_meaning(parse_config({"evaluator": {"epochs": 15}}).to_dict(), "conv_net", {"depth": [1, 2]})
    run_settings.record_run(tmp_path, before, [])
    after_cfg = parse_config({"evaluator": {"epochs": 1}, "experiment": {"max_trials": 50}}).to_dict()
    after = run_settings.trial_meaning(after_cfg, "conv_net", {"depth": [1, 2]})
    with pytest.raises(Exception, match=r"changed what a trial means \(evaluator.epochs\)"):
        run_settings.check_resume(tmp_path, after, allow_changes=False)
    assert run_settings.check_resume(tmp_path, after, allow_changes=True) == ["evaluator.epochs"]
    other_space = run_settings.trial_meaning(after_cfg, "conv_net", {"depth": [1, 2, 3]})
    with pytest.raises(Exception, match="search space changed"):
        run_settings.check_resume(tmp_path, other_space, allow_changes=True)
    assert run_settings.record_run(tmp_path, after, ["t1", "t2"]) == 1
    rows = [{"trial_id": "t1"}, {"trial_id": "t3"}]
    run_settings.label_rows(rows, tmp_path)
    assert [r["settings"] for r in rows] == [0, 1]


def _trial_ids(out: Path) -> list[str]:
    return [t["trial_id"] for t in json.loads((out / "trials.json").read_text())]


def test_builtin_resume_with_changed_budget(tmp_path, nni_home, capsys):
    """NNI's checkpoint of a built-in strategy (frozensets) is written and resumed; a changed budget
    is refused naming the key, a changed space in one line, and with --allow-changes the front uses
    the new settings' trials only."""
    config = write(tmp_path, COST_ONLY.format(strategy="Random", budget=0.15, trials=2))
    out, port = tmp_path / "out", free_port()
    first = cli("search", "--config", str(config), "--port", str(port), "--output", str(out), cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Error occurred when saving checkpoint" not in first.stdout + first.stderr
    exp_id = json.loads((out / "run.json").read_text())["experiment_id"]
    assert (tmp_path / "exps" / exp_id / "checkpoint" / "state.ckpt.json").is_file()
    before = _trial_ids(out)

    changed = write(tmp_path, COST_ONLY.format(strategy="Random", budget=0.05, trials=4), "changed.yaml")
    assert "hardware.budgets.latency_ms" in refused(capsys, "search", "--config", str(changed), "--port", str(port),
                                                    "--resume", exp_id, "--output", str(out))
    space = write(tmp_path, COST_ONLY.format(strategy="Random", budget=0.15, trials=4).replace(
        "conv_net_small}", "conv_net_small, choices: {depth: [1, 2]}}"), "space.yaml")
    assert "search space changed" in refused(capsys, "search", "--config", str(space), "--port", str(port),
                                             "--resume", exp_id, "--output", str(out))
    assert _trial_ids(out) == before  # refusals lose nothing

    resumed = cli("search", "--config", str(changed), "--port", str(port), "--resume", exp_id, "--output", str(out),
                  "--allow-changes", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Error occurred when saving checkpoint" not in resumed.stdout + resumed.stderr
    trials = json.loads((out / "trials.json").read_text())
    assert len(trials) == 4 and set(before) <= {t["trial_id"] for t in trials}
    assert all(t["status"] == "SUCCEEDED" for t in trials)
    assert sorted(t["settings"] for t in trials) == [0, 0, 1, 1]
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["settings"] == 1
    assert all(t["settings"] == 1 and t["latency_ms"] <= 0.05 for t in pareto["front"])


# ------------------------------------------------------------------ two searches, one port

def test_two_searches_on_one_port_second_refused_first_untouched(tmp_path, nni_home):
    config = write(tmp_path, COST_ONLY.format(strategy="Random", budget=0.15, trials=2))
    port = free_port()
    first = start_search(tmp_path, config, port, "--output", str(tmp_path / "a"))
    second = start_search(tmp_path, config, port, "--output", str(tmp_path / "b"))
    try:
        codes = {}
        for name, proc in (("first", first), ("second", second)):
            stdout, _ = proc.communicate(timeout=300)
            codes[name] = (proc.returncode, stdout)
    finally:
        end_group(first)
        end_group(second)
    results = sorted(codes.values(), key=lambda c: c[0])
    (ok_code, ok_out), (refused_code, refused_out) = results
    assert ok_code == 0 and refused_code == 2, codes
    assert "Traceback" not in refused_out and f"port {port} is " in refused_out
    winner = tmp_path / ("a" if codes["first"][0] == 0 else "b")
    loser = tmp_path / ("b" if codes["first"][0] == 0 else "a")
    run = json.loads((winner / "run.json").read_text())
    trials = json.loads((winner / "trials.json").read_text())
    assert len(trials) == 2 and all(t["status"] == "SUCCEEDED" for t in trials)
    experiments = [p.name for p in (tmp_path / "exps").iterdir() if not p.name.startswith(("_", "."))]
    assert experiments == [run["experiment_id"]]  # the refused search started no experiment
    assert not loser.exists()


# ------------------------------------------------------------------ kill -9 of the CLI, Ctrl-C

def test_killed_cli_leaves_a_manager_that_is_found_and_stopped(tmp_path, nni_home, capsys):
    config = write(tmp_path, COST_ONLY.format(strategy="Random", budget=0.15, trials=1))
    port, out = free_port(), tmp_path / "out"
    proc = start_search(tmp_path, config, port, "--output", str(out), "--keep-ui")
    try:
        wait_for(lambda: (out / "run.json").exists(), 300, "first results", proc)
        exp_id = json.loads((out / "run.json").read_text())["experiment_id"]
        record = manager_guard.DriverRecord.read(tmp_path / "exps" / exp_id)
        assert record is not None and record.driver_pid == proc.pid and record.port == port
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert port_answers(port)  # NNI's manager outlived its driver

        resumed = refused(capsys, "search", "--config", str(config), "--port", str(port), "--resume", exp_id)
        assert f"`nni-hwnas stop {exp_id}`" in resumed and f"pid {proc.pid}" in resumed
        other = refused(capsys, "search", "--config", str(config), "--port", str(port), "--output", str(tmp_path / "o2"))
        assert f"port {port} is already in use by experiment {exp_id}'s NNI manager" in other

        listing = nni_home / "nni-experiments" / ".experiment"
        assert exp_id in json.loads(listing.read_text())
        listing.write_text("{}")  # nnictl loses track of it (as after a crash): `nnictl stop` can't find it
        stopped = cli("stop", exp_id, "--experiment-dir", str(tmp_path / "exps"), cwd=tmp_path, timeout=120)
        assert stopped.returncode == 0 and f"stopped experiment {exp_id}" in stopped.stdout, stopped.stderr
        wait_for(lambda: not port_answers(port), 30, "manager gone")
        assert not manager_guard.pid_alive(record.manager_pid)
        again = cli("stop", exp_id, "--experiment-dir", str(tmp_path / "exps"), cwd=tmp_path)
        assert again.returncode == 0 and "is not running" in again.stdout
    finally:
        end_group(proc)


def test_ctrl_c_exits_130_after_writing_finished_trials(tmp_path, nni_home):
    config = write(tmp_path, TRAINING)
    port, out = free_port(), tmp_path / "out"
    proc = start_search(tmp_path, config, port, "--output", str(out))
    try:
        def one_done() -> bool:
            try:
                return any(j["status"] == "SUCCEEDED" for j in rest(port, "/trial-jobs") or [])
            except (OSError, ValueError):  # not up yet (the web UI answers HTML until the REST API is)
                return False

        wait_for(one_done, 300, "a finished trial", proc)
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=120)
    finally:
        end_group(proc)
    assert proc.returncode == 130, stdout[-3000:]
    assert "Traceback" not in stdout
    run = json.loads((out / "run.json").read_text())
    assert run["interrupted"] is True
    trials = json.loads((out / "trials.json").read_text())
    assert any(t["status"] == "SUCCEEDED" for t in trials)
    assert not port_answers(port)


# ------------------------------------------------------------------ a plain NNI experiment (not ours) on the port

PLAIN_NNI = """
import sys

import nni.experiment.launcher as launcher
from nni.experiment import Experiment, RunMode

# NNI's wait for its manager is 3 s (docs/nni-quirks.md, 5); this machine may need more.
wait = launcher._check_rest_server
launcher._check_rest_server = lambda port, retry=3, url_prefix=None: wait(port, 60, url_prefix)
experiment = Experiment("local")
experiment.config.experiment_name = "plain-nni"
experiment.config.search_space = {{"x": {{"_type": "choice", "_value": [1, 2]}}}}
experiment.config.trial_command = "sleep 300"
experiment.config.trial_code_directory = {code!r}
experiment.config.trial_concurrency = 1
experiment.config.max_trial_number = 2
experiment.config.tuner.name = "Random"
experiment.config.experiment_working_directory = {workdir!r}
experiment.start({port}, run_mode=RunMode.Detach)
print("PLAIN", experiment.id)
"""


def start_plain_nni(tmp_path: Path, port: int) -> str:
    """A plain HPO experiment that is none of ours (``nni.experiment.Experiment``, a trial that
    sleeps), started detached from another process like ``nnictl create`` does; its id."""
    script = write(tmp_path, PLAIN_NNI.format(code=str(tmp_path), workdir=str(tmp_path / "plain-exps"), port=port),
                   "plain.py")
    created = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300, env=dict(os.environ))
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
    return next(line.split()[1] for line in created.stdout.splitlines() if line.startswith("PLAIN "))


def plain_state(port: int) -> tuple[str | None, str, list[tuple[str, str]]]:
    """What our search must not change: who serves the port, its status, its trials."""
    from nni_hwnas.nni_compat.rest import manager_experiment_id

    return (manager_experiment_id(port), rest(port, "/check-status")["status"],
            sorted((j["trialJobId"], j["status"]) for j in rest(port, "/trial-jobs") or []))


def assert_plain_untouched(port: int, plain: str) -> None:
    """The port still answers as the plain experiment, with its own config (none of ours posted)."""
    experiment = rest(port, "/experiment")
    assert experiment["id"] == plain and experiment["params"]["experimentName"] == "plain-nni", experiment
    assert experiment["params"]["trialCommand"] == "sleep 300"


def stop_plain_nni(tmp_path: Path, experiment_id: str) -> None:
    subprocess.run([str(SCRIPT.with_name("nnictl")), "stop", experiment_id], cwd=tmp_path, capture_output=True,
                   text=True, timeout=120, env=dict(os.environ))


def search_in_process_refused(tmp_path: Path, capsys, port: int) -> str:
    """A cost-only search in this process (so NNI's internals can be raced) must end in exit 2 and
    one error line, no traceback; returns that line."""
    config = write(tmp_path, COST_ONLY.format(strategy="Random", budget=0.15, trials=2))
    code = main(["search", "--config", str(config), "--port", str(port), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    # In one pytest process NNI's log handlers can outlive an earlier test's captured stream; the
    # logging module then reports "--- Logging error ---" with a traceback of its own: not ours.
    err = re.sub(r"--- Logging error ---.*?\nArguments: [^\n]*\n", "", err, flags=re.S)
    errors = [line for line in err.splitlines() if line.startswith("nni-hwnas: error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err[-3000:]
    return errors[0]


def test_search_on_the_port_of_a_plain_nni_experiment_is_refused_before_touching_it(tmp_path, nni_home):
    port = free_port()
    plain = start_plain_nni(tmp_path, port)
    try:
        before = plain_state(port)
        assert before[0] == plain
        config = write(tmp_path, COST_ONLY.format(strategy="Random", budget=0.15, trials=2))
        result = cli("search", "--config", str(config), "--port", str(port), "--output", str(tmp_path / "o"),
                     cwd=tmp_path)
        one_line_error(result, f"port {port} is already in use by the NNI manager of experiment {plain}")
        # Same manager and every trial it had (its status and trials may move on by themselves: its
        # own tuner can be slow to start on a loaded machine and start a trial meanwhile).
        after = plain_state(port)
        assert after[0] == before[0] and {t for t, _ in before[2]} <= {t for t, _ in after[2]}
        assert_plain_untouched(port, plain)
        assert not (tmp_path / "exps").exists() and not (tmp_path / "o").exists()
    finally:
        stop_plain_nni(tmp_path, plain)


def test_plain_nni_experiment_taking_the_port_after_our_check_is_not_driven(tmp_path, nni_home, capsys, monkeypatch):
    """The race: our port check passes, then a plain NNI experiment binds the port before our manager
    does. Our search ends in one line (exit 2) and never drives or stops the other manager."""
    from nni_hwnas.experiment import launch

    port = free_port()
    started: list[str] = []
    build = launch.build_experiment

    def build_then_lose_the_port(*args, **kwargs):
        started.append(start_plain_nni(tmp_path, port))
        return build(*args, **kwargs)

    monkeypatch.setattr(launch, "build_experiment", build_then_lose_the_port)
    try:
        line = search_in_process_refused(tmp_path, capsys, port)
        assert started and f"port {port} was taken by experiment '{started[0]}'" in line, line
        assert_plain_untouched(port, started[0])
        assert not (tmp_path / "o").exists()
    finally:
        for plain in started:
            stop_plain_nni(tmp_path, plain)


def test_plain_nni_experiment_binding_between_nnis_idle_check_and_our_manager_gets_no_post(
        tmp_path, nni_home, capsys, monkeypatch):
    """The narrowest race: NNI's own idle check passes, a plain experiment binds the port, our manager
    dies on EADDRINUSE. NNI would post our config to whatever answers; ours refuses first."""
    import nni.experiment.launcher as launcher

    port = free_port()
    started: list[str] = []
    idle_check = launcher._ensure_port_idle

    def check_then_lose_the_port(checked_port: int, *args, **kwargs) -> None:
        idle_check(checked_port, *args, **kwargs)
        if checked_port == port and not started:
            started.append(start_plain_nni(tmp_path, port))

    monkeypatch.setattr(launcher, "_ensure_port_idle", check_then_lose_the_port)
    try:
        line = search_in_process_refused(tmp_path, capsys, port)
        assert started, line
        assert f"served by experiment '{started[0]}'" in line
        assert_plain_untouched(port, started[0])
        assert not (tmp_path / "o").exists()
    finally:
        for plain in started:
            stop_plain_nni(tmp_path, plain)
