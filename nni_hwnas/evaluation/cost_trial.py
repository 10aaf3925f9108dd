"""Costs of an architecture on a device profile, without training: the cost-only trial and its helpers.

:func:`cost_metrics` is shared by every evaluator: predicted ``latency_ms`` (when the profile has a
table), the analytic ``params``, ``flops`` (multiply-accumulates at batch 1), ``peak_mem_kb`` and
``param_kb`` (KiB at the profile's precision) and ``within_budget``. :func:`report_costs` is the
body of NNI's ``FunctionalEvaluator`` for cost-only searches and for screening before training.
:func:`check_budgets_reachable` tells a user, before anything launches, that no architecture of the
space meets a budget, and what the smallest achievable cost is. Kept free of ``nni.nas`` imports:
trial processes pay for every import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from search_spaces.definition import SpaceDefinition
from search_spaces.layers import LayerSpec

from nni_hwnas.hardware.cost_model import estimate_cost
from nni_hwnas.errors import UserError, unknown
from nni_hwnas.hardware.latency_table import LatencyTable, space_context
from nni_hwnas.hardware.predictor import LatencyPredictor
from nni_hwnas.hardware.profiles import BudgetCheck, DeviceProfile, load_profile

COST_METRICS = ("latency_ms", "params", "flops", "peak_mem_kb", "param_kb")

_TABLES: dict[tuple[str, str], LatencyTable] = {}


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
    path = Path(table)
    cache_key = (profile.name, str(Path(path).resolve()))
    if cache_key not in _TABLES:
        loaded = LatencyTable.load(path, profile.name)
        if warn_stale and not profile.remote:  # an SSH device's table describes that device
            loaded.warn_if_stale(threads=profile.threads)
        _TABLES[cache_key] = loaded
    return _TABLES[cache_key]


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


def report_costs(model: Any, profile: str, table: str | None = None, budgets: Mapping[str, float] | None = None,
                 default_metric: str = "latency_ms") -> dict[str, float]:
    """NNI ``FunctionalEvaluator`` body: report a frozen model's costs without training.

    ``model`` is one of our frozen model spaces (``.layer_specs``, ``.definition``). ``default`` is
    ``-default_metric`` (NNI's strategies maximise ``default``: the cheapest network scores best).
    Arguments are plain strings and numbers so NNI can ship them to the trial process.
    """
    import nni

    device = load_profile(profile).with_budgets(budgets)
    if default_metric not in COST_METRICS:
        raise unknown("default metric", default_metric, COST_METRICS)
    if default_metric == "latency_ms" and not device.measures_latency:
        raise UserError(f"profile {device.name!r} is budget-only: pick a default metric among "
                        f"{', '.join(COST_METRICS[1:])}")
    predictor = load_predictor(device, model.definition, table)
    metrics = cost_metrics(model.layer_specs, predictor, device)
    metrics["default"] = -float(metrics[default_metric])
    nni.report_final_result(metrics)
    return metrics


def budget_filter(definition: SpaceDefinition, profile: DeviceProfile,
                  predictor: LatencyPredictor | None = None) -> Callable[[Any], bool]:
    """A ``filter_fn`` for NNI's ``Filter`` middleware: True when the model's sample is within budget."""
    def within(model: Any) -> bool:
        sample = getattr(model, "sample", model)
        return bool(cost_metrics(definition.describe(sample), predictor, profile)["within_budget"])

    return within


@dataclass(frozen=True)
class SmallestCost:
    metric: str
    value: float
    sample: dict[str, Any]


def smallest_costs(definition: SpaceDefinition, profile: DeviceProfile,
                   predictor: LatencyPredictor | None = None) -> dict[str, SmallestCost]:
    """The smallest achievable value of every cost over the space (see ``cheapest_candidates``)."""
    best: dict[str, SmallestCost] = {}
    for sample in definition.cheapest_candidates():
        metrics = cost_metrics(definition.describe(sample), predictor, profile)
        for metric in COST_METRICS:
            if metric in metrics and (metric not in best or metrics[metric] < best[metric].value):
                best[metric] = SmallestCost(metric, float(metrics[metric]), sample)
    return best


def check_budgets_reachable(definition: SpaceDefinition, profile: DeviceProfile,
                            predictor: LatencyPredictor | None = None) -> None:
    """Raise a one-line :class:`UserError` when no architecture of the space meets the budgets.

    Exact for the analytic costs (and for latency as far as it grows with width, kernel and BN):
    every architecture is at least as costly as the cheapest candidate of its depth.
    """
    limits = profile.budgets.limits()
    if not limits:
        return
    if "latency_ms" in limits and predictor is None:
        raise UserError(f"a latency budget needs a latency table; profile {profile.name!r} has none")
    smallest = smallest_costs(definition, profile, predictor)
    for metric, limit in limits.items():
        if smallest[metric].value > limit:
            raise UserError(f"no architecture of space {space_context(definition)} meets the budget {metric} <= {limit:g} "
                            f"on profile {profile.name!r}: the smallest achievable is {smallest[metric].value:.4g} "
                            f"({_short(smallest[metric].sample)}); raise the budget or widen the space")
    if not any(budget_check(cost_metrics(definition.describe(s), predictor, profile), profile).within
               for s in definition.cheapest_candidates()):
        raise UserError(f"no architecture of space {space_context(definition)} meets all budgets "
                        f"({', '.join(f'{k} <= {v:g}' for k, v in limits.items())}) on profile {profile.name!r} at once, "
                        f"though each alone is reachable; relax one of them")


def _short(sample: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in sample.items())
    return text if len(text) <= 120 else text[:117] + "..."
