"""Reports over one or many finished searches: Markdown plus PNG plots.

Runs are grouped by a label (a strategy, say) with one trial list per seed. The report holds a
table of final hypervolume (median, min, max over seeds), trials needed to reach 90% of the best
hypervolume any run reached, best accuracy overall and under each cost level, and plots of
hypervolume against trials and of the Pareto fronts overlaid. Over-budget trials count nowhere
(the run's :class:`~nni_hwnas.budgets.Budgets`, read from ``run.json``). A run resumed with
``--allow-changes`` is reported per settings group: trials that ran under different settings
never share a front, a curve or a row of the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nni_hwnas.errors import UserError
from nni_hwnas.budgets import Budgets
from nni_hwnas.reporting.hypervolume_trace import HvReference, default_reference, hypervolume_curve
from nni_hwnas.reporting.plots import plot_fronts, plot_hypervolume
from nni_hwnas.reporting.results import (completed, front_hypervolume, pareto_rows, run_budgets, trial_rows,
                                         write_json)

Rows = Sequence[Mapping[str, Any]]


@dataclass
class GroupSummary:
    label: str
    seeds: int
    trials: int
    hv_final: list[float]
    trials_to_90pct: list[int | None]
    best_accuracy: float
    best_under_budget: dict[str, float | None]
    hv3d_final: list[float] | None = None

    def row(self) -> dict[str, Any]:
        reached = [t for t in self.trials_to_90pct if t is not None]
        return {
            "strategy": self.label, "seeds": self.seeds, "trials": self.trials,
            "hv_median": float(np.median(self.hv_final)), "hv_min": float(min(self.hv_final)),
            "hv_max": float(max(self.hv_final)),
            "trials_to_90pct": float(np.median(reached)) if len(reached) * 2 > len(self.trials_to_90pct) else None,
            "runs_reaching_90pct": len(reached),
            "best_accuracy": self.best_accuracy, **{f"best_acc_{k}": v for k, v in self.best_under_budget.items()},
            **({"hv3d_median": float(np.median(self.hv3d_final)), "hv3d_min": float(min(self.hv3d_final)),
                "hv3d_max": float(max(self.hv3d_final))} if self.hv3d_final else {}),
        }


def first_reaching(curve: np.ndarray, target: float) -> int | None:
    """1-based trial count at which ``curve`` first reaches ``target``."""
    hits = np.nonzero(curve >= target - 1e-12)[0]
    return int(hits[0]) + 1 if len(hits) else None


def default_cost_levels(groups: Mapping[str, Sequence[Rows]], cost: str = "latency_ms") -> list[float]:
    """Three cost levels ("best accuracy at cost <= level") at the 25th, 50th and 75th percentile
    of every completed trial's cost."""
    costs = [r[cost] for runs in groups.values() for rows in runs for r in completed(rows, ("accuracy", cost))]
    return [float(q) for q in np.percentile(costs, [25, 50, 75])] if costs else []


def final_hv3d(groups: Mapping[str, Sequence[Rows]], objectives: Sequence[str],
               budgets: Budgets | None = None) -> dict[str, list[float]] | None:
    """Each run's final hypervolume over three objectives (score, cost, second cost), with cost
    bounds shared by every run (1.1 x the largest seen); None when some trial lacks a metric."""
    rows = [r for runs in groups.values() for run in runs for r in run if r.get("status", "SUCCEEDED") == "SUCCEEDED"]
    if not rows or not all(isinstance(r.get(k), (int, float)) for r in rows for k in objectives):
        return None
    worst = {k: 1.1 * max(float(r[k]) for r in rows) for k in objectives[1:]}
    return {label: [front_hypervolume(completed(run, objectives), objectives, worst, budgets)["value"] for run in runs]
            for label, runs in groups.items()}


