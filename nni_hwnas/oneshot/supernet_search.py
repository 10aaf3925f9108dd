"""Our evolution with super-network fitness (NEvoNAS / EvNAS): thousands of samples scored in-process.

``HwEvolution`` proposes, the super-network scores each proposal with inherited weights on the
validation split (:func:`~nni_hwnas.oneshot.supernet_training.score_sample`, tens of ms), the
latency predictor gives the cost, and the best of the final front are then trained for real.
No NNI trial process per sample: at ~4.5 s of ``nni.nas`` import per trial that would cost 100x
more than the scoring itself.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from nni_hwnas.data.datasets import DatasetSplits

from .supernet import SuperNet
from .supernet_training import score_sample


def evolve_with_supernet(supernet: SuperNet, data: DatasetSplits, predict: Callable[[dict], float], n_samples: int,
                         seed: int, **evolution_args: Any) -> dict[str, Any]:
    """Run ``n_samples`` proposals of ``HwEvolution`` (objectives accuracy up, predicted latency down).

    Returns the history (sample, supernet accuracy, predicted latency) and the evolution's front.
    """
    from strategies.hw_evolution import HwEvolution, SpaceExhausted

    definition = supernet.definition
    args = {"objectives": {"use": ["score", "cost"], "score_metric": "accuracy", "cost_metric": "latency_ms"},
            **evolution_args}
    if args.get("budget") is not None:
        args.setdefault("screen", predict)
    evolution = HwEvolution(definition.mutable_labels(), seed=seed, identity=definition.arch_id,
                            canonical=definition.canonical, **args)
    start = time.perf_counter()
    history = []
    for _ in range(n_samples):
        try:
            sample = evolution.ask()
        except SpaceExhausted:
            break
        metrics = {"accuracy": score_sample(supernet, data.val_x, data.val_y, sample, data.is_multilabel),
                   "latency_ms": float(predict(sample))}
        evolution.tell(sample, metrics)
        history.append({"sample": dict(sample), **metrics})
    return {"history": history, "front": evolution.pareto_front(within_budget=False),
            "search_seconds": time.perf_counter() - start}
