"""The static ``dashboard.html`` of a results directory or of a multi-run report.

It holds the same snapshot the live server would serve for those trials, with Plotly.js inlined,
so it opens from ``file://`` offline and shows the finished search as the live page did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from nni_hwnas.budgets import Budgets
from nni_hwnas.dashboard.page import write_static_dashboard
from nni_hwnas.dashboard.snapshot import ExperimentData, build_snapshot
from nni_hwnas.dashboard.sources import objectives_of, results_dir_data
from nni_hwnas.reporting.hypervolume_trace import HvReference
from nni_hwnas.reporting.results import write_results


def write_results_with_dashboard(out_dir: Path, rows: Sequence[Mapping[str, Any]], run_info: Mapping[str, Any],
                                  **kwargs: Any) -> dict[str, Path]:
    """:func:`~nni_hwnas.reporting.results.write_results`, plus the same views offline in
    ``dashboard.html`` (file://). Kept here, not in ``reporting``, so reporting never imports the
    dashboard that reads it."""
    paths = write_results(out_dir, rows, run_info, **kwargs)
    paths["dashboard.html"] = write_results_dashboard(out_dir, kwargs.get("reference"), kwargs.get("title", ""))
    return paths


def write_results_dashboard(out_dir: Path, reference: HvReference | None = None, title: str = "") -> Path:
    """``out_dir/dashboard.html`` from the files just written there (trials, pareto.json, run.json)."""
    data = results_dir_data(Path(out_dir), label=title or Path(out_dir).name)
    snapshot = build_snapshot([data], live=False, reference=reference)
    return write_static_dashboard(Path(out_dir) / "dashboard.html", snapshot,
                                  title=f"nni-hwnas dashboard: {data.label}")


def write_groups_dashboard(path: Path, groups: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]],
                           reference: HvReference, title: str, budgets: Budgets | None = None) -> Path:
    """One experiment per run (``label seed i``) of a comparison, all against ``reference``."""
    experiments = []
    for label, runs in groups.items():
        for i, rows in enumerate(runs):
            name = label if len(runs) == 1 else f"{label} #{i + 1}"
            experiments.append(ExperimentData(label=name, rows=[dict(r) for r in rows],
                                              objectives=objectives_of(rows, (reference.score, reference.cost)),
                                              source="report", status="DONE", budgets=Budgets.of(budgets)))
    return write_static_dashboard(Path(path), build_snapshot(experiments, live=False, reference=reference), title=title)
