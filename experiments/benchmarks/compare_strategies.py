"""Benchmark: our multi-objective ``hw_evolution`` against NNI's Random, RegularizedEvolution and TPE,
and against Optuna's multi-objective samplers.

Issues 5 and 11. Every strategy searches the same space with the same evaluator, latency model and trial
budget, for several seeds, on ``digits`` and on a real MedMNIST set when the data folder has one.

- **Engine**: NNI 3.0's in-process *sequential* execution engine for every strategy: the engine
  and the executable (simplified) model space are built by ``NasExperiment``'s own factories from
  a ``NasExperimentConfig`` whose ``execution_engine`` is ``SequentialEngineConfig(max_model_count=
  trials, continue_on_failure=True)``, then ``strategy.initialize(space, engine); strategy.run()``
  as ``NasExperiment`` does. Skipped: NNI's experiment bookkeeping (the ``~/nni-experiments``
  manifest, checkpoints, log files), which has no effect on the search. The training-service
  engine would cost ~6 s of process start per trial (docs/nni-quirks.md, "Trial start cost"), i.e. hours here.
- **Evaluator**: one ``FunctionalEvaluator`` for all. It trains the candidate with
  :func:`nni_hwnas.evaluation.trial.evaluate_architecture` (settings per dataset in :data:`DATASETS`: few
  epochs, a training subset, printed with the results) under one fixed *training seed* for every
  strategy and search seed, so an architecture's accuracy is a deterministic function (a tabular
  benchmark, as NAS-Bench does); trained accuracies are memoised by architecture identity
  (``definition.arch_id``) in ``experiments/benchmarks/cache/``. ``latency_ms`` is the latency
  *predicted* from the ``host-cpu-1t`` lookup table (deterministic, so hypervolume is not timing
  noise); ``within_budget`` is 1 (no budget).
- **One number for NNI's built-ins**: they maximise ``default`` only, so each runs twice: on the
  MnasNet reward ``accuracy * (latency_ms / target) ** w`` (``w = -0.07``; ``target`` = median
  predicted latency of 1,000 seeded random architectures of the space) and on plain accuracy.
  Ours reads ``accuracy`` and ``latency_ms`` from the same metric dict.
- **Multi-objective baselines** (issue 11): Optuna's ``TPESampler(multivariate=True)`` and
  ``NSGAIISampler`` with their defaults, maximising accuracy and minimising predicted latency
  through Optuna's ask/tell on the same labels, the same evaluation function and the same cache.
  They run outside NNI (Optuna is not an NNI strategy), so they count a repeated architecture as
  a trial like NNI's built-ins do. Optuna comes with the ``bench`` extra.
- **Hypervolume**: accuracy (up) vs predicted latency (down), normalised with one fixed reference
  per dataset (:class:`~nni_hwnas.reporting.hypervolume_trace.HvReference`): accuracy in
  [majority-class rate of the validation split, 1] (a model no better than always answering the
  most frequent class adds no volume); latency on a **log axis**, ``log10(latency / floor)`` over
  [0, ``log10(1.1 x max / floor)``], floor = 0.9 x the smallest predicted latency of the space
  (issue 11: on a linear axis up to 1.1 x the space's largest latency, the cheapest networks sit at
  2-8% of it and hypervolume mostly rewards one corner). Sensitivity checks in the JSON rows,
  never the targets: ``hv_median_linear`` (linear latency over [0, 1.1 x max]) and
  ``hv_median_acc0`` (accuracy over [0, 1]).
- **Known front**: the Pareto front of every architecture any run evaluated on the dataset; its
  size is printed beside every result with how many of its points each strategy found (median):
  a front of 2 points can't tell strategies apart.
  ``headroom`` = best final hypervolume of any run / the best baseline's median: the largest ratio
  any strategy could have shown against that built-in, as far as all runs together found.
- ``trials_to_90pct``: median over seeds of the trials a run needed to reach 90% of the best
  final hypervolume of any run on that dataset (``-`` when most runs never did).

Outputs (default ``experiments/benchmarks/results/compare_strategies/``): the printed table,
``hypervolume_<dataset>.png`` (median and range over seeds), ``runs_<dataset>.json`` (every trial of
every run) and ``run.json`` (settings, seeds, versions, machine); ``--json PATH`` writes one row
per dataset and strategy.

    .venv/bin/python experiments/benchmarks/compare_strategies.py [--seeds 5] [--trials 60]
        [--datasets digits,pneumoniamnist] [--workers 3] [--json PATH] [--quick] [--only LABELS]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

CACHE = REPO / "experiments" / "benchmarks" / "cache"
DEFAULT_OUT = REPO / "experiments" / "benchmarks" / "results" / "compare_strategies"
DEFAULT_DATA = REPO.parent / "shared" / "data"
PROFILE = "host-cpu-1t"
TRAIN_SEED = 0  # one training seed for every strategy and search seed: accuracy is a function of the architecture
REWARD_W = -0.07
ENGINE = "NNI sequential execution engine (in-process, SequentialEngineConfig), simplified model format"

#: Per dataset: the space preset and the training evaluator's settings. Chosen so the whole run
#: (2 datasets x 7 strategy variants x 5 seeds x 60 trials) fits in an hour on two shared cores:
#: conv_net's 28x28 networks cost ~3 s per epoch on 546 images, so MedMNIST uses conv_net_small.
DATASETS: dict[str, dict[str, Any]] = {
    "digits": {"preset": "conv_net", "training": {"epochs": 2, "batch_size": 64, "learning_rate": 0.05,
                                                  "lr_schedule": "cosine", "augment": True, "train_subset": None}},
    "pneumoniamnist": {"preset": "conv_net_small", "training": {"epochs": 2, "batch_size": 64, "learning_rate": 0.05,
                                                                "lr_schedule": "cosine", "augment": True,
                                                                "train_subset": 500}},
    "breastmnist": {"preset": "conv_net_small", "training": {"epochs": 3, "batch_size": 64, "learning_rate": 0.05,
                                                             "lr_schedule": "cosine", "augment": True,
                                                             "train_subset": None}},
}
#: MedMNIST sets in order of preference (pneumonia's 524-image validation split ranks finer than breast's 78).
MEDMNIST_PREFERENCE = ("pneumoniamnist", "breastmnist")
QUICK_TRAINING = {"epochs": 1, "train_subset": 300}

#: Ours: objectives score (accuracy) + cost (predicted latency_ms); the predictor is passed as the
#: screen (it only screens with a budget, and this benchmark sets none). Defaults of HwEvolution
#: otherwise (population 20, tournament 10, 8 random proposals before selection).
OUR_ARGS: dict[str, Any] = {"objectives": ["score", "cost"], "score_metric": "accuracy", "cost_metric": "latency_ms",
                            "population_size": 20, "sample_size": 10, "initial_random": 8}
#: NNI's built-ins, each on ``default`` = MnasNet reward and on plain accuracy.
BUILTIN_ARGS: dict[str, dict[str, Any]] = {
    "Random": {},
    "RegularizedEvolution": {"population_size": 16, "sample_size": 4},
    "TPE": {},  # make_strategy sets optimize_mode=maximize
}
OURS = "hw_evolution (ours)"
#: Optuna's multi-objective samplers, with the defaults a user gets (NSGA-II: population 50).
OPTUNA_SAMPLERS: dict[str, str] = {"Optuna TPE (multivariate)": "optuna_tpe", "Optuna NSGA-II": "optuna_nsga2"}


@dataclass(frozen=True)
class Variant:
    label: str
    strategy: str
    default_metric: str  # what NNI's ``default`` is: "mnas_reward" or "accuracy"


def variants() -> list[Variant]:
    out = [Variant(OURS, "hw_evolution", "accuracy")]
    for name in BUILTIN_ARGS:
        out.append(Variant(f"{name} [reward]", name, "mnas_reward"))
        out.append(Variant(f"{name} [accuracy]", name, "accuracy"))
    out.extend(Variant(label, strategy, "accuracy") for label, strategy in OPTUNA_SAMPLERS.items())
    return out


# ---------------------------------------------------------------------------- the accuracy cache


class AccuracyCache:
    """arch_id -> trained accuracy, one JSON file per dataset/space/training settings/training seed.

    Shared by worker processes: every write re-reads the file and merges under an ``fcntl`` lock;
    a miss re-reads the file when another process changed it.
    """

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        self.path = path
        self.header = dict(header)
        self.entries: dict[str, dict[str, Any]] = {}
        self._mtime = None
        self._reload()

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._mtime:
            return
        data = json.loads(self.path.read_text())
        if data.get("header") != json.loads(json.dumps(self.header)):
            raise RuntimeError(f"{self.path} was written with other settings: {data.get('header')}; delete it")
        self.entries.update(data.get("accuracy", {}))
        self._mtime = mtime

    def get(self, arch_id: str) -> dict[str, Any] | None:
        if arch_id not in self.entries:
            self._reload()
        return self.entries.get(arch_id)

    def put(self, arch_id: str, entry: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(Path(tempfile.gettempdir()) / f"{self.path.name}.lock", "w") as lock:  # keeps the repo clean
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._mtime = None
            self._reload()
            self.entries[arch_id] = dict(entry)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"header": self.header, "accuracy": self.entries}, sort_keys=True, indent=0))
            os.replace(tmp, self.path)
            self._mtime = self.path.stat().st_mtime_ns


def cache_path(dataset: str, preset: str, training: Mapping[str, Any], train_seed: int) -> Path:
    subset = training.get("train_subset") or "all"
    return CACHE / (f"compare_strategies_{dataset}_{preset}_e{training['epochs']}_b{training['batch_size']}"
                    f"_sub{subset}_seed{train_seed}.json")


# ---------------------------------------------------------------------------- per dataset setup


def dataset_setup(dataset: str, data_root: Path, training: Mapping[str, Any], preset: str) -> dict[str, Any]:
    """Everything a run on ``dataset`` needs that is the same for every strategy and seed."""
    from nni_hwnas.hardware.costs import load_predictor
    from nni_hwnas.data.datasets import load_dataset
    from nni_hwnas.hardware.profiles import load_profile
    from search_spaces.registry import load_preset, make_definition

    data = load_dataset(dataset, data_root=data_root, seed=TRAIN_SEED)
    space, choices = load_preset(preset)
    definition = make_definition(space, choices, data.input_shape, data.num_classes)
    predictor = load_predictor(load_profile(PROFILE), definition)
    predictor.check_coverage()
    rng = np.random.default_rng(0)
    random_latency = [predictor.predict(definition.random_sample(rng)) for _ in range(1000)]
    extremes = [predictor.predict(s) for s in
                [{**definition.extreme_sample("max"), "depth": d} for d in definition.choices["depth"]]]
    cheapest = [predictor.predict(s) for s in definition.cheapest_candidates()]
    labels, counts = np.unique(data.val_y.numpy(), return_counts=True)
    return {
        "dataset": dataset, "data_root": str(data_root), "preset": preset, "space": space, "choices": choices,
        "input_shape": list(data.input_shape), "num_classes": data.num_classes, "training": dict(training),
        "train_seed": TRAIN_SEED, "train_size": len(data.train_x), "val_size": len(data.val_x),
        "majority_val_accuracy": float(counts.max() / counts.sum()),
        "reward_target_ms": float(np.median(random_latency)), "reward_w": REWARD_W,
        "max_latency_ms": float(max(max(random_latency), max(extremes))),
        "min_latency_ms": float(min(min(random_latency), min(cheapest))),
        "random_latency_ms_p10_p90": [float(np.percentile(random_latency, 10)), float(np.percentile(random_latency, 90))],
        "space_size": definition.size(),
        "cache": str(cache_path(dataset, preset, training, TRAIN_SEED).relative_to(REPO)),
    }


# ---------------------------------------------------------------------------- inside a worker


class RunContext:
    """What the evaluator needs while one run is going (one per worker process and dataset)."""

    def __init__(self, setup: Mapping[str, Any]) -> None:
        from nni_hwnas.hardware.costs import load_predictor
        from nni_hwnas.hardware.profiles import load_profile
        from search_spaces.registry import make_definition

        self.setup = dict(setup)
        self.definition = make_definition(setup["space"], setup["choices"], setup["input_shape"], setup["num_classes"])
        self.predictor = load_predictor(load_profile(PROFILE), self.definition)
        header = {"dataset": setup["dataset"], "preset": setup["preset"], "space": setup["space"],
                  "choices": setup["choices"], "training": setup["training"], "train_seed": setup["train_seed"]}
        self.cache = AccuracyCache(REPO / setup["cache"], header)
        self.objective: dict[str, Any] = {"default_metric": "accuracy"}
        self.rows: list[dict[str, Any]] = []
        self.trained = 0

    def evaluate(self, sample: Mapping[str, Any], layer_specs: Sequence[Any]) -> dict[str, float]:
        from nni_hwnas.evaluation.reward import default_value
        from nni_hwnas.evaluation.trial import evaluate_architecture
        from nni_hwnas.evaluation.training import TrainingDiverged

        arch_id = self.definition.arch_id(sample)
        entry = self.cache.get(arch_id)
        cached = entry is not None
        if entry is None:
            started = time.perf_counter()
            try:
                metrics = evaluate_architecture(layer_specs, {"name": self.setup["dataset"],
                                                              "data_root": self.setup["data_root"]},
                                                self.setup["training"], self.setup["train_seed"], threads=1,
                                                latency_repeats=1)
                entry = {"accuracy": float(metrics["accuracy"]), "train_seconds": round(metrics["train_seconds"], 3)}
            except TrainingDiverged as exc:
                entry = {"failed": str(exc)[:200]}
            entry["seconds"] = round(time.perf_counter() - started, 3)
            self.cache.put(arch_id, entry)
            self.trained += 1
        seen = any(r["arch_id"] == arch_id for r in self.rows)
        row: dict[str, Any] = {"trial": len(self.rows) + 1, "arch_id": arch_id, "cached": cached,
                               "repeat_in_run": seen}
        if "failed" in entry:
            self.rows.append({**row, "status": "FAILED"})
            raise TrainingDiverged(entry["failed"])
        latency = self.predictor.predict(sample)
        metrics = {"accuracy": entry["accuracy"], "latency_ms": latency, "within_budget": 1}
        metrics["default"] = default_value(metrics, self.objective["default_metric"],
                                           self.setup["reward_target_ms"], self.setup["reward_w"])
        self.rows.append({**row, "status": "SUCCEEDED", **metrics})
        return metrics


_CONTEXTS: dict[str, RunContext] = {}


def benchmark_trial(model: Any, dataset: str) -> None:
    """The ``FunctionalEvaluator`` body: evaluate the frozen model, report the metric dict."""
    import nni

    metrics = _CONTEXTS[dataset].evaluate(model.sample, model.layer_specs)
    nni.report_final_result(metrics)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    for name in ("nni", "nni_hwnas", "nni_hwnas.strategies"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")


def run_one(setup: Mapping[str, Any], variant: Variant, seed: int, trials: int) -> dict[str, Any]:
    """One search: ``variant`` with ``seed`` for ``trials`` trials on NNI's sequential engine."""
    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.experiment import NasExperiment
    from nni.nas.experiment.config import NasExperimentConfig, SequentialEngineConfig

    from nni_hwnas.experiment.strategy_registry import make_strategy
    from search_spaces.registry import make_model_space

    for name in ("nni", "nni_hwnas", "nni_hwnas.strategies"):  # NNI sets its loggers' levels on import
        logging.getLogger(name).setLevel(logging.ERROR)
    dataset = setup["dataset"]
    if dataset not in _CONTEXTS:
        _CONTEXTS[dataset] = RunContext(setup)
    ctx = _CONTEXTS[dataset]
    ctx.rows, ctx.trained = [], 0
    ctx.objective = {"default_metric": variant.default_metric}
    if variant.strategy in OPTUNA_SAMPLERS.values():
        return run_optuna(ctx, variant, seed, trials)
    if variant.strategy == "hw_evolution":
        strategy = make_strategy("hw_evolution", OUR_ARGS, seed, definition=ctx.definition,
                                 screen=ctx.predictor.predict)
    else:
        strategy = make_strategy(variant.strategy, BUILTIN_ARGS[variant.strategy], seed)
    space = make_model_space(setup["space"], setup["choices"], setup["input_shape"], setup["num_classes"])
    evaluator = FunctionalEvaluator(benchmark_trial, dataset=dataset)
    config = NasExperimentConfig(
        execution_engine=SequentialEngineConfig(max_model_count=trials, continue_on_failure=True),
        model_format="simplified", max_trial_number=trials)
    experiment = NasExperiment(space, evaluator, strategy, config)
    canonical = experiment.config.canonical_copy()
    engine = experiment.execution_engine_factory(canonical.execution_engine)
    exec_space = experiment.executable_model_factory(canonical.model_format)
    started = time.perf_counter()
    try:
        strategy.initialize(exec_space, engine)
        strategy.run()
    finally:
        engine.shutdown()
    return {"dataset": dataset, "strategy": variant.label, "seed": seed, "rows": list(ctx.rows),
            "trained": ctx.trained, "seconds": time.perf_counter() - started,
            "engine": type(engine).__name__, "strategy_repr": repr(strategy)}