def summarise(groups: Mapping[str, Sequence[Rows]], reference: HvReference, cost_levels: Sequence[float],
              second_cost: str | None = "params",
              budgets: Budgets | None = None) -> tuple[list[GroupSummary], dict[str, list[np.ndarray]]]:
    """Per group: hypervolume, trials to 90%, best score overall and at each cost level; ``budgets``
    (the runs' own) decides which trials count, as in their ``pareto.json``."""
    budgets = Budgets.of(budgets)
    hv3d = final_hv3d(groups, (reference.score, reference.cost, second_cost), budgets) if second_cost else None
    curves = {label: [hypervolume_curve(rows, reference, budgets) for rows in runs] for label, runs in groups.items()}
    best_hv = max((c[-1] for runs in curves.values() for c in runs if len(c)), default=0.0)
    summaries = []
    for label, runs in groups.items():
        done = [r for rows in runs for r in completed(rows, (reference.score, reference.cost))]
        under = {}
        for level in cost_levels:
            inside = [r[reference.score] for r in done if r[reference.cost] <= level and budgets.admits(r)]
            under[f"{reference.cost}<={level:.4g}"] = max(inside) if inside else None
        summaries.append(GroupSummary(
            label=label, seeds=len(runs), trials=int(np.median([len(rows) for rows in runs])) if runs else 0,
            hv_final=[float(c[-1]) if len(c) else 0.0 for c in curves[label]],
            trials_to_90pct=[first_reaching(c, 0.9 * best_hv) if best_hv > 0 else None for c in curves[label]],
            best_accuracy=max((r[reference.score] for r in done), default=float("nan")),
            best_under_budget=under, hv3d_final=hv3d[label] if hv3d else None))
    return summaries, curves


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no runs)\n"
    keys = list(rows[0])

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | Path, groups: Mapping[str, Sequence[Rows]], *, title: str,
                 reference: HvReference | None = None, cost_levels: Sequence[float] | None = None,
                 notes: Sequence[str] = (), budgets: Budgets | None = None) -> Path:
    """Write ``report.md``, ``report.json``, ``hypervolume.png`` and ``fronts.png`` into ``out_dir``.

    ``budgets``: the runs' budgets (one object for all groups; none by default)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    budgets = Budgets.of(budgets)
    reference = reference or default_reference([rows for runs in groups.values() for rows in runs], budgets=budgets)
    cost_levels = list(cost_levels) if cost_levels is not None else default_cost_levels(groups, reference.cost)
    summaries, curves = summarise(groups, reference, cost_levels, budgets=budgets)
    table = [s.row() for s in summaries]
    plot_hypervolume({label: [list(c) for c in runs] for label, runs in curves.items()}, out / "hypervolume.png",
                     subtitle=reference.as_dict()["meaning"])
    fronts = {label: pareto_rows([r for rows in runs for r in rows], budgets=budgets) for label, runs in groups.items()}
    plot_fronts(fronts, out / "fronts.png", x=reference.cost, y=reference.score)
    write_json(out / "report.json", {"title": title, "reference": reference.as_dict(), "cost_levels": cost_levels,
                                     "budgets": budgets.limits(),
                                     "rows": table, "curves": {k: [list(map(float, c)) for c in v] for k, v in curves.items()}})
    if not (out / "dashboard.html").exists():  # a results dir already has one, with its budgets
        from nni_hwnas.dashboard.export import write_groups_dashboard

        write_groups_dashboard(out / "dashboard.html", groups, reference, title, budgets)
    lines = [f"# {title}", "", *notes, "",
             "[Interactive dashboard](dashboard.html) (opens offline): front with selectable axes, hypervolume, "
             "parallel coordinates, sortable trials table with CSV download.", "",
             f"Hypervolume of {reference.score} (up) vs {reference.cost} (down), normalised to fixed bounds; "
             f"reference point: {reference.as_dict()['meaning']}. `trials_to_90pct`: median trials a run needed to "
             f"reach 90% of the best final hypervolume of any run here (`-` when most runs never did). "
             f"`hv3d_*`: final hypervolume over {reference.score}, {reference.cost} and params at once "
             f"({reference.score} in [0, 1], costs in [0, 1.1 x the largest seen in any run]).", "",
             markdown_table(table), "", "![hypervolume against trials](hypervolume.png)", "",
             "![Pareto fronts](fronts.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"


def load_rows(source: str | Path, experiment_dirs: Sequence[Path] | None = None) -> tuple[str, list[dict], dict]:
    """Trial rows from a results directory or an NNI experiment id (NAS or nnictl)."""
    path = Path(source)
    if (path / "trials.json").is_file():
        run = json.loads((path / "run.json").read_text()) if (path / "run.json").is_file() else {}
        return path.name, json.loads((path / "trials.json").read_text()), run
    if path.exists():
        raise UserError(f"{path} holds no trials.json; pass a results directory or an experiment id")
    from nni_hwnas.experiment.experiment_store import find_experiment, read_experiment

    directory = find_experiment(str(source), list(experiment_dirs) if experiment_dirs else None)
    from nni_hwnas.experiment import run_settings

    views, profile = read_experiment(directory)
    rows = trial_rows(views)
    if run_settings.read_runs(directory):  # ours, resumed: each trial's settings, as the search labelled them
        run_settings.label_rows(rows, directory)
    return profile.get("experimentName") or str(source), rows, {"experiment": profile}


def run_objectives(run: Mapping[str, Any]) -> tuple[str, ...]:
    """The front's objectives a run was searched with (its config in ``run.json``); a 3-D front
    when ``hw_evolution`` used ``second_cost``, else accuracy and latency."""
    strategy = (run.get("config") or {}).get("strategy") or {}
    args = strategy.get("args") or {}
    if strategy.get("name") == "hw_evolution" and "second_cost" in (args.get("objectives") or ()):
        return ("accuracy", str(args.get("cost_metric", "latency_ms")), str(args.get("second_cost_metric", "params")))
    return ("accuracy", "latency_ms")


def settings_groups(label: str, rows: Rows) -> dict[str, list[Rows]]:
    """One group per settings a run's trials ran under (``settings`` column, written after a resume
    with ``--allow-changes``), oldest first: trials of different settings never share a front or a
    curve. A run with one settings (or none recorded) is one group named ``label``."""
    numbers = sorted({r["settings"] for r in rows if isinstance(r.get("settings"), int)})
    if len(numbers) < 2:
        return {label: [list(rows)]}
    return {f"{label} settings {n}": [[r for r in rows if r.get("settings") == n]] for n in numbers}


def report_command(source: str, output: str | None, experiment_dirs: Sequence[Path] | None = None) -> Path:
    """``nni-hwnas report``: redraw the report (and, for an experiment id, the results files).

    The run's budgets come from its ``run.json``; a run resumed with changed settings is
    reported per settings group, as its ``pareto.json`` keeps only the last settings' front."""
    from nni_hwnas.dashboard.export import write_results_with_dashboard

    label, rows, run = load_rows(source, experiment_dirs)
    out = Path(output) if output else (Path(source) if Path(source).is_dir() else Path("results") / str(source))
    current = _current_settings(out, rows)
    if not (Path(source) / "trials.json").is_file():
        write_results_with_dashboard(out, rows, {"source": str(source), **run}, title=label, objectives=run_objectives(run),
                                     current_settings=current)
    elif (out / "pareto.json").is_file() and len(run_objectives(run)) > 2:  # redraw the 3-D front's plots
        write_results_with_dashboard(out, rows, run, title=label, objectives=run_objectives(run), current_settings=current)
    groups = settings_groups(label, rows)
    notes = [f"Trials ran under {len(groups)} settings (a resume with `--allow-changes`); each is its own group, "
             "and `pareto.json` holds the last one's front."] if len(groups) > 1 else []
    return write_report(out, groups, title=f"nni-hwnas report: {label}", notes=notes, budgets=run_budgets(run))


def _current_settings(out: Path, rows: Rows) -> int | None:
    """The settings a results directory's front was drawn from (``pareto.json``), else the newest."""
    try:
        stored = json.loads((out / "pareto.json").read_text()).get("settings")
    except (OSError, ValueError, AttributeError):
        stored = None
    numbers = [r["settings"] for r in rows if isinstance(r.get("settings"), int)]
    return stored if isinstance(stored, int) else (max(numbers) if numbers else None)
