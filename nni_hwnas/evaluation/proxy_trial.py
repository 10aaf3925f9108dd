"""The proxy evaluator: score a candidate without training it, in an NNI trial or in-process.

Two entry points over the same :func:`proxy_metrics`:

- :func:`score_and_report`, the body of an NNI ``FunctionalEvaluator`` (one candidate per trial
  process, reported as the metric-contract dict with ``default`` = the proxy score);
- :func:`proxy_scores`, for strategies that screen many candidates in their own process (proxy
  then train: search on the proxy, then train the top of the front with the training evaluator).
  It pays the data loading and the reference's forward pass once, not per candidate.

Both use one batch of the training split, chosen by the seed, and initialise every candidate
with the same seed (:func:`nni_hwnas.nni_compat.freeze.reinitialise`), so a score depends on the
architecture only. Kept as lean as :mod:`nni_hwnas.evaluation.trial`: torch and our small modules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from nni_hwnas.hardware.cost_model import estimate_cost
from nni_hwnas.data.datasets import load_dataset, subset
from nni_hwnas.errors import UserError
from nni_hwnas.metrics import is_finite_metrics
from nni_hwnas.evaluation.proxies import PROXIES, ProxyFailed, ProxySettings, RmiReference, score
from nni_hwnas.hardware.timing import torch_threads
from nni_hwnas.nni_compat.freeze import reinitialise

__all__ = ["ProxyContext", "make_context", "proxy_metrics", "proxy_scores", "score_and_report"]


@dataclass(frozen=True)
class ProxyContext:
    """What every candidate of one search shares: the batch ``(n, C, H, W)`` / ``(n,)`` and, for
    ``rmi``, the reference's Gram matrices on that batch."""

    batch_x: torch.Tensor
    batch_y: torch.Tensor
    reference: RmiReference | None = None


def make_context(dataset: Mapping[str, Any], seed: int, batch_size: int, reference: Mapping[str, Any] | None = None,
                 estimator: str = "linear_cka", data: Any = None) -> ProxyContext:
    """Load the data (unless given), draw the seed's batch, and run the reference on it once.

    ``reference`` is the dict of :func:`nni_hwnas.evaluation.reference.prepare_reference` (``rmi`` needs it).
    """
    from nni_hwnas.evaluation.reference import load_reference

    if data is None:
        data = load_dataset(seed=seed, **dataset)
    batch_x, batch_y = subset(data.train_x, data.train_y, int(batch_size), seed)
    rmi_reference = None
    if reference:
        rmi_reference = RmiReference.from_network(load_reference(reference), batch_x, estimator)
    return ProxyContext(batch_x, batch_y, rmi_reference)


def proxy_metrics(layer_specs: Sequence, context: ProxyContext, proxy: str, seed: int, *,
                  train_steps: int = 0, blocks: str = "all") -> dict[str, float]:
    """Score one architecture and return the metric-contract dict (``default`` = proxy score).

    Raises:
        ProxyFailed: the forward pass failed, or a score or metric is NaN/infinite.
    """
    if proxy not in PROXIES:
        from nni_hwnas.errors import unknown

        raise unknown("proxy", proxy, PROXIES)
    if proxy == "rmi" and context.reference is None:
        raise UserError("proxy 'rmi' needs a reference model; prepare one with nni_hwnas.evaluation.reference.prepare_reference")
    started = time.perf_counter()
    network = reinitialise(layer_specs, seed)
    settings = ProxySettings(seed=seed, reference=context.reference, train_steps=train_steps, blocks=blocks)
    value = score(proxy, network, context.batch_x, context.batch_y, settings)
    metrics: dict[str, float] = {
        "default": value,
        "proxy_score": value,
        **estimate_cost(layer_specs).as_metrics(),
        "within_budget": 1,
        "proxy_seconds": time.perf_counter() - started,
    }
    if not is_finite_metrics(metrics):
        raise ProxyFailed(f"non-finite metric in {metrics}")
    return metrics


def proxy_scores(definition: Any, samples: Sequence[Mapping[str, Any]], context: ProxyContext, proxy: str,
                 seed: int, *, train_steps: int = 0, blocks: str = "all") -> list[dict[str, float] | None]:
    """In-process scoring of many samples of ``definition``; ``None`` marks a failed candidate."""
    results: list[dict[str, float] | None] = []
    for sample in samples:
        try:
            results.append(proxy_metrics(definition.describe(sample), context, proxy, seed,
                                         train_steps=train_steps, blocks=blocks))
        except ProxyFailed:
            results.append(None)
    return results


def score_and_report(model: Any, dataset: Mapping[str, Any], proxy: str, seed: int,
                     reference: Mapping[str, Any] | None, batch_size: int, train_steps: int = 0,
                     threads: int = 1, estimator: str = "linear_cka", blocks: str = "all",
                     hardware: Mapping[str, Any] | None = None) -> dict[str, float]:
    """NNI ``FunctionalEvaluator`` body: score the frozen ``model`` and report one final dict.

    A failed forward pass or a NaN score raises :class:`~nni_hwnas.evaluation.proxies.ProxyFailed`, so NNI
    records the trial as FAILED and the search goes on.
    """
    import nni

    started = time.perf_counter()
    with torch_threads(threads):
        context = make_context(dataset, seed, batch_size, reference if proxy == "rmi" else None, estimator)
        metrics = proxy_metrics(model.layer_specs, context, proxy, seed, train_steps=train_steps, blocks=blocks)
    if hardware and hardware.get("profile"):  # predicted latency and the profile's budgets
        from nni_hwnas.evaluation.trial import profile_costs

        metrics.update(profile_costs(model.layer_specs, model.definition, hardware)[0])
    metrics["trial_seconds"] = time.perf_counter() - started
    nni.report_final_result(metrics)
    return metrics
