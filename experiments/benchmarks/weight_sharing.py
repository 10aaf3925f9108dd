"""Benchmark: weight sharing on a shared CPU: one conditioned run vs k single-budget runs vs evolutions.

On one dataset and ``conv_net`` (latency predicted from the ``host-cpu-1t`` table), with one torch
thread, it compares

- ``conditioned``: one super-network + one complexity-conditioned run (:mod:`nni_hwnas.oneshot.conditioned`),
  swept over ``--n-budgets`` budgets (default 21), spending budget left within ``--fill-margin`` nats of
  the modes (default 2; ``conditioned_mode``: the same run decoded by its modes alone). Why: on digits
  (seed 0, 200 steps) the sweep's distinct architectures were 7 / 9 / 8 for 11 / 21 / 41 budgets by the
  modes, 8 / 12 / 13 with a fill margin of 2 (3: 9 / 14 / 16, but further from the modes); counted
  before any retraining;
- ``separate_k``: ``k`` single-budget runs of the same sampler (a fixed target each), each with its
  own super-network, as k DARTS/Proxyless-plus-penalty runs would need;
- ``darts_k``: ``k`` runs of NNI's DARTS through ``NasExperiment`` on the same targets, with our
  expected latency as its ``ProfilerPenalty`` (:mod:`nni_hwnas.oneshot.nni_space`);
- ``evo_supernet``: ``HwEvolution`` scoring ``--evo-samples`` samples on the conditioned run's super-network
  (BN recalibrated per sample on ``--calibrate`` training batches; 0 = the validation batch's statistics),
  with the super-network route's plain evolution (``model_pool=0``); ``evo_supernet_pool200``: the same
  with the model-based proposals a trial-based search uses by default;
- ``cmaes_supernet``: the same with ``CmaEs`` (CMANAS);
- ``evo_train``: ``HwEvolution`` with the training evaluator, ``--evo-trials`` trials, each trained at the
  retraining settings (a full-training evolution's trial *is* a retraining).

Per dataset (``DATASETS``): the space preset and ``compare_strategies``' settings (digits: ``conv_net``,
2 epochs; PneumoniaMNIST: ``conv_net_small``, 2 epochs on a 500-image training subset, also the
retraining's subset); ``--preset`` and ``--train-subset`` replace them (e.g. PneumoniaMNIST with
``conv_net`` on the whole training split, whose architectures do trade accuracy for latency: the
500-image ``conv_net_small`` retraining put its cheapest architecture on top).

Ground truth: every method's architectures are retrained with the training evaluator for
``--retrain-epochs`` (default 8, proxy_quality's digits ground truth; seed 0, one thread), and so are
``evo_train``'s trials. Why not 2: at 2 epochs 19% of compare_strategies' 782 digits ``conv_net``
architectures stay below 50% accuracy (10th percentile 0.26; the earlier run here retrained
architectures the super-network likes to 0.10-0.35), against 1.7% of proxy_quality's 60 at 8 epochs
(10th percentile 0.90), and the 6 cheapest of the earlier run's architectures below 0.5 at 2 epochs
(0.06-0.43) reach 0.89-0.93 at 8: the front after 2-epoch retraining was noise. Retrained architectures go
to ``cache/weight_sharing_retrain_<dataset>_<preset>_e<epochs>_b64_sub<subset>_seed<seed>.json`` with
their CPU seconds (reruns are cheap and charged the same); ``compare_strategies``' cache is read
for ``evo_train`` only when its training settings equal the retraining's (then its wall seconds
per trial are charged).

CPU: each method is charged what it needs to deliver its final retrained architectures:
``search_cpu_seconds`` (super-network(s) + search; for ``evo_train`` its trials) plus
``retrain_cpu_seconds`` (one training per distinct final architecture), ``cpu_seconds`` their sum,
which the printed target ratios use; CPU is this process's ``time.process_time`` (wall time on a
shared machine counts the others' work). ``evo_supernet`` and ``cmaes_supernet`` use the conditioned
run's super-network and are charged all of it (8 super-network epochs + the conditioned steps, which
also train its weights). Rerunning without ``darts_k`` keeps an earlier JSON's DARTS searches (their
search CPU) and retrains their architectures under the current settings. Hypervolume is of retrained
validation accuracy vs predicted latency, reference (accuracy 0, 1.1 x the largest architecture's
predicted latency), normalised to [0, 1]. Each finished method is saved to ``<json>.partial``; a rerun
with the same settings resumes from it. It also reports the rank correlation of super-network
accuracy with stand-alone accuracy, scored with batch statistics and with BN recalibration: on the 60
architectures of ``proxy_quality``'s cache beside that benchmark's proxies (digits), and on 60 of
``compare_strategies``' cached (2-epoch) architectures (every dataset).

    .venv/bin/python experiments/benchmarks/weight_sharing.py [--dataset digits] [--seed 0] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "experiments" / "benchmarks" / "cache"
sys.path.insert(0, str(REPO))

WEIGHT_SHARING_METHODS = ("conditioned", "separate_k", "evo_supernet", "evo_supernet_pool200", "cmaes_supernet",
                          "evo_train", "rank")
#: (method, strategy, strategy args) of the super-network-fitness searches. ``evo_supernet_pool200`` is
#: ``hw_evolution`` with the model-based proposals of a trial-based search (its own default), kept to show
#: why the super-network route turns them off (``supernet_search.SUPERNET_MODEL_POOL``).
SUPERNET_SEARCHES = (("evo_supernet", "hw_evolution", {}), ("evo_supernet_pool200", "hw_evolution", {"model_pool": 200}),
                     ("cmaes_supernet", "cmaes", {}))
RETRAIN = {"epochs": 2, "batch_size": 64, "learning_rate": 0.05, "lr_schedule": "cosine", "augment": True,
           "train_subset": None}
#: compare_strategies' settings per dataset (its cache: the 2nd rank-correlation ground truth; evo_train's
#: trials when ``--retrain-epochs`` equals them)
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


class RetrainCache:
    """Retrained architectures per retraining settings (a JSON file named with them), so reruns are cheap.

    Each entry keeps the CPU seconds its training took, which the methods are charged when it is read."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path, self.header = path, header
        stored = json.loads(path.read_text()) if path.is_file() else {}
        self.entries: dict[str, dict] = stored.get("retrained", {}) if stored.get("header") == header else {}

    def get(self, aid: str) -> dict | None:
        return self.entries.get(aid)

    def put(self, aid: str, entry: dict) -> None:
        stored = json.loads(self.path.read_text()) if self.path.is_file() else {}
        if stored.get("header") == self.header:  # another run of the same settings may have added some
            self.entries = {**stored["retrained"], **self.entries}
        self.entries[aid] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"header": self.header, "retrained": self.entries}, indent=0, sort_keys=True))
        tmp.replace(self.path)


