"""What runs inside one NNI trial process: train a candidate and report the metric dict.

Both routes share :func:`evaluate_architecture`: the NAS route (``NasExperiment`` hands a frozen
model space, :func:`train_and_report`) and the nnictl route (a tuner hands a parameter dict,
:mod:`nni_hwnas.evaluation.hpo_trial`). Kept lean on purpose: a NAS trial already spends seconds importing
``nni.nas``; this module adds only torch and our own small modules.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping, Sequence

import torch

from nni_hwnas.budgets import Budgets
from nni_hwnas.hardware.cost_model import estimate_cost
from nni_hwnas.data.datasets import DatasetSplits, load_dataset
from nni_hwnas.metrics import is_finite_metrics
from nni_hwnas.evaluation.inheritance import save_trained, start_from_parent
from nni_hwnas.evaluation.reward import default_value
from nni_hwnas.hardware.timing import TimingSettings, measure_model_latency, torch_threads
from nni_hwnas.evaluation.training import EpochResult, TrainSettings, TrainingDiverged, train_model
from nni_hwnas.nni_compat.freeze import reinitialise


def profile_costs(layer_specs: Sequence, definition: Any, hardware: Mapping[str, Any]) -> tuple[dict[str, float], Any]:
    """Costs predicted on ``hardware['profile']`` (its table and budgets), with ``within_budget``."""
    metrics, device, _ = _predicted_costs(layer_specs, definition, hardware)
    return metrics, device


def _predicted_costs(layer_specs: Sequence, definition: Any, hardware: Mapping[str, Any]) -> tuple[dict, Any, Any]:
    from nni_hwnas.hardware.costs import cost_metrics, load_predictor
    from nni_hwnas.hardware.profiles import load_profile

    device = load_profile(hardware["profile"]).with_budgets(hardware.get("budgets") or None)
    predictor = load_predictor(device, definition, hardware.get("table"))
    return cost_metrics(layer_specs, predictor, device), device, predictor


def hardware_costs(layer_specs: Sequence, definition: Any, hardware: Mapping[str, Any] | None,
                   input_shape: Sequence[int], network: torch.nn.Module, default_threads: int,
                   latency_repeats: int) -> dict[str, float]:
    """Cost metrics: predicted on the profile's device (with its budgets), or measured here.

    With a profile, ``latency_ms`` comes from its lookup table and ``within_budget`` checks its
    budgets; ``measure_latency`` adds this host's measurement as ``latency_measured_ms``, timed
    exactly like the table's rows (its statistic, warm-up, repeats and cycled inputs), so the two
    can be compared. Without one, ``latency_ms`` is measured on this host at batch 1 with the
    default timer settings and ``latency_repeats`` timed runs at most, and ``within_budget`` checks
    the run's budgets (a strategy's ``budget``) against these measured costs.
    """
    hardware = dict(hardware or {})
    if hardware.get("profile"):
        metrics, device, predictor = _predicted_costs(layer_specs, definition, hardware)
        if hardware.get("measure_latency"):
            settings = predictor.table.timing_settings() if predictor is not None else TimingSettings()
            measured = measure_model_latency(network, tuple(input_shape), batch_size=device.batch_size,
                                             threads=device.threads, settings=settings)
            metrics["latency_measured_ms"] = measured.value(settings.statistic)
        return metrics
    settings = TimingSettings(n_repeats=latency_repeats, min_repeats=min(latency_repeats, TimingSettings.min_repeats))
    measured = measure_model_latency(network, tuple(input_shape), batch_size=1, threads=default_threads,
                                     settings=settings).value(settings.statistic)
    metrics = {**estimate_cost(layer_specs).as_metrics(), "latency_ms": measured, "latency_measured_ms": measured}
    metrics["within_budget"] = int(Budgets.of(hardware.get("budgets")).check(metrics).within)  # the run's budgets
    return metrics


def evaluate_architecture(layer_specs: Sequence, dataset: Mapping[str, Any] | DatasetSplits,
                          training: Mapping[str, Any], seed: int, threads: int = 1, latency_repeats: int = 30,
                          on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                          objective: Mapping[str, Any] | None = None, definition: Any = None,
                          hardware: Mapping[str, Any] | None = None,
                          inherit: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Train the network ``layer_specs`` describes and return the metric-contract dict.

    ``inherit`` (``evaluator.inherit_weights``: ``dir``, ``id``, ``parent``): start from the
    parent's saved weights where shapes match (:mod:`nni_hwnas.evaluation.inheritance`), report
    the share of values inherited as ``inherited_fraction``, and save the trained weights.

    ``dataset``: the dataset arguments (``trial_dataset_args``), or splits the caller has loaded
    already (the nnictl trial loads them to size the space: loading twice cost every trial).

    ``on_epoch(epoch, metrics)`` gets, after each epoch, ``default``/``accuracy`` so far plus the
    cost metrics: costs are computed *before* training (they don't depend on the weights), so an
    early-stopping rule over accuracy and cost (MO-ASHA) can judge every intermediate report.

    Raises:
        TrainingDiverged: on a non-finite loss or metric (NNI then records the trial as failed).
    """
    started = time.perf_counter()
    with torch_threads(threads):
        data = dataset if isinstance(dataset, DatasetSplits) else load_dataset(seed=seed, **dataset)
        network = reinitialise(layer_specs, seed)
        costs = hardware_costs(layer_specs, definition, hardware, data.input_shape, network, threads,
                               latency_repeats)
        network = reinitialise(layer_specs, seed)  # timing ran the network: start training from the seeded weights
        inherited = start_from_parent(network, inherit) if inherit is not None else None
        epoch_report = None if on_epoch is None else (
            lambda report: on_epoch(report.epoch, intermediate_metrics(report, costs)))
        result = train_model(network, data, TrainSettings(**training), seed, on_epoch=epoch_report)
        if inherit is not None and math.isfinite(result.final_accuracy):
            save_trained(network, inherit)
    metrics: dict[str, float] = {
        "default": result.final_accuracy,
        "accuracy": result.final_accuracy,
        **costs,
        **(finite_losses(result.train_loss[-1], result.val_loss[-1]) if result.train_loss else {}),
        "train_seconds": result.train_seconds,
        "trial_seconds": time.perf_counter() - started,
    }
    if inherited is not None:
        metrics["inherited_fraction"] = inherited.fraction
    objective = dict(objective or {})
    metrics["default"] = default_value(metrics, objective.get("default_metric", "accuracy"),
                                       objective.get("reward_target_ms"), objective.get("reward_w", -0.07))
    if not is_finite_metrics(metrics):
        raise TrainingDiverged(f"non-finite metric in {metrics}")
    return metrics


