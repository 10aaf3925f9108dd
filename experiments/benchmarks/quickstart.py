"""Benchmark: run the quickstart search and split each trial's time into NNI overhead and work.

Prints wall time, trials, median per-trial time (NNI duration = launch + imports + our work),
median time inside the trial (data + training + latency timing), median training time, the
median launch overhead (duration - time inside the trial), and the best accuracy. Writes JSON.

    .venv/bin/python experiments/benchmarks/quickstart.py [--config experiments/quickstart.yaml] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "experiments" / "quickstart.yaml"))
    parser.add_argument("--json", default=str(REPO / "experiments" / "benchmarks" / "results" / "quickstart.json"))
    parser.add_argument("--max-trials", type=int, default=None)
    args = parser.parse_args()

    from nni_hwnas.experiment.config import load_config
    from nni_hwnas.experiment.launch import free_port, run_search
    from nni_hwnas.experiment.runinfo import machine_info, package_versions

    config = load_config(args.config)
    if args.max_trials:
        config.experiment.max_trials = args.max_trials
    with tempfile.TemporaryDirectory() as tmp:
        config.experiment.working_directory = str(Path(tmp) / "exps")
        started = time.perf_counter()
        out = run_search(config, port=free_port(), output=Path(tmp) / "results", echo=lambda s: None)
        wall = time.perf_counter() - started
        trials = json.loads((out / "trials.json").read_text())
    ok = [t for t in trials if t["status"] == "SUCCEEDED"]
    duration = statistics.median(t["duration_s"] for t in ok)
    inside = statistics.median(t["trial_seconds"] for t in ok)
    train = statistics.median(t["train_seconds"] for t in ok)
    overhead = statistics.median(t["duration_s"] - t["trial_seconds"] for t in ok)
    row = {
        "config": str(Path(args.config).resolve().relative_to(REPO)) if str(args.config).startswith(str(REPO)) else args.config,
        "wall_s": wall, "trials": len(trials), "succeeded": len(ok),
        "concurrency": config.experiment.concurrency, "epochs": config.evaluator.epochs,
        "median_trial_s": duration, "median_inside_trial_s": inside, "median_train_s": train,
        "median_nni_overhead_s": overhead, "overhead_share": overhead / duration,
        "best_accuracy": max(t["accuracy"] for t in ok), "seed": config.seed,
        "machine": machine_info(), "versions": package_versions(),
    }
    print(f"{'metric':28s} value")
    for key in ("wall_s", "trials", "succeeded", "concurrency", "epochs", "median_trial_s", "median_inside_trial_s",
                "median_train_s", "median_nni_overhead_s", "overhead_share", "best_accuracy"):
        value = row[key]
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(row, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
