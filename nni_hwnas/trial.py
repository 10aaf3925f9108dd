"""What runs inside one NNI trial process: train a candidate and report the metric dict.

Both routes share :func:`evaluate_architecture`: the NAS route (``NasExperiment`` hands a frozen
model space, :func:`train_and_report`) and the nnictl route (a tuner hands a parameter dict,
:mod:`nni_hwnas.hpo_trial`). Kept lean on purpose: a NAS trial already spends seconds importing
``nni.nas``; this module adds only torch and our own small modules.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import torch

from .cost_model import estimate_cost
from .datasets import load_dataset
from .metrics import is_finite_metrics
from .reward import default_value
from .timing import measure_model_latency, torch_threads
from .training import TrainSettings, TrainingDiverged, train_model


def reinitialise(layer_specs: Sequence, seed: int) -> torch.nn.Module:
    """Build the candidate's network afresh under ``seed``: NNI's freeze initialises weights from
    an unseeded global RNG, and the same architecture must give the same score every time."""
    from search_spaces.layers import build_network

    torch.manual_seed(seed)
    return build_network(layer_specs)


def evaluate_architecture(layer_specs: Sequence, dataset: Mapping[str, Any], training: Mapping[str, Any],
                          seed: int, threads: int = 1, latency_repeats: int = 30,
                          on_epoch: Callable[[int, float], None] | None = None,
                          objective: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Train the network ``layer_specs`` describes and return the metric-contract dict.

    Raises:
        TrainingDiverged: on a non-finite loss or metric (NNI then records the trial as failed).
    """
    started = time.perf_counter()
    with torch_threads(threads):
        data = load_dataset(seed=seed, **dataset)
        network = reinitialise(layer_specs, seed)
        result = train_model(network, data, TrainSettings(**training), seed, on_epoch=on_epoch)
        latency = measure_model_latency(network, data.input_shape, batch_size=1, threads=threads,
                                        n_repeats=latency_repeats)
    cost = estimate_cost(layer_specs)
    metrics: dict[str, float] = {
        "default": result.final_accuracy,
        "accuracy": result.final_accuracy,
        "latency_ms": latency.median_ms,
        "latency_measured_ms": latency.median_ms,
        **cost.as_metrics(),
        "within_budget": 1,
        "train_seconds": result.train_seconds,
        "trial_seconds": time.perf_counter() - started,
    }
    objective = dict(objective or {})
    metrics["default"] = default_value(metrics, objective.get("default_metric", "accuracy"),
                                       objective.get("reward_target_ms"), objective.get("reward_w", -0.07))
    if not is_finite_metrics(metrics):
        raise TrainingDiverged(f"non-finite metric in {metrics}")
    return metrics


def train_and_report(model: Any, dataset: Mapping[str, Any], training: Mapping[str, Any], seed: int,
                     threads: int = 1, latency_repeats: int = 30,
                     objective: Mapping[str, Any] | None = None) -> dict[str, float]:
    """NNI ``FunctionalEvaluator`` body: per-epoch ``report_intermediate_result``, then one final dict."""
    import nni

    metrics = evaluate_architecture(model.layer_specs, dataset, training, seed, threads, latency_repeats,
                                    on_epoch=lambda epoch, acc: nni.report_intermediate_result(acc),
                                    objective=objective)
    nni.report_final_result(metrics)
    return metrics
