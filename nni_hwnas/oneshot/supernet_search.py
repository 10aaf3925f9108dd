"""Our ask/tell strategies with super-network fitness (NEvoNAS / EvNAS, CMANAS): thousands of samples in-process.

``HwEvolution`` or ``CmaEs`` proposes, the super-network scores each proposal with inherited weights
on the validation split (:func:`~nni_hwnas.oneshot.supernet_training.score_sample`, tens of ms), the
latency predictor gives the cost, and the best of the final front are then trained for real.
No NNI trial process per sample: at ~4.5 s of ``nni.nas`` import per trial that would cost 100x
more than the scoring itself.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from nni_hwnas.data.datasets import DatasetSplits
from nni_hwnas.reporting.pareto import pareto_front_indices

from .supernet import SuperNet
from .supernet_training import score_sample

SUPERNET_STRATEGIES = ("hw_evolution", "cmaes")
OBJECTIVES = {"use": ["score", "cost"], "score_metric": "accuracy", "cost_metric": "latency_ms"}
#: ``HwEvolution``'s ``model_pool`` here: plain evolution after the random start. The model-based
#: proposal (a surrogate ranking a pool of a few hundred candidates) pays when a trial costs seconds;
#: a super-network score costs ~25 ms and the proposal ~70 ms. In ``experiments/benchmarks/weight_sharing.py``
#: (digits / conv_net, 1000 samples, ``results/weight_sharing.json``) ``evo_supernet`` took 25 CPU-s of
#: search against 135 s for ``evo_supernet_pool200``, and its retrained front had hypervolume 0.957
#: against 0.847; on one super-network and seeds 0-2 the pooled search reached the same super-network
#: front or a worse one (0.664, 0.553, 0.665 against 0.665 each), at 4x the CPU.
#: A user can still pass ``model_pool`` in ``strategy.args``.
SUPERNET_MODEL_POOL = 0


def make_strategy(name: str, supernet: SuperNet, predict: Callable[[dict], float], seed: int, **args: Any) -> Any:
    """An ask/tell strategy over the super-network's space, maximising accuracy and minimising latency."""
    definition = supernet.definition
    args = {"objectives": dict(OBJECTIVES), **args}
    common = dict(seed=seed, identity=definition.arch_id)
    if name == "cmaes":
        from strategies.cmaes import CmaEs

        return CmaEs(definition.mutable_labels(), **common, **args)
    from strategies.hw_evolution import HwEvolution

    if args.get("budget") is not None:
        args.setdefault("screen", predict)
    args.setdefault("model_pool", SUPERNET_MODEL_POOL)
    return HwEvolution(definition.mutable_labels(), canonical=definition.canonical, **common, **args)


def front_of(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Non-dominated history entries (accuracy up, predicted latency down), cheapest first."""
    if not history:
        return []
    losses = np.array([[-h["accuracy"], h["latency_ms"]] for h in history])
    front = [dict(history[int(i)]) for i in pareto_front_indices(losses)]
    return sorted(front, key=lambda h: h["latency_ms"])


def search_with_supernet(strategy: Any, supernet: SuperNet, data: DatasetSplits, predict: Callable[[dict], float],
                         n_samples: int, calibration: Sequence[torch.Tensor] | None = None,
                         on_sample: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
    """``n_samples`` proposals of ``strategy`` (ask/tell), each scored on the super-network.

    Returns the history (sample, super-network accuracy, predicted latency), its front and the time.
    ``calibration`` recalibrates each sample's BN statistics before scoring (see ``score_sample``).
    """
    from strategies.hw_evolution import SpaceExhausted

    start = time.perf_counter()
    history = []
    for index in range(n_samples):
        try:
            sample = strategy.ask()
        except SpaceExhausted:
            break
        metrics = {"accuracy": score_sample(supernet, data.val_x, data.val_y, sample, data.is_multilabel,
                                            calibration=calibration),
                   "latency_ms": float(predict(sample))}
        strategy.tell(sample, metrics)
        history.append({"sample": dict(sample), **metrics})
        if on_sample is not None:
            on_sample(index, history[-1])
    return {"history": history, "front": front_of(history), "search_seconds": time.perf_counter() - start}


def evolve_with_supernet(supernet: SuperNet, data: DatasetSplits, predict: Callable[[dict], float], n_samples: int,
                         seed: int, strategy: str = "hw_evolution", calibration: Sequence[torch.Tensor] | None = None,
                         on_sample: Callable[[int, dict], None] | None = None, **strategy_args: Any) -> dict[str, Any]:
    """:func:`search_with_supernet` with a new ``strategy`` (``hw_evolution`` or ``cmaes``) of ``strategy_args``."""
    chosen = make_strategy(strategy, supernet, predict, seed, **strategy_args)
    return search_with_supernet(chosen, supernet, data, predict, n_samples, calibration, on_sample)