def intermediate_metrics(report: EpochResult, costs: Mapping[str, float]) -> dict[str, float]:
    """One epoch's report: ``default`` (what NNI's UI plots) = accuracy so far, the epoch's losses
    (what MO-ASHA ranks young trials by) and the costs."""
    return {"default": float(report.val_accuracy), "accuracy": float(report.val_accuracy),
            **finite_losses(report.train_loss, report.val_loss),
            **{k: float(v) for k, v in costs.items() if isinstance(v, (int, float))}}


def finite_losses(train_loss: float, val_loss: float) -> dict[str, float]:
    """The losses worth reporting: an empty validation split has no loss (NaN), and a NaN in the
    final metrics would fail a trial that trained fine."""
    return {k: float(v) for k, v in (("train_loss", train_loss), ("val_loss", val_loss)) if math.isfinite(v)}


def train_and_report(model: Any, dataset: Mapping[str, Any], training: Mapping[str, Any], seed: int,
                     threads: int = 1, latency_repeats: int = 30, objective: Mapping[str, Any] | None = None,
                     hardware: Mapping[str, Any] | None = None,
                     inherit: Mapping[str, Any] | None = None) -> dict[str, float]:
    """NNI ``FunctionalEvaluator`` body: per-epoch ``report_intermediate_result``, then one final dict."""
    import nni

    metrics = evaluate_architecture(model.layer_specs, dataset, training, seed, threads, latency_repeats,
                                    on_epoch=lambda epoch, metrics: nni.report_intermediate_result(metrics),
                                    objective=objective, definition=model.definition, hardware=hardware,
                                    inherit=inherit)
    nni.report_final_result(metrics)
    return metrics
