"""Benchmark: how well each training-free proxy ranks architectures, and how much faster it is.

For each dataset and space: sample N distinct architectures (seeded), train each with the training
evaluator (:func:`nni_hwnas.evaluation.trial.evaluate_architecture`, settings below), then score each with
every proxy in-process (:func:`nni_hwnas.evaluation.proxy_trial.proxy_metrics`) and compare the rankings:
Spearman and Kendall rank correlation with trained validation accuracy, top-10% overlap (share
of the 10% most accurate architectures that are also in the proxy's top 10%), mean seconds per
architecture, and the speedup over the training evaluator. ``params`` and ``flops`` are the
baselines a proxy must beat. A row ``train_seed1`` retrains a subset under another seed: its
correlation with the first training is the ceiling any proxy can reach against this noisy truth.

Trained accuracies are cached in ``experiments/benchmarks/cache/`` (JSON, keyed by architecture
id, valid while the training settings and seed are unchanged), so reruns only score proxies. The
RMI reference is trained once per dataset and space and cached in the user cache dir
(``$NNI_HWNAS_CACHE``, see :mod:`nni_hwnas.evaluation.reference`).

    .venv/bin/python experiments/benchmarks/proxy_quality.py [--json PATH] [--n-archs 60] [--workers 2]
        [--datasets digits breastmnist] [--spaces conv_net medmnist_cnn] [--proxies rmi synflow ...]

Cost on 2 shared cores (load 3-6 from other jobs): training the 4 x (60 + 20) architectures took
about 50 minutes the first time (BreastMNIST ``conv_net`` alone 33), the references 9 (the
largest BreastMNIST ``conv_net`` 6.5); a rerun from the cache scores every proxy again in 10-13
minutes, ``rmi_steps10`` taking most of it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "experiments" / "benchmarks" / "cache"
sys.path.insert(0, str(REPO))

#: Training evaluator settings per dataset: short, whole train split (digits 1,078 / breast 546 images).
TRAINING = {
    "digits": {"epochs": 8, "batch_size": 64, "learning_rate": 0.05, "lr_schedule": "cosine", "augment": True},
    "breastmnist": {"epochs": 15, "batch_size": 64, "learning_rate": 0.05, "lr_schedule": "cosine", "augment": True},
}
#: Spaces (bundled presets) benchmarked on every dataset.
SPACES = ("conv_net", "medmnist_cnn")
#: Proxy rows: label -> (proxy, options). Defaults of the plugin first.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "rmi": ("rmi", {}),
    "rmi_rbf": ("rmi", {"estimator": "rbf_cka"}),
    "rmi_last": ("rmi", {"blocks": "last"}),
    "rmi_steps10": ("rmi", {"train_steps": 10}),
    "rmi_largest": ("rmi", {"reference": "largest"}),
    "synflow": ("synflow", {}),
    "naswot": ("naswot", {}),
    "grad_norm": ("grad_norm", {}),
    "params": ("params", {}),
    "flops": ("flops", {}),
}


def _train_one(args: tuple[dict, dict, dict, int]) -> dict[str, Any]:
    """Worker: the training evaluator on one architecture (one torch thread per process)."""
    import torch

    from nni_hwnas.evaluation.trial import evaluate_architecture
    from nni_hwnas.evaluation.training import TrainingDiverged
    from search_spaces.layers import LayerSpec

    torch.set_num_threads(1)
    specs_dicts, dataset, training, seed = args
    specs = [LayerSpec(**d) for d in specs_dicts]
    try:
        m = evaluate_architecture(specs, dataset, training, seed, threads=1, latency_repeats=3)
    except TrainingDiverged as exc:
        return {"accuracy": None, "error": str(exc)}
    return {"accuracy": m["accuracy"], "trial_seconds": m["trial_seconds"], "train_seconds": m["train_seconds"]}


def train_all(jobs: dict[str, tuple], workers: int, store: dict, save) -> None:
    """Train the architectures in ``jobs`` (id -> worker args) not yet in ``store``; save as we go."""
    todo = {aid: job for aid, job in jobs.items() if aid not in store}
    if not todo:
        return
    print(f"  training {len(todo)} architectures with {workers} worker(s)...", flush=True)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_train_one, job): aid for aid, job in todo.items()}
        for done, future in enumerate(as_completed(futures), 1):
            store[futures[future]] = future.result()
            save()
            if done % 10 == 0 or done == len(todo):
                print(f"    {done}/{len(todo)}", flush=True)


def top_overlap(scores: np.ndarray, truth: np.ndarray, fraction: float = 0.1) -> float:
    """Share of the ``fraction`` most accurate architectures that are also the proxy's top ``fraction``."""
    k = max(1, int(round(fraction * len(truth))))
    best_true = set(np.argsort(-truth, kind="stable")[:k])
    best_proxy = set(np.argsort(-scores, kind="stable")[:k])
    return len(best_true & best_proxy) / k


