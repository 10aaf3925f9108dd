"""The one timer: how table rows, whole-model fits and a trial's ``latency_measured_ms`` are timed.

Everything that measures latency goes through :func:`time_series` with one
:class:`TimingSettings`, so a trial's measurement and the table's rows use the same statistic,
the same cycled inputs and the same warm-up, and predicted and measured latency can be compared.

This module needs only torch and the standard library (no numpy, nothing else of ours): the
remote profiler (:mod:`nni_hwnas.hardware.remote_script`) sends its source to the target device
as part of one self-contained script, so the device times exactly as this host does.
"""

from __future__ import annotations

import contextlib
import gc
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

try:
    from nni_hwnas.errors import UserError
except ImportError:  # inside the remote measuring script: only torch is there
    UserError = ValueError  # type: ignore[misc,assignment]

STATISTICS = ("min", "p10", "median")


@dataclass(frozen=True)
class Timing:
    """Summary of repeated timings of one callable, in milliseconds, plus the raw times (µs, 0.1 µs
    resolution, sorted: every statistic is a function of the multiset, not of the order)."""

    times_us: tuple[float, ...]
    median_ms: float
    iqr_ms: float
    p10_ms: float
    min_ms: float

    @classmethod
    def from_times_ms(cls, times_ms: Sequence[float]) -> "Timing":
        import numpy as np  # here, not at the top: the device's measuring script ships this module with torch only

        arr = np.asarray(times_ms, dtype=float)
        if arr.size == 0:
            raise ValueError("no timings")
        q10, q25, q50, q75 = np.percentile(arr, [10, 25, 50, 75])
        return cls(times_us=tuple(sorted(round(float(t) * 1000.0, 1) for t in arr)), median_ms=float(q50),
                   iqr_ms=float(q75 - q25), p10_ms=float(q10), min_ms=float(arr.min()))

    @property
    def repeats(self) -> int:
        return len(self.times_us)

    @property
    def noisy(self) -> bool:
        """IQR over 10% of the median, the threshold torch.utils.benchmark warns at."""
        return self.median_ms > 0 and self.iqr_ms / self.median_ms > 0.10

    def value(self, statistic: str) -> float:
        return {"min": self.min_ms, "p10": self.p10_ms, "median": self.median_ms}[statistic]

    def as_dict(self) -> dict[str, Any]:
        """JSON form. Raw times go as ``times_sorted_delta_100ns``: the sorted times in integer steps
        of 100 ns, each entry the step from the previous one (the first from zero): exact at that
        resolution and about a third of the size of plain numbers, which keeps tables under 2 MB."""
        steps = [int(round(t * 10)) for t in self.times_us]
        deltas = [b - a for a, b in zip([0] + steps[:-1], steps)]
        return {"median_ms": self.median_ms, "iqr_ms": self.iqr_ms, "p10_ms": self.p10_ms,
                "min_ms": self.min_ms, "repeats": self.repeats, "times_sorted_delta_100ns": deltas}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Timing":
        import numpy as np

        deltas = np.asarray(data["times_sorted_delta_100ns"], dtype=np.int64)
        if deltas.ndim != 1 or deltas.size != int(data["repeats"]) or (deltas[1:] < 0).any():
            raise ValueError(f"repeats {data['repeats']} but {deltas.size} raw times, or raw times not sorted")
        times = tuple((np.cumsum(deltas) / 10.0).tolist())
        return cls(times_us=times, median_ms=float(data["median_ms"]), iqr_ms=float(data["iqr_ms"]),
                   p10_ms=float(data["p10_ms"]), min_ms=float(data["min_ms"]))


