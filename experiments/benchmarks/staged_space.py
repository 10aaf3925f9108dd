"""Benchmark: progressive vs whole-space ``hw_evolution`` vs NNI's RegularizedEvolution on ``staged_net``.

Issue 13 (EfficientNAS, seed 001). Every strategy searches ``staged_net_s3`` (the whole staged
space) with the same trials, seeds and evaluator, on ``digits`` and on BreastMNIST and
PneumoniaMNIST from ``../shared/data`` when present:

- ``progressive``: ours, three objectives (accuracy, predicted ``latency_ms``, ``params``),
  starting on stage 1's ops and widening after 1/4 and 1/2 of the trials;
- ``whole space``: the same, ``progressive: off``;
- ``RegularizedEvolution``: NNI's, on accuracy (it takes one number), through NNI's sequential
  engine exactly as ``compare_strategies.py`` runs it (population 12, tournament 4, like ours).

Evaluator, as in ``compare_strategies.py``: a short training run under one fixed training seed
(accuracy is a function of the architecture, memoised in ``experiments/benchmarks/cache/``);
latency is *predicted* from ``hw_profiles/tables/host-cpu-1t-staged_net.json`` (measured on this
machine). Reported per dataset and strategy, over seeds (median [min, max]):

- the 3-D hypervolume of (accuracy, latency, params), normalised with stated bounds: accuracy in
  [majority-class rate, 1], latency and params in [0, 1.1 x the largest of 1,000 random
  architectures and the largest one]; reference = the worst corner;
- the best *test* accuracy under a latency budget (the median predicted latency of 1,000 random
  architectures): the in-budget trial with the best validation accuracy, retrained with the
  search's settings and scored on the test split;
- the params of the final front's members.

Then the best in-budget ``staged_net`` model against the best in-budget ``conv_net_small`` model
(random search, same trials), both measured end to end on this machine side by side.

    .venv/bin/python experiments/benchmarks/staged_space.py [--seeds 3] [--trials 24]
        [--datasets digits,breastmnist,pneumoniamnist] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments" / "benchmarks"))

import compare_strategies as cs  # noqa: E402  (the shared evaluator, cache and NNI engine runner)

TABLE = REPO / "hw_profiles" / "tables" / "host-cpu-1t-staged_net.json"
PRESET = "staged_net_s3"
RESULTS = REPO / "experiments" / "benchmarks" / "results"
DATASETS: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 3, "batch_size": 64, "learning_rate": 0.05, "lr_schedule": "cosine", "augment": True,
               "train_subset": None},
    "breastmnist": {"epochs": 4, "batch_size": 64, "learning_rate": 0.05, "lr_schedule": "cosine", "augment": True,
                    "train_subset": None},
    "pneumoniamnist": {"epochs": 2, "batch_size": 64, "learning_rate": 0.05, "lr_schedule": "cosine",
                       "augment": True, "train_subset": 600},
}
OBJECTIVES = {"use": ["score", "cost", "second_cost"], "score_metric": "accuracy", "cost_metric": "latency_ms",
              "second_cost_metric": "params"}
SEARCH = {"population_size": 12, "sample_size": 4, "initial_random": 6}
RE_ARGS = {"population_size": 12, "sample_size": 4}
STRATEGIES = ("progressive", "whole space", "RegularizedEvolution")


def staged_predictor(definition: Any) -> Any:
    from nni_hwnas.hardware.latency_table import LatencyTable
    from nni_hwnas.hardware.predictor import LatencyPredictor

    predictor = LatencyPredictor(LatencyTable.load(TABLE, "host-cpu-1t"), definition)
    predictor.check_coverage()
    return predictor


def setup_for(dataset: str, data_root: Path, preset: str = PRESET) -> dict[str, Any]:
    """What every run on ``dataset`` shares: shapes, bounds, the latency budget, the cache file."""
    from nni_hwnas.data.datasets import load_dataset
    from nni_hwnas.hardware.costs import load_predictor
    from nni_hwnas.hardware.profiles import load_profile
    from search_spaces.layers import parameter_count
    from search_spaces.registry import load_preset, make_definition

    data = load_dataset(dataset, data_root=data_root, seed=cs.TRAIN_SEED)
    space, choices = load_preset(preset)
    definition = make_definition(space, choices, data.input_shape, data.num_classes)
    predictor = staged_predictor(definition) if space == "staged_net" else \
        load_predictor(load_profile(cs.PROFILE), definition)
    rng = np.random.default_rng(0)
    samples = [definition.random_sample(rng) for _ in range(1000)] + [definition.extreme_sample("max")]
    latency = [predictor.predict(s) for s in samples]
    params = [parameter_count(definition.describe(s)) for s in samples]
    _, counts = np.unique(data.val_y.numpy(), return_counts=True)
    training = DATASETS[dataset]
    return {"dataset": dataset, "data_root": str(data_root), "preset": preset, "space": space, "choices": choices,
            "input_shape": list(data.input_shape), "num_classes": data.num_classes, "training": training,
            "train_seed": cs.TRAIN_SEED, "majority_val_accuracy": float(counts.max() / counts.sum()),
            "budget_ms": float(np.median(latency[:1000])), "max_latency_ms": float(max(latency)),
            "max_params": int(max(params)), "space_size": definition.size(), "reward_target_ms": 1.0,
            "reward_w": cs.REWARD_W,
            "cache": str(cs.cache_path(dataset, preset, training, cs.TRAIN_SEED).relative_to(REPO))}


class StagedContext(cs.RunContext):
    """``compare_strategies``' evaluator with this space's predictor, adding ``params`` and the sample."""

    def __init__(self, setup: Mapping[str, Any]) -> None:
        from search_spaces.registry import make_definition

        self.setup = dict(setup)
        self.definition = make_definition(setup["space"], setup["choices"], setup["input_shape"], setup["num_classes"])
        self.predictor = staged_predictor(self.definition)
        header = {k: setup[k] for k in ("dataset", "preset", "space", "choices", "training", "train_seed")}
        self.cache = cs.AccuracyCache(REPO / setup["cache"], header)
        self.objective = {"default_metric": "accuracy"}
        self.rows, self.trained = [], 0

    def evaluate(self, sample: Mapping[str, Any], layer_specs: Sequence[Any]) -> dict[str, float]:
        from search_spaces.layers import parameter_count

        try:
            metrics = super().evaluate(sample, layer_specs)
        finally:
            self.rows[-1]["sample"] = dict(sample)
        metrics["params"] = float(parameter_count(layer_specs))
        self.rows[-1]["params"] = metrics["params"]
        return metrics


def run_ours(ctx: StagedContext, progressive: bool, seed: int, trials: int) -> dict[str, Any]:
    """Our ask/tell core on the same evaluator (the NNI adapter adds only the engine's plumbing)."""
    from nni_hwnas.evaluation.training import TrainingDiverged
    from strategies.hw_evolution import HwEvolution

    definition = ctx.definition
    schedule = {"after_trials": [trials // 4, trials // 2], "stages": definition.progressive_stages} \
        if progressive else "off"
    evo = HwEvolution(definition.mutable_labels(), seed=seed, identity=definition.arch_id,
                      canonical=definition.canonical, objectives=OBJECTIVES, progressive=schedule, **SEARCH)
    ctx.rows, ctx.trained = [], 0
    started = time.perf_counter()
    for _ in range(trials):
        sample = evo.ask()
        try:
            evo.tell(sample, ctx.evaluate(sample, definition.describe(sample)))
        except TrainingDiverged:
            evo.tell(sample, None, failed=True)
    label = "progressive" if progressive else "whole space"
    return {"strategy": label, "seed": seed, "rows": list(ctx.rows), "trained": ctx.trained,
            "seconds": time.perf_counter() - started, "widenings": evo.widenings}


def run_nni_re(setup: Mapping[str, Any], seed: int, trials: int) -> dict[str, Any]:
    cs.BUILTIN_ARGS["RegularizedEvolution"] = dict(RE_ARGS)  # same population and tournament as ours
    result = cs.run_one(setup, cs.Variant("RegularizedEvolution", "RegularizedEvolution", "accuracy"), seed, trials)
    return {**result, "strategy": "RegularizedEvolution"}


# ---------------------------------------------------------------------------- measures


def hypervolume_3d(rows: Sequence[Mapping[str, Any]], setup: Mapping[str, Any]) -> float:
    from nni_hwnas.reporting.pareto import hypervolume, normalize

    ok = [r for r in rows if r.get("status") == "SUCCEEDED"]
    if not ok:
        return 0.0
    losses = np.array([[-r["accuracy"], r["latency_ms"], r["params"]] for r in ok])
    lower = np.array([-1.0, 0.0, 0.0])
    upper = np.array([-setup["majority_val_accuracy"], 1.1 * setup["max_latency_ms"], 1.1 * setup["max_params"]])
    return hypervolume(normalize(losses, lower, upper), np.ones(3))


def front_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    from nni_hwnas.metrics import to_losses
    from nni_hwnas.reporting.pareto import pareto_front_indices

    ok = [r for r in rows if r.get("status") == "SUCCEEDED"]
    return [ok[i] for i in pareto_front_indices(to_losses(ok, ["accuracy", "latency_ms", "params"]))] if ok else []


def best_in_budget(rows: Sequence[Mapping[str, Any]], budget_ms: float) -> Mapping[str, Any] | None:
    inside = [r for r in rows if r.get("status") == "SUCCEEDED" and r["latency_ms"] <= budget_ms]
    return max(inside, key=lambda r: (r["accuracy"], -r["latency_ms"])) if inside else None


_TEST_CACHE: dict[tuple[str, str], float] = {}


def test_accuracy(setup: Mapping[str, Any], definition: Any, sample: Mapping[str, Any]) -> float:
    """Retrain ``sample`` with the search's settings and seed, score it on the test split."""
    import torch

    from nni_hwnas.data.datasets import load_dataset
    from nni_hwnas.evaluation.training import TrainSettings, evaluate_accuracy, train_model
    from nni_hwnas.evaluation.trial import reinitialise

    key = (setup["dataset"] + setup["preset"], definition.arch_id(sample))
    if key not in _TEST_CACHE:
        torch.set_num_threads(1)
        data = load_dataset(setup["dataset"], data_root=setup["data_root"], seed=setup["train_seed"])
        network = reinitialise(definition.describe(sample), setup["train_seed"])
        train_model(network, data, TrainSettings(**setup["training"]), setup["train_seed"])
        _TEST_CACHE[key] = evaluate_accuracy(network.eval(), data.test_x, data.test_y, data.task == "multi-label")
    return _TEST_CACHE[key]


def measured_ms(definition: Any, sample: Mapping[str, Any]) -> float:
    from nni_hwnas.hardware.profiler import TimingSettings, time_model
    from nni_hwnas.hardware.profiles import load_profile

    settings = TimingSettings(warmup_runs=30, max_seconds=0.3)
    return time_model(definition.describe(sample), definition.input_shape, load_profile("host-cpu-1t"),
                      settings).value(settings.statistic)


def spread(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())} if v.size else {}


def summarise(setup: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], definition: Any) -> list[dict[str, Any]]:
    out = []
    for strategy in STRATEGIES:
        mine = [r for r in runs if r["strategy"] == strategy]
        tests, front_params = [], []
        for run in mine:
            best = best_in_budget(run["rows"], setup["budget_ms"])
            run["best_in_budget"] = best and {k: best[k] for k in ("arch_id", "accuracy", "latency_ms", "params")}
            if best is not None:
                run["best_in_budget"]["test_accuracy"] = test_accuracy(setup, definition, best["sample"])
                tests.append(run["best_in_budget"]["test_accuracy"])
            run["front_params"] = [int(r["params"]) for r in front_rows(run["rows"])]
            front_params += run["front_params"]
            run["hypervolume_3d"] = hypervolume_3d(run["rows"], setup)
        out.append({"dataset": setup["dataset"], "strategy": strategy, "runs": len(mine),
                    "hv3d": spread([r["hypervolume_3d"] for r in mine]), "test_acc_in_budget": spread(tests),
                    "front_params": spread(front_params), "front_size": spread([len(r["front_params"]) for r in mine]),
                    "trained": int(sum(r["trained"] for r in mine))})
    return out


def compare_with_conv_net(setup: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], trials: int,
                          definition: Any) -> dict[str, Any]:
    """The best in-budget staged_net model of all runs vs the best in-budget conv_net_small model
    of a random search of ``trials`` trials, both measured here side by side."""
    from search_spaces.layers import parameter_count
    from search_spaces.registry import load_preset, make_definition

    conv_setup = {**setup, "preset": "conv_net_small", "space": "conv_net", "choices": load_preset("conv_net_small")[1]}
    conv_def = make_definition("conv_net", conv_setup["choices"], setup["input_shape"], setup["num_classes"])
    rng = np.random.default_rng(0)
    conv_samples = {conv_def.arch_id(s): s for s in (conv_def.canonical(conv_def.random_sample(rng))
                                                     for _ in range(trials))}
    conv_rows = []
    for sample in conv_samples.values():
        ms = measured_ms(conv_def, sample)
        if ms <= setup["budget_ms"]:
            conv_rows.append({"sample": sample, "measured_ms": ms, "test_accuracy": test_accuracy(conv_setup, conv_def, sample),
                              "params": parameter_count(conv_def.describe(sample))})
    staged = []
    for run in runs:
        best = run.get("best_in_budget")
        if best:
            staged.append({**best, "sample": next(x["sample"] for x in run["rows"] if x["arch_id"] == best["arch_id"])})
    best_staged = max(staged, key=lambda r: r["test_accuracy"]) if staged else None
    best_conv = max(conv_rows, key=lambda r: r["test_accuracy"]) if conv_rows else None
    result: dict[str, Any] = {"budget_ms": setup["budget_ms"], "conv_candidates_in_budget": len(conv_rows)}
    if best_staged:
        result["staged_net"] = {"test_accuracy": best_staged["test_accuracy"], "params": best_staged["params"],
                                "measured_ms": measured_ms(definition, best_staged["sample"]),
                                "sample": best_staged["sample"]}
    if best_conv:
        result["conv_net_small"] = {k: best_conv[k] for k in ("test_accuracy", "params", "measured_ms", "sample")}
    return result


