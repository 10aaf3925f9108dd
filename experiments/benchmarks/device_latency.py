"""Benchmark: latency on the user's machine, and trials on more machines (issue 15). Not a test.

Parts (``--parts``):

- ``accuracy``: profile a fresh table into a temporary cache exactly as a search does on first
  use (:func:`nni_hwnas.hardware.table_cache.profile_into_cache`), once with the machine as it is
  ("quiet") and once while a second process keeps one core busy ("busy"), then check the predictor
  on held-out models each measured twice on their own (the protocol of ``latency_predictor.py``:
  share within ±10%, Spearman, and the re-measurement agreement beside it). The profiling time of
  the quiet run is the first-use profiling time of that case.
- ``workers``: the wall time of an N-trial search (digits, ``conv_net_small``, 1 epoch): locally
  one trial at a time, on one loopback SSH worker, locally two at a time, and on two loopback SSH
  workers (NNI's remote training service; two sshd on 127.0.0.1 as in
  ``tests/test_remote_trials.py``). On one machine two workers share the same cores, so against
  local two-at-a-time expect about 1x; the 1-worker remote run against local one-at-a-time gives
  the remote service's per-trial overhead.

    .venv/bin/python experiments/benchmarks/device_latency.py [--parts accuracy workers]
        [--cases conv_net_small@digits] [--n-models 40] [--trials 20] [--seed 1] [--json PATH]

State the conditions with the numbers: the JSON records the load average before and after each
part, since a shared machine is never quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments" / "benchmarks"))
RESULTS = REPO / "experiments" / "benchmarks" / "results"
PROFILE = "host-cpu-1t"


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def busy_core() -> subprocess.Popen:
    """A second process spinning one core at full load until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True:\n    pass"])


def accuracy_case(case: str, n_models: int, seed: int, busy: bool) -> dict:
    """Profile ``case`` into a fresh cache (under load if ``busy``), then evaluate the predictor."""
    from latency_predictor import SHAPES, evaluate_case

    from nni_hwnas.hardware.profiles import load_profile
    from nni_hwnas.hardware.table_cache import FIRST_USE_FIT_MODELS, profile_into_cache
    from search_spaces import load_preset, make_definition

    preset, _, shape_name = case.partition("@")
    shape, classes = SHAPES[shape_name]
    space, choices = load_preset(preset)
    definition = make_definition(space, choices, shape, classes)
    with tempfile.TemporaryDirectory(prefix="nni-hwnas-bench-cache-") as cache:
        os.environ["NNI_HWNAS_CACHE_DIR"] = cache
        load_before = load()
        spinner = busy_core() if busy else None
        try:
            started = time.perf_counter()
            report = profile_into_cache(load_profile(PROFILE), [definition], fit_models=FIRST_USE_FIT_MODELS,
                                        seed=0, progress=False, echo=lambda line: None)
            profiling_s = time.perf_counter() - started
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
        row, _ = evaluate_case(PROFILE, case, n_models, seed)
    return {**row, "condition": "busy (1 core spun by a 2nd process while profiling)" if busy else "as is",
            "first_use_profiling_s": round(profiling_s, 1), "noise": report.noise,
            "layers_remeasured": report.layers_remeasured, "loadavg_before": load_before, "loadavg_after": load()}