def rank_quality(scores: list[float], truth: list[float]) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    s, t = np.asarray(scores, float), np.asarray(truth, float)
    if np.ptp(s) == 0 or np.ptp(t) == 0:
        return {"spearman": 0.0, "kendall": 0.0, "top10_overlap": top_overlap(s, t)}
    return {"spearman": float(spearmanr(s, t).statistic), "kendall": float(kendalltau(s, t).statistic),
            "top10_overlap": top_overlap(s, t)}


def ground_truth(dataset_name: str, space: str, args: argparse.Namespace) -> tuple[Any, Any, dict, dict]:
    """Sample the architectures and train them (or read the cache): (data, definition, samples, cache)."""
    from nni_hwnas.data.datasets import load_dataset
    from search_spaces import load_preset, make_definition

    dataset = {"name": dataset_name, "data_root": str(args.data_root)}
    data = load_dataset(seed=args.seed, **dataset)
    space_name, choices = load_preset(space)
    definition = make_definition(space_name, choices, data.input_shape, data.num_classes)
    training = TRAINING[dataset_name]

    rng = np.random.default_rng(args.seed)
    samples: dict[str, dict] = {}
    for _ in range(100 * args.n_archs):
        if len(samples) == args.n_archs:
            break
        sample = definition.canonical(definition.random_sample(rng))
        samples.setdefault(definition.arch_id(sample), sample)

    cache_file = CACHE / f"proxy_quality_{dataset_name}_{space}.json"
    header = {"training": training, "seed": args.seed, "space": space, "dataset": dataset_name}
    cached = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    if cached.get("header") != header:
        cached = {"header": header, "trained": {}, "retrained": {}}

    def save() -> None:
        CACHE.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cached, indent=1, sort_keys=True) + "\n")

    def jobs(ids, seed):
        return {aid: ([s.as_dict() for s in definition.describe(samples[aid])], dataset, training, seed) for aid in ids}

    print(f"{dataset_name} / {space}: {len(samples)} architectures", flush=True)
    train_all(jobs(samples, args.seed), args.workers, cached["trained"], save)
    train_all(jobs(list(samples)[:args.repeat], args.seed + 1), args.workers, cached["retrained"], save)
    return data, definition, samples, cached


