"""Our latency predictor and cost model as an NNI ``Profiler``, for NNI's own hardware-aware parts.

NNI's ``RangeProfilerFilter``, ``Filter`` middleware and ``ProfilerPenalty`` take a
``Profiler.profile(sample) -> float``. A module of its own: its base class is in ``nni.nas``,
which costs seconds to import, and nothing else in ``hardware`` needs it.
"""

from __future__ import annotations

from typing import Any, Mapping

from nni.nas.profiler import Profiler
from search_spaces.definition import SpaceDefinition

from nni_hwnas.errors import unknown
from nni_hwnas.hardware.costs import COST_METRICS, cost_metrics, load_predictor
from nni_hwnas.hardware.profiles import DeviceProfile, load_profile


def _definition_of(model_space: Any) -> SpaceDefinition:
    if isinstance(model_space, SpaceDefinition):
        return model_space
    definition = getattr(model_space, "definition", None)
    if not isinstance(definition, SpaceDefinition):
        raise TypeError(f"{type(model_space).__name__} is not one of our model spaces (it has no .definition)")
    return definition


class HwLatencyProfiler(Profiler):
    """NNI profiler answering a cost of a sample from our predictor and cost model, without a model.

    Args:
        model_space: one of our ``ModelSpace``s (or its :class:`SpaceDefinition`).
        profile: a device profile name or YAML path (its table and precision are used).
        table: a table file overriding the profile's, or a loaded latency table.
        metric: ``latency_ms`` (default) or an analytic cost: ``params``, ``flops`` (MACs),
            ``peak_mem_kb``, ``param_kb``.
    """

    def __init__(self, model_space: Any, profile: Any = "host-cpu-1t", table: Any = None,
                 metric: str = "latency_ms") -> None:
        super().__init__(model_space)
        if metric not in COST_METRICS:
            raise unknown("profiler metric", metric, COST_METRICS)
        self.definition = _definition_of(model_space)
        self.device = profile if isinstance(profile, DeviceProfile) else load_profile(profile)
        self.metric = metric
        self.predictor = load_predictor(self.device, self.definition, table) if metric == "latency_ms" else None

    def profile(self, sample: Mapping[str, Any]) -> float:
        if self.predictor is not None:
            return self.predictor.predict(sample)
        return float(cost_metrics(self.definition.describe(sample), None, self.device)[self.metric])
