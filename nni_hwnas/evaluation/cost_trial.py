"""Costs of an architecture on a device profile, without training: the cost-only trial and its helpers.

:func:`~nni_hwnas.hardware.costs.cost_metrics` (shared by every evaluator) gives predicted
``latency_ms``, the analytic ``params``, ``flops``, ``peak_mem_kb``, ``param_kb`` and
``within_budget``. :func:`report_costs` is the
body of NNI's ``FunctionalEvaluator`` for cost-only searches and for screening before training.
:func:`check_budgets_reachable` tells a user, before anything launches, that no architecture of the
space meets a budget, and what the smallest achievable cost is. Kept free of ``nni.nas`` imports:
trial processes pay for every import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from search_spaces.definition import SpaceDefinition

from nni_hwnas.errors import UserError, unknown
from nni_hwnas.hardware.costs import COST_METRICS, budget_check, cost_metrics, load_predictor
from nni_hwnas.hardware.latency_table import space_context
from nni_hwnas.hardware.predictor import LatencyPredictor
from nni_hwnas.hardware.profiles import DeviceProfile, load_profile


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