def search_wall(trials: int, workers: list, work: Path, port: int, seed: int, concurrency: int) -> dict:
    """One search of ``trials`` trials, ``concurrency`` at a time: locally (``workers`` empty) or on SSH workers."""
    config = {"name": "bench-workers", "seed": seed, "dataset": {"name": "digits"}, "space": {"preset": "conv_net_small"},
              "strategy": {"name": "Random"}, "evaluator": {"epochs": 1},
              "experiment": {"max_trials": trials, "concurrency": concurrency,
                             "working_directory": str(work / "exps")}}
    if workers:
        config["training_service"] = {"platform": "remote", "machines": [
            {"host": "127.0.0.1", "port": w.port, "user": w.user, "ssh_key_file": str(w.folder / "client_key")}
            for w in workers]}
    folder = work / "run"
    folder.mkdir(parents=True)
    (folder / "search.yaml").write_text(json.dumps(config))
    env = {**os.environ, "HOME": str(work / "home"), "NNI_CONFIG_DIR": str(work / "home" / "nni-config")}
    (work / "home" / "nni-config").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_before = load()
    result = subprocess.run([str(Path(sys.executable).with_name("nni-hwnas")), "search", "--config", "search.yaml",
                             "--port", str(port), "--output", str(folder / "out")], cwd=folder, env=env,
                            capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
    rows = json.loads((folder / "out" / "trials.json").read_text())
    durations = [r["duration_s"] for r in rows if r.get("duration_s") is not None]
    return {"workers": len(workers) or "local", "concurrency": concurrency, "trials": len(rows),
            "succeeded": sum(r["status"] == "SUCCEEDED" for r in rows), "wall_s": round(wall, 1),
            "mean_trial_s": round(sum(durations) / len(durations), 2) if durations else None,
            "mean_train_s": round(sum(r.get("train_seconds", 0) for r in rows) / max(len(rows), 1), 2),
            "loadavg_before": load_before, "loadavg_after": load()}


def workers_part(trials: int, seed: int) -> list[dict]:
    sys.path.insert(0, str(REPO / "tests"))
    import sshd
    from conftest import free_port

    rows = []
    with tempfile.TemporaryDirectory(prefix="nni-hwnas-bench-workers-") as tmp:
        work = Path(tmp)
        servers = [sshd.start_sshd(work / f"sshd{i}", env={"PYTHONPATH": str(REPO)}) for i in (1, 2)]
        try:
            for i, (machines, concurrency) in enumerate((([], 1), (servers[:1], 1), ([], 2), (servers, 2))):
                for attempt in (1, 2):  # NNI's manager start can time out on a loaded machine: retry once
                    try:
                        rows.append({**search_wall(trials, machines, work / f"{i}-{attempt}", free_port(), seed,
                                                   concurrency),
                                     "attempt": attempt})
                        break
                    except RuntimeError as exc:
                        print(f"search failed (attempt {attempt}): {str(exc)[-300:]}", flush=True)
                        if attempt == 2:
                            raise
                print(rows[-1], flush=True)
        finally:
            for server in servers:
                server.stop()
    local = rows[0]
    for row in rows:
        row["wall_vs_local"] = round(row["wall_s"] / local["wall_s"], 2)
        row["overhead_per_trial_s"] = round((row["wall_s"] - local["wall_s"]) / trials, 2) if row["workers"] == 1 else None
    local_two = next(r for r in rows if r["workers"] == "local" and r["concurrency"] == 2)
    rows[-1]["wall_vs_local_2_at_a_time"] = round(rows[-1]["wall_s"] / local_two["wall_s"], 2)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["accuracy", "workers"], choices=("accuracy", "workers"))
    parser.add_argument("--cases", nargs="+", default=["conv_net_small@digits"])
    parser.add_argument("--n-models", type=int, default=40)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=RESULTS / "device_latency.json")
    args = parser.parse_args()
    record: dict = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seed": args.seed,
                    "cpu_count": os.cpu_count(), "argv": sys.argv[1:]}
    if "accuracy" in args.parts:
        record["accuracy"] = [accuracy_case(case, args.n_models, args.seed, busy)
                              for case in args.cases for busy in (False, True)]
        print(f"\n{'case':26} {'condition':12} {'profile s':>9} {'±10%':>6} {'Spearman':>8} {'re-measure ±10%':>15} "
              f"{'noisy rows':>10} {'load':>14}")
        for r in record["accuracy"]:
            print(f"{r['preset'] + '@' + 'x'.join(map(str, r['input_shape'])):26} {r['condition'][:12]:12} "
                  f"{r['first_use_profiling_s']:9.1f} {100 * r['within_10pct']:5.1f}% {r['spearman']:8.3f} "
                  f"{100 * r['remeasure_within_10pct']:14.1f}% {r['noise']['noisy_rows']:10d} "
                  f"{str(r['loadavg_before']):>14}")
    if "workers" in args.parts:
        record["workers"] = workers_part(args.trials, args.seed)
        print(f"\n{'workers':8} {'conc':>4} {'trials':>6} {'ok':>3} {'wall s':>7} {'x local':>7} {'mean trial s':>12} "
              f"{'overhead/trial s':>16} {'load before':>16}")
        for r in record["workers"]:
            print(f"{str(r['workers']):8} {r['concurrency']:4d} {r['trials']:6d} {r['succeeded']:3d} {r['wall_s']:7.1f} {r['wall_vs_local']:7.2f} "
                  f"{r['mean_trial_s']!s:>12} {r['overhead_per_trial_s']!s:>16} {str(r['loadavg_before']):>16}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