def optuna_sampler(name: str, seed: int) -> Any:
    import optuna

    if name == "optuna_tpe":
        return optuna.samplers.TPESampler(multivariate=True, seed=seed)
    return optuna.samplers.NSGAIISampler(seed=seed)


def run_optuna(ctx: RunContext, variant: Variant, seed: int, trials: int) -> dict[str, Any]:
    """One Optuna study (accuracy up, predicted latency down) over the space's labels, ask/tell."""
    import warnings

    import optuna
    from nni_hwnas.evaluation.training import TrainingDiverged

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    labels = ctx.definition.mutable_labels()
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna_sampler(variant.strategy, seed))
        for _ in range(trials):
            trial = study.ask()
            sample = {label: trial.suggest_categorical(label, list(values)) for label, values in labels.items()}
            try:
                metrics = ctx.evaluate(sample, ctx.definition.describe(ctx.definition.complete(sample)))
            except TrainingDiverged:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            study.tell(trial, [metrics["accuracy"], metrics["latency_ms"]])
    return {"dataset": ctx.setup["dataset"], "strategy": variant.label, "seed": seed, "rows": list(ctx.rows),
            "trained": ctx.trained, "seconds": time.perf_counter() - started, "engine": "optuna ask/tell (in-process)",
            "strategy_repr": f"optuna {optuna.__version__} {type(study.sampler).__name__}"}


