"""The results directory: every trial, the Pareto front, a plot and the run record.

``trials.csv`` / ``trials.json`` (one row per trial: id, status, sample labels, metrics),
``pareto.json`` (the non-dominated in-budget trials over the chosen objectives, computed by
:mod:`nni_hwnas.reporting.pareto`), ``pareto.png`` and ``run.json`` (seed, config, versions, machine).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from nni_hwnas.reporting.hypervolume_trace import HvReference, default_reference, hypervolume_curve
from nni_hwnas.budgets import Budgets
from nni_hwnas.metrics import CONTRACT_KEYS, direction, to_losses
from nni_hwnas.experiment.nni_rest import TrialView
from nni_hwnas.reporting.pareto import hypervolume, normalize, pareto_front_indices
from nni_hwnas.reporting.plots import plot_hypervolume, plot_parallel_coordinates, plot_pareto, plot_pareto_matrix

DEFAULT_OBJECTIVES = ("accuracy", "latency_ms")


def trial_rows(views: Iterable[TrialView]) -> list[dict[str, Any]]:
    """Flatten trial views into rows: identity, status, timing, sample labels, then metrics."""
    rows = []
    for view in views:
        row: dict[str, Any] = {"trial_id": view.trial_id, "parameter_id": view.parameter_id,
                               "status": view.status, "duration_s": view.duration_s,
                               "epochs_reported": len(view.intermediate)}
        row.update({f"arch.{label}": value for label, value in sorted(view.sample.items())})
        row.update(view.metrics)
        rows.append(row)
    return rows


def run_budgets(run_info: Mapping[str, Any] | None) -> Budgets:
    """The budgets a run recorded in ``run.json`` (``hardware.budgets``); none for a run without."""
    hardware = (run_info or {}).get("hardware") or {}
    return Budgets.of(hardware.get("budgets") if isinstance(hardware, Mapping) else None, "run.json: hardware.budgets")


def completed(rows: Sequence[Mapping[str, Any]], objectives: Sequence[str]) -> list[Mapping[str, Any]]:
    """Rows that finished and reported every objective."""
    return [r for r in rows if r.get("status") == "SUCCEEDED" and all(
        isinstance(r.get(k), (int, float)) for k in objectives)]


def pareto_rows(rows: Sequence[Mapping[str, Any]], objectives: Sequence[str] = DEFAULT_OBJECTIVES,
                only_within_budget: bool = True, budgets: Budgets | None = None) -> list[Mapping[str, Any]]:
    """The non-dominated rows (over-budget ones, by :meth:`Budgets.admits`, excluded unless asked),
    cheapest first (last objective)."""
    budgets = Budgets.of(budgets)
    candidates = [r for r in completed(rows, objectives)
                  if not only_within_budget or budgets.admits(r)]
    if not candidates:
        return []
    indices = pareto_front_indices(to_losses(candidates, objectives))
    return sorted((candidates[i] for i in indices), key=lambda r: r[objectives[-1]])


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    leading = ["trial_id", "parameter_id", "status", "duration_s", "epochs_reported"]
    arch = sorted({k for r in rows for k in r if k.startswith("arch.")})
    metric_keys = {k for r in rows for k in r} - set(leading) - set(arch)
    metrics = [k for k in CONTRACT_KEYS if k in metric_keys] + sorted(metric_keys - set(CONTRACT_KEYS))
    return leading + arch + metrics


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return str(value)


def front_hypervolume(rows: Sequence[Mapping[str, Any]], objectives: Sequence[str],
                      worst: Mapping[str, float] | None = None, budgets: Budgets | None = None) -> dict[str, Any]:
    """The in-budget trials' hypervolume over every objective (any number), normalised with the
    stated bounds: a higher-is-better score in [0, 1] (e.g. accuracy), each cost in [0, its
    ``worst``] (default 1.1 x the largest in ``rows``; pass shared ones to compare runs); the
    reference is the worst corner. Written to ``pareto.json`` and the reports' ``hv3d`` columns."""
    usable = [r for r in rows if Budgets.of(budgets).admits(r)]
    worst = dict(worst or {})
    lower, upper = [], []
    for name in objectives:
        if direction(name):
            lower.append(-1.0)
            upper.append(0.0)
        else:
            lower.append(0.0)
            upper.append(worst.get(name) or 1.1 * max((float(r[name]) for r in rows), default=1.0) or 1.0)
    value = 0.0
    if usable:
        normalised = normalize(to_losses(usable, objectives), np.array(lower), np.array(upper))
        value = hypervolume(normalised, np.ones(len(objectives)))
    return {"value": float(value), "reference_point_normalised": [1.0] * len(objectives),
            "bounds": {name: [lo, hi] if not direction(name) else [0.0, 1.0]
                       for name, lo, hi in zip(objectives, lower, upper)}}