def benchmark(dataset_name: str, space: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from nni_hwnas.evaluation.proxies import ProxyFailed
    from nni_hwnas.evaluation.proxy_trial import make_context, proxy_metrics
    from nni_hwnas.evaluation.reference import largest_sample, prepare_reference

    data, definition, samples, cached = ground_truth(dataset_name, space, args)
    dataset = {"name": dataset_name, "data_root": str(args.data_root)}
    training = TRAINING[dataset_name]
    repeat_ids = list(samples)[:args.repeat]
    ok = [aid for aid in samples if cached["trained"][aid].get("accuracy") is not None]
    truth = {aid: cached["trained"][aid]["accuracy"] for aid in ok}
    train_s = float(np.mean([cached["trained"][aid]["trial_seconds"] for aid in ok]))

    torch.set_num_threads(1)
    references: dict[str, dict] = {}
    contexts: dict[tuple[str, str], tuple[Any, float]] = {}
    rows: list[dict[str, Any]] = []
    for label, (proxy, options) in VARIANTS.items():
        if label not in args.proxies:
            continue
        estimator, kind = options.get("estimator", "linear_cka"), options.get("reference", "standard")
        if kind not in references:
            sample = largest_sample(definition) if kind == "largest" else None
            references[kind] = prepare_reference(dataset, definition=definition, sample=sample, seed=args.seed,
                                                 data=data, echo=print)
        if (estimator, kind) not in contexts:
            t0 = time.perf_counter()
            context = make_context(dataset, args.seed, args.batch_size, references[kind], estimator, data=data)
            contexts[estimator, kind] = context, time.perf_counter() - t0
        context, context_s = contexts[estimator, kind]
        scores, seconds, failed = {}, [], 0
        for aid in ok:
            try:
                m = proxy_metrics(definition.describe(samples[aid]), context, proxy, args.seed,
                                  train_steps=options.get("train_steps", 0), blocks=options.get("blocks", "all"))
            except ProxyFailed:
                failed += 1
                continue
            scores[aid] = m["default"]
            seconds.append(m["proxy_seconds"])
        ids = list(scores)
        per_arch = float(np.mean(seconds))
        rows.append({"dataset": dataset_name, "space": space, "proxy": label, "options": options,
                     "n_archs": len(ids), "failed": failed,
                     **rank_quality([scores[i] for i in ids], [truth[i] for i in ids]),
                     "seconds_per_arch": per_arch, "speedup": train_s / per_arch,
                     # what the whole benchmark's N architectures cost with the proxy, one-off
                     # reference training and batch setup included, against training them all
                     "speedup_incl_reference": len(ids) * train_s / (
                         len(ids) * per_arch + (context_s + references[kind]["train_seconds"] if proxy == "rmi" else 0.0)),
                     "setup_seconds": context_s if proxy == "rmi" else 0.0,
                     "reference_val_accuracy": references[kind]["val_accuracy"] if proxy == "rmi" else None})
    again = [aid for aid in repeat_ids if cached["retrained"].get(aid, {}).get("accuracy") is not None and aid in truth]
    if len(again) >= 3:
        rows.append({"dataset": dataset_name, "space": space, "proxy": f"train_seed{args.seed + 1}", "options": {},
                     "n_archs": len(again), "failed": 0,
                     **rank_quality([cached["retrained"][a]["accuracy"] for a in again], [truth[a] for a in again]),
                     "seconds_per_arch": float(np.mean([cached["retrained"][a]["trial_seconds"] for a in again])),
                     "speedup": 1.0, "speedup_incl_reference": 1.0, "setup_seconds": 0.0,
                     "reference_val_accuracy": None})
    accs = np.array(list(truth.values()))
    for row in rows:
        row.update({"train_seconds_per_arch": train_s, "training": training, "batch_size": args.batch_size,
                    "reference_train_seconds": references.get("standard", {}).get("train_seconds"),
                    "accuracy_min": float(accs.min()), "accuracy_median": float(np.median(accs)),
                    "accuracy_max": float(accs.max())})
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'dataset':12s} {'space':13s} {'proxy':12s} {'n':>3s} {'spearman':>8s} {'kendall':>8s} {'top10%':>7s} {'s/arch':>8s} {'speedup':>8s} {'w/ ref':>7s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['dataset']:12s} {r['space']:13s} {r['proxy']:12s} {r['n_archs']:3d} {r['spearman']:8.3f} "
              f"{r['kendall']:8.3f} {r['top10_overlap']:7.2f} {r['seconds_per_arch']:8.4f} {r['speedup']:8.0f} "
              f"{r['speedup_incl_reference']:7.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=str(REPO / "experiments" / "benchmarks" / "results" / "proxy_quality.json"))
    parser.add_argument("--datasets", nargs="+", default=["digits", "breastmnist"])
    parser.add_argument("--spaces", nargs="+", default=list(SPACES))
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--n-archs", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=20, help="architectures retrained under seed+1 (noise ceiling)")
    parser.add_argument("--batch-size", type=int, default=128, help="proxy batch size")
    parser.add_argument("--proxies", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="proxy rows to score (rmi_steps10 takes most of a rerun's time)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    for name in args.datasets:
        if name != "digits" and not (Path(args.data_root) / f"{name}.npz").is_file():
            print(f"skipping {name}: {name}.npz not in {args.data_root}")
            continue
        for space in args.spaces:
            rows.extend(benchmark(name, space, args))
    print_table(rows)
    from nni_hwnas.experiment.runinfo import machine_info, package_versions

    machine, versions = machine_info(), package_versions()
    for row in rows:
        row.update({"seed": args.seed, "machine": machine, "versions": versions})
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