# ---------------------------------------------------------------------------- summaries


def reference_for(setup: Mapping[str, Any], score_worst: float | None = None, cost_scale: str = "log") -> Any:
    """The dataset's fixed reference: log latency from 0.9 x the space's cheapest (or linear from 0)."""
    from nni_hwnas.reporting.hypervolume_trace import HvReference

    worst = setup["majority_val_accuracy"] if score_worst is None else score_worst
    floor = 0.9 * setup["min_latency_ms"] if cost_scale == "log" else 0.0
    return HvReference(score="accuracy", cost="latency_ms", score_worst=float(worst), score_best=1.0,
                       cost_worst=1.1 * setup["max_latency_ms"], cost_best=floor, cost_scale=cost_scale)


def known_front(runs: Sequence[Mapping[str, Any]]) -> set[str]:
    """Architecture ids on the Pareto front of everything any run evaluated (accuracy up, latency down)."""
    from nni_hwnas.metrics import to_losses
    from nni_hwnas.reporting.pareto import pareto_mask

    seen = {t["arch_id"]: t for r in runs for t in r["rows"] if t.get("status") == "SUCCEEDED"}
    if not seen:
        return set()
    ids = list(seen)
    mask = pareto_mask(to_losses([seen[i] for i in ids], ["accuracy", "latency_ms"]))
    return {i for i, on in zip(ids, mask) if on}


