"""Benchmark: latency on the user's machine, and trials on more machines (issue 15). Not a test.

Parts (``--parts``):

- ``accuracy``: profile a fresh table into a temporary cache exactly as a search does on first
  use (:func:`nni_hwnas.hardware.table_cache.profile_into_cache`), once with the machine as it is
  ("quiet") and once while a second process keeps one core busy ("busy"), then check the predictor
  on held-out models each measured twice on their own (the protocol of ``latency_predictor.py``:
  share within ±10%, Spearman, and the re-measurement agreement beside it). The profiling time of
  the quiet run is the first-use profiling time of that case.
- ``workers``: the wall time of an N-trial search (digits, ``conv_net_small``, 1 epoch): on one
  loopback SSH worker, on two (NNI's remote training service; two sshd on 127.0.0.1 as in
  ``tests/test_remote_trials.py``), then locally one and two at a time; the JSON is rewritten
  after each search, so an interrupted run keeps the searches it finished (``"partial": true``). On one machine two workers share the same cores, so against
  local two-at-a-time expect about 1x. The per-trial overhead of the remote service is read from
  NNI's own event times, not from wall-time differences (which a shared machine's load swamps):
  per trial, dispatch (a trial's end to the next one's start, one at a time) plus launch (NNI's
  trial duration minus the trial function's own ``trial_seconds``), remote 1 worker minus local
  one at a time.

    .venv/bin/python experiments/benchmarks/device_latency.py [--parts accuracy workers]
        [--cases conv_net_small@digits] [--n-models 40] [--trials 20] [--seed 1] [--json PATH]
        [--keep-tables DIR]

State the conditions with the numbers: the JSON records the load average before and after each
part, since a shared machine is never quiet. The busy spinner inherits HWNAS_PRIORITY=1 (nice 0)
and holds a whole core for the busy phase: every nice-19 process on a 2-core machine (other
jobs included) crawls meanwhile.
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
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments" / "benchmarks"))
RESULTS = REPO / "experiments" / "benchmarks" / "results"
PROFILE = "host-cpu-1t"


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def busy_core() -> subprocess.Popen:
    """A second process spinning one core at full load until killed: a core this process is not
    pinned to when there is one (under ``taskset -c 1`` the spinner would otherwise inherit the
    profiler's core and halve its time slices instead of loading the machine beside it)."""
    others = set(range(os.cpu_count() or 1)) - os.sched_getaffinity(0)
    pin = (lambda: os.sched_setaffinity(0, others)) if others else None
    return subprocess.Popen([sys.executable, "-c", "while True:\n    pass"], preexec_fn=pin)


def accuracy_case(case: str, n_models: int, seed: int, busy: bool, keep_tables: Path | None = None) -> dict:
    """Profile ``case`` into a fresh cache (under load if ``busy``), then evaluate the predictor;
    the fresh table is copied to ``keep_tables`` when given (to re-fit or inspect it later)."""
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
        if keep_tables is not None:
            import shutil

            keep_tables.mkdir(parents=True, exist_ok=True)
            shutil.copy(report.path, keep_tables / f"{case.replace('@', '-')}-{'busy' if busy else 'as-is'}.json")
    return {**row, "condition": "busy (1 core spun by a 2nd process while profiling)" if busy else "as is",
            "first_use_profiling_s": round(profiling_s, 1), "noise": report.noise,
            "layers_remeasured": report.layers.remeasured, "models_remeasured": report.models.remeasured,
            "loadavg_before": load_before, "loadavg_after": load()}


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
    run = json.loads((folder / "out" / "run.json").read_text())
    return {"workers": len(workers) or "local", "concurrency": concurrency, "trials": len(rows),
            "succeeded": sum(r["status"] == "SUCCEEDED" for r in rows), "wall_s": round(wall, 1),
            **trial_overheads(Path(run["experiment_directory"]), rows, concurrency),
            "mean_train_s": round(sum(r.get("train_seconds", 0) for r in rows) / max(len(rows), 1), 2),
            "loadavg_before": load_before, "loadavg_after": load()}


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def trial_overheads(experiment_dir: Path, rows: list[dict], concurrency: int) -> dict:
    """Where a trial's time goes, from NNI's own event times (its database) and the trial's clock.

    - ``mean_trial_s``: RUNNING to finished, as NNI records it;
    - ``mean_in_function_s``: our trial function's own ``trial_seconds`` (data, timing, training);
    - ``mean_launch_s``: the difference, i.e. starting the trial process, imports, reporting back;
    - ``mean_dispatch_s``: one at a time only, from a trial's end to the next one's RUNNING (NNI's
      NAS trials record no WAITING event, so this turnaround is what can be read);
    - ``cost_per_trial_s``: launch + dispatch, what the training service adds to every trial.
    """
    import sqlite3

    with sqlite3.connect(f"file:{experiment_dir / 'db' / 'nni.sqlite'}?mode=ro", uri=True) as db:
        events = db.execute("select timestamp, trialJobId, event from TrialJobEvent").fetchall()
    spans: dict[str, dict[str, int]] = {}
    for timestamp, trial, event in events:
        spans.setdefault(trial, {}).setdefault("start" if event == "RUNNING" else "end", timestamp)
    ordered = sorted((s["start"], s["end"]) for s in spans.values() if "start" in s and "end" in s)
    dispatch = ([(nxt[0] - prev[1]) / 1000.0 for prev, nxt in zip(ordered, ordered[1:])]
                if concurrency == 1 else [])
    durations = [r["duration_s"] for r in rows if r.get("duration_s") is not None]
    launch = [r["duration_s"] - r["trial_seconds"] for r in rows
              if r.get("duration_s") is not None and isinstance(r.get("trial_seconds"), (int, float))]
    cost = (_mean(launch) or 0.0) + (_mean(dispatch) or 0.0)
    return {"mean_trial_s": _mean(durations), "mean_in_function_s": _mean([r["trial_seconds"] for r in rows
                                                                           if "trial_seconds" in r]),
            "mean_launch_s": _mean(launch), "mean_dispatch_s": _mean(dispatch), "cost_per_trial_s": round(cost, 2)}


#: (SSH workers used, concurrency): the comparison that matters first (1 vs 2 workers), then local
WORKER_RUNS = ((1, 1), (2, 2), (0, 1), (0, 2))


def workers_part(trials: int, seed: int, on_row: Any = None) -> list[dict]:
    """The searches of :data:`WORKER_RUNS`; ``on_row(rows)`` after each (partial results are kept)."""
    sys.path.insert(0, str(REPO / "tests"))
    import sshd
    from conftest import free_port

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="nni-hwnas-bench-workers-") as tmp:
        work = Path(tmp)
        servers = [sshd.start_sshd(work / f"sshd{i}", env={"PYTHONPATH": str(REPO)}) for i in (1, 2)]
        try:
            for i, (n_workers, concurrency) in enumerate(WORKER_RUNS):
                for attempt in (1, 2):  # NNI's manager start can time out on a loaded machine: retry once
                    try:
                        rows.append({**search_wall(trials, servers[:n_workers], work / f"{i}-{attempt}", free_port(),
                                                   seed, concurrency),
                                     "attempt": attempt})
                        break
                    except RuntimeError as exc:
                        print(f"search failed (attempt {attempt}): {str(exc)[-300:]}", flush=True)
                        if attempt == 2:
                            raise
                compare_workers(rows)
                print(rows[-1], flush=True)
                if on_row is not None:
                    on_row(rows)
        finally:
            for server in servers:
                server.stop()
    return rows


