"""Profiling a device over SSH: a loopback sshd stands in for the device. The remote table equals a
local one in keys and is close in values; a device that hangs mid-profile gives one line and the
same command resumes; the script needs only torch; searches then predict from the device's table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import psutil
import pytest

from nni_hwnas.errors import UserError
from nni_hwnas.hardware.latency_table import LatencyTable, StaleTableWarning
from search_spaces import make_definition

import sshd

pytestmark = pytest.mark.skipif(not sshd.available(), reason="openssh-server is not installed (.ci/run installs it)")

SPACE = ["--space", "conv_net", "--input-shape", "1,8,8", "--classes", "10"]
FAST = ["--warmup", "5", "--repeats", "50", "--min-repeats", "10", "--max-seconds", "0.02", "--fit-models", "6",
        "--quiet"]
TINY = {"depth": [1, 2], "filters": [16, 32], "kernel": [3, 5], "batch_norm": [False, True], "dropout": [0.0]}


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    server = sshd.start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def cli(*argv: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("nni-hwnas")
    return subprocess.run([str(script), *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def tiny_preset(folder: Path) -> Path:
    preset = folder / "tiny.yaml"
    preset.write_text("space: conv_net\nchoices: " + json.dumps(TINY) + "\n")
    return preset


def remote_args(device, name: str, preset: Path) -> list[str]:
    return ["profile", "--profile", name, "--ssh", device.target, "--python", sys.executable,
            "--ssh-config", str(device.client_config), "--preset", str(preset), "--input-shape", "1,8,8"]


def test_remote_profile_equals_local_in_keys_and_is_close_in_values(device, tmp_path):
    preset = tiny_preset(tmp_path)
    remote = cli(*remote_args(device, "loopdev", preset), *FAST, cwd=tmp_path)
    assert remote.returncode == 0, remote.stdout[-2000:] + remote.stderr[-2000:]
    assert "wrote device profile" in remote.stdout and f"ssh {device.target}" in remote.stdout
    yaml_path = tmp_path / "loopdev.yaml"
    text = yaml_path.read_text()
    assert f"ssh: {device.user}@127.0.0.1:{device.port}" in text and f"python: {sys.executable}" in text

    local_yaml = tmp_path / "local.yaml"
    local_yaml.write_text("name: local\nkind: cpu\nthreads: 1\nlatency_table: tables/local.json\n")
    local = cli("profile", "--profile", str(local_yaml), "--preset", str(preset), "--input-shape", "1,8,8", *FAST,
                cwd=tmp_path)
    assert local.returncode == 0, local.stderr[-2000:]
    theirs = LatencyTable.load(tmp_path / "tables" / "loopdev.json", "loopdev")
    ours = LatencyTable.load(tmp_path / "tables" / "local.json", "local")
    assert theirs.rows.keys() == ours.rows.keys() and len(theirs.models) == len(ours.models) == 6
    ratios = [theirs.ms(k) / ours.ms(k) for k in ours.rows]
    assert 0.7 < float(np.median(ratios)) < 1.4, ratios  # the same CPU through loopback SSH
    assert theirs.header.fingerprint["cpu_model"] == ours.header.fingerprint["cpu_model"]
    assert theirs.runs[-1]["measured_by"] == f"ssh {device.target}" and ours.runs[-1]["measured_by"] == "local"

    # Searches predict the device's latency on the driver from its table, without a staleness warning.
    from nni_hwnas.hardware.costs import load_predictor
    from nni_hwnas.hardware.profiles import load_profile
    from nni_hwnas.hardware.table_cache import table_for_search

    profile = load_profile(yaml_path)
    definition = make_definition("conv_net", TINY, (1, 8, 8), 10)
    assert profile.remote and table_for_search(profile, definition) == tmp_path / "tables" / "loopdev.json"
    theirs.header.fingerprint = {**theirs.header.fingerprint, "cpu_model": "Cortex-A72"}  # as a real device
    theirs.save()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleTableWarning)
        predictor = load_predictor(profile, definition)
    assert predictor.predict(definition.random_sample(np.random.default_rng(0))) > 0


def bytes_written(processes: list) -> int:
    """Bytes the device's measuring processes have written: each measured row is one reply on stdout."""
    total = 0
    for process in processes:
        try:
            total += process.io_counters().write_chars
        except psutil.Error:  # it may have just ended; the caller checks that separately
            pass
    return total


