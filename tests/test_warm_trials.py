"""Warm trials (``python -m nni_hwnas.warm_trials``): a real nnictl experiment whose trials are forked
from a warm server and report what cold trials report, and the faults, caused for real: Ctrl-C,
``kill -9`` of a trial and of the server, a server that cannot warm up, concurrent first trials."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, decode, rest, start_nnictl, wait_for_trials
from test_nnictl_route import final_metrics, nnictl_runner

from experiments.benchmarks.trial_imports import whole_trial_code
from nni_hwnas.experiment.manager_guard import pid_alive
from nni_hwnas.warm_trials.protocol import read_log

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="warm trials fork: Linux only")

SLOW_SCRIPT = """\
import os, sys, time
try:  # the test signals once it reads the line: it may land before the sleep
    print("child", os.getpid(), flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def as_nni_starts_trials() -> None:
    """Ctrl-C at its default, as NNI starts a trial: a suite run in the background (``cmd &`` in a
    shell without job control) would otherwise pass on SIGINT ignored, and Python then never raises
    KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture
def standalone(tmp_path):
    """(env, log, run): warm trials outside NNI in their own folder (its own server key), TMPDIR
    (the server's log) and a 3 s idle exit; every server the test started is ended afterwards."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "NNI_HWNAS_WARM_IDLE_S": "3",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    log = tmp_path / f"nni-hwnas-warm-trials-{os.getuid()}.log"
    (tmp_path / "slow.py").write_text(SLOW_SCRIPT)

    def start(*argv: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "nni_hwnas.warm_trials", *argv], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=as_nni_starts_trials, **kwargs)

    yield env, log, start
    for event in read_log(log):
        if event["event"] == "serving" and pid_alive(event["server_pid"]):
            os.kill(event["server_pid"], signal.SIGKILL)


def first_line_pid(proc: subprocess.Popen) -> int:
    line = proc.stdout.readline()
    assert line.startswith("child "), line + proc.stderr.read()
    return int(line.split()[1])


def test_warm_trials_pass_signals_on_and_survive_kill_9_of_either_side(standalone):
    env, log, start = standalone
    # Ctrl-C (how NNI stops a trial): the trial gets it, handles it, and its exit code comes back.
    trial = start("slow.py")
    child = first_line_pid(trial)
    assert child != trial.pid  # it runs in the server's fork, not in the process NNI started
    trial.send_signal(signal.SIGINT)
    out, err = trial.communicate(timeout=30)
    assert trial.returncode == 130 and "interrupted" in out, err
    # A trial that does not catch it dies of SIGINT, as a cold python would: NNI reads a trial
    # that died of a signal as stopped (EARLY_STOPPED), one that exited 130 as FAILED.
    (Path(env["TMPDIR"]) / "uncaught.py").write_text("import os, time\nprint('child', os.getpid(), flush=True)\ntime.sleep(60)\n")
    for command in ([sys.executable, "uncaught.py"], [sys.executable, "-m", "nni_hwnas.warm_trials", "uncaught.py"]):
        trial = subprocess.Popen(command, cwd=env["TMPDIR"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, preexec_fn=as_nni_starts_trials)
        first_line_pid(trial)
        trial.send_signal(signal.SIGINT)
        out, err = trial.communicate(timeout=30)
        assert trial.returncode == -signal.SIGINT and "KeyboardInterrupt" in err, (command, err)

    # kill -9 of the process NNI watches (NNI's force kill): the server kills the trial.
    trial = start("slow.py")
    child = first_line_pid(trial)
    trial.kill()
    trial.wait()
    assert wait_until(lambda: not pid_alive(child), 10)
    assert any(e["event"] == "end" and e["pid"] == child and e["client_gone"] for e in read_log(log))

    # kill -9 of the server: the trial dies with it, fails with one line, and the next trial
    # starts a new server.
    trial = start("slow.py")
    child = first_line_pid(trial)
    server = next(e["server_pid"] for e in read_log(log) if e["event"] == "serving")
    os.kill(server, signal.SIGKILL)
    out, err = trial.communicate(timeout=30)
    assert trial.returncode == 1
    assert [line for line in err.splitlines() if line] == [
        f"nni-hwnas warm trial: the warm server ended during this trial (see {log}); the trial failed; "
        "the next trial starts a new server"]
    assert wait_until(lambda: not pid_alive(child), 10)
    again = start("slow.py")
    assert first_line_pid(again)
    again.send_signal(signal.SIGINT)
    assert again.wait(timeout=30) == 130
    servers = [e["server_pid"] for e in read_log(log) if e["event"] == "serving"]
    assert len(servers) == 2 and servers[0] == server

    # Idle: the server leaves by itself.
    assert wait_until(lambda: not pid_alive(servers[1]), 20)
    assert read_log(log)[-1]["event"] == "idle exit"


def test_concurrent_first_trials_share_one_server(standalone):
    env, log, start = standalone
    (Path(env["TMPDIR"]) / "quick.py").write_text("import os; print('ran', os.getpid())\n")
    trials = [start("quick.py") for _ in range(4)]
    outputs = [t.communicate(timeout=120) for t in trials]
    assert [t.returncode for t in trials] == [0] * 4, outputs
    events = read_log(log)
    assert len([e for e in events if e["event"] == "serving"]) == 1
    assert len([e for e in events if e["event"] == "end" and e["exit"] == 0]) == 4


def test_a_server_that_cannot_warm_up_leaves_the_trial_to_run_cold(standalone, tmp_path):
    env, log, start = standalone
    broken = tmp_path / "broken" / "search_spaces"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('a broken install')\n")
    env["PYTHONPATH"] = os.pathsep.join([str(broken.parent), env["PYTHONPATH"]])
    (tmp_path / "quick.py").write_text("import os; print('ran', os.getpid())\n")
    trial = start("quick.py")
    out, err = trial.communicate(timeout=120)
    assert trial.returncode == 0
    assert out.split() == ["ran", str(trial.pid)]  # cold: in the process NNI started
    assert err.strip() == f"nni-hwnas warm trial: no warm server came up (see {log}); running this trial cold"
    assert [e["event"] for e in read_log(log)] == ["warm-up failed"]


def test_preparing_a_training_config_reads_its_latency_table_and_leaves_nni_unimported():
    """What the server runs before each fork must not import ``nni``: it reads the trial's
    environment on import. A fresh interpreter checks it."""
    code = ("import sys\n"
            "from nni_hwnas.warm_trials.server import warm_up, prepare\n"
            "warm_up()\n"
            "import os\n"
            f"print(prepare({{'argv': ['-m', 'nni_hwnas.evaluation.hpo_trial', '--config', "
            f"{str(REPO / 'experiments' / 'quickstart.yaml')!r}], 'env': dict(os.environ), 'cwd': os.getcwd()}}))\n"
            "print('nni' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    read, nni_imported = done.stdout.strip().splitlines()
    assert read.startswith("latency table ") and "host-cpu-1t" in read and Path(read.split(" ", 2)[2]).is_file(), read
    assert nni_imported == "False"


def test_a_config_the_server_cannot_prepare_still_reaches_the_trial_which_reports_it(standalone, tmp_path):
    """The server reads each config's latency table before forking; a broken config fails there
    (logged once per config version) and the forked trial meets and reports the same error itself."""
    env, log, start = standalone
    config = tmp_path / "bad.yaml"
    config.write_text("dataset: {name: digits}\nevaluator: {kind: no-such-evaluator}\n")
    trials = [start("--config", str(config)) for _ in range(2)]
    outputs = [t.communicate(timeout=120) for t in trials]
    assert [t.returncode for t in trials] == [2, 2], outputs
    for _, err in outputs:
        last = err.strip().splitlines()[-1]
        assert last.startswith("nni-hwnas trial: error: ") and "no-such-evaluator" in last, err
        assert "Traceback" not in err
    events = read_log(log)
    prepared = [e for e in events if e["event"] == "prepared"]
    assert len(prepared) == 1 and prepared[0]["read"].startswith("failed (UserError: "), prepared
    assert len([e for e in events if e["event"] == "end" and e["exit"] == 2]) == 2
    time.sleep(0.01)
    config.write_text(config.read_text() + "seed: 1\n")  # an edited config is prepared again
    trial = start("--config", str(config))
    trial.communicate(timeout=120)
    assert len([e for e in read_log(log) if e["event"] == "prepared"]) == 2


def test_nnictl_experiment_with_warm_trials_reports_what_cold_trials_report(tmp_path):
    env, run = nnictl_runner(tmp_path)
    env["NNI_HWNAS_WARM_IDLE_S"] = "5"
    experiment = tmp_path / "quick.yaml"
    experiment.write_text((REPO / "experiments" / "quickstart.yaml").read_text().replace("epochs: 15", "epochs: 1"))
    bin_dir = Path(sys.executable).parent
    port, experiment_id = start_nnictl(lambda *cmd: run(str(bin_dir / cmd[0]), *cmd[1:]), "digits", tmp_path, 3,
                                       experiment, tuner={"name": "Random"}, trial_module="nni_hwnas.warm_trials")
    log = tmp_path / "exps" / experiment_id / "log" / "warm_trials.log"
    try:
        jobs = wait_for_trials(port, 3, log.parent, 300)
        finals = dict(final_metrics(port))
    finally:
        assert run(str(bin_dir / "nnictl"), "stop", experiment_id).returncode == 0
    events = read_log(log)
    assert len([e for e in events if e["event"] == "serving"]) == 1
    ends = {e["pid"]: e for e in events if e["event"] == "end"}
    started = [e for e in events if e["event"] == "start"]
    assert sorted(e["trial"] for e in started) == sorted(j["trialJobId"] for j in jobs)
    assert all(ends[e["pid"]]["exit"] == 0 for e in started)

    # The same parameters in a cold trial process give the same metrics.
    job = jobs[0]
    record = json.loads(job["hyperParameters"][0])
    parameters = decode(record["parameters"])
    cold = subprocess.run([sys.executable, "-c", whole_trial_code(experiment, parameters)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert cold.returncode == 0, cold.stderr
    cold_final = ast.literal_eval(re.search(r"Final result: (\{.*?\})", cold.stdout).group(1))
    warm_final = finals[int(record["parameter_id"])]
    for key in ("accuracy", "params", "flops", "peak_mem_kb"):
        assert warm_final[key] == cold_final[key], key
    # The server read the config's latency table once, before forking; the trials predicted from
    # that copy what a cold trial reads itself, and still warned as a cold trial does.
    prepared = [e for e in events if e["event"] == "prepared"]
    assert len(prepared) == 1 and prepared[0]["read"].startswith("latency table "), prepared
    assert all(isinstance(ends[e["pid"]]["server_cpu_s"], float) for e in started)
    assert warm_final["latency_ms"] == cold_final["latency_ms"]
    if "StaleTableWarning" in cold.stderr:
        warm_stderr = (log.parent.parent / "environments" / "local-env" / "trials" / job["trialJobId"]
                       / "trial.stderr").read_text()
        assert "StaleTableWarning" in warm_stderr
    server = next(e["server_pid"] for e in events if e["event"] == "serving")
    assert wait_until(lambda: not pid_alive(server), 30)  # idle exit once the experiment is over
