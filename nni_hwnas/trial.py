"""What runs inside one NNI trial process: train a frozen candidate and report the metric dict.

Kept lean on purpose: a NAS trial already spends seconds importing ``nni.nas``; this module adds
only torch and our own small modules. The metric names follow :mod:`nni_hwnas.metrics`.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import torch

from .cost_model import estimate_cost
from .datasets import load_dataset
from .metrics import is_finite_metrics
from .timing import measure_model_latency, torch_threads
from .training import TrainSettings, TrainingDiverged, train_model


def reinitialise(layer_specs: list, seed: int) -> torch.nn.Module:
    """Build the candidate's network afresh under ``seed``: NNI's freeze initialises weights from
    an unseeded global RNG, and the same architecture must give the same score every time."""
    from search_spaces.layers import build_network

    torch.manual_seed(seed)
    return build_network(layer_specs)


def train_and_report(model: Any, dataset: Mapping[str, Any], training: Mapping[str, Any], seed: int,
                     threads: int = 1, latency_repeats: int = 30) -> dict[str, float]:
    """NNI ``FunctionalEvaluator`` body: per-epoch ``report_intermediate_result``, then one final dict."""
    import nni

    started = time.perf_counter()
    with torch_threads(threads):
        data = load_dataset(seed=seed, **dataset)
        network = reinitialise(model.layer_specs, seed)
        settings = TrainSettings(**training)
        result = train_model(network, data, settings, seed,
                             on_epoch=lambda epoch, acc: nni.report_intermediate_result(acc))
        latency = measure_model_latency(network, data.input_shape, batch_size=1, threads=threads,
                                        n_repeats=latency_repeats)
    cost = estimate_cost(model.layer_specs)
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
    if not is_finite_metrics(metrics):
        raise TrainingDiverged(f"non-finite metric in {metrics}")
    nni.report_final_result(metrics)
    return metrics
