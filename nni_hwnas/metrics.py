"""The metric contract: every evaluator reports these names, and their directions live here only.

Strategies, reports and the web UI read the same keys. Inside the plugin everything is minimised:
:func:`to_losses` flips the sign of higher-is-better metrics at the edge (the Optuna/archai way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class MetricSpec:
    """One reported metric: its key, whether larger is better, and its unit."""

    name: str
    higher_is_better: bool
    unit: str
    description: str


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("default", True, "", "what NNI's built-in strategies maximise (accuracy or proxy score)"),
        MetricSpec("accuracy", True, "fraction", "validation accuracy after the trial's training"),
        MetricSpec("latency_ms", False, "ms", "end-to-end latency on the profile's device (batch from the profile)"),
        MetricSpec("latency_measured_ms", False, "ms", "latency measured on this host, when measured"),
        MetricSpec("params", False, "count", "trainable parameters"),
        MetricSpec("flops", False, "MACs", "multiply-accumulates of one forward pass at batch 1"),
        MetricSpec("peak_mem_kb", False, "KiB", "peak activation memory of one forward pass at batch 1"),
        MetricSpec("within_budget", True, "0/1", "1 when every budget of the profile is met"),
        MetricSpec("train_seconds", False, "s", "wall time spent training inside the trial"),
        MetricSpec("trial_seconds", False, "s", "wall time of the trial's own work (data, training, timing)"),
        MetricSpec("proxy_score", True, "", "training-free score (rmi, synflow, naswot, grad_norm, ...), higher is better"),
        MetricSpec("proxy_seconds", False, "s", "wall time of computing the proxy score"),
        MetricSpec("param_kb", False, "KiB", "parameter memory at the profile's precision"),
    )
}

# Keys a results table shows first, in this order.
CONTRACT_KEYS: tuple[str, ...] = (
    "default", "accuracy", "latency_ms", "params", "flops", "peak_mem_kb", "within_budget",
)


def direction(name: str) -> bool:
    """Return True when larger values of metric ``name`` are better."""
    try:
        return METRICS[name].higher_is_better
    except KeyError:
        from nni_hwnas.errors import unknown

        raise unknown("metric", name, METRICS) from None


def to_losses(rows: Sequence[Mapping[str, float]], objectives: Sequence[str]) -> np.ndarray:
    """Turn metric dicts into a ``(n_rows, n_objectives)`` matrix where smaller is better everywhere."""
    signs = np.array([-1.0 if direction(name) else 1.0 for name in objectives])
    values = np.array([[float(row[name]) for name in objectives] for row in rows], dtype=float)
    return values.reshape(len(rows), len(objectives)) * signs


def is_finite_metrics(metrics: Mapping[str, float]) -> bool:
    """True when every numeric value is finite (a NaN trial is a failed trial)."""
    return all(not (isinstance(v, float) and not math.isfinite(v)) for v in metrics.values())
