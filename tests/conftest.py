"""Shared fixtures: isolated NNI homes, free ports, the repo's paths."""

from __future__ import annotations

import os
import signal
import socket
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# NNI 3.0 warns about torch classes it does not know (harmless, docs/nni-quirks.md).
warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")


STAGED_NET_TABLE = REPO / "hw_profiles" / "tables" / "host-cpu-1t-staged_net.json"


def write_staged_net_search(path: Path, name: str, seed: int, working_directory: Path | str, *,
                            strategy_args: dict | None = None, evaluator: dict | None = None,
                            concurrency: int = 1) -> Path:
    """A 4-trial ``hw_evolution`` search of ``staged_net_s3`` on digits over three objectives
    (1 epoch on 300 images, the shipped staged_net table), written as YAML to ``path``."""
    import yaml

    config = {
        "name": name, "seed": seed, "dataset": {"name": "digits"}, "space": {"preset": "staged_net_s3"},
        "strategy": {"name": "hw_evolution",
                     "args": {"objectives": ["score", "cost", "second_cost"], "score_metric": "accuracy",
                              "population_size": 4, "sample_size": 2, "initial_random": 2, **(strategy_args or {})}},
        "evaluator": {"epochs": 1, "train_subset": 300, **(evaluator or {})},
        "hardware": {"profile": "host-cpu-1t", "table": str(STAGED_NET_TABLE)},
        "experiment": {"max_trials": 4, "concurrency": concurrency, "working_directory": str(working_directory)},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def nni_home(tmp_path, monkeypatch):
    """HOME and NNI_CONFIG_DIR in a temp folder: NNI's experiment list and registry stay private.
    Afterwards every NNI manager working under the test's folder is ended, even when the test failed
    before its search could stop the experiment (a killed search leaves NNI's detached manager)."""
    home = tmp_path / "home"
    (home / "nni-config").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NNI_CONFIG_DIR", str(home / "nni-config"))
    yield home
    end_managers_under(tmp_path)


def end_managers_under(folder: Path) -> None:
    """SIGKILL NNI managers (``main.js``) whose command line names ``folder``: NNI starts them in their
    own process group, so ending the search's group does not reach them."""
    import signal

    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc_dir / "cmdline").read_bytes()
        except OSError:
            continue
        if b"main.js" in cmdline and str(folder).encode() in cmdline:
            try:
                os.kill(int(proc_dir.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def rest(port: int, path: str):
    """GET NNI's REST API (what the web UI reads); an empty body (server starting) reads as None."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/nni{path}", timeout=10) as response:
        return json.loads(response.read() or b"null")


def decode(data):
    """Undo NNI's (often double) JSON encoding of metric values."""
    import json

    while isinstance(data, str):
        data = json.loads(data)
    return data


def default_sigint() -> None:
    """``preexec_fn`` for a CLI a test will Ctrl-C: SIGINT back to its default in the child.

    A pytest started in the background of a non-interactive shell (``pytest &``, ``nohup``)
    ignores SIGINT; its children inherit that, and Python then keeps ignoring it, so the search
    would never see the test's Ctrl-C and would run to the end.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


#: The bundled host-cpu-1t table, for tests whose budgets must sit at known points of the space's
#: latency range: a table profiled here on first use moves with this machine's load (the cheapest
#: conv_net_small at 1x8x8 measured 0.037-0.072 ms), so a fixed budget could exclude every network.
BUNDLED_1T_TABLE = REPO / "hw_profiles" / "tables" / "host-cpu-1t.json"


@pytest.fixture(scope="session", autouse=True)
def latency_table_cache(tmp_path_factory) -> Path:
    """A private latency-table cache for the whole session (NNI_HWNAS_CACHE_DIR, inherited by the
    searches and trials tests start): tests never read or fill the user's own cache, and a table
    profiled on first use by one test is reused by the next."""
    import os

    cache = tmp_path_factory.mktemp("nni-hwnas-cache")
    previous = os.environ.get("NNI_HWNAS_CACHE_DIR")
    os.environ["NNI_HWNAS_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("NNI_HWNAS_CACHE_DIR", None)
    else:
        os.environ["NNI_HWNAS_CACHE_DIR"] = previous


def start_nnictl(run, shipped: str, tmp_path: Path, max_trials: int, experiment_yaml: Path,
                 tuner: dict | None = None, tuner_args: dict | None = None,
                 trial_module: str = "nni_hwnas.evaluation.hpo_trial") -> tuple[int, str]:
    """``nnictl create`` on a shipped ``experiments/nnictl/<shipped>.yml`` with paths made absolute,
    ``max_trials`` trials, its trials reading ``experiment_yaml``, if given another ``tuner``
    section, ``tuner_args`` overriding the tuner's ``classArgs``, and trials run by ``trial_module``;
    returns (port, experiment id)."""
    import yaml

    config = yaml.safe_load((REPO / "experiments" / "nnictl" / f"{shipped}.yml").read_text())
    if tuner is not None:
        config["tuner"] = tuner
    config["tuner"].setdefault("classArgs", {}).update(tuner_args or {})
    config.update(maxTrialNumber=max_trials, trialCodeDirectory=str(tmp_path),
                  searchSpaceFile=str(REPO / "experiments" / "nnictl" / config["searchSpaceFile"]),
                  experimentWorkingDirectory=str(tmp_path / "exps"),
                  trialCommand=f"python3 -m {trial_module} --config {experiment_yaml}")
    (tmp_path / f"{shipped}.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    created = run("nnictl", "create", "--config", str(tmp_path / f"{shipped}.yml"), "--port", str(port))
    assert created.returncode == 0, created.stderr
    experiment_id = next(line.split('"nnictl stop ')[1].split('"')[0] for line in created.stdout.splitlines()
                         if "nnictl stop " in line)
    return port, experiment_id


def wait_for_trials(port: int, n_trials: int, log_dir: Path, timeout_s: float) -> list[dict]:
    """Poll the REST API until ``n_trials`` trials succeeded; fail with the dispatcher's log on ERROR."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        status = rest(port, "/check-status")["status"]
        assert status != "ERROR", (log_dir / "dispatcher.log").read_text()[-3000:]
        jobs = rest(port, "/trial-jobs") or []
        if status in ("DONE", "NO_MORE_TRIAL") and len(jobs) == n_trials and all(j["status"] == "SUCCEEDED" for j in jobs):
            return jobs
        assert time.monotonic() < deadline, f"status {status}, jobs {[j['status'] for j in jobs]}"
        time.sleep(2)
