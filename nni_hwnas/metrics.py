"""The metric contract: every evaluator reports these names, and their directions live here only.

Strategies, reports and the web UI read the same keys. Inside the plugin everything is minimised:
:func:`to_losses` flips the sign of higher-is-better metrics at the edge (the Optuna/archai way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class MetricSpec:
    """One reported metric: its key, whether larger is better, and its unit."""

    name: str
    higher_is_better: bool
    unit: str
    description: str


def _load_metrics() -> dict[str, MetricSpec]:
    """The contract's table lives in ``metrics.yaml`` beside this module: data, one entry per metric."""
    import yaml

    table = yaml.safe_load((Path(__file__).with_name("metrics.yaml")).read_text())
    return {name: MetricSpec(name, bool(row["higher_is_better"]), str(row["unit"]), str(row["description"]))
            for name, row in table.items()}


METRICS: dict[str, MetricSpec] = _load_metrics()

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