def retrain_cache_path(dataset: str, preset: str, training: dict, seed: int) -> Path:
    """The retraining cache of these settings (named like compare_strategies' accuracy cache)."""
    return CACHE / (f"weight_sharing_retrain_{dataset}_{preset}_e{training['epochs']}_b{training['batch_size']}"
                    f"_sub{training['train_subset'] or 'all'}_seed{seed}.json")


class Retrainer:
    """The training evaluator on an architecture, once per architecture id (CPU-timed, cached on disk)."""

    def __init__(self, definition: Any, dataset: dict, seed: int, training: dict, cache: RetrainCache) -> None:
        self.definition, self.dataset, self.seed = definition, dataset, seed
        self.training, self.cache = dict(training), cache

    def __call__(self, sample: dict) -> dict:
        from nni_hwnas.evaluation.trial import evaluate_architecture

        aid = self.definition.arch_id(sample)
        if self.cache.get(aid) is None:
            t0 = time.process_time()
            m = evaluate_architecture(self.definition.describe(sample), self.dataset, self.training, self.seed, threads=1,
                                      latency_repeats=30, definition=self.definition,
                                      hardware={"profile": "host-cpu-1t", "table": None, "budgets": {},
                                                "measure_latency": True})
            self.cache.put(aid, {"accuracy": m["accuracy"], "latency_ms": m["latency_ms"],
                                 "latency_measured_ms": m.get("latency_measured_ms"),
                                 "trial_seconds": m["trial_seconds"], "cpu_seconds": time.process_time() - t0})
        return self.cache.get(aid)


