"""Benchmark: how well the lookup-table predictor matches measured end-to-end latency.

For each device profile and each space at a data shape, samples architectures that were *not*
used to fit the correction, measures each end to end twice (two passes over all of them, minutes
apart, the same way the table was measured), and prints: the share predicted within ±5% and ±10%
of the first measurement, RMSE, Spearman rank correlation, prediction time per architecture, the
table's profiling time, and, as the ceiling no predictor can beat on a shared machine, the share
of models whose second measurement fell within ±5% / ±10% of the first. Writes JSON and a
predicted-vs-measured scatter plot. Not a test.

    .venv/bin/python experiments/benchmarks/latency_predictor.py [--profiles host-cpu-1t host-cpu]
        [--cases conv_net@digits conv_net@medmnist medmnist_cnn_wide@digits medmnist_cnn_wide@medmnist]
        [--n-models 200] [--seed 1] [--table PATH] [--json PATH] [--plot PATH]

A case is ``PRESET@SHAPE`` with SHAPE ``digits`` (1x8x8, 10 classes) or ``medmnist`` (1x28x28, 4
classes). The profiles' tables must cover the cases, e.g. ``nni-hwnas profile --profile host-cpu-1t
--space conv_net --input-shape 1,28,28 --classes 2,4,10`` (each table's ``runs`` log records what
was profiled and how long it took).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

SHAPES = {"digits": ((1, 8, 8), 10), "medmnist": ((1, 28, 28), 4)}
RESULTS = REPO / "experiments" / "benchmarks" / "results"


def evaluate_case(profile_name: str, case: str, n_models: int, seed: int,
                  table_path: str | None = None) -> tuple[dict, dict]:
    """One row of the table, plus the arrays for the plot."""
    from scipy.stats import spearmanr

    from nni_hwnas.hardware.costs import load_table
    from nni_hwnas.hardware.latency_table import LatencyTable, correction_context, space_context
    from nni_hwnas.hardware.predictor import LatencyPredictor
    from nni_hwnas.hardware.profiler import TimingSettings, network_keys, sample_models, time_model
    from nni_hwnas.hardware.profiles import load_profile
    from search_spaces import load_preset, make_definition

    preset, _, shape_name = case.partition("@")
    shape, classes = SHAPES[shape_name]
    space, choices = load_preset(preset)
    definition = make_definition(space, choices, shape, classes)
    profile = load_profile(profile_name)
    table = LatencyTable.load(table_path, profile_name) if table_path else load_table(profile)
    predictor = LatencyPredictor(table, definition)
    predictor.check_coverage()
    header = table.header
    settings = TimingSettings(warmup_runs=header.warmup_runs, n_repeats=header.n_repeats, n_inputs=header.n_inputs,
                              statistic=header.statistic, **_run_settings(table))
    # the fit models of this space and shape, as networks of this definition (their class count may differ)
    fit_networks = {network_keys(definition, m.sample) for m in table.models
                    if correction_context(m.context) == correction_context(space_context(definition))}
    samples = sample_models(definition, n_models, seed, exclude=fit_networks)

    started = time.perf_counter()
    predicted = np.array([predictor.predict(sample) for sample in samples])
    predict_ms = (time.perf_counter() - started) * 1000.0 / max(len(samples), 1)
    specs = [definition.describe(sample) for sample in samples]
    raw_sum = np.array([predictor.layer_sum_ms(s) for s in specs])
    first = np.array([time_model(s, shape, profile, settings).value(header.statistic) for s in specs])
    second = np.array([time_model(s, shape, profile, settings).value(header.statistic) for s in specs])

    error = predicted / first - 1.0
    again = second / first - 1.0
    row = {
        "space": space, "preset": preset, "profile": profile_name, "input_shape": list(shape), "classes": classes,
        "n_models": len(samples), "n_fit_models": len(fit_networks),
        "within_10pct": float(np.mean(np.abs(error) <= 0.10)), "within_5pct": float(np.mean(np.abs(error) <= 0.05)),
        "rmse_ms": float(np.sqrt(np.mean((predicted - first) ** 2))),
        "mean_abs_pct": float(100 * np.mean(np.abs(error))),
        "spearman": float(spearmanr(predicted, first).statistic),
        "predict_ms": predict_ms,
        "remeasure_within_10pct": float(np.mean(np.abs(again) <= 0.10)),
        "remeasure_within_5pct": float(np.mean(np.abs(again) <= 0.05)),
        "raw_sum_within_10pct": float(np.mean(np.abs(raw_sum / first - 1.0) <= 0.10)),
        "median_measured_ms": float(np.median(first)),
        "profiling_s": _profiling_seconds(table, space_context(definition)),
        "statistic": header.statistic, "threads": header.threads, "batch_size": header.batch_size,
        "correction": predictor.correction.to_dict(),
    }
    return row, {"predicted": predicted, "measured": first}


def _run_settings(table) -> dict:
    """Timing settings of the table's last profiling run (repeats cap and retries), if logged."""
    if not table.runs:
        return {}
    settings = table.runs[-1].get("settings", {})
    return {k: settings[k] for k in ("min_repeats", "max_seconds", "noisy_retries") if k in settings}


