"""``evaluator.kind: supernet``: a search on one trained super-network, in this process, as a results dir.

``nni-hwnas search`` hands a config with ``evaluator.kind: supernet`` here instead of to NNI's
experiment manager: every sample is scored in tens of milliseconds by inheriting the super-network's
weights, so an NNI trial process per sample (seconds of ``nni.nas`` import each) would cost ~100x the
work, and NNI's one-shot engine shows no trials in the web UI either. Progress instead: a bar per
phase in the terminal, and the results directory's ``trials.json`` / ``pareto.json`` rewritten every
few seconds, served live by the dashboard the search starts (``nni-hwnas dashboard <dir>`` also reads it).

- ``strategy.name: hw_evolution`` or ``cmaes``: our evolution (NEvoNAS / EvNAS) or CMA-ES (CMANAS)
  with super-network fitness, ``experiment.max_trials`` samples; ``strategy.args`` go to ``HwEvolution``
  / ``CmaEs``; ``evaluator.supernet_calibrate: N`` recalibrates each sample's BN statistics on N
  training batches before scoring (default 0: the validation batches' own statistics);
- ``strategy.name: conditioned``: the complexity-conditioned search, swept over ``n_budgets``
  budgets (``strategy.args``: ``steps``, ``n_budgets``, ``penalty_weight``, ``hidden``, ``fill_margin``, ...).

The results directory has the usual files (``trials.*``, ``pareto.*``, ``hypervolume.*``,
``run.json``: ``nni-hwnas train --from`` and ``report`` read it), plus ``supernet.pt`` (the weights)
and, with ``evaluator.then_train_top_k: K``, ``retrained/``: the K best front members (conditioned:
the first K budgets' architectures) trained for real by the training evaluator, as its own
results directory (front, hypervolume and plots after retraining), and ``supernet_then_train.json``
with both accuracies side by side.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from nni_hwnas.errors import UserError
from nni_hwnas.experiment.config import RunConfig
from nni_hwnas.experiment.trial_args import run_budgets

from .progress import LiveResults, bar

STRATEGIES = ("hw_evolution", "cmaes", "conditioned")
CMAES_ARGS = ("population_size", "sigma", "max_attempts")
CONDITIONED_ARGS = ("steps", "n_budgets", "penalty_weight", "hidden", "weight_learning_rate", "arch_learning_rate",
                    "batch_size", "baseline_decay", "fill_margin")
OBJECTIVES = ("accuracy", "latency_ms")
OBJECTIVE_ARGS = ("objectives", "score_metric", "cost_metric", "novelty_k", "diversity_k", "penalty", "penalty_weight")


def _row(index: int, sample: Mapping[str, Any], accuracy: float, costs: Mapping[str, float], seconds: float,
         **extra: Any) -> dict[str, Any]:
    return {"trial_id": f"s{index:05d}", "parameter_id": index, "status": "SUCCEEDED", "duration_s": seconds,
            **{f"arch.{k}": v for k, v in sorted(sample.items())}, "default": accuracy, "accuracy": accuracy,
            **costs, **extra}


def run_weight_sharing(config: RunConfig, output: str | Path | None = None, echo: Callable[[str], None] = print,
                       dashboard: dict[str, Any] | None = None) -> Path:
    """Run the search the config describes (see the module docstring); returns the results directory.

    ``dashboard`` (``{port, host}``, port None = a free one) serves the results directory live while it runs.
    """
    from search_spaces import make_definition

    from nni_hwnas.data.datasets import load_dataset
    from nni_hwnas.evaluation.cost_trial import cost_metrics
    from nni_hwnas.experiment.launch import prepare_hardware, resolve_space, seed_everything
    from nni_hwnas.experiment.runinfo import run_record
    from nni_hwnas.reporting.hypervolume_trace import default_reference
    from nni_hwnas.dashboard.export import write_results_with_dashboard
    from nni_hwnas.reporting.results import write_json

    from .expected_latency import ExpectedLatency
    from .supernet import SuperNet
    from .supernet_training import SupernetSettings, save_supernet, train_supernet

    name = config.strategy.name
    if name not in STRATEGIES:
        raise UserError(f"config: `evaluator.kind: supernet` runs strategy {', '.join(STRATEGIES)}, not {name!r}")
    strategy_args = _conditioned_args(config) if name == "conditioned" else _strategy_args(config)  # before any work
    if not config.hardware.profile:
        raise UserError("config: `evaluator.kind: supernet` needs `hardware.profile` with a latency table "
                        "(e.g. host-cpu-1t): costs are predicted, not measured per sample")
    started = time.time()
    seed_everything(config.seed)
    space_name, choices = resolve_space(config)
    data = load_dataset(config.dataset.name, data_root=config.dataset.data_root, seed=config.seed,
                        download=config.dataset.download, val_fraction=config.dataset.val_fraction,
                        test_fraction=config.dataset.test_fraction)
    definition = make_definition(space_name, choices, data.input_shape, data.num_classes)
    device, predictor = prepare_hardware(config, definition)
    if predictor is None:
        raise UserError(f"config: profile {device.name!r} is budget-only; `evaluator.kind: supernet` needs one "
                        "with a latency table (e.g. host-cpu-1t)")
    out_dir = Path(output or config.output or Path("results") / f"supernet-{name}-{int(started)}")
    ev = config.evaluator
    settings = SupernetSettings(epochs=ev.supernet_epochs, batch_size=ev.batch_size, learning_rate=ev.learning_rate,
                                momentum=ev.momentum, weight_decay=ev.weight_decay, sampling=ev.supernet_sampling,
                                augment=ev.augment)
    torch.set_num_threads(ev.threads)
    supernet = SuperNet(definition, seed=config.seed)
    live = LiveResults(out_dir, OBJECTIVES)
    with _start_dashboard(dashboard, out_dir, f"{name} on a super-network", echo):
        echo(f"nni-hwnas: training the {space_name} super-network on {config.dataset.name} "
             f"({settings.epochs} epochs, {settings.sampling} path sampling)")
        with bar(settings.epochs, "supernet", "epoch") as progress:
            def on_epoch(epoch: int, loss: float) -> None:
                progress.update(1)
                progress.set_postfix(loss=f"{loss:.4f}")
                echo(f"  supernet epoch {epoch + 1}/{settings.epochs}: loss {loss:.4f}")

            record = train_supernet(supernet, data, settings, config.seed, on_epoch=on_epoch)
        save_supernet(out_dir / "supernet.pt", supernet, record)

        def costs(sample: Mapping[str, Any]) -> dict[str, float]:
            return cost_metrics(definition.describe(sample), predictor, device)

        if name == "conditioned":
            rows, extra = _conditioned(config, supernet, data, ExpectedLatency(predictor), costs, echo, strategy_args)
        else:
            rows, extra = _evolution(config, supernet, data, predictor, costs, echo, live, strategy_args)
        info = run_record(config.seed, config.to_dict(), space=space_name,
                          space_choices={k: list(v) for k, v in definition.choices.items()},
                          input_shape=list(data.input_shape), num_classes=data.num_classes, dataset_source=data.source,
                          evaluator="supernet", supernet=record, wall_seconds=time.time() - started, **extra)
        budgets = run_budgets(config, device)
        reference = default_reference([rows], OBJECTIVES[0], OBJECTIVES[1], budgets)
        write_results_with_dashboard(out_dir, rows, info, objectives=OBJECTIVES, reference=reference, budgets=budgets,
                                     title=f"{name} on a super-network, {config.dataset.name} ({space_name})")
        if ev.then_train_top_k:
            trained = _then_train(config, definition, rows, name, echo)
            write_json(out_dir / "supernet_then_train.json", {"trained": trained})
            by_id = {row["trial_id"]: row for row in rows}
            retrained_rows = [{**by_id[t["trial_id"]], "supernet_accuracy": t["supernet_accuracy"],
                               "accuracy": t["trained_accuracy"], "default": t["trained_accuracy"],
                               "train_seconds": t["train_seconds"]} for t in trained]
            write_results_with_dashboard(out_dir / "retrained", retrained_rows, {**info, "retrained_from": str(out_dir)},
                                         objectives=OBJECTIVES, reference=reference, budgets=budgets,
                                         title=f"{name}: front members retrained, {config.dataset.name} ({space_name})")
        echo(f"nni-hwnas: {len(rows)} architectures scored; results in {out_dir}")
    return out_dir


def _start_dashboard(dashboard: dict[str, Any] | None, out_dir: Path, label: str, echo: Callable) -> Any:
    """The live dashboard of ``out_dir`` as a context manager (stopped on exit), or a no-op without ``dashboard``."""
    if dashboard is None:
        return contextlib.nullcontext()
    from nni_hwnas.dashboard.cli import results_dashboard
    from nni_hwnas.dashboard.server import bind_note

    board = results_dashboard(out_dir, label, port=dashboard.get("port"), host=dashboard.get("host", "127.0.0.1"))
    echo(f"nni-hwnas: dashboard at {board.url} ({bind_note(dashboard.get('host', '127.0.0.1'))})")
    return board


def _strategy_args(config: RunConfig) -> dict[str, Any]:
    """``strategy.args`` for ``HwEvolution`` / ``CmaEs`` on accuracy and predicted latency."""
    from nni_hwnas.errors import unknown

    name = config.strategy.name
    args = dict(config.strategy.args or {})
    args.pop("seed", None)
    if name == "cmaes":
        bad = sorted(set(args) - set(CMAES_ARGS))
        if bad:
            raise unknown("argument of strategy cmaes with `evaluator.kind: supernet`", bad[0], CMAES_ARGS)
        return args
    objectives = {key: args.pop(key) for key in OBJECTIVE_ARGS if key in args}
    objectives["use"] = tuple([objectives.pop("objectives")] if isinstance(objectives.get("objectives"), str)
                              else objectives.pop("objectives", ("score", "cost")))
    # the super-network scores accuracy; costs are predicted latency (other cost metrics: not here yet)
    objectives.update(score_metric="accuracy", cost_metric="latency_ms")
    args["budget"] = run_budgets(config).limit("latency_ms")  # the run's (profile's too), never another
    args["objectives"] = objectives
    return args


def _evolution(config: RunConfig, supernet: Any, data: Any, predictor: Any, costs: Callable, echo: Callable,
               live: LiveResults, strategy_args: dict[str, Any]) -> tuple[list, dict]:
    from .supernet_search import evolve_with_supernet
    from .supernet_training import calibration_batches

    name, n = config.strategy.name, config.experiment.max_trials
    calibrate = config.evaluator.supernet_calibrate
    calibration = calibration_batches(data, calibrate, seed=config.seed) if calibrate else None
    echo(f"nni-hwnas: {name} scoring {n} samples on the super-network"
         + (f" (BN recalibrated on {calibrate} training batches each)" if calibrate else ""))
    rows: list[dict] = []
    last, best = [time.perf_counter()], [0.0]
    with bar(n, name, "sample") as progress:
        def on_sample(index: int, entry: dict) -> None:
            now = time.perf_counter()
            rows.append(_row(index, entry["sample"], entry["accuracy"], costs(entry["sample"]), now - last[0]))
            last[0] = now
            best[0] = max(best[0], entry["accuracy"])
            progress.update(1)
            progress.set_postfix(best=f"{best[0]:.4f}", refresh=False)
            live.write(rows)

        result = evolve_with_supernet(supernet, data, predictor.predict, n, config.seed, strategy=name,
                                      calibration=calibration, on_sample=on_sample, **strategy_args)
    per = result["search_seconds"] / max(1, len(rows))
    echo(f"nni-hwnas: {len(rows)} samples in {result['search_seconds']:.1f} s ({1000 * per:.0f} ms each)")
    return rows, {"search_seconds": result["search_seconds"], "supernet_calibrate": calibrate}


def _conditioned_args(config: RunConfig) -> dict[str, Any]:
    """``strategy.args`` of the conditioned search, checked."""
    args = dict(config.strategy.args or {})
    args.pop("seed", None)
    unknown_args = sorted(set(args) - set(CONDITIONED_ARGS))
    if unknown_args:
        from nni_hwnas.errors import unknown

        raise unknown("argument of strategy conditioned", unknown_args[0], CONDITIONED_ARGS)
    return args


def _conditioned(config: RunConfig, supernet: Any, data: Any, expected: Any, costs: Callable, echo: Callable,
                 args: dict[str, Any]) -> tuple[list, dict]:
    from .conditioned import ConditionedSearch, ConditionedSettings
    from .supernet_training import score_sample

    args = dict(args)
    n_budgets = int(args.pop("n_budgets", 11))
    if n_budgets < 1:
        raise UserError(f"config: strategy conditioned: `n_budgets` must be >= 1, got {n_budgets}")
    search = ConditionedSearch(supernet, expected, ConditionedSettings(**args), config.seed)
    every = max(1, search.settings.steps // 10)
    echo(f"nni-hwnas: conditioned search, {search.settings.steps} steps, targets {search.min_ms:.3g}-{search.max_ms:.3g} ms")
    with bar(search.settings.steps, "conditioned", "step") as progress:
        def on_step(step: int, r: dict) -> None:
            progress.update(1)
            if (step + 1) % every == 0:
                echo(f"  step {step + 1}: target {r['target_ms']:.3g} ms, expected {r['expected_latency_ms']:.3g} ms, "
                     f"val loss {r['val_loss']:.3f}")

        record = search.train(data, on_step=on_step)
    derived = search.sweep(np.linspace(0, 1, n_budgets))
    rows = []
    for i, d in enumerate(derived):
        t0 = time.perf_counter()
        accuracy = score_sample(supernet, data.val_x, data.val_y, d["sample"], data.is_multilabel)
        rows.append(_row(i, d["sample"], accuracy, costs(d["sample"]), time.perf_counter() - t0,
                         budget=d["budget"], target_ms=d["target_ms"], repaired=int(d["repaired"]),
                         filled=int(d["filled"])))
    return rows, {"conditioned": record}


def _then_train(config: RunConfig, definition: Any, rows: list[dict], name: str, echo: Callable) -> list[dict]:
    """Train the K best front members (conditioned: the first K distinct budgets' architectures) for real."""
    from nni_hwnas.evaluation.trial import evaluate_architecture
    from nni_hwnas.experiment.launch import trial_dataset_args, trial_hardware_args, trial_training_args
    from nni_hwnas.reporting.results import pareto_rows

    k = config.evaluator.then_train_top_k
    if name == "conditioned":
        seen: dict[str, dict] = {}
        for row in rows:
            seen.setdefault(definition.arch_id(_sample_of(row)), row)
        chosen = list(seen.values())[:k]
    else:
        chosen = sorted(pareto_rows(rows, OBJECTIVES), key=lambda r: -r["accuracy"])[:k]
    trained = []
    for row in chosen:
        sample = definition.complete(_sample_of(row))
        echo(f"nni-hwnas: training {row['trial_id']} (super-network accuracy {row['accuracy']:.4f}, "
             f"{row['latency_ms']:.3g} ms predicted)")
        metrics = evaluate_architecture(definition.describe(sample), trial_dataset_args(config),
                                        trial_training_args(config), config.seed, config.evaluator.threads,
                                        config.evaluator.latency_repeats, definition=definition,
                                        hardware=trial_hardware_args(config))
        trained.append({"trial_id": row["trial_id"], "sample": sample, "supernet_accuracy": row["accuracy"],
                        "trained_accuracy": metrics["accuracy"], "latency_ms": metrics["latency_ms"],
                        "latency_measured_ms": metrics.get("latency_measured_ms"),
                        "train_seconds": metrics["train_seconds"]})
    return trained


def _sample_of(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k[5:]: v for k, v in row.items() if k.startswith("arch.")}