def summarise_dataset(setup: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], labels: Sequence[str],
                      trials: int) -> tuple[list[dict[str, Any]], dict[str, list[np.ndarray]], dict[str, Any]]:
    from nni_hwnas.reporting.report import first_reaching, summarise

    groups = {label: [r["rows"] for r in sorted(runs, key=lambda r: r["seed"]) if r["strategy"] == label]
              for label in labels}
    groups = {k: v for k, v in groups.items() if v}
    reference = reference_for(setup)
    summaries, curves = summarise(groups, reference, cost_levels=[])
    _, curves0 = summarise(groups, reference_for(setup, 0.0), cost_levels=[])
    _, curves_lin = summarise(groups, reference_for(setup, cost_scale="linear"), cost_levels=[])
    front = known_front(runs)
    rows = []
    for summary in summaries:
        row = summary.row()
        label = row.pop("strategy")
        repeats = [sum(1 for t in rows_ if t.get("repeat_in_run")) for rows_ in groups[label]]
        rows.append({"dataset": setup["dataset"], "strategy": label, **row,
                     "hv_median_acc0": float(np.median([c[-1] for c in curves0[label]])),
                     "hv_median_linear": float(np.median([c[-1] for c in curves_lin[label]])),
                     "repeated_arch_trials_median": float(np.median(repeats)), "known_front": len(front),
                     "front_found_median": float(np.median([len(front & {t["arch_id"] for t in rows_})
                                                            for rows_ in groups[label]]))})
    extra: dict[str, Any] = {"reference": reference.as_dict(), "known_front": sorted(front)}
    builtin = [r for r in rows if r["strategy"] != OURS]
    ours = next((r for r in rows if r["strategy"] == OURS), None)
    if ours and builtin:
        best = max(builtin, key=lambda r: r["hv_median"])
        best0 = max(builtin, key=lambda r: r["hv_median_acc0"])
        best_lin = max(builtin, key=lambda r: r["hv_median_linear"])
        best_any = max(float(c[-1]) for runs_ in curves.values() for c in runs_)
        reach = [first_reaching(c, best["hv_median"]) for c in curves[OURS]]
        reached = [t for t in reach if t is not None]
        extra.update({
            "best_builtin": best["strategy"], "best_builtin_hv_median": best["hv_median"],
            "ratio_hv_median": ours["hv_median"] / best["hv_median"] if best["hv_median"] > 0 else float("inf"),
            "ratio_hv_median_acc0": ours["hv_median_acc0"] / best0["hv_median_acc0"],
            "ratio_hv_median_linear": ours["hv_median_linear"] / best_lin["hv_median_linear"],
            "best_builtin_linear": best_lin["strategy"],
            "best_any_run_hv": best_any,
            "headroom": best_any / best["hv_median"] if best["hv_median"] > 0 else float("inf"),
            "best_builtin_acc0": best0["strategy"],
            "ours_trials_to_best_builtin_final": float(np.median(reached)) if len(reached) * 2 > len(reach) else None,
            "ours_runs_reaching_best_builtin_final": len(reached),
            "trials": trials,
        })
        extra["target_hv_met"] = extra["ratio_hv_median"] >= 1.2
        t = extra["ours_trials_to_best_builtin_final"]
        extra["target_trials_met"] = t is not None and t <= trials / 2
    return rows, curves, extra


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if not value.is_integer() or digits == 4 else f"{value:.0f}"
    return str(value)