def _profiling_seconds(table, context: str) -> float | None:
    """Seconds the table's profiling runs for ``context``'s space and shape took (rows + fit models)."""
    prefix = context.partition("/")[0]
    seconds = [r["seconds"] for r in table.runs if any(c.partition("/")[0] == prefix for c in r.get("contexts", []))]
    return float(sum(seconds)) if seconds else None


def plot(rows: list[dict], arrays: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(1, len({r["profile"] for r in rows}))
    cases = list(dict.fromkeys((r["preset"], tuple(r["input_shape"])) for r in rows))
    fig, axes = plt.subplots(len(cases), cols, figsize=(4.2 * cols, 3.8 * len(cases)), squeeze=False)
    profiles = list(dict.fromkeys(r["profile"] for r in rows))
    for row, data in zip(rows, arrays):
        ax = axes[cases.index((row["preset"], tuple(row["input_shape"])))][profiles.index(row["profile"])]
        measured, predicted = data["measured"], data["predicted"]
        lo, hi = min(measured.min(), predicted.min()) * 0.9, max(measured.max(), predicted.max()) * 1.1
        grid = np.geomspace(lo, hi, 50)
        ax.fill_between(grid, grid * 0.9, grid * 1.1, color="0.9", label="±10%")
        ax.plot(grid, grid, color="0.5", lw=0.8)
        ax.scatter(measured, predicted, s=8, alpha=0.7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        shape = "x".join(map(str, row["input_shape"]))
        ax.set_title(f"{row['preset']} {shape} on {row['profile']}\n"
                     f"±10%: {100 * row['within_10pct']:.0f}% (re-measure {100 * row['remeasure_within_10pct']:.0f}%), "
                     f"ρ={row['spearman']:.3f}", fontsize=8)
        ax.set_xlabel("measured ms", fontsize=8)
        ax.set_ylabel("predicted ms", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["host-cpu-1t", "host-cpu"])
    parser.add_argument("--cases", nargs="+", default=["conv_net@digits", "conv_net@medmnist",
                                                       "medmnist_cnn_wide@digits", "medmnist_cnn_wide@medmnist"])
    parser.add_argument("--n-models", type=int, default=200, help="held-out architectures per case (fewer if the space has fewer)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--table", default=None, help="a table JSON instead of the profile's (e.g. the staged_net table)")
    parser.add_argument("--json", default=str(RESULTS / "latency_predictor.json"))
    parser.add_argument("--plot", default=str(RESULTS / "latency_predictor.png"))
    args = parser.parse_args()

    from nni_hwnas.experiment.runinfo import machine_info, package_versions

    rows, arrays = [], []
    started = time.perf_counter()
    header = (f"{'profile':12s} {'space':18s} {'shape':8s} {'n':>4s} {'±10%':>6s} {'±5%':>6s} {'rmse ms':>8s} "
              f"{'spearman':>8s} {'pred ms':>8s} {'re ±10%':>7s} {'re ±5%':>7s} {'prof s':>7s} {'med ms':>7s}")
    print(header)
    for profile in args.profiles:
        for case in args.cases:
            row, data = evaluate_case(profile, case, args.n_models, args.seed, args.table)
            rows.append(row)
            arrays.append(data)
            shape = "x".join(map(str, row["input_shape"][1:]))
            prof_s = f"{row['profiling_s']:.0f}" if row["profiling_s"] is not None else "-"
            print(f"{profile:12s} {row['preset']:18s} {shape:8s} {row['n_models']:4d} {100 * row['within_10pct']:5.1f}% "
                  f"{100 * row['within_5pct']:5.1f}% {row['rmse_ms']:8.4f} {row['spearman']:8.3f} {row['predict_ms']:8.4f} "
                  f"{100 * row['remeasure_within_10pct']:6.1f}% {100 * row['remeasure_within_5pct']:6.1f}% {prof_s:>7s} "
                  f"{row['median_measured_ms']:7.3f}", flush=True)
    result = {
        "rows": rows, "seed": args.seed, "n_models": args.n_models, "wall_s": time.perf_counter() - started,
        "command": " ".join(["experiments/benchmarks/latency_predictor.py", *sys.argv[1:]]),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(), "versions": package_versions(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    plot(rows, arrays, Path(args.plot))
    print(f"wrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