def print_dataset(rows: Sequence[Mapping[str, Any]], dataset: str, comparison: Mapping[str, Any]) -> None:
    print(f"\n{'dataset':15s} {'strategy':22s} {'HV3d median [min, max]':>26s} {'test acc in budget':>24s} "
          f"{'front params median [min, max]':>32s}")
    for row in rows:
        hv, acc, par = row["hv3d"], row["test_acc_in_budget"], row["front_params"]
        print(f"{row['dataset']:15s} {row['strategy']:22s} {hv['median']:8.4f} [{hv['min']:.4f}, {hv['max']:.4f}] "
              f"{acc.get('median', float('nan')):8.4f} [{acc.get('min', float('nan')):.3f}, {acc.get('max', float('nan')):.3f}] "
              f"{par.get('median', 0):10.0f} [{par.get('min', 0):.0f}, {par.get('max', 0):.0f}]")
    print(f"best in-budget model, measured here side by side (budget {comparison['budget_ms']:.4f} ms = median "
          "predicted latency of random staged_net):")
    for name in ("staged_net", "conv_net_small"):
        if name in comparison:
            c = comparison[name]
            print(f"{dataset:15s} {name:15s} test acc {c['test_accuracy']:.4f}  params {int(c['params']):7d}  "
                  f"measured {c['measured_ms']:.4f} ms")
        else:
            print(f"{dataset:15s} {name:15s} nothing within the budget")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--datasets", default="digits,breastmnist,pneumoniamnist")
    parser.add_argument("--data-root", default=str(cs.DEFAULT_DATA))
    parser.add_argument("--json", default=str(RESULTS / "staged_space.json"))
    args = parser.parse_args()
    cs._worker_init()
    from nni_hwnas.experiment.runinfo import machine_info, package_versions
    from search_spaces.registry import make_definition

    started = time.perf_counter()
    datasets = [d for d in args.datasets.split(",") if d == "digits" or (Path(args.data_root) / f"{d}.npz").is_file()]
    result: dict[str, Any] = {"summary": [], "conv_net_comparison": {}, "runs": {}, "seeds": args.seeds,
                              "trials": args.trials, "table": str(TABLE.relative_to(REPO)),
                              "command": " ".join(["experiments/benchmarks/staged_space.py", *sys.argv[1:]]),
                              "machine": machine_info(), "versions": package_versions()}
    for dataset in datasets:  # results are written after every dataset: a long run keeps what it did
        setup = setup_for(dataset, Path(args.data_root))
        ctx = StagedContext(setup)
        cs._CONTEXTS[dataset] = ctx  # NNI's engine runs through the same evaluator and cache
        definition = make_definition(setup["space"], setup["choices"], setup["input_shape"], setup["num_classes"])
        runs = []
        for seed in range(args.seeds):
            runs.append(run_ours(ctx, True, seed, args.trials))
            runs.append(run_ours(ctx, False, seed, args.trials))
            runs.append(run_nni_re(setup, seed, args.trials))
            print(f"{dataset} seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
        rows = summarise(setup, runs, definition)
        comparison = compare_with_conv_net(setup, runs, args.trials, definition)
        print_dataset(rows, dataset, comparison)
        result["summary"] += rows
        result["conv_net_comparison"][dataset] = comparison
        result["runs"][dataset] = {"setup": setup, "runs": runs}
        result.update(wall_s=time.perf_counter() - started,
                      created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
        print(f"wrote {args.json}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
