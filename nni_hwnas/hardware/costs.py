"""Costs of one architecture on a device profile: predicted latency, analytic size and memory, budgets.

The hardware side of every evaluator (training, proxy, cost-only) and of NNI's profiler adapter,
kept in ``hardware`` so the predictor and the trials depend on it, never the other way round.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from search_spaces.definition import SpaceDefinition
from search_spaces.layers import LayerSpec

from nni_hwnas.errors import UserError
from nni_hwnas.hardware.cost_model import estimate_cost
from nni_hwnas.hardware.latency_table import LatencyTable, file_version
from nni_hwnas.hardware.predictor import LatencyPredictor
from nni_hwnas.hardware.profiles import BudgetCheck, DeviceProfile

COST_METRICS = ("latency_ms", "params", "flops", "peak_mem_kb", "param_kb")

#: Tables read in this process, by (profile, path, mtime, size): a table re-measured on disk is read
#: again. A warm-trial server fills it before forking (:func:`preload_table`), so its trials
#: inherit the parsed table instead of each parsing the JSON again (about 0.1 CPU-s a trial).
_TABLES: dict[tuple[str, str, int, int], LatencyTable] = {}
#: Which process last warned about each table: a forked trial warns once itself, as a cold one does.
_WARNED_IN: dict[tuple[str, str, int, int], int] = {}


def load_table(profile: DeviceProfile, table: str | Path | LatencyTable | None = None,
               warn_stale: bool = True) -> LatencyTable:
    """The profile's table (or ``table``), read once per process; warns when measured elsewhere.

    Without ``table``: the bundled one where it describes this host, else this host's cached one
    (:func:`~nni_hwnas.hardware.table_cache.default_table`)."""
    if isinstance(table, LatencyTable):
        return table
    if not profile.measures_latency:
        raise UserError(f"profile {profile.name!r} is budget-only: it has no latency table to load")
    if table is None:
        from nni_hwnas.hardware.table_cache import default_table

        table = default_table(profile)
    key = (profile.name, *file_version(table))
    if key not in _TABLES:
        _TABLES[key] = LatencyTable.load(table, profile.name)
    loaded = _TABLES[key]
    # An SSH device's table describes that device: never stale here.
    if warn_stale and not profile.remote and _WARNED_IN.get(key) != os.getpid():
        _WARNED_IN[key] = os.getpid()
        loaded.warn_if_stale(threads=profile.threads)
    return loaded


def preload_table(profile: DeviceProfile, table: str | Path | None = None) -> LatencyTable | None:
    """Read ``profile``'s table into this process's memo without warning (None: budget-only): what a
    warm-trial server does before forking trials, which then warn, and predict, as cold ones do."""
    return load_table(profile, table, warn_stale=False) if profile.measures_latency else None


def load_predictor(profile: DeviceProfile, definition: SpaceDefinition,
                   table: str | Path | LatencyTable | None = None) -> LatencyPredictor | None:
    """The latency predictor for ``definition`` on ``profile``; ``None`` for a budget-only profile."""
    if not profile.measures_latency:
        return None
    return LatencyPredictor(load_table(profile, table), definition)


def cost_metrics(layer_specs: Sequence[LayerSpec], predictor: LatencyPredictor | None,
                 profile: DeviceProfile) -> dict[str, float]:
    """The metric-contract cost keys of one architecture on ``profile``, plus ``within_budget`` (0/1).

    Memory is counted at the profile's precision (4 bytes for float32, 1 for int8) and batch 1.
    ``latency_ms`` is present only when ``predictor`` is given.
    """
    cost = estimate_cost(layer_specs)
    scale = profile.bytes_per_value / 4.0  # the cost model counts float32
    metrics: dict[str, float] = {"params": cost.params, "flops": cost.flops,
                                 "peak_mem_kb": cost.peak_mem_kb * scale, "param_kb": cost.param_kb * scale}
    if predictor is not None:
        metrics["latency_ms"] = predictor.predict_specs(layer_specs)
    metrics["within_budget"] = int(budget_check(metrics, profile).within)
    return metrics


def budget_check(metrics: Mapping[str, float], profile: DeviceProfile) -> BudgetCheck:
    """Which of the profile's budgets ``metrics`` violates, and by how much."""
    return profile.budgets.check(metrics)