def derived_rows(derived: list[dict], retrain: Retrainer) -> list[dict]:
    rows = []
    for d in derived:
        r = retrain(d["sample"])
        rows.append({"target_ms": d.get("target_ms"), "predicted_latency_ms": d["predicted_latency_ms"],
                     "measured_latency_ms": r["latency_measured_ms"], "retrained_accuracy": r["accuracy"],
                     "arch_id": retrain.definition.arch_id(d["sample"]), "sample": d["sample"],
                     "cpu_seconds": r["cpu_seconds"]})
    return rows


def cpu_of(rows: list[dict]) -> float:
    """CPU seconds of training the rows' distinct architectures (one training each)."""
    return float(sum({r["arch_id"]: r["cpu_seconds"] for r in rows}.values()))


def summarise(name: str, rows: list[dict], search_cpu: float, retrain_cpu: float, max_ms: float, **extra: Any) -> dict:
    """A method's row: HV after retraining, distinct / non-dominated architectures, budgets met, CPU
    charged (search + retraining its final architectures)."""
    unique = {r["arch_id"]: r for r in rows}
    points = [(r["retrained_accuracy"], r["predicted_latency_ms"]) for r in unique.values()]
    front = non_dominated(points)
    within = [r for r in rows if r.get("target_ms") is not None]
    meets_pred = [r["predicted_latency_ms"] <= r["target_ms"] * 1.0000001 for r in within]
    meets_meas = [r["measured_latency_ms"] is not None and r["measured_latency_ms"] <= r["target_ms"] for r in within]
    return {"method": name, "search_cpu_seconds": search_cpu, "retrain_cpu_seconds": retrain_cpu,
            "cpu_seconds": search_cpu + retrain_cpu, "hypervolume": hypervolume_of(points, max_ms),
            "distinct": len(unique), "non_dominated": len(front),
            "meets_budget_predicted": float(np.mean(meets_pred)) if within else None,
            "meets_budget_measured": float(np.mean(meets_meas)) if within else None, "rows": rows, **extra}


def retrained_summary(name: str, rows: list[dict], search_cpu: float, max_ms: float, **extra: Any) -> dict:
    """:func:`summarise` of rows whose architectures were retrained after the search."""
    return summarise(name, rows, search_cpu, cpu_of(rows), max_ms, **extra)


class Results(list):
    """Methods measured so far, saved to ``<json>.partial`` after each, so a stopped run keeps them; a
    rerun with the same settings (``header``) resumes: the methods already there are not run again."""

    def __init__(self, partial: Path, header: dict) -> None:
        super().__init__()
        self.partial, self.header = partial, header
        stored = json.loads(partial.read_text()) if partial.is_file() else {}
        if stored and {k: v for k, v in stored.items() if k != "methods"} == json.loads(json.dumps(header, default=str)):
            super().extend(stored["methods"])
            print(f"resuming {partial.name}: {', '.join(m['method'] for m in self)} kept", flush=True)

    def has(self, method: str) -> bool:
        return any(m["method"] == method for m in self)

    def append(self, item: dict) -> None:
        super().append(item)
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        self.partial.write_text(json.dumps({**self.header, "methods": list(self)}, indent=1, default=str) + "\n")


def dataset_setting(args: argparse.Namespace) -> dict:
    """``DATASETS[dataset]`` with ``--preset`` / ``--train-subset`` in place of its space and subset."""
    setting = dict(DATASETS[args.dataset])
    if args.preset:
        setting["preset"] = args.preset
    if args.train_subset is not None:
        setting["train_subset"] = args.train_subset or None  # 0: the whole training split
    return setting