@dataclass(frozen=True)
class TimingSettings:
    """How one layer or model is timed. ``max_seconds`` caps the repeats of slow ones."""

    warmup_runs: int = 100
    n_repeats: int = 300
    min_repeats: int = 30
    max_seconds: float = 0.5
    statistic: str = "min"
    noisy_retries: int = 2
    n_inputs: int = 16

    def __post_init__(self) -> None:
        if self.n_repeats < 1 or self.min_repeats < 1 or self.warmup_runs < 0 or self.max_seconds <= 0 \
                or self.noisy_retries < 0 or self.n_inputs < 1 or self.statistic not in STATISTICS:
            raise UserError(f"timing: repeats must be >= 1, warm-up and retries >= 0, max_seconds > 0, "
                            f"statistic one of {', '.join(STATISTICS)}; got {self}")


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` intra-op threads, restoring the previous setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def percentile(times: Sequence[float], q: float) -> float:
    """``numpy.percentile(times, q)`` (linear interpolation), in plain Python for the remote script."""
    ordered = sorted(times)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def series_value(times: Sequence[float], statistic: str) -> float:
    """A series' time by ``statistic`` (``min``, ``p10`` or ``median``)."""
    return {"min": min, "p10": lambda t: percentile(t, 10), "median": lambda t: percentile(t, 50)}[statistic](times)


def series_noisy(times: Sequence[float]) -> bool:
    """IQR over 10% of the median, the threshold torch.utils.benchmark warns at."""
    median = percentile(times, 50)
    return median > 0 and (percentile(times, 75) - percentile(times, 25)) / median > 0.10


def timing_inputs(shape: Sequence[int], count: int, device: str = "cpu") -> list[torch.Tensor]:
    """``count`` random inputs of ``shape`` from a private generator (seed 0): the same tensors for
    every caller, and the global RNG (a trial's training seed) is left alone."""
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(*shape, generator=generator).to(device) for _ in range(count)]


def _one_series(module: torch.nn.Module, inputs: Sequence[torch.Tensor], threads: int,
                settings: TimingSettings) -> list[float]:
    """One warm-up and timed series of ``module(x)``, ``x`` cycling through ``inputs``; times in ms."""
    sync: Callable[[], None] = torch.cuda.synchronize if inputs[0].is_cuda else (lambda: None)
    count = len(inputs)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with torch_threads(threads), torch.inference_mode():
            warm_start = time.perf_counter()
            warm_runs = 0
            while warm_runs < max(settings.warmup_runs, 1):
                module(inputs[warm_runs % count])
                sync()
                warm_runs += 1
                if warm_runs >= 3 and time.perf_counter() - warm_start > settings.max_seconds / 2:
                    break
            per_run_s = (time.perf_counter() - warm_start) / warm_runs
            repeats = int(min(max(settings.max_seconds / max(per_run_s, 1e-9), settings.min_repeats),
                              settings.n_repeats))
            times = [0.0] * repeats
            for i in range(repeats):
                x = inputs[i % count]
                start = time.perf_counter()
                module(x)
                sync()
                times[i] = (time.perf_counter() - start) * 1000.0
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def time_series(module: torch.nn.Module, inputs: Sequence[torch.Tensor], threads: int,
                settings: TimingSettings) -> list[float]:
    """Time ``module`` in eval and inference mode on ``inputs`` in turn; the raw times in ms.

    Inputs cycle because a device never sees the same tensor twice in a row: with one fixed input
    the CPU's branch predictors memorise the data-dependent branches of max-pooling, and a
    64x28x28 pool measured alone ran in 121 µs against 274 µs with changing inputs; inside a
    network the other layers spoil that memory, so fixed-input layer times did not add up (368 µs
    summed, 460 µs whole) while cycled ones did (561.5 vs 561.0 µs).

    The garbage collector is paused while timing (as ``timeit`` does); on CUDA each run is
    synchronised so the time is the kernel's, not the launch's. A noisy series (IQR over 10% of
    the median: another process took the core) is retried up to ``noisy_retries`` times, keeping
    the series with the smallest statistic, since interference only ever adds time.
    """
    was_training = module.training
    module.eval()
    try:
        best = _one_series(module, inputs, threads, settings)
        for _ in range(settings.noisy_retries):
            if not series_noisy(best):
                break
            again = _one_series(module, inputs, threads, settings)
            if series_value(again, settings.statistic) < series_value(best, settings.statistic):
                best = again
    finally:
        module.train(was_training)
    return best


def measure_model_latency(model: torch.nn.Module, input_shape: Sequence[int], *, batch_size: int = 1,
                          threads: int = 1, settings: TimingSettings | None = None) -> Any:
    """End-to-end forward latency of ``model`` on this host's CPU, timed exactly like a table row
    (same cycled inputs, warm-up and repeats); a :class:`Timing`,
    whose ``value(settings.statistic)`` is comparable with the table's prediction."""
    settings = settings or TimingSettings()
    inputs = timing_inputs((batch_size, *input_shape), settings.n_inputs)
    return Timing.from_times_ms(time_series(model, inputs, threads, settings))
