"""Measure a device profile's latency table: every layer a space can produce, and a few whole models
measured in between them (see :func:`profile_spaces`).

Each layer is built as the runtime runs it (our fused conv/BN/ReLU/pool or flatten/linear block,
eval mode, inference mode), fed random inputs of the profile's batch size in turn (see
:func:`nni_hwnas.hardware.timing.time_series` for why they must change), and timed with the
profile's threads: warm-up, then repeats. Rows already in the table are skipped, so an interrupted run
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
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from search_spaces.definition import SpaceDefinition
from search_spaces.layers import LayerSpec, build_layer, build_network
from search_spaces.ops import operator

from nni_hwnas.errors import UserError
from nni_hwnas.hardware.latency_table import (LatencyTable, LayerKey, ModelMeasurement, TableHeader, Timing,
                            correction_context, current_environment, space_context)
from nni_hwnas.hardware.fingerprint import machine_fingerprint
from nni_hwnas.hardware.predictor import LatencyCorrection, fit_corrections
from nni_hwnas.hardware.profiles import DeviceProfile
from nni_hwnas.hardware.timing import TimingSettings, time_series, timing_inputs


def _device_of(profile: DeviceProfile) -> str:
    if profile.kind == "budget-only":
        raise UserError(f"profile {profile.name!r} is budget-only: its costs are analytic, there is nothing to measure")
    if profile.kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"profile {profile.name!r} needs a CUDA GPU and torch sees none here; "
                        "profile it on the machine that has the GPU")
    return "cuda" if profile.kind == "cuda" else "cpu"


def time_module(module: torch.nn.Module, inputs: Sequence[torch.Tensor], threads: int,
                settings: TimingSettings) -> Timing:
    """Time ``module`` with the one timer (:func:`~nni_hwnas.hardware.timing.time_series`) and summarise."""
    return Timing.from_times_ms(time_series(module, inputs, threads, settings))


def layer_input_shape(key: LayerKey, batch_size: int) -> tuple[int, ...]:
    """The input shape the layer sees inside a network: its registry entry's ``input_shape`` (a
    feature map, or a flat vector for a linear)."""
    return (batch_size, *operator(key.op).input_shape(key))


def layer_inputs(key: LayerKey, batch_size: int, device: str, count: int) -> list[torch.Tensor]:
    """Random inputs of the shape the layer sees inside a network."""
    return timing_inputs(layer_input_shape(key, batch_size), count, device)


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
    inputs = timing_inputs((profile.batch_size, *input_shape), settings.n_inputs, device)
    return time_module(module, inputs, profile.threads, settings)


def new_table(profile: DeviceProfile, settings: TimingSettings, environment: dict[str, Any] | None = None) -> LatencyTable:
    """An empty table headed with where it is measured: this host, or ``environment`` (an SSH
    device's ``torch_version``, ``machine`` and ``fingerprint``)."""
    device = _device_of(profile)
    env = environment or {**current_environment(device), "fingerprint": machine_fingerprint(profile.threads, device)}
    header = TableHeader(profile=profile.name, device=device, threads=profile.threads, batch_size=profile.batch_size,
                         precision=profile.precision, statistic=settings.statistic, warmup_runs=settings.warmup_runs,
                         n_repeats=settings.n_repeats, n_inputs=settings.n_inputs, torch_version=env["torch_version"],
                         machine=env["machine"], fingerprint=env["fingerprint"])
    return LatencyTable(header)


def open_table(profile: DeviceProfile, path: Path, settings: TimingSettings, fresh: bool = False,
               environment: dict[str, Any] | None = None) -> LatencyTable:
    """The table to extend: the existing one at ``path`` (resume) or a new one.

    Rows measured under other conditions are never mixed in: an existing table with another thread
    count, batch, statistic or machine (this host, or the SSH device ``environment`` describes) is
    an error that points at ``--fresh``.
    """
    if fresh or not path.exists():
        table = new_table(profile, settings, environment)
        table.path = path
        return table
    table = LatencyTable.load(path, profile.name)
    header = table.header
    differs = [f"{name} {getattr(header, name)!r} there, {value!r} now" for name, value in
               (("threads", profile.threads), ("batch_size", profile.batch_size), ("statistic", settings.statistic),
                ("n_inputs", settings.n_inputs), ("device", _device_of(profile))) if getattr(header, name) != value]
    differs += table.stale_reasons(environment)
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


class LocalMeasurer:
    """Times rows and whole models on this host with the one timer."""

    where = "local"

    def __init__(self, profile: DeviceProfile, settings: TimingSettings) -> None:
        self.profile, self.settings = profile, settings

    def layer(self, key: LayerKey) -> Timing:
        return time_layer(key, self.profile, self.settings)

    def model(self, specs: Sequence[LayerSpec], input_shape: Sequence[int]) -> Timing:
        return time_model(specs, input_shape, self.profile, self.settings)


def interleave(rows: Sequence[Any], models: Sequence[Any]) -> list[Any]:
    """Rows and whole models merged evenly (a model after every ``len(rows)/len(models)`` rows)."""
    merged: list[Any] = []
    step = len(rows) / len(models) if models else 0.0
    next_model = 0
    for i, row in enumerate(rows):
        while next_model < len(models) and next_model * step <= i:
            merged.append(models[next_model])
            next_model += 1
        merged.append(row)
    return merged + list(models[next_model:])


def noise_summary(table: LatencyTable, keys: Sequence[LayerKey]) -> dict[str, Any]:
    """How disturbed the rows were: median and 90th percentile of IQR/median, noisy count, load."""
    import os

    ratios = [table.rows[k].iqr_ms / table.rows[k].median_ms for k in keys if table.rows[k].median_ms > 0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"rows": len(ratios), "noisy_rows": int(sum(r > 0.10 for r in ratios)),
            "iqr_over_median_p50": round(float(np.median(ratios)), 4) if ratios else None,
            "iqr_over_median_p90": round(float(np.percentile(ratios, 90)), 4) if ratios else None,
            "driver_loadavg_1min": load}


def plan_profile(table: LatencyTable, definitions: Sequence[SpaceDefinition], fit_models: int,
                 seed: int) -> tuple[list[LayerKey], list[LayerKey], list[tuple], int]:
    """What a profiling run measures: (all layer keys, keys missing from ``table``, whole-model
    jobs ``(definition, context, arch_id, sample)`` missing from it, whole models already there)."""
    keys = list(dict.fromkeys(LayerKey.from_spec(s) for d in definitions for s in d.enumerate_layers()))
    todo = [key for key in keys if key not in table]
    jobs, kept = [], 0
    groups: dict[str, SpaceDefinition] = {}
    for definition in definitions:  # class counts change one row only: fit models once per shape
        groups.setdefault(correction_context(space_context(definition)), definition)
    known = table.model_ids()
    for definition in groups.values():
        context = space_context(definition)
        for sample in sample_models(definition, fit_models, seed):
            arch_id = definition.arch_id(sample)
            if (context, arch_id) in known:
                kept += 1
            else:
                jobs.append((definition, context, arch_id, sample))
    return keys, todo, jobs, kept


def estimate_seconds(table: LatencyTable, profile: DeviceProfile, definitions: Sequence[SpaceDefinition],
                     settings: TimingSettings, fit_models: int, seed: int, sample_rows: int = 3,
                     measurer: Any = None) -> tuple[int, int, float]:
    """(layer rows, whole models, seconds) a profiling run will take here, from timing up to
    ``sample_rows`` of the missing rows now (smallest, middle, largest; kept in the table, so
    nothing is measured twice). A whole model is budgeted like the slowest sampled row."""
    from nni_hwnas.hardware.cost_model import layer_macs

    _, todo, jobs, _ = plan_profile(table, definitions, fit_models, seed)
    by_size = sorted(todo, key=lambda key: layer_macs(key.to_spec()))
    picks = list(dict.fromkeys(by_size[int(i * (len(by_size) - 1) / max(sample_rows - 1, 1))]
                               for i in range(sample_rows))) if by_size else []
    walls = []
    measure = measurer or LocalMeasurer(profile, settings)
    for key in picks:
        start = time.perf_counter()
        table.rows[key] = measure.layer(key)
        walls.append(time.perf_counter() - start)
    per_row = sum(walls) / len(walls) if walls else 1.5 * settings.max_seconds
    per_model = max(walls, default=1.5 * settings.max_seconds)
    remaining = len(todo) - len(picks)
    return len(todo), len(jobs), remaining * per_row + len(jobs) * per_model


def remeasure_disturbed_models(table: LatencyTable, measure: Any, settings: TimingSettings, progress: bool,
                               rounds: int = 3, on_step: Any = None) -> int:
    """Re-measure whole models whose series was noisy (IQR over 10% of the median), up to
    ``rounds`` times each, keeping the smaller time; the number of re-measurements.

    Whole models are the correction's ground truth, and they suffer from load more than rows: a
    0.4 ms model run is many times as likely as a 20 µs row run to be cut by another process, and
    the cache it refills afterwards is larger. Profiling ``staged_net`` at 8x8 with one core kept
    busy left the median model series at IQR/median 0.40 (rows 0.07); their minimum ran 12% above
    the same models measured later, the fitted scale followed (1.22 against 1.07 from the clean
    models), and every prediction came out 11% high. Later is another moment: a burst has passed.
    """
    from tqdm import tqdm

    statistic, done = table.header.statistic, 0
    for _ in range(rounds):
        disturbed = [i for i, m in enumerate(table.models) if m.timing.noisy]
        if not disturbed:
            break
        for i in tqdm(disturbed, desc=f"{table.header.profile}: re-measuring disturbed whole models", unit="model",
                      disable=not progress, leave=True):
            model = table.models[i]
            again = measure.model([key.to_spec() for key in model.layers], _context_input_shape(model.context))
            if again.value(statistic) < model.timing.value(statistic):  # interference only adds time
                table.models[i] = dataclasses.replace(model, timing=again)
            done += 1
            if on_step is not None:
                on_step()
    return done


def _context_input_shape(context: str) -> tuple[int, ...]:
    """The input shape of a whole model's context (``conv_net@1x8x8/10`` -> ``(1, 8, 8)``)."""
    return tuple(int(v) for v in context.partition("@")[2].partition("/")[0].split("x"))


def model_noise(table: LatencyTable) -> dict[str, Any]:
    """How disturbed the whole models were: median IQR/median and the noisy count."""
    ratios = [m.timing.iqr_ms / m.timing.median_ms for m in table.models if m.timing.median_ms > 0]
    return {"models": len(ratios), "noisy_models": int(sum(r > 0.10 for r in ratios)),
            "model_iqr_over_median_p50": round(float(np.median(ratios)), 4) if ratios else None}


@dataclass
class MeasureCounts:
    """Rows (or whole models) of one profiling run: measured now, kept from the table, re-measured
    because disturbed, and left noisy (IQR over 10% of the median)."""

    measured: int = 0
    kept: int = 0
    remeasured: int = 0
    noisy: int = 0


@dataclass
class ProfileReport:
    """What a profiling run did, for the CLI's summary line: table rows and whole models alike."""

    path: Path
    layers: MeasureCounts = field(default_factory=MeasureCounts)
    models: MeasureCounts = field(default_factory=MeasureCounts)
    seconds: float = 0.0
    corrections: dict[str, LatencyCorrection] = field(default_factory=dict)
    noise: dict[str, Any] = field(default_factory=dict)
    contexts: list[str] = field(default_factory=list)


def profile_spaces(table: LatencyTable, profile: DeviceProfile, definitions: Sequence[SpaceDefinition],
                   settings: TimingSettings, fit_models: int = 40, seed: int = 0, progress: bool = True,
                   save_every_s: float = 10.0, measurer: Any = None) -> ProfileReport:
    """Measure every layer of ``definitions`` missing from ``table``, then ``fit_models`` whole models per
    space and input shape, refit the corrections on all whole models in the table, and save.

    Rows and whole models are measured interleaved (:func:`interleave`), so a spell of load from
    another process disturbs both alike instead of biasing the correction; afterwards rows whose
    spread (IQR over 10% of the median) or trend (:func:`stalled_rows`) says they were disturbed
    are re-measured, keeping the smaller time, and the noise left is recorded in the run entry.
    ``measurer`` times the rows (:class:`LocalMeasurer` here by default; the SSH one on a device).
    Saves every ``save_every_s`` seconds and on any interruption (the exception propagates).
    """
    from tqdm import tqdm

    if table.path is None:
        raise ValueError("the table needs a path to be saved to")
    started = time.perf_counter()
    report = ProfileReport(path=table.path, contexts=[space_context(d) for d in definitions])
    keys, todo, jobs, report.models.kept = plan_profile(table, definitions, fit_models, seed)
    report.layers.kept = len(keys) - len(todo)
    last_save = time.perf_counter()

    def maybe_save(force: bool = False) -> None:
        nonlocal last_save
        if force or time.perf_counter() - last_save > save_every_s:
            table.save()
            last_save = time.perf_counter()

    measure = measurer or LocalMeasurer(profile, settings)
    try:
        tasks = interleave(todo, jobs)
        bar = tqdm(tasks, desc=f"{profile.name}: layers and whole models", unit="item", disable=not progress,
                   leave=True)
        for task in bar:
            if isinstance(task, LayerKey):
                bar.set_postfix_str(task.describe(), refresh=False)
                table.rows[task] = measure.layer(task)
                report.layers.measured += 1
            else:
                definition, context, arch_id, sample = task
                specs = definition.describe(sample)
                table.models.append(ModelMeasurement(context, arch_id, sample,
                                                     tuple(LayerKey.from_spec(s) for s in specs),
                                                     measure.model(specs, definition.input_shape)))
                report.models.measured += 1
            maybe_save()
        for _ in range(settings.noisy_retries):  # later is another moment: a burst of load has passed
            suspects = list(dict.fromkeys(stalled_rows(table, keys) + [k for k in keys if table.rows[k].noisy]))
            for key in tqdm(suspects, desc=f"{profile.name}: re-measuring disturbed layers", unit="layer",
                            disable=not progress or not suspects, leave=True):
                again = measure.layer(key)
                if again.value(settings.statistic) < table.rows[key].value(settings.statistic):
                    table.rows[key] = again
                report.layers.remeasured += 1
                maybe_save()
        report.models.remeasured = remeasure_disturbed_models(table, measure, settings, progress,
                                                              on_step=maybe_save)
        report.layers.noisy = sum(table.rows[k].noisy for k in keys)
        report.noise = {**noise_summary(table, keys), **model_noise(table)}
        maybe_save(force=True)
        if table.models:
            report.corrections = fit_corrections(table)
            table.corrections = {context: c.to_dict() for context, c in report.corrections.items()}
    finally:
        report.seconds = time.perf_counter() - started
        table.runs.append({"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "contexts": report.contexts, "layers_measured": report.layers.measured,
                           "models_measured": report.models.measured, "seconds": round(report.seconds, 1),
                           "layers_remeasured": report.layers.remeasured,
                           "models_remeasured": report.models.remeasured, "noise": report.noise,
                           "settings": dataclasses.asdict(settings), "measured_by": measure.where})
        table.save()
    return report