def retraining(args: argparse.Namespace) -> dict:
    """The retraining settings every method's architectures (and evo_train's trials) are trained with."""
    return {**RETRAIN, "epochs": args.retrain_epochs, "train_subset": dataset_setting(args)["train_subset"]}


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
    setup = dataset_setting(args)
    dataset = {"name": args.dataset, "data_root": str(args.data_root)}
    data = load_dataset(seed=args.seed, **dataset)
    space, choices = load_preset(setup["preset"])
    definition = make_definition(space, choices, data.input_shape, data.num_classes)
    predictor = load_predictor(load_profile("host-cpu-1t"), definition, None)
    expected = ExpectedLatency(predictor)
    max_ms = predictor.predict(definition.extreme_sample("max"))
    training = retraining(args)
    cache = RetrainCache(retrain_cache_path(args.dataset, setup["preset"], training, args.seed),
                         {"dataset": args.dataset, "preset": setup["preset"], "seed": args.seed, "training": training,
                          "profile": "host-cpu-1t", "latency_repeats": 30, "threads": 1})
    retrain = Retrainer(definition, dataset, args.seed, training, cache)
    sn_settings = SupernetSettings(epochs=args.supernet_epochs, sampling=args.sampling)
    cs_settings = dict(steps=args.steps, fill_margin=args.fill_margin)
    budgets = np.linspace(0, 1, args.n_budgets)
    calibration = calibration_batches(data, args.calibrate, seed=args.seed) if args.calibrate else None
    separate_budgets = [float(b) for b in np.linspace(0.1, 0.9, args.k)]
    header = {"dataset": args.dataset, "seed": args.seed, "space": space, "preset": setup["preset"],
              "profile": "host-cpu-1t", "supernet": {"epochs": args.supernet_epochs, "sampling": args.sampling},
              "steps": args.steps, "n_budgets": args.n_budgets, "fill_margin": args.fill_margin, "k": args.k,
              "calibrate": args.calibrate, "evo_samples": args.evo_samples, "evo_trials": args.evo_trials,
              "top_k": args.top_k, "retrain": training, "retrain_cache": str(cache.path.relative_to(REPO))}
    results = Results(Path(str(args.json) + ".partial"), header)
    if "darts_k" in args.methods and not results.has(f"darts_{args.k}"):
        print(f"darts_k (k={args.k}) ...", flush=True)
        results.append(darts_k(data, definition, predictor, expected, retrain, separate_budgets, args, max_ms))

    def supernet_and_search(seed: int, fixed: list[float] | None) -> tuple[Any, Any, float]:
        t0 = time.process_time()
        supernet = SuperNet(definition, seed=seed)
        train_supernet(supernet, data, sn_settings, seed)
        search = ConditionedSearch(supernet, expected, ConditionedSettings(budgets=fixed, **cs_settings), seed)
        search.train(data)
        return supernet, search, time.process_time() - t0

    shared: dict[str, Any] = {}

    def conditioned_run() -> tuple[Any, Any, float]:
        """The super-network + conditioned run, trained once when a method first needs it (seeded)."""
        if not shared:
            print("super-network + conditioned search ...", flush=True)
            shared["run"] = supernet_and_search(args.seed, None)
        return shared["run"]

    if "conditioned" in args.methods and not results.has("conditioned"):
        _, search, sn_cpu = conditioned_run()
        derived = search.sweep(budgets)
        results.append(retrained_summary("conditioned", derived_rows(derived, retrain), sn_cpu, max_ms,
                                         repaired=sum(d["repaired"] for d in derived),
                                         filled=sum(d["filled"] for d in derived), fill_margin=args.fill_margin))
        if args.fill_margin > 0:  # the same run decoded by its modes alone (fill_margin 0), for comparison
            modes = search.sweep(budgets, fill_margin=0.0)
            results.append(retrained_summary("conditioned_mode", derived_rows(modes, retrain), sn_cpu, max_ms,
                                             repaired=sum(d["repaired"] for d in modes), fill_margin=0.0))

    if "separate_k" in args.methods and not results.has(f"separate_{args.k}"):
        print(f"separate_k (k={args.k}) ...", flush=True)
        rows, cpu = [], 0.0
        for i, b in enumerate(separate_budgets):
            _, single, seconds = supernet_and_search(args.seed + 1 + i, [float(b)])
            cpu += seconds
            rows += derived_rows(single.sweep([float(b)]), retrain)
        results.append(retrained_summary(f"separate_{args.k}", rows, cpu, max_ms))

    for method, strategy, strategy_args in SUPERNET_SEARCHES:
        if method in args.methods and not results.has(method):
            supernet, _, sn_cpu = conditioned_run()
            print(f"{method} ...", flush=True)
            results.append(supernet_search(method, strategy, supernet, data, predictor, calibration, retrain,
                                           sn_cpu, args, max_ms, **strategy_args))

    if "evo_train" in args.methods and not results.has("evo_train"):
        print("evo_train ...", flush=True)
        results.append(evo_train(definition, predictor, retrain, args, max_ms))

    if "darts_k" not in args.methods:
        for m in kept_darts(Path(args.json), args):
            if not results.has(m["method"]):
                print(f"{m['method']}: retraining its {len(m['rows'])} architectures (search rows kept from {args.json})")
                results.append(retrain_kept(m, retrain, max_ms))

    correlation = []
    if "rank" in args.methods:
        print("rank correlation ...", flush=True)
        correlation = rank_correlation(args, data, conditioned_run()[0], definition)
    return {**header, "methods": list(results), "rank_correlation": correlation}


