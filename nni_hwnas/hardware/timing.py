"""Wall-clock timing the way ``torch.utils.benchmark`` does it: fixed threads, warm-up, replicates.

Used for whole models here and, later, for every lookup-table row, so the two agree by design.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import numpy as np
import torch


@dataclass(frozen=True)
class Measurement:
    """Robust summary of repeated timings, in milliseconds."""

    median_ms: float
    iqr_ms: float
    p10_ms: float
    min_ms: float
    repeats: int
    threads: int

    @property
    def noisy(self) -> bool:
        """True when the spread is over 10% of the median (as torch.utils.benchmark warns)."""
        return self.median_ms > 0 and self.iqr_ms / self.median_ms > 0.10

    def as_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` intra-op threads, restoring the previous setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def time_callable(fn: Callable[[], object], *, warmup_runs: int, n_repeats: int, threads: int) -> Measurement:
    """Time ``fn`` ``n_repeats`` times after ``warmup_runs`` calls, with ``threads`` threads."""
    times = np.empty(n_repeats)
    with torch_threads(threads), torch.inference_mode():
        for _ in range(warmup_runs):
            fn()
        for i in range(n_repeats):
            start = time.perf_counter()
            fn()
            times[i] = (time.perf_counter() - start) * 1000.0
    q25, q75 = np.percentile(times, [25, 75])
    return Measurement(median_ms=float(np.median(times)), iqr_ms=float(q75 - q25),
                       p10_ms=float(np.percentile(times, 10)), min_ms=float(times.min()),
                       repeats=n_repeats, threads=threads)


def measure_model_latency(model: torch.nn.Module, input_shape: tuple[int, int, int], *, batch_size: int = 1,
                          threads: int = 1, warmup_runs: int = 10, n_repeats: int = 30) -> Measurement:
    """End-to-end forward latency of ``model`` in eval mode on this host's CPU."""
    was_training = model.training
    model.eval()
    x = torch.randn(batch_size, *input_shape)
    try:
        return time_callable(lambda: model(x), warmup_runs=warmup_runs, n_repeats=n_repeats, threads=threads)
    finally:
        model.train(was_training)