def print_table(rows: Sequence[Mapping[str, Any]]) -> None:
    cols = [("strategy", 31), ("seeds", 5), ("trials", 6), ("hv_median", 9), ("hv_min", 7), ("hv_max", 7),
            ("trials_to_90pct", 15), ("runs_reaching_90pct", 9), ("best_accuracy", 8), ("repeated_arch_trials_median", 8),
            ("front_found_median", 8), ("known_front", 6), ("hv_median_linear", 8)]
    heads = {"runs_reaching_90pct": "reach90", "best_accuracy": "best_acc", "repeated_arch_trials_median": "repeats",
             "front_found_median": "found", "known_front": "front", "hv_median_linear": "hv_lin"}
    print("  ".join(f"{heads.get(c, c):>{w}}" if i else f"{heads.get(c, c):<{w}}" for i, (c, w) in enumerate(cols)))
    for row in rows:
        cells = []
        for i, (c, w) in enumerate(cols):
            v = row.get(c)
            text = fmt(v, 1) if c in ("trials_to_90pct", "repeated_arch_trials_median", "front_found_median") else fmt(v)
            cells.append(f"{text:>{w}}" if i else f"{text:<{w}}")
        print("  ".join(cells))


# ---------------------------------------------------------------------------- main


def pick_datasets(requested: str | None, data_root: Path) -> list[str]:
    if requested:
        names = [n.strip().lower() for n in requested.split(",") if n.strip()]
        unknown = [n for n in names if n not in DATASETS]
        if unknown:
            raise SystemExit(f"unknown dataset(s) {unknown}; this benchmark knows {sorted(DATASETS)}")
        return names
    found = [n for n in MEDMNIST_PREFERENCE if (data_root / f"{n}.npz").is_file()]
    if not found:
        print(f"note: no MedMNIST file ({', '.join(MEDMNIST_PREFERENCE)}) in {data_root}: digits only")
    return ["digits", *found[:1]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="search seeds per strategy (0..N-1)")
    parser.add_argument("--trials", type=int, default=60, help="trial budget per run")
    parser.add_argument("--datasets", default=None, help="comma list; default digits + a MedMNIST set in the data root")
    parser.add_argument("--data-root", default=str(DEFAULT_DATA))
    parser.add_argument("--workers", type=int, default=3,
                        help="worker processes (TPE's NNI strategy sleeps 1 s per trial; others overlap it)")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--json", default=None, help="write one row per dataset and strategy here")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, 12 trials, 1 epoch on 300 images")
    parser.add_argument("--only", default=None,
                        help="comma list of strategy labels (or their start, e.g. 'hw_evolution,Optuna') to run")
    args = parser.parse_args()

    seeds, trials = args.seeds, args.trials
    if args.quick:
        seeds, trials = min(seeds, 2), min(trials, 12)
    data_root = Path(args.data_root).resolve()
    names = pick_datasets(args.datasets, data_root)
    if args.quick and not args.datasets:
        names = names[:1] + names[1:2]
    out = Path(args.out)
    if args.quick and args.out == str(DEFAULT_OUT):
        out = out / "quick"
    out.mkdir(parents=True, exist_ok=True)

    _worker_init()
    setups = {}
    for name in names:
        training = dict(DATASETS[name]["training"])
        if args.quick:
            training.update(QUICK_TRAINING)
        setups[name] = dataset_setup(name, data_root, training, DATASETS[name]["preset"])

    from nni_hwnas.experiment.runinfo import run_record

    all_variants = variants()
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        all_variants = [v for v in all_variants if any(v.label.startswith(w) for w in wanted)]
        if not all_variants:
            raise SystemExit(f"--only {args.only!r} matches no strategy; labels: {[v.label for v in variants()]}")
    print(f"compare_strategies: {len(names)} dataset(s) x {len(all_variants)} strategies x {seeds} seeds x "
          f"{trials} trials; engine: {ENGINE}; workers: {args.workers}")
    print(f"ours: hw_evolution {OUR_ARGS}; built-ins: " + "; ".join(f"{k} {v}" for k, v in BUILTIN_ARGS.items())
          + " (TPE optimize_mode=maximize)")
    for s in setups.values():
        t = s["training"]
        print(f"[{s['dataset']}] space {s['space']} preset {s['preset']} ({s['space_size']:,} label combinations), "
              f"input {'x'.join(map(str, s['input_shape']))}, {s['num_classes']} classes; training: {t['epochs']} epochs, "
              f"batch {t['batch_size']}, lr {t['learning_rate']} {t['lr_schedule']}, subset "
              f"{t['train_subset'] or 'all'} of {s['train_size']} train images, val {s['val_size']}, training seed "
              f"{s['train_seed']}; latency: predicted ({PROFILE} table); reward target {s['reward_target_ms']:.4f} ms "
              f"(median of 1,000 random archs), w {s['reward_w']}; HV reference: accuracy "
              f"{s['majority_val_accuracy']:.4f} (majority class) at latency {1.1 * s['max_latency_ms']:.4f} ms "
              f"(1.1 x max predicted {s['max_latency_ms']:.4f})")
    sys.stdout.flush()

    # Jobs grouped by strategy so runs that propose the same architectures (the [reward] and
    # [accuracy] runs of one built-in and seed share their random start) rarely train them at the
    # same time in two workers. NNI's TPE strategy sleeps 1 s per trial: its runs are spread
    # evenly among the others so that sleep overlaps other runs' training.
    def jobs_of(selected: Sequence[Variant]) -> list[tuple]:
        return [(setups[name], v, seed) for v in selected for name in names for seed in range(seeds)]

    tpe_jobs = jobs_of([v for v in all_variants if v.strategy == "TPE"])
    other_jobs = jobs_of([v for v in all_variants if v.strategy != "TPE"])
    keyed = [(i / len(group), job) for group in (tpe_jobs, other_jobs) for i, job in enumerate(group)]
    jobs = [job for _, job in sorted(keyed, key=lambda pair: pair[0])]  # stable: TPE first on ties
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    if args.workers <= 1:
        for job in jobs:
            results.append(run_one(*job, trials))
            _progress(results, len(jobs), started)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=context, initializer=_worker_init) as pool:
            futures = [pool.submit(run_one, *job, trials) for job in jobs]
            for future in as_completed(futures):
                results.append(future.result())
                _progress(results, len(jobs), started)
    wall = time.perf_counter() - started

    from nni_hwnas.reporting.plots import plot_hypervolume

    table_rows: list[dict[str, Any]] = []
    extras: dict[str, Any] = {}
    labels = [v.label for v in all_variants]
    for name in names:
        setup = setups[name]
        runs = [r for r in results if r["dataset"] == name]
        rows, curves, extra = summarise_dataset(setup, runs, labels, trials)
        table_rows.extend(rows)
        distinct = {t["arch_id"] for r in runs for t in r["rows"]}
        extra["distinct_architectures_evaluated"] = len(distinct)
        extra["architectures_trained_this_invocation"] = sum(r["trained"] for r in runs)
        extras[name] = extra
        png = plot_hypervolume({k: [list(map(float, c)) for c in v] for k, v in curves.items()},
                               out / f"hypervolume_{name}.png",
                               subtitle=f"{name}: accuracy {extra['reference']['score_worst']:.3f} at latency_ms "
                                        f"{extra['reference']['cost_worst']:.3f}")
        (out / f"runs_{name}.json").write_text(json.dumps({"setup": setup, "reference": extra["reference"], "runs": sorted(
            runs, key=lambda r: (labels.index(r["strategy"]), r["seed"]))}, indent=1))
        ref = extra["reference"]
        print(f"\n== {name}: hypervolume of {reference_for(setup).describe()}; {seeds} seeds x {trials} trials; "
              f"trials_to_90pct = median trials to reach 90% of the best final HV of any run; known front: "
              f"{len(extra['known_front'])} points (the front of all {extra['distinct_architectures_evaluated']} "
              f"architectures any run evaluated), found = median of them a run found; hv_lin = linear latency axis")
        print_table(rows)
        if "ratio_hv_median" in extra:
            t = extra["ours_trials_to_best_builtin_final"]
            print(f"ours / best baseline ({extra['best_builtin']}): median final HV ratio "
                  f"{extra['ratio_hv_median']:.3f} (target >= 1.2: {'met' if extra['target_hv_met'] else 'NOT met'}); "
                  f"ours reaches that baseline's median final HV ({extra['best_builtin_hv_median']:.4f}) in median "
                  f"{fmt(t, 1)} trials ({extra['ours_runs_reaching_best_builtin_final']}/{seeds} runs; target <= "
                  f"{trials / 2:.0f}: {'met' if extra['target_trials_met'] else 'NOT met'})")
            print(f"  headroom: the best final HV of any run ({extra['best_any_run_hv']:.4f}) is "
                  f"{extra['headroom']:.3f}x that baseline's median: the most any run here showed over it")
            print(f"  sensitivity (not the target): accuracy over [0, 1]: ratio {extra['ratio_hv_median_acc0']:.3f} "
                  f"(vs {extra['best_builtin_acc0']}); linear latency: ratio {extra['ratio_hv_median_linear']:.3f} "
                  f"(vs {extra['best_builtin_linear']})")
        print(f"  distinct architectures evaluated: {extra['distinct_architectures_evaluated']}; trained in this "
              f"invocation: {extra['architectures_trained_this_invocation']} (the rest from the cache "
              f"{setup['cache']}); plot: {png.relative_to(REPO) if png.is_relative_to(REPO) else png}")

    print(f"\nwall time {wall / 60:.1f} min for {len(results)} runs ({len(results) * trials} trials)")
    record = run_record(0, {"seeds": list(range(seeds)), "trials": trials, "datasets": names, "quick": args.quick,
                            "workers": args.workers, "engine": ENGINE, "ours": OUR_ARGS, "builtins": BUILTIN_ARGS,
                            "profile": PROFILE, "train_seed": TRAIN_SEED, "reward_w": REWARD_W},
                        setups=setups, summary=extras, rows=table_rows, wall_seconds=wall,
                        note="seed field: the training seed; search seeds are config.seeds")
    (out / "run.json").write_text(json.dumps(record, indent=1, default=str))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table_rows, indent=1) + "\n")
        print(f"wrote {path}")
    print(f"results in {out}")
    return 0


def _progress(results: Sequence[Mapping[str, Any]], total: int, started: float) -> None:
    r = results[-1]
    print(f"  [{len(results)}/{total} {(time.perf_counter() - started) / 60:5.1f} min] {r['dataset']} {r['strategy']} "
          f"seed {r['seed']}: {len(r['rows'])} trials, {r['trained']} trained, {r['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