def supernet_search(method: str, strategy: str, supernet: Any, data: Any, predictor: Any, calibration: Any,
                    retrain: Retrainer, sn_cpu: float, args: argparse.Namespace, max_ms: float,
                    **strategy_args: Any) -> dict:
    """An ask/tell strategy with super-network fitness; the top-k of its front retrained (CPU: supernet + search)."""
    from nni_hwnas.oneshot.supernet_search import evolve_with_supernet

    t0 = time.process_time()
    evo = evolve_with_supernet(supernet, data, predictor.predict, args.evo_samples, args.seed, strategy=strategy,
                               calibration=calibration, **strategy_args)
    evo["search_seconds"] = time.process_time() - t0  # CPU, not wall: the machine is shared
    front = sorted(evo["front"], key=lambda r: -r["accuracy"])[: args.top_k]
    rows = derived_rows([{"sample": r["sample"], "predicted_latency_ms": r["latency_ms"]} for r in front], retrain)
    return retrained_summary(method, rows, sn_cpu + evo["search_seconds"], max_ms, scored=len(evo["history"]),
                             scoring_ms=1000 * evo["search_seconds"] / max(1, len(evo["history"])),
                             retrain_top_k=args.top_k, supernet_cpu_seconds=sn_cpu)


def darts_k(data, definition, predictor, expected, retrain, budgets, args, max_ms) -> dict:
    """k NNI DARTS runs (NasExperiment, sequential engine), one per latency target, our penalty."""
    import tempfile

    from nni_hwnas.oneshot.conditioned import ConditionedSearch, ConditionedSettings
    from nni_hwnas.oneshot.nni_space import run_oneshot
    from nni_hwnas.oneshot.supernet import SuperNet

    targets = ConditionedSearch(SuperNet(definition, seed=args.seed), expected, ConditionedSettings(), args.seed)
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
    return retrained_summary(f"darts_{args.k}", rows, cpu, max_ms, epochs=args.darts_epochs,
                             arc_learning_rate=args.darts_arc_lr)


def kept_darts(previous: Path, args: argparse.Namespace) -> list[dict]:
    """An earlier JSON's DARTS searches of this dataset and seed (NNI DARTS is slow to rerun)."""
    old = json.loads(previous.read_text()) if previous.is_file() else {}
    if old.get("seed") != args.seed or old.get("dataset") != args.dataset:
        return []
    return [m for m in old.get("methods", []) if m["method"].startswith("darts_")]