def compare_workers(rows: list[dict]) -> None:
    """Ratios between the runs done so far: wall time against local one at a time, 2 workers
    against 1 and against local two at a time, and the remote service's added cost per trial."""
    find = lambda workers, conc: next((r for r in rows if r["workers"] == workers and r["concurrency"] == conc), None)  # noqa: E731
    local, local_two, one, two = find("local", 1), find("local", 2), find(1, 1), find(2, 2)
    for row in rows:
        row["wall_vs_local"] = round(row["wall_s"] / local["wall_s"], 2) if local else None
        # what the remote service adds per trial: its launch + dispatch cost minus the local one
        row["overhead_per_trial_s"] = (round(row["cost_per_trial_s"] - local["cost_per_trial_s"], 2)
                                       if local and row["workers"] == 1 else None)
    if two is not None:
        two["wall_vs_1_worker"] = round(two["wall_s"] / one["wall_s"], 2) if one else None
        two["wall_vs_local_2_at_a_time"] = round(two["wall_s"] / local_two["wall_s"], 2) if local_two else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["accuracy", "workers"], choices=("accuracy", "workers"))
    parser.add_argument("--cases", nargs="+", default=["conv_net_small@digits"])
    parser.add_argument("--n-models", type=int, default=40)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-tables", type=Path, default=None, help="copy each fresh table here")
    parser.add_argument("--json", type=Path, default=RESULTS / "device_latency.json")
    args = parser.parse_args()
    record: dict = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seed": args.seed,
                    "cpu_count": os.cpu_count(), "argv": sys.argv[1:]}
    if "accuracy" in args.parts:
        record["accuracy"] = [accuracy_case(case, args.n_models, args.seed, busy, args.keep_tables)
                              for case in args.cases for busy in (False, True)]
        print(f"\n{'case':26} {'condition':12} {'profile s':>9} {'±10%':>6} {'Spearman':>8} {'re-measure ±10%':>15} "
              f"{'noisy rows':>10} {'load':>14}")
        for r in record["accuracy"]:
            print(f"{r['preset'] + '@' + 'x'.join(map(str, r['input_shape'])):26} {r['condition'][:12]:12} "
                  f"{r['first_use_profiling_s']:9.1f} {100 * r['within_10pct']:5.1f}% {r['spearman']:8.3f} "
                  f"{100 * r['remeasure_within_10pct']:14.1f}% {r['noise']['noisy_rows']:10d} "
                  f"{str(r['loadavg_before']):>14}")
    if "workers" in args.parts:
        def save_partial(rows: list[dict]) -> None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({**record, "workers": rows, "partial": True}, indent=2) + "\n")

        record["workers"] = workers_part(args.trials, args.seed, on_row=save_partial)
        print(f"\n{'workers':8} {'conc':>4} {'trials':>6} {'ok':>3} {'wall s':>7} {'x local':>7} {'trial s':>7} "
              f"{'in fn s':>7} {'launch s':>8} {'dispatch s':>10} {'remote +s/trial':>15} {'load before':>16}")
        for r in record["workers"]:
            print(f"{str(r['workers']):8} {r['concurrency']:4d} {r['trials']:6d} {r['succeeded']:3d} {r['wall_s']:7.1f} "
                  f"{r['wall_vs_local']!s:>7} {r['mean_trial_s']!s:>7} {r['mean_in_function_s']!s:>7} "
                  f"{r['mean_launch_s']!s:>8} {r['mean_dispatch_s']!s:>10} {r['overhead_per_trial_s']!s:>15} "
                  f"{str(r['loadavg_before']):>16}")
        two = next(r for r in record["workers"] if r["workers"] == 2)
        print(f"2 loopback workers vs 1: {two['wall_vs_1_worker']}x the wall time; vs local 2 at a time: "
              f"{two['wall_vs_local_2_at_a_time']}x (one machine: the workers share its cores, so about 1x is expected)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
