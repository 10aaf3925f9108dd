"""One number for single-objective strategies: accuracy, or a MnasNet-style latency-aware reward.

NNI's built-in strategies maximise ``default`` only. To give them a fair shot at the
accuracy/latency trade-off, ``default`` can be the MnasNet reward (Tan et al., CVPR 2019)
``accuracy * (latency_ms / target_ms) ** w`` with ``w = -0.07`` (their soft constraint): a model at
half the target latency gains ~5% reward, one at twice the target loses ~5%.
"""

from __future__ import annotations

from typing import Mapping


def mnas_reward(accuracy: float, latency_ms: float, target_ms: float, w: float = -0.07) -> float:
    if latency_ms <= 0 or target_ms <= 0:
        raise ValueError(f"latency and target must be positive, got {latency_ms} and {target_ms}")
    return accuracy * (latency_ms / target_ms) ** w


def default_value(metrics: Mapping[str, float], default_metric: str, target_ms: float | None,
                  w: float) -> float:
    """The ``default`` entry of the metric dict for the configured objective."""
    if default_metric == "accuracy":
        return float(metrics["accuracy"])
    if default_metric == "mnas_reward":
        if target_ms is None:
            raise ValueError("default_metric mnas_reward needs reward_target_ms")
        return mnas_reward(float(metrics["accuracy"]), float(metrics["latency_ms"]), target_ms, w)
    raise ValueError(f"unknown default_metric {default_metric!r}; allowed: accuracy, mnas_reward")