def retrain_kept(method: dict, retrain: Retrainer, max_ms: float) -> dict:
    """A kept search's architectures retrained under the current settings; its search CPU kept."""
    rows = derived_rows([{"sample": r["sample"], "target_ms": r["target_ms"],
                          "predicted_latency_ms": r["predicted_latency_ms"]} for r in method["rows"]], retrain)
    search_cpu = method.get("search_cpu_seconds", method["cpu_seconds"])  # older JSONs: cpu_seconds was the search's
    derived = ("method", "cpu_seconds", "search_cpu_seconds", "retrain_cpu_seconds", "rows", "hypervolume", "distinct",
               "non_dominated", "meets_budget_predicted", "meets_budget_measured")
    extra = {k: v for k, v in method.items() if k not in derived}
    return retrained_summary(method["method"], rows, search_cpu, max_ms, **extra)


def evo_train(definition: Any, predictor: Any, retrain: Retrainer, args: argparse.Namespace, max_ms: float) -> dict:
    """Our evolution with the training evaluator: each trial trained at the retraining settings, so its
    search is its retraining (charged once per distinct architecture, as search CPU)."""
    from strategies.hw_evolution import HwEvolution

    train = trial_trainer(retrain, args)
    evolution = HwEvolution(definition.mutable_labels(), seed=args.seed, identity=definition.arch_id,
                            canonical=definition.canonical,
                            objectives={"use": ["score", "cost"], "score_metric": "accuracy", "cost_metric": "latency_ms"})
    rows = []
    for _ in range(args.evo_trials):
        sample = evolution.ask()
        m = train(sample)
        ms = predictor.predict(sample)
        evolution.tell(sample, {"accuracy": m["accuracy"], "latency_ms": ms})
        rows.append({"target_ms": None, "predicted_latency_ms": ms, "measured_latency_ms": m.get("latency_measured_ms"),
                     "retrained_accuracy": m["accuracy"], "arch_id": definition.arch_id(sample), "sample": sample,
                     "cpu_seconds": m["cpu_seconds"]})
    return summarise("evo_train", rows, cpu_of(rows), 0.0, max_ms, trials=args.evo_trials,
                     trajectory=hv_trajectory(rows, max_ms))


def trial_trainer(retrain: Retrainer, args: argparse.Namespace) -> Any:
    """The retrainer, reading compare_strategies' accuracy cache first when its training settings are
    the retraining settings (its recorded wall seconds per trial are charged)."""
    path = compare_cache_file(args)
    stored = json.loads(path.read_text()) if path.is_file() else {}
    same = stored.get("header", {}).get("training") == retrain.training
    cached = stored.get("accuracy", {}) if same else {}
    print(f"evo_train: {'reading' if same else 'not reading'} {path.name} "
          f"(retraining {retrain.training['epochs']} epochs)", flush=True)

    def train(sample: dict) -> dict:
        entry = cached.get(retrain.definition.arch_id(sample))
        if entry is not None:
            return {"accuracy": entry["accuracy"], "cpu_seconds": entry["seconds"], "latency_measured_ms": None}
        return retrain(sample)

    return train


def hv_trajectory(rows: list[dict], max_ms: float) -> list[tuple[float, float]]:
    """(CPU seconds so far, HV of the trials so far) after each trial with a new architecture."""
    out, seen, cpu = [], {}, 0.0
    for r in rows:
        if r["arch_id"] in seen:
            continue
        seen[r["arch_id"]] = (r["retrained_accuracy"], r["predicted_latency_ms"])
        cpu += r["cpu_seconds"]
        out.append((cpu, hypervolume_of(list(seen.values()), max_ms)))
    return out


