"""Measure a device profile's latency table: every layer a space can produce, then a few whole models.

Each layer is built as the runtime runs it (our fused conv/BN/ReLU/pool or flatten/linear block,
eval mode, inference mode), fed random inputs of the profile's batch size in turn (see
:func:`time_module` for why they must change), and timed with the profile's threads: warm-up,
then repeats. Rows already in the table are skipped, so an interrupted run
resumes where it stopped; the table is saved every few seconds and on Ctrl-C.

Which statistic: this machine's ground truth moves (METHODS.md: the same model re-measured agreed
within ±10% for 93.8% of models with the median of 100 runs, 96.2% with the 10th percentile and
98.8% with the minimum of 300 after 100 warm-ups). Interference from other processes only ever
adds time, so the low end of the distribution is what stays put: the default is the **minimum**
of up to 300 runs after up to 100 warm-ups, for table rows and whole-model ground truth alike.
Measured here under other jobs' load (1 thread, conv_net_small at 8x8): the same 100 models
re-measured agreed within ±10% for 100% of them with the minimum, 99% with the 10th percentile
and 95% with the median. Slow layers get fewer repeats (never fewer than
``min_repeats``; ``max_seconds`` per row), which keeps the default spaces at one to two minutes
per shape on two cores.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from search_spaces.definition import SpaceDefinition
from search_spaces.layers import LayerSpec, build_layer, build_network
from search_spaces.ops import operator

from nni_hwnas.errors import UserError
from nni_hwnas.hardware.latency_table import (STATISTICS, LatencyTable, LayerKey, ModelMeasurement, TableHeader, Timing,
                            correction_context, current_environment, space_context)
from nni_hwnas.hardware.predictor import LatencyCorrection, fit_corrections
from nni_hwnas.hardware.profiles import DeviceProfile
from nni_hwnas.hardware.timing import torch_threads


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


def _device_of(profile: DeviceProfile) -> str:
    if profile.kind == "budget-only":
        raise UserError(f"profile {profile.name!r} is budget-only: its costs are analytic, there is nothing to measure")
    if profile.kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"profile {profile.name!r} needs a CUDA GPU and torch sees none here; "
                        "profile it on the machine that has the GPU")
    return "cuda" if profile.kind == "cuda" else "cpu"


def _time_once(module: torch.nn.Module, inputs: Sequence[torch.Tensor], threads: int,
               settings: TimingSettings) -> Timing:
    """One warm-up and timed series of ``module(x)``, ``x`` cycling through ``inputs``."""
    module.eval()
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
            repeats = int(np.clip(settings.max_seconds / max(per_run_s, 1e-9), settings.min_repeats, settings.n_repeats))
            times = np.empty(repeats)
            for i in range(repeats):
                x = inputs[i % count]
                start = time.perf_counter()
                module(x)
                sync()
                times[i] = (time.perf_counter() - start) * 1000.0
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timing.from_times_ms(times)


def time_module(module: torch.nn.Module, inputs: Sequence[torch.Tensor], threads: int,
                settings: TimingSettings) -> Timing:
    """Time ``module`` in eval and inference mode on ``inputs`` in turn: warm-up, then repeats
    within ``max_seconds``.

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
    best = _time_once(module, inputs, threads, settings)
    for _ in range(settings.noisy_retries):
        if not best.noisy:
            break
        again = _time_once(module, inputs, threads, settings)
        if again.value(settings.statistic) < best.value(settings.statistic):
            best = again
    return best


def layer_inputs(key: LayerKey, batch_size: int, device: str, count: int) -> list[torch.Tensor]:
    """Random inputs of the shape the layer sees inside a network (its registry entry's
    ``input_shape``: a feature map, or a flat vector for a linear)."""
    shape = (batch_size, *operator(key.op).input_shape(key))
    return [torch.randn(*shape, device=device) for _ in range(count)]


def time_layer(key: LayerKey, profile: DeviceProfile, settings: TimingSettings) -> Timing:
    device = _device_of(profile)
    torch.manual_seed(0)
    module = build_layer(key.to_spec()).to(device)
    return time_module(module, layer_inputs(key, profile.batch_size, device, settings.n_inputs), profile.threads, settings)