def test_device_that_hangs_mid_profile_gives_one_line_and_resume_finishes(device, tmp_path):
    preset = tiny_preset(tmp_path)
    args = [*remote_args(device, "hangdev", preset), "--warmup", "1000", "--repeats", "3000", "--min-repeats", "2000",
            "--max-seconds", "0.15", "--fit-models", "4", "--timeout", "4", "--quiet"]
    script = Path(sys.executable).with_name("nni-hwnas")
    proc = subprocess.Popen([str(script), *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    measuring = []
    try:
        first = proc.stdout.readline()  # printed once the device has answered its hello
        assert "wrote device profile" in first, first + proc.communicate()[1]
        deadline = time.monotonic() + 60
        while not measuring and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            measuring = [p for p in device.session_processes()
                         if "nni-hwnas measuring script" in " ".join(p.cmdline()) and p.name().startswith("python")]
        # hang once the device has sent replies after its hello: rows the driver has, whatever the load
        # (a fixed 1 s wait, or a CPU-time threshold, sometimes came before the first row on a loaded machine)
        start, grew = bytes_written(measuring), 0
        while measuring and grew < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            now = bytes_written(measuring)
            grew, start = grew + (now > start), now
        assert measuring and proc.poll() is None, "the profile ended before the device could be made to hang"
        for process in measuring:
            os.kill(process.pid, signal.SIGSTOP)  # the device hangs: no answer, no EOF
        out, err = proc.communicate(timeout=60)
    finally:
        for process in measuring:
            os.kill(process.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"device {device.target} dropped: no answer within 4 s" in lines[0]
    assert "run the same command again to resume" in lines[0]
    table_path = tmp_path / "tables" / "hangdev.json"
    kept = len(LatencyTable.load(table_path, "hangdev"))
    assert kept > 0

    again = cli(*args, cwd=tmp_path)  # hangdev.yaml now exists: the same command resumes on it
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert f"({kept} already there" in again.stdout
    table = LatencyTable.load(table_path, "hangdev")
    definition = make_definition("conv_net", TINY, (1, 8, 8), 10)
    assert len(table) == len(definition.enumerate_layers()) and len(table.models) == 4


def test_unreachable_device_is_one_line(tmp_path, device):
    free = sshd._free_port()
    result = cli("profile", "--profile", "nowhere", "--ssh", f"{device.user}@127.0.0.1:{free}", "--ssh-config",
                 str(device.client_config), *SPACE, "--quiet", cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "could not start measuring on" in result.stderr and "--python" in result.stderr
    assert not (tmp_path / "nowhere.yaml").exists()  # nothing written for a device never reached


def test_ssh_profile_arguments_are_checked():
    from nni_hwnas.hardware.remote import SshTarget

    assert str(SshTarget.parse("pi@raspberrypi.local:2222")) == "pi@raspberrypi.local:2222"
    assert SshTarget.parse("host").user is None
    for bad in ("pi@", "pi@host:port", "pi@ho st"):
        with pytest.raises(UserError, match="expected user@host"):
            SshTarget.parse(bad)


def test_measuring_script_needs_only_torch(tmp_path):
    """The script runs where our packages, yaml and NNI can't be imported (numpy stays: this torch imports it)."""
    from nni_hwnas.hardware.remote_script import BOOTSTRAP, measuring_script

    blocked = tmp_path / "blocked"
    for name in ("nni_hwnas", "search_spaces", "yaml", "nni", "scipy", "sklearn"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is not on the device')\n")
    script = measuring_script()
    assert script.isascii()
    spec = {"op": "conv", "in_ch": 1, "out_ch": 16, "in_hw": 8, "kernel": 3, "pool": True}
    requests = [{"cmd": "hello", "threads": 1},
                {"cmd": "layer", "specs": [spec], "shape": [1, 1, 8, 8], "threads": 1,
                 "settings": {"warmup_runs": 2, "n_repeats": 5, "min_repeats": 5}},
                {"cmd": "nonsense"}]
    stdin = f"{len(script)}\n{script}" + "".join(json.dumps(r) + "\n" for r in requests)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(blocked)}
    result = subprocess.run([sys.executable, "-c", BOOTSTRAP], input=stdin, capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=120)
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(replies) == 3, result.stderr[-2000:]
    assert replies[0]["ok"] and replies[0]["fingerprint"]["threads"] == 1
    assert replies[1]["ok"] and len(replies[1]["times_ms"]) == 5 and min(replies[1]["times_ms"]) > 0
    assert replies[2] == {"ok": False, "error": "unknown command 'nonsense'"}