def compare_cache_file(args: argparse.Namespace) -> Path:
    """compare_strategies' accuracy cache for this dataset's preset and its (2-epoch) training settings."""
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
    if compare_cache_file(args).is_file() and definition.size() <= 200_000:
        cached = json.loads(compare_cache_file(args).read_text())["accuracy"]
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
            net = SuperNet(d, seed=args.seed)
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
          f"BN recalibration {result.get('calibrate', 0)} batches, retraining {result['retrain']['epochs']} epochs")
    print(f"{'method':20s} {'search_s':>8s} {'retrain_s':>9s} {'cpu_s':>7s} {'HV':>6s} {'distinct':>8s} {'nondom':>6s} "
          f"{'meets_pred':>10s} {'meets_meas':>10s}")
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    for m in result["methods"]:
        search = m.get("search_cpu_seconds", m["cpu_seconds"])
        print(f"{m['method']:20s} {search:8.1f} {m.get('retrain_cpu_seconds', 0.0):9.1f} {m['cpu_seconds']:7.1f} "
              f"{m['hypervolume']:6.3f} {m['distinct']:8d} {m['non_dominated']:6d} "
              f"{fmt(m['meets_budget_predicted']):>10s} {fmt(m['meets_budget_measured']):>10s}")
    for line in target_lines(result["methods"]):
        print(line)
    print("\nrank correlation with stand-alone accuracy (Spearman): batch statistics | BN recalibrated | proxies")
    for r in result.get("rank_correlation", []):
        others = ", ".join(f"{k} {v}" for k, v in r["proxies"].items())
        if "batch_stats" not in r:  # an older result
            continue
        print(f"{r['ground_truth']:32s} n={r['n_archs']} {r['batch_stats']['spearman']:.3f} | "
              f"{r['recalibrated']['spearman']:.3f} ({1000 * r['recalibrated']['seconds_per_arch']:.0f} ms/arch) | {others}")


def target_lines(methods: list[dict]) -> list[str]:
    """The issue's targets on total CPU (search + retraining): conditioned vs separate_k (>= 5
    non-dominated, HV >= 90%, CPU <= 1/3); super-network evolutions vs evo_train (its HV, CPU <= 1/4)."""
    by = {m["method"]: m for m in methods}
    lines = ["\ntargets (CPU = search + retraining)"]
    # the k separate runs are DARTS/Proxyless + penalty (darts_k); separate_k is our own sampler's
    separate = [m for name, m in by.items() if name.startswith(("separate_", "darts_"))]
    for c in (by[name] for name in ("conditioned", "conditioned_mode") if name in by):
        for other in separate:
            lines.append(f"{c['method']} vs {other['method']}: non-dominated {c['non_dominated']} (target >= 5), "
                         f"HV ratio {c['hypervolume'] / other['hypervolume']:.3f} (>= 0.9), "
                         f"CPU ratio {c['cpu_seconds'] / other['cpu_seconds']:.3f} (<= 0.333)")
    for name in ("evo_supernet", "evo_supernet_pool200", "cmaes_supernet"):
        if name in by and "evo_train" in by:
            m, t = by[name], by["evo_train"]
            lines.append(f"{name} vs evo_train: HV ratio {m['hypervolume'] / t['hypervolume']:.3f} (>= 1), "
                         f"CPU ratio {m['cpu_seconds'] / t['cpu_seconds']:.3f} (<= 0.25); "
                         + equal_cpu(m, t.get("trajectory", [])))
    return lines


def equal_cpu(method: dict, trajectory: list) -> str:
    """evo_train's HV at the method's total CPU, and the CPU evo_train took to reach the method's HV."""
    at = [hv for cpu, hv in trajectory if cpu <= method["cpu_seconds"]]
    reached = [cpu for cpu, hv in trajectory if hv >= method["hypervolume"]]
    return (f"evo_train's HV at equal CPU {at[-1] if at else 0.0:.3f}, "
            f"evo_train reached its HV at {f'{reached[0]:.0f} CPU-s' if reached else 'never'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default=None, help="search space preset (default: the dataset's, DATASETS)")
    parser.add_argument("--train-subset", type=int, default=None,
                        help="retraining's training images (default: the dataset's, DATASETS; 0 = all)")
    parser.add_argument("--supernet-epochs", type=int, default=8)
    parser.add_argument("--sampling", default="uniform", choices=["uniform", "sandwich"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--n-budgets", type=int, default=21)
    parser.add_argument("--fill-margin", type=float, default=2.0,
                        help="conditioned sweep: spend budget left on values within this many nats of the mode")
    parser.add_argument("--retrain-epochs", type=int, default=8,
                        help="epochs of every method's retraining and of evo_train's trials")
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