def time_model(specs: Sequence[LayerSpec], input_shape: Sequence[int], profile: DeviceProfile,
               settings: TimingSettings) -> Timing:
    """End-to-end time of the network ``specs`` describes, measured exactly like the table's rows."""
    device = _device_of(profile)
    torch.manual_seed(0)
    module = build_network(specs).to(device)
    inputs = [torch.randn(profile.batch_size, *input_shape, device=device) for _ in range(settings.n_inputs)]
    return time_module(module, inputs, profile.threads, settings)


def new_table(profile: DeviceProfile, settings: TimingSettings) -> LatencyTable:
    device = _device_of(profile)
    env = current_environment(device)
    header = TableHeader(profile=profile.name, device=device, threads=profile.threads, batch_size=profile.batch_size,
                         precision=profile.precision, statistic=settings.statistic, warmup_runs=settings.warmup_runs,
                         n_repeats=settings.n_repeats, n_inputs=settings.n_inputs, torch_version=env["torch_version"],
                         machine=env["machine"])
    return LatencyTable(header)


def open_table(profile: DeviceProfile, path: Path, settings: TimingSettings, fresh: bool = False) -> LatencyTable:
    """The table to extend: the existing one at ``path`` (resume) or a new one.

    Rows measured under other conditions are never mixed in: an existing table with another thread
    count, batch, statistic or machine is an error that points at ``--fresh``.
    """
    if fresh or not path.exists():
        table = new_table(profile, settings)
        table.path = path
        return table
    table = LatencyTable.load(path, profile.name)
    header = table.header
    differs = [f"{name} {getattr(header, name)!r} there, {value!r} now" for name, value in
               (("threads", profile.threads), ("batch_size", profile.batch_size), ("statistic", settings.statistic),
                ("n_inputs", settings.n_inputs), ("device", _device_of(profile))) if getattr(header, name) != value]
    differs += table.stale_reasons()
    if differs:
        raise UserError(f"latency table {path} was measured differently ({'; '.join(differs)}); "
                        f"start it over with --fresh or pass another --table")
    return table


def sample_models(definition: SpaceDefinition, n_models: int, seed: int,
                  exclude: set[tuple[LayerKey, ...]] = frozenset()) -> list[dict[str, Any]]:
    """Up to ``n_models`` random samples naming distinct networks (by layer keys), seeded.

    Networks in ``exclude`` are skipped (the benchmark excludes the fit models). The sequence is a
    prefix-stable function of ``seed``: asking for more models later keeps the first ones.
    """
    rng = np.random.default_rng(seed)
    seen = set(exclude)
    samples: list[dict[str, Any]] = []
    attempts = 0
    while len(samples) < n_models and attempts < 50 * n_models + 100:
        attempts += 1
        sample = definition.canonical(definition.random_sample(rng))
        keys = network_keys(definition, sample)
        if keys not in seen:
            seen.add(keys)
            samples.append(sample)
    return samples


def network_keys(definition: SpaceDefinition, sample: dict[str, Any]) -> tuple[LayerKey, ...]:
    return tuple(LayerKey.from_spec(spec) for spec in definition.describe(sample))


def stalled_rows(table: LatencyTable, keys: Sequence[LayerKey], factor: float = 5.0) -> list[LayerKey]:
    """Rows far above their kernel's trend: measured while a thread of the team was descheduled.

    With several threads on a busy machine a whole series can stall (every run of a 20 µs layer
    taking 30 ms while another process holds a core); its IQR stays small, so the noise check misses
    it. Per kernel class, the trend is ``floor + slope * MACs`` (the class's fastest row, and the
    median slope above it); rows over ``factor`` times their trend are re-measured later.
    """
    from nni_hwnas.hardware.cost_model import layer_macs

    statistic = table.header.statistic
    by_class: dict[str, list[tuple[LayerKey, float, int]]] = {}
    for key in keys:
        if key in table.rows:
            by_class.setdefault(key.kernel_class, []).append((key, table.rows[key].value(statistic),
                                                             layer_macs(key.to_spec())))
    suspects = []
    for rows in by_class.values():
        if len(rows) < 8:
            continue
        floor = min(ms for _, ms, _ in rows)
        slope = float(np.median([(ms - floor) / macs for _, ms, macs in rows if macs > 0]))
        suspects += [key for key, ms, macs in rows if ms > factor * (floor + slope * macs)]
    return suspects