def hypervolume_rows(rows: Sequence[Mapping[str, Any]], reference: HvReference,
                     budgets: Budgets | None = None) -> list[dict[str, Any]]:
    """One row per trial in trial order: the hypervolume reached after it."""
    curve = hypervolume_curve(rows, reference, budgets)
    return [{"trial_index": i + 1, "trial_id": row.get("trial_id"), "hypervolume": float(hv)}
            for i, (row, hv) in enumerate(zip(rows, curve))]


def write_results(out_dir: Path, rows: Sequence[Mapping[str, Any]], run_info: Mapping[str, Any],
                  objectives: Sequence[str] = DEFAULT_OBJECTIVES, title: str = "",
                  reference: HvReference | None = None, current_settings: int | None = None,
                  budgets: Budgets | None = None) -> dict[str, Path]:
    """Write every results file into ``out_dir`` and return their paths.

    ``budgets``: the run's (None: read from ``run_info['hardware']['budgets']``, as ``run.json``
    records them); the front, its hypervolume, the plot and the hypervolume reference use them.

    ``current_settings``: after a resume that changed what a trial means, ``trials.*`` keep every
    row (each with its ``settings``) but the front and hypervolume use this settings' rows only.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("trials.csv", "trials.json", "pareto.json", "pareto.png",
                                               "hypervolume.csv", "hypervolume.json", "hypervolume.png", "run.json")}
    columns = _columns(rows)
    with paths["trials.csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in columns})
    write_json(paths["trials.json"], list(rows))
    if current_settings is not None:
        rows = [r for r in rows if r.get("settings", current_settings) == current_settings]
    budgets = run_budgets(run_info) if budgets is None else budgets
    front = pareto_rows(rows, objectives, budgets=budgets)
    done = completed(rows, objectives)
    summary = {"objectives": list(objectives), "only_within_budget": True, "settings": current_settings,
               "trials_completed": len(done), "front": list(front)}
    if len(objectives) > 2:
        summary["hypervolume"] = front_hypervolume(done, objectives, budgets=budgets)
        paths["pareto_parallel.png"] = out_dir / "pareto_parallel.png"
        plot_pareto_matrix(done, front, paths["pareto.png"], objectives=objectives, title=title)
        plot_parallel_coordinates(done, front, paths["pareto_parallel.png"], objectives=objectives, title=title)
    else:
        plot_pareto(done, front, paths["pareto.png"], x=objectives[1], y=objectives[0], title=title,
                    within=budgets.admits)
    write_json(paths["pareto.json"], summary)
    reference = reference or default_reference([rows], objectives[0], objectives[1], budgets)
    trace = hypervolume_rows(rows, reference, budgets)
    with paths["hypervolume.csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["trial_index", "trial_id", "hypervolume"])
        writer.writeheader()
        writer.writerows(trace)
    write_json(paths["hypervolume.json"], {"reference": reference.as_dict(), "curve": trace})
    plot_hypervolume({title or "search": [r["hypervolume"] for r in trace]}, paths["hypervolume.png"],
                     subtitle=reference.as_dict()["meaning"])
    write_json(paths["run.json"], dict(run_info))
    return paths
