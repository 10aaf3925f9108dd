"""Run a search over a tabular benchmark in this process: ask, look up, tell.

An NNI trial costs seconds of process start and imports (NNI_NOTES); a table lookup costs
microseconds. Benchmarks of search quality need 30 seeds x 200 trials of every strategy, so they
skip NNI's manager and call the same :func:`~nni_hwnas.evaluation.tabular.tabular_metrics` the NNI
trials call. Any object with ``ask() -> dict`` and ``tell(sample, metrics)`` runs here: our cores
directly, NNI's tuners and Optuna's samplers through :mod:`nni_hwnas.evaluation.baselines`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

import numpy as np

from nni_hwnas.evaluation.tabular import COSTS, load_table, tabular_info, tabular_metrics


class AskTell(Protocol):
    def ask(self) -> dict[str, Any]: ...

    def tell(self, sample: Mapping[str, Any], metrics: Mapping[str, Any] | None) -> Any: ...


@dataclass(frozen=True)
class TabularProblem:
    """One benchmark problem: dataset, the cost traded against accuracy, and what ``default`` is.

    ``default_metric: mnas_reward`` gives single-objective strategies the MnasNet reward with
    ``reward_target_ms`` (default: the table's median latency) so they see the trade-off too.
    """

    dataset: str = "cifar10"
    cost_metric: str = "latency_ms"
    default_metric: str = "accuracy"
    reward_target_ms: float | None = None

    def definition(self) -> Any:
        from search_spaces import make_definition

        info = tabular_info("nb201", self.dataset)
        return make_definition("nb201", None, info.input_shape, info.num_classes)

    def objective(self) -> dict[str, Any]:
        target = self.reward_target_ms
        if self.default_metric == "mnas_reward" and target is None:
            target = float(np.median(load_table(self.dataset).latency_ms))
        return {"default_metric": self.default_metric, "reward_target_ms": target, "reward_w": -0.07}

    def evaluate(self, sample: Mapping[str, Any], seed: int) -> dict[str, float]:
        return tabular_metrics(sample, self.dataset, seed, self.objective())

    def true_points(self) -> np.ndarray:
        """``(n_cells, 2)`` losses of every cell: (error of the mean accuracy, cost)."""
        table = load_table(self.dataset)
        if self.cost_metric not in COSTS:
            raise ValueError(f"cost metric {self.cost_metric!r} is not in the table; use one of {list(COSTS)}")
        return np.column_stack([1.0 - table.mean_accuracy(), table.cost(self.cost_metric)])

    def losses_of(self, samples: list[Mapping[str, Any]]) -> np.ndarray:
        """Losses of evaluated cells by their *mean* accuracy (the quality found, not the draw's luck)."""
        table = load_table(self.dataset)
        rows = np.array([table.row(s) for s in samples], dtype=int)
        return self.true_points()[rows] if len(rows) else np.empty((0, 2))


@dataclass
class Trace:
    """What one run evaluated, in order."""

    samples: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    strategy_seconds: float = 0.0


def run_ask_tell(strategy: AskTell, problem: TabularProblem, n_trials: int, seed: int) -> Trace:
    """Evaluate ``n_trials`` proposals one at a time (concurrency 1), returning the trace.

    ``strategy_seconds`` is the time spent inside ``ask``/``tell`` (the strategy's own overhead).
    """
    definition = problem.definition()
    trace = Trace()
    for _ in range(n_trials):
        started = time.perf_counter()
        sample = strategy.ask()
        trace.strategy_seconds += time.perf_counter() - started
        full = definition.complete(sample)
        metrics = problem.evaluate(full, seed)
        started = time.perf_counter()
        strategy.tell(sample, metrics)
        trace.strategy_seconds += time.perf_counter() - started
        trace.samples.append(full)
        trace.metrics.append(metrics)
    return trace