@dataclass
class ProfileReport:
    """What a profiling run did, for the CLI's summary line."""

    path: Path
    layers_measured: int = 0
    layers_kept: int = 0
    layers_remeasured: int = 0
    models_measured: int = 0
    models_kept: int = 0
    noisy_layers: int = 0
    seconds: float = 0.0
    corrections: dict[str, LatencyCorrection] = field(default_factory=dict)
    contexts: list[str] = field(default_factory=list)


def profile_spaces(table: LatencyTable, profile: DeviceProfile, definitions: Sequence[SpaceDefinition],
                   settings: TimingSettings, fit_models: int = 40, seed: int = 0, progress: bool = True,
                   save_every_s: float = 10.0) -> ProfileReport:
    """Measure every layer of ``definitions`` missing from ``table``, then ``fit_models`` whole models per
    space and input shape, refit the corrections on all whole models in the table, and save.

    Saves every ``save_every_s`` seconds and on any interruption (the exception propagates).
    """
    from tqdm import tqdm

    if table.path is None:
        raise ValueError("the table needs a path to be saved to")
    started = time.perf_counter()
    report = ProfileReport(path=table.path, contexts=[space_context(d) for d in definitions])
    keys = list(dict.fromkeys(LayerKey.from_spec(s) for d in definitions for s in d.enumerate_layers()))
    todo = [key for key in keys if key not in table]
    report.layers_kept = len(keys) - len(todo)
    last_save = time.perf_counter()

    def maybe_save(force: bool = False) -> None:
        nonlocal last_save
        if force or time.perf_counter() - last_save > save_every_s:
            table.save()
            last_save = time.perf_counter()

    try:
        bar = tqdm(todo, desc=f"{profile.name}: layers", unit="layer", disable=not progress, leave=True)
        for key in bar:
            bar.set_postfix_str(key.describe(), refresh=False)
            timing = time_layer(key, profile, settings)
            table.rows[key] = timing
            report.layers_measured += 1
            report.noisy_layers += timing.noisy
            maybe_save()
        for _ in range(settings.noisy_retries):
            suspects = stalled_rows(table, keys)
            for key in tqdm(suspects, desc=f"{profile.name}: re-measuring stalled layers", unit="layer",
                            disable=not progress or not suspects, leave=True):
                again = time_layer(key, profile, settings)
                if again.value(settings.statistic) < table.rows[key].value(settings.statistic):
                    table.rows[key] = again
                report.layers_remeasured += 1
                maybe_save()
        maybe_save(force=True)
        jobs = []
        groups: dict[str, SpaceDefinition] = {}
        for definition in definitions:  # class counts change one row only: fit models once per shape
            groups.setdefault(correction_context(space_context(definition)), definition)
        for definition in groups.values():
            context = space_context(definition)
            known = table.model_ids()
            for sample in sample_models(definition, fit_models, seed):
                arch_id = definition.arch_id(sample)
                if (context, arch_id) in known:
                    report.models_kept += 1
                else:
                    jobs.append((definition, context, arch_id, sample))
        bar = tqdm(jobs, desc=f"{profile.name}: whole models", unit="model", disable=not progress, leave=True)
        for definition, context, arch_id, sample in bar:
            specs = definition.describe(sample)
            timing = time_model(specs, definition.input_shape, profile, settings)
            table.models.append(ModelMeasurement(context, arch_id, sample,
                                                 tuple(LayerKey.from_spec(s) for s in specs), timing))
            report.models_measured += 1
            maybe_save()
        if table.models:
            report.corrections = fit_corrections(table)
            table.corrections = {context: c.to_dict() for context, c in report.corrections.items()}
    finally:
        report.seconds = time.perf_counter() - started
        table.runs.append({"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "contexts": report.contexts, "layers_measured": report.layers_measured,
                           "models_measured": report.models_measured, "seconds": round(report.seconds, 1),
                           "settings": dataclasses.asdict(settings)})
        table.save()
    return report
