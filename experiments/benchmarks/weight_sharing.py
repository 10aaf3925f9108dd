"""Benchmark: weight sharing on a shared CPU: one conditioned run vs k single-budget runs vs evolutions.

On one dataset and ``conv_net`` (latency predicted from the ``host-cpu-1t`` table), with one torch
thread, it compares

- ``conditioned``: one super-network + one complexity-conditioned run (:mod:`nni_hwnas.oneshot.conditioned`),
  swept over ``--n-budgets`` budgets;
- ``separate_k``: ``k`` single-budget runs of the same sampler (a fixed target each), each with its
  own super-network, as k DARTS/Proxyless-plus-penalty runs would need;
- ``darts_k``: ``k`` runs of NNI's DARTS through ``NasExperiment`` on the same targets, with our
  expected latency as its ``ProfilerPenalty`` (:mod:`nni_hwnas.oneshot.nni_space`);
- ``evo_supernet``: ``HwEvolution`` scoring ``--evo-samples`` samples on the conditioned run's super-network
  (BN recalibrated per sample on ``--calibrate`` training batches; 0 = the validation batch's statistics);
- ``cmaes_supernet``: the same with ``CmaEs`` (CMANAS);
- ``evo_train``: ``HwEvolution`` with the training evaluator (the retraining settings), ``--evo-trials`` trials.

Per dataset (``DATASETS``): the space preset and the retraining settings, chosen so that
``compare_strategies``' accuracy cache holds the evolution's trials (digits: ``conv_net``, 2 epochs;
PneumoniaMNIST: ``conv_net_small``, 2 epochs on a 500-image training subset).

Every method's architectures are retrained with the training evaluator (``--retrain-epochs``, default 8
as proxy_quality's digits ground truth; with 2, ``compare_strategies``' cache is read for the evolution's
trials; seed 0). Rerunning without ``darts_k`` keeps an earlier JSON's DARTS searches and retrains their
architectures under the current settings. Hypervolume is of
retrained validation accuracy vs predicted latency, reference (accuracy 0, 1.1 x the largest
architecture's predicted latency), normalised to [0, 1]. CPU time is this process's CPU time
(``time.process_time``, one torch thread; wall time on a shared machine counts the others' work), and
for cached trials the cache's recorded seconds. Each finished method is saved to ``<json>.partial``. It also reports the rank correlation of
super-network accuracy with stand-alone accuracy, scored with batch statistics and with BN
recalibration: on the 60 architectures of ``proxy_quality``'s cache beside that benchmark's proxies
(digits), and on 60 of ``compare_strategies``' cached architectures (every dataset).

    .venv/bin/python experiments/benchmarks/weight_sharing.py [--dataset digits] [--seed 0] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "experiments" / "benchmarks" / "cache"
sys.path.insert(0, str(REPO))

WEIGHT_SHARING_METHODS = ("conditioned", "separate_k", "evo_supernet", "cmaes_supernet", "evo_train", "rank")
RETRAIN = {"epochs": 2, "batch_size": 64, "learning_rate": 0.05, "lr_schedule": "cosine", "augment": True,
           "train_subset": None}
#: compare_strategies' settings per dataset, so its cache holds the full-training evolution's trials
DATASETS = {"digits": {"preset": "conv_net", "epochs": 2, "train_subset": None},
            "pneumoniamnist": {"preset": "conv_net_small", "epochs": 2, "train_subset": 500}}


def hypervolume_of(points: list[tuple[float, float]], max_ms: float) -> float:
    """Normalised HV of (accuracy, latency_ms) points; reference accuracy 0, latency 1.1 x max_ms."""
    from nni_hwnas.reporting.pareto import hypervolume

    if not points:
        return 0.0
    losses = np.array([[-acc, ms / (1.1 * max_ms)] for acc, ms in points])
    return float(hypervolume(losses, np.array([0.0, 1.0])))


def non_dominated(points: list[tuple[float, float]]) -> list[int]:
    from nni_hwnas.reporting.pareto import pareto_front_indices

    if not points:
        return []
    return [int(i) for i in pareto_front_indices(np.array([[-a, ms] for a, ms in points]))]


class Retrainer:
    """The training evaluator on an architecture, once per architecture id (timed)."""

    def __init__(self, definition: Any, dataset: dict, seed: int, epochs: int, train_subset: int | None) -> None:
        self.definition, self.dataset, self.seed = definition, dataset, seed
        self.training = {**RETRAIN, "epochs": epochs, "train_subset": train_subset}
        self.done: dict[str, dict] = {}

    def __call__(self, sample: dict) -> dict:
        from nni_hwnas.evaluation.trial import evaluate_architecture

        aid = self.definition.arch_id(sample)
        if aid not in self.done:
            t0 = time.process_time()
            m = evaluate_architecture(self.definition.describe(sample), self.dataset, self.training, self.seed, threads=1,
                                      latency_repeats=30, definition=self.definition,
                                      hardware={"profile": "host-cpu-1t", "table": None, "budgets": {},
                                                "measure_latency": True})
            self.done[aid] = {"accuracy": m["accuracy"], "latency_ms": m["latency_ms"],
                              "latency_measured_ms": m.get("latency_measured_ms"), "trial_seconds": m["trial_seconds"],
                              "cpu_seconds": time.process_time() - t0}
        return self.done[aid]


def derived_rows(derived: list[dict], retrain: Retrainer) -> list[dict]:
    rows = []
    for d in derived:
        r = retrain(d["sample"])
        rows.append({"target_ms": d.get("target_ms"), "predicted_latency_ms": d["predicted_latency_ms"],
                     "measured_latency_ms": r["latency_measured_ms"], "retrained_accuracy": r["accuracy"],
                     "arch_id": retrain.definition.arch_id(d["sample"]), "sample": d["sample"]})
    return rows


def summarise(name: str, rows: list[dict], cpu_s: float, max_ms: float, **extra: Any) -> dict:
    unique = {r["arch_id"]: r for r in rows}
    points = [(r["retrained_accuracy"], r["predicted_latency_ms"]) for r in unique.values()]
    front = non_dominated(points)
    within = [r for r in rows if r.get("target_ms") is not None]
    meets_pred = [r["predicted_latency_ms"] <= r["target_ms"] * 1.0000001 for r in within]
    meets_meas = [r["measured_latency_ms"] is not None and r["measured_latency_ms"] <= r["target_ms"] for r in within]
    return {"method": name, "cpu_seconds": cpu_s, "hypervolume": hypervolume_of(points, max_ms),
            "distinct": len(unique), "non_dominated": len(front),
            "meets_budget_predicted": float(np.mean(meets_pred)) if within else None,
            "meets_budget_measured": float(np.mean(meets_meas)) if within else None, "rows": rows, **extra}


def run(args: argparse.Namespace) -> dict:
    import torch

    from nni_hwnas.data.datasets import load_dataset
    from nni_hwnas.evaluation.cost_trial import load_predictor
    from nni_hwnas.hardware.profiles import load_profile
    from nni_hwnas.oneshot.conditioned import ConditionedSearch, ConditionedSettings
    from nni_hwnas.oneshot.expected_latency import ExpectedLatency
    from nni_hwnas.oneshot.supernet import SuperNet
    from nni_hwnas.oneshot.supernet_training import SupernetSettings, calibration_batches, train_supernet
    from search_spaces import load_preset, make_definition

    torch.set_num_threads(1)
    setup = DATASETS[args.dataset]
    dataset = {"name": args.dataset, "data_root": str(args.data_root)}
    data = load_dataset(seed=args.seed, **dataset)
    space, choices = load_preset(setup["preset"])
    definition = make_definition(space, choices, data.input_shape, data.num_classes)
    predictor = load_predictor(load_profile("host-cpu-1t"), definition, None)
    expected = ExpectedLatency(predictor)
    max_ms = predictor.predict(definition.extreme_sample("max"))
    retrain = Retrainer(definition, dataset, args.seed, setup["epochs"], setup["train_subset"])
    sn_settings = SupernetSettings(epochs=args.supernet_epochs, sampling=args.sampling)
    cs_settings = dict(steps=args.steps)
    budgets = np.linspace(0, 1, args.n_budgets)
    calibration = calibration_batches(data, args.calibrate, seed=args.seed) if args.calibrate else None
    separate_budgets = [float(b) for b in np.linspace(0.1, 0.9, args.k)]
    header = {"dataset": args.dataset, "seed": args.seed, "space": space, "preset": setup["preset"],
              "profile": "host-cpu-1t", "supernet": {"epochs": args.supernet_epochs, "sampling": args.sampling},
              "steps": args.steps, "n_budgets": args.n_budgets, "calibrate": args.calibrate,
              "retrain": retrain.training}
    partial = Path(str(args.json) + ".partial")

    class Results(list):
        """Saved to ``<json>.partial`` after every method, so a stopped run keeps what it measured."""

        def append(self, item: dict) -> None:
            super().append(item)
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps({**header, "methods": list(self)}, indent=1, default=str) + "\n")

    results = Results()
    if "darts_k" in args.methods:
        print(f"darts_k (k={args.k}) ...", flush=True)
        results.append(darts_k(data, definition, predictor, expected, retrain, separate_budgets, args, max_ms))

    def supernet_and_search(seed: int, fixed: list[float] | None) -> tuple[Any, Any, float]:
        t0 = time.process_time()
        supernet = SuperNet(definition)
        train_supernet(supernet, data, sn_settings, seed)
        search = ConditionedSearch(supernet, expected, ConditionedSettings(budgets=fixed, **cs_settings), seed)
        search.train(data)
        return supernet, search, time.process_time() - t0

    if not set(WEIGHT_SHARING_METHODS) & set(args.methods):
        return {**header, "methods": list(results)}
    print("conditioned ...", flush=True)
    supernet, search, sn_cpu = supernet_and_search(args.seed, None)
    if "conditioned" in args.methods:
        derived = search.sweep(budgets)
        results.append(summarise("conditioned", derived_rows(derived, retrain), sn_cpu, max_ms,
                                 repaired=sum(d["repaired"] for d in derived)))

    if "separate_k" in args.methods:
        print(f"separate_k (k={args.k}) ...", flush=True)
        rows, cpu = [], 0.0
        for i, b in enumerate(separate_budgets):
            _, single, seconds = supernet_and_search(args.seed + 1 + i, [float(b)])
            cpu += seconds
            rows += derived_rows(single.sweep([float(b)]), retrain)
        results.append(summarise(f"separate_{args.k}", rows, cpu, max_ms))

    for method, strategy in (("evo_supernet", "hw_evolution"), ("cmaes_supernet", "cmaes")):
        if method in args.methods:
            print(f"{method} ...", flush=True)
            results.append(supernet_search(method, strategy, supernet, data, predictor, calibration, retrain,
                                           sn_cpu, args, max_ms))

    if "evo_train" in args.methods:
        print("evo_train ...", flush=True)
        results.append(evo_train(definition, dataset, predictor, retrain, args, max_ms))

    previous = Path(args.json)
    if "darts_k" not in args.methods and previous.is_file():
        old = json.loads(previous.read_text())
        for m in old.get("methods", []):
            if m["method"].startswith("darts_") and old.get("seed") == args.seed and old.get("dataset") == args.dataset:
                print(f"{m['method']}: retraining its {len(m['rows'])} architectures (search rows kept from {previous.name})")
                rows = derived_rows([{"sample": r["sample"], "target_ms": r["target_ms"],
                                      "predicted_latency_ms": r["predicted_latency_ms"]} for r in m["rows"]], retrain)
                extra = {k: v for k, v in m.items() if k not in ("method", "cpu_seconds", "rows", "hypervolume", "distinct",
                                                                 "non_dominated", "meets_budget_predicted",
                                                                 "meets_budget_measured")}
                results.append(summarise(m["method"], rows, m["cpu_seconds"], max_ms, **extra))

    correlation = []
    if "rank" in args.methods:
        print("rank correlation ...", flush=True)
        correlation = rank_correlation(args, data, supernet, definition)
    return {**header, "methods": list(results), "rank_correlation": correlation}


def supernet_search(method: str, strategy: str, supernet: Any, data: Any, predictor: Any, calibration: Any,
                    retrain: Retrainer, sn_cpu: float, args: argparse.Namespace, max_ms: float) -> dict:
    """An ask/tell strategy with super-network fitness; the top-k of its front retrained (CPU: supernet + search)."""
    from nni_hwnas.oneshot.supernet_search import evolve_with_supernet

    t0 = time.process_time()
    evo = evolve_with_supernet(supernet, data, predictor.predict, args.evo_samples, args.seed, strategy=strategy,
                               calibration=calibration)
    evo["search_seconds"] = time.process_time() - t0  # CPU, not wall: the machine is shared
    front = sorted(evo["front"], key=lambda r: -r["accuracy"])[: args.top_k]
    rows = derived_rows([{"sample": r["sample"], "predicted_latency_ms": r["latency_ms"]} for r in front], retrain)
    return summarise(method, rows, sn_cpu + evo["search_seconds"], max_ms, scored=len(evo["history"]),
                     scoring_ms=1000 * evo["search_seconds"] / max(1, len(evo["history"])), retrain_top_k=args.top_k,
                     supernet_cpu_seconds=sn_cpu)


def darts_k(data, definition, predictor, expected, retrain, budgets, args, max_ms) -> dict:
    """k NNI DARTS runs (NasExperiment, sequential engine), one per latency target, our penalty."""
    import tempfile

    from nni_hwnas.oneshot.conditioned import ConditionedSearch, ConditionedSettings
    from nni_hwnas.oneshot.nni_space import run_oneshot
    from nni_hwnas.oneshot.supernet import SuperNet

    targets = ConditionedSearch(SuperNet(definition), expected, ConditionedSettings(), args.seed)
    rows, cpu = [], 0.0
    with tempfile.TemporaryDirectory() as work:
        for i, b in enumerate(budgets):
            target = targets.target_ms(b)
            r = run_oneshot("DARTS", data, dict(definition.choices), predictor, target, epochs=args.darts_epochs,
                            penalty_scale=1.0, arc_learning_rate=args.darts_arc_lr, working_directory=work,
                            seed=args.seed + i)
            cpu += r["cpu_seconds"]
            rows += derived_rows([{"sample": r["sample"], "target_ms": target,
                                   "predicted_latency_ms": r["predicted_latency_ms"]}], retrain)
    return summarise(f"darts_{args.k}", rows, cpu, max_ms, epochs=args.darts_epochs, arc_learning_rate=args.darts_arc_lr)


def evo_train(definition, dataset, predictor, retrain, args, max_ms) -> dict:
    """Our evolution with the training evaluator (compare_strategies' cache read, its seconds counted)."""
    from strategies.hw_evolution import HwEvolution

    path = cache_file(args)
    cached = json.loads(path.read_text())["accuracy"] if path.is_file() else {}
    evolution = HwEvolution(definition.mutable_labels(), seed=args.seed, identity=definition.arch_id,
                            canonical=definition.canonical,
                            objectives={"use": ["score", "cost"], "score_metric": "accuracy", "cost_metric": "latency_ms"})
    cpu, rows = 0.0, []
    for _ in range(args.evo_trials):
        sample = evolution.ask()
        aid = definition.arch_id(sample)
        if aid in cached:
            acc, seconds = cached[aid]["accuracy"], cached[aid]["seconds"]
        else:
            m = retrain(sample)
            acc, seconds = m["accuracy"], m["cpu_seconds"]
        cpu += seconds
        ms = predictor.predict(sample)
        evolution.tell(sample, {"accuracy": acc, "latency_ms": ms})
        rows.append({"target_ms": None, "predicted_latency_ms": ms, "measured_latency_ms": None,
                     "retrained_accuracy": acc, "arch_id": aid, "sample": sample})
    return summarise("evo_train", rows, cpu, max_ms, trials=args.evo_trials)


def cache_file(args: argparse.Namespace) -> Path:
    """compare_strategies' accuracy cache for this dataset's preset and retraining settings."""
    setup = DATASETS[args.dataset]
    return CACHE / (f"compare_strategies_{args.dataset}_{setup['preset']}_e{setup['epochs']}_b64"
                    f"_sub{setup['train_subset'] or 'all'}_seed{args.seed}.json")


def ground_truths(args: argparse.Namespace, data: Any, definition: Any) -> list[tuple[str, Any, dict, dict, dict]]:
    """(name, definition, id -> sample, id -> stand-alone accuracy, proxies' Spearman) per available cache."""
    from search_spaces import load_preset, make_definition

    out = []
    proxies = json.loads((REPO / "experiments/benchmarks/results/proxy_quality.json").read_text())
    for space in ("conv_net", "medmnist_cnn"):
        path = CACHE / f"proxy_quality_{args.dataset}_{space}.json"
        if not path.is_file():
            continue
        trained = json.loads(path.read_text())["trained"]
        name, choices = load_preset(space)
        d = make_definition(name, choices, data.input_shape, data.num_classes)
        rng = np.random.default_rng(args.seed)  # proxy_quality's sampling, to recover the samples of the ids
        samples: dict[str, dict] = {}
        for _ in range(100 * 60):
            if len(samples) == 60:
                break
            sample = d.canonical(d.random_sample(rng))
            samples.setdefault(d.arch_id(sample), sample)
        truth = {a: trained[a]["accuracy"] for a in samples if a in trained and trained[a].get("accuracy") is not None}
        named = {p["proxy"]: round(p["spearman"], 3) for p in proxies if p["dataset"] == args.dataset and p["space"] == space}
        out.append((f"proxy_quality {space}", d, samples, truth, named))
    if cache_file(args).is_file() and definition.size() <= 200_000:
        cached = json.loads(cache_file(args).read_text())["accuracy"]
        samples = {}
        for sample in definition.all_samples():
            aid = definition.arch_id(definition.canonical(sample))
            if aid in cached:
                samples.setdefault(aid, definition.canonical(sample))
        rng = np.random.default_rng(args.seed)
        ids = sorted(samples)
        ids = [ids[i] for i in rng.choice(len(ids), size=min(args.rank_archs, len(ids)), replace=False)]
        out.append((f"compare_strategies {DATASETS[args.dataset]['preset']}", definition, {a: samples[a] for a in ids},
                    {a: cached[a]["accuracy"] for a in ids}, {}))
    return out


def rank_correlation(args: argparse.Namespace, data: Any, supernet: Any, definition: Any) -> list[dict]:
    """Super-network accuracy vs stand-alone accuracy: scored on validation batch statistics, and with
    BN recalibrated per sample on ``--rank-calibrate`` training batches (OFA)."""
    from scipy.stats import kendalltau, spearmanr

    from nni_hwnas.oneshot.supernet import SuperNet
    from nni_hwnas.oneshot.supernet_training import (SupernetSettings, calibration_batches, score_sample,
                                                     train_supernet)

    out = []
    batches = calibration_batches(data, args.rank_calibrate, seed=args.seed)
    for name, d, samples, truth, proxies in ground_truths(args, data, definition):
        net, train_s = supernet, None
        if d.choices != definition.choices or d.name != definition.name:
            net = SuperNet(d)
            train_s = train_supernet(net, data, SupernetSettings(epochs=args.supernet_epochs, sampling=args.sampling),
                                     args.seed)["train_seconds"]
        ids = list(truth)
        row = {"ground_truth": name, "space": d.name, "n_archs": len(ids), "supernet_train_seconds": train_s,
               "proxies": proxies}
        for mode, calibration in (("batch_stats", None), ("recalibrated", batches)):
            t0 = time.process_time()
            scores = [score_sample(net, data.val_x, data.val_y, samples[a], calibration=calibration) for a in ids]
            row[mode] = {"spearman": float(spearmanr(scores, [truth[a] for a in ids]).statistic),
                         "kendall": float(kendalltau(scores, [truth[a] for a in ids]).statistic),
                         "seconds_per_arch": (time.process_time() - t0) / max(1, len(ids))}
        out.append(row)
    return out


def print_tables(result: dict) -> None:
    print(f"\n{result['dataset']} / {result.get('preset', 'conv_net')}, host-cpu-1t predicted latency, seed {result['seed']}, "
          f"BN recalibration {result.get('calibrate', 0)} batches")
    print(f"{'method':14s} {'cpu_s':>7s} {'HV':>6s} {'distinct':>8s} {'nondom':>6s} {'meets_pred':>10s} {'meets_meas':>10s}")
    for m in result["methods"]:
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"{m['method']:14s} {m['cpu_seconds']:7.1f} {m['hypervolume']:6.3f} {m['distinct']:8d} "
              f"{m['non_dominated']:6d} {fmt(m['meets_budget_predicted']):>10s} {fmt(m['meets_budget_measured']):>10s}")
    print("\nrank correlation with stand-alone accuracy (Spearman): batch statistics | BN recalibrated | proxies")
    for r in result.get("rank_correlation", []):
        others = ", ".join(f"{k} {v}" for k, v in r["proxies"].items())
        if "batch_stats" not in r:  # an older result
            continue
        print(f"{r['ground_truth']:32s} n={r['n_archs']} {r['batch_stats']['spearman']:.3f} | "
              f"{r['recalibrated']['spearman']:.3f} ({1000 * r['recalibrated']['seconds_per_arch']:.0f} ms/arch) | {others}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--supernet-epochs", type=int, default=8)
    parser.add_argument("--sampling", default="uniform", choices=["uniform", "sandwich"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--n-budgets", type=int, default=11)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--evo-samples", type=int, default=1000)
    parser.add_argument("--evo-trials", type=int, default=40)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--calibrate", type=int, default=0,
                        help="training batches recalibrating BN per sample in the super-network searches (0: batch stats)")
    parser.add_argument("--rank-calibrate", type=int, default=2, help="the same, for the rank correlation's second column")
    parser.add_argument("--rank-archs", type=int, default=60)
    parser.add_argument("--darts-epochs", type=int, default=3)
    parser.add_argument("--darts-arc-lr", type=float, default=0.01)
    parser.add_argument("--methods", nargs="+", default=[*WEIGHT_SHARING_METHODS, "darts_k"],
                        choices=[*WEIGHT_SHARING_METHODS, "darts_k"],
                        help="darts_k runs NNI DARTS; darts_k alone merges its row into an existing --json of the others")
    parser.add_argument("--json", default=None, help="default: results/weight_sharing.json (digits), "
                        "results/weight_sharing_<dataset>.json (others)")
    args = parser.parse_args()
    if args.dataset not in DATASETS:
        parser.error(f"--dataset: one of {', '.join(DATASETS)}")
    results = REPO / "experiments/benchmarks/results"
    args.json = args.json or str(results / ("weight_sharing.json" if args.dataset == "digits"
                                            else f"weight_sharing_{args.dataset}.json"))
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    result = run(args)
    result["wall_seconds"] = time.perf_counter() - started
    from nni_hwnas.experiment.runinfo import machine_info, package_versions

    result["machine"], result["versions"] = machine_info(), package_versions()
    previous = json.loads(Path(args.json).read_text()) if Path(args.json).is_file() else None
    if previous and set(args.methods) == {"darts_k"} and previous.get("seed") == args.seed \
            and previous.get("dataset") == args.dataset:
        kept = [m for m in previous["methods"] if not m["method"].startswith("darts_")]
        result = {**previous, "methods": kept + result["methods"],
                  "wall_seconds_darts": result["wall_seconds"]}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
    Path(str(args.json) + ".partial").unlink(missing_ok=True)
    print_tables(result)
    print(f"\nwall {result['wall_seconds']:.0f} s; JSON in {args.json}")


if __name__ == "__main__":
    main()
