"""The dashboard's data: one JSON-ready dict holding every experiment's trials, fronts and hypervolume.

All maths comes from :mod:`nni_hwnas.reporting`: the front of the run's objectives is exactly what
``pareto.json`` holds (:func:`~nni_hwnas.reporting.results.pareto_rows`), and the hypervolume curve
is the one ``hypervolume.json`` holds, so the page never disagrees with the files. The page only
draws; it computes no front of its own. Fronts for the other axis pairs the page offers are
computed here too, once per change of the data, not once per browser.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from nni_hwnas.budgets import Budgets
from nni_hwnas.metrics import METRICS, to_losses
from nni_hwnas.reporting.hypervolume_trace import HvReference, default_reference, hypervolume_curve
from nni_hwnas.reporting.results import DEFAULT_OBJECTIVES, completed, pareto_rows

# Axes the front view offers: scores go up the y axis, costs along x (any pair can be chosen).
SCORE_AXES = ("accuracy", "default", "proxy_score")
COST_AXES = ("latency_ms", "latency_measured_ms", "params", "flops", "peak_mem_kb", "param_kb")


@dataclass
class ExperimentData:
    """One experiment as the dashboard shows it.

    ``budgets`` are the run's (a mapping is parsed): limits drawn as lines, and the rule of which
    trials may be on a front; ``nni_url`` is the base URL of NNI's web UI while the experiment runs
    (None for finished ones: nothing to link to).
    """

    label: str
    rows: list[dict[str, Any]]
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    budgets: Budgets = field(default_factory=Budgets)
    nni_url: str | None = None
    source: str = ""
    status: str = ""
    reference: HvReference | None = None  # the one its results files used, when read from them

    def __post_init__(self) -> None:
        self.budgets = Budgets.of(self.budgets)


def clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None (``JSON.parse`` rejects them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return clean(value.item())
    return value


def numeric_keys(rows: Sequence[Mapping[str, Any]], candidates: Sequence[str]) -> list[str]:
    """The ``candidates`` that some finished row reports as a number, in candidate order."""
    done = [r for r in rows if r.get("status") == "SUCCEEDED"]
    return [k for k in candidates if any(isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
                                         for r in done)]


def front_ids(rows: Sequence[Mapping[str, Any]], objectives: Sequence[str], budgets: Budgets | None = None) -> list:
    """Trial ids of :func:`pareto_rows` over ``objectives`` (cheapest first), as ``pareto.json`` lists them.

    For two objectives a sort first drops every point that a strictly cheaper, no worse point
    dominates; that never changes the front (dominance is transitive) and leaves ``pareto_rows``'s
    O(n^2) dominance test a few dozen points instead of thousands (see benchmarks/dashboard.py).
    """
    budgets = Budgets.of(budgets)
    candidates = [r for r in completed(rows, objectives) if budgets.admits(r)]
    if len(objectives) == 2 and len(candidates) > 64:
        losses = to_losses(candidates, objectives)
        order = np.lexsort((losses[:, 0], losses[:, 1]))  # by cost, then by score loss
        cost, score = losses[order, 1], losses[order, 0]
        # Best (smallest) score loss among points strictly cheaper than each point.
        best_before = np.full(len(order), np.inf)
        starts = np.searchsorted(cost, cost, side="left")
        running = np.minimum.accumulate(score)
        best_before[starts > 0] = running[starts[starts > 0] - 1]
        candidates = [candidates[i] for i in np.sort(order[score < best_before])]  # original order: same ties
    return [r["trial_id"] for r in pareto_rows(candidates, objectives, budgets=budgets)]


def fronts_by_axes(rows: Sequence[Mapping[str, Any]], scores: Sequence[str], costs: Sequence[str],
                   budgets: Budgets | None = None) -> dict[str, list]:
    """``"score|cost"`` -> trial ids on the in-budget front of that pair (cheapest first)."""
    return {f"{s}|{c}": front_ids(rows, (s, c), budgets) for s in scores for c in costs if s != c}


def experiment_entry(data: ExperimentData, curve: Sequence[float]) -> dict[str, Any]:
    """The per-experiment part of a snapshot."""
    # Rows handed to reports by hand may lack an id; the page needs one per point.
    rows = [r if "trial_id" in r else {**r, "trial_id": f"#{i + 1}"} for i, r in enumerate(data.rows)]
    objectives = tuple(data.objectives)
    scores = numeric_keys(rows, list(dict.fromkeys([objectives[0], *SCORE_AXES])))
    costs = numeric_keys(rows, list(dict.fromkeys([*objectives[1:], *COST_AXES])))
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[str(row.get("status"))] = statuses.get(str(row.get("status")), 0) + 1
    front = front_ids(rows, objectives, data.budgets)
    return {
        "label": data.label, "source": data.source, "status": data.status, "nni_url": data.nni_url,
        "objectives": list(objectives), "budgets": data.budgets.limits(),
        "score_axes": scores, "cost_axes": costs,
        "arch_labels": sorted({k for r in rows for k in r if k.startswith("arch.")}),
        "trials": [clean(dict(r)) for r in rows], "statuses": statuses,
        "front": front, "fronts": fronts_by_axes(rows, scores, costs, data.budgets),
        "hypervolume": [clean(float(v)) for v in curve],
    }


def shared_reference(experiments: Sequence[ExperimentData]) -> HvReference:
    """One reference for every curve, so overlaid curves compare: the first run's stored reference, else
    its budget, else 1.1x the largest cost of any run (:func:`default_reference`)."""
    first = experiments[0]
    if first.reference is not None:
        return first.reference
    score, cost = first.objectives[0], first.objectives[1]
    return default_reference([e.rows for e in experiments], score, cost, first.budgets)


def build_snapshot(experiments: Sequence[ExperimentData], *, live: bool, version: int = 0,
                   reference: HvReference | None = None) -> dict[str, Any]:
    """Everything the page draws, for one or several experiments (the first one sets the reference)."""
    if not experiments:
        raise ValueError("build_snapshot needs at least one experiment")
    reference = reference or shared_reference(experiments)
    entries = [experiment_entry(e, hypervolume_curve(e.rows, reference, e.budgets) if e.rows else []) for e in experiments]
    used = {k for e in entries for k in (*e["score_axes"], *e["cost_axes"], *e["objectives"])}
    metrics = {k: {"higher_is_better": METRICS[k].higher_is_better, "unit": METRICS[k].unit,
                   "description": METRICS[k].description} for k in sorted(used) if k in METRICS}
    return {"version": version, "live": live, "experiments": entries, "metrics": metrics,
            "reference": clean(reference.as_dict())}


def fingerprint(row_sets: Sequence[Sequence[Mapping[str, Any]]]) -> str:
    """A short hash of the trial rows: the server rebuilds the snapshot only when it changes."""
    text = json.dumps([list(rows) for rows in row_sets], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]
