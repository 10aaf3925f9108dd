"""The latency lookup table of one device profile: measured layer times keyed by what the runtime runs.

A row is one fused block as PyTorch eager executes it in eval mode (conv -> BN -> ReLU -> pool, or
flatten -> linear -> ReLU), keyed by a frozen, named :class:`LayerKey`; it keeps the raw times
(microseconds) and their median, IQR, 10th percentile and minimum. The header records how and where
the rows were measured (threads, batch, statistic, torch version, CPU/GPU), so a table measured on
another machine or torch version is detected and reported with the command that re-profiles it.
Whole models measured to fit the predictor's correction are stored in the same file.

A missing key is an error naming the key and the profile command, never a silent zero.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping


from search_spaces.layers import ExecutedBlock, LayerSpec
from search_spaces.ops import NO_ATTENTION, operator

from nni_hwnas.errors import UserError
from nni_hwnas.hardware.timing import STATISTICS, Timing, TimingSettings

FORMAT_VERSION = 1
# LayerSpec fields that do not change what inference executes (dropout is identity in eval mode).
IGNORED_SPEC_FIELDS = ("dropout",)
# Key fields newer than format 1's first tables: absent in a stored row means the default.
ADDED_KEY_FIELDS = ("attention", "residual")


@dataclass(frozen=True, order=True)
class LayerKey(ExecutedBlock):
    """One executed block at the granularity the runtime runs it; batch and threads live in the header.

    Its fields are :class:`~search_spaces.layers.ExecutedBlock`'s, i.e. a
    :class:`~search_spaces.layers.LayerSpec` minus :data:`IGNORED_SPEC_FIELDS`: a new operator or
    option is a new field there, and its rows are simply new rows.
    """

    @classmethod
    def from_spec(cls, spec: LayerSpec) -> "LayerKey":
        return cls(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(cls)})

    def to_spec(self) -> LayerSpec:
        """The layer to build and time (no dropout: identity at inference)."""
        return LayerSpec(**dataclasses.asdict(self))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LayerKey":
        """Read a row's key; fields added after a table was written (``attention``, ``residual``)
        take their defaults, so older tables keep their rows (the migration)."""
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.name not in ADDED_KEY_FIELDS}
        if not required <= set(data) <= names:
            raise ValueError(f"key fields {sorted(data)} differ from {sorted(names)}")
        return cls(**data)

    @property
    def kernel_class(self) -> str:
        """Which compute kernel runs this block (``conv3``, ``conv5``, ``linear``). Consecutive blocks
        of different classes cost extra inside a network (instruction cache and branch predictors
        hold the other kernel), which the predictor's correction learns per pair of classes."""
        return operator(self.op).kernel_class(self)

    def describe(self) -> str:
        """Readable one-liner for error messages, e.g. ``conv k3 s1 16->32 @14x14 +bn +relu +pool``."""
        shape = f"k{self.kernel} s{self.stride} {self.in_ch}->{self.out_ch} @{self.in_hw}x{self.in_hw}" \
            if operator(self.op).spatial else f"{self.in_ch}->{self.out_ch}"
        flags = [name for name in ("batch_norm", "relu", "pool", "flatten", "residual") if getattr(self, name)]
        flags += [self.attention] if self.attention != NO_ATTENTION else []
        return f"{self.op} {shape}" + "".join(f" +{flag}" for flag in flags)


@dataclass(frozen=True)
class ModelMeasurement:
    """A whole network measured end to end, kept to fit (and refit) the predictor's correction.

    ``context`` names the space and data shape (``conv_net@1x8x8/10``); ``layers`` its keys.
    """

    context: str
    arch_id: str
    sample: dict[str, Any]
    layers: tuple[LayerKey, ...]
    timing: Timing

    def as_dict(self) -> dict[str, Any]:
        return {"context": self.context, "arch_id": self.arch_id, "sample": self.sample,
                "layers": [key.as_dict() for key in self.layers], **self.timing.as_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelMeasurement":
        return cls(context=str(data["context"]), arch_id=str(data["arch_id"]), sample=dict(data["sample"]),
                   layers=tuple(LayerKey.from_dict(k) for k in data["layers"]), timing=Timing.from_dict(data))


@dataclass
class TableHeader:
    """How and where a table was measured. ``statistic`` is what lookups return (and what whole-model
    ground truth must use too); ``machine`` describes the host for people, ``fingerprint`` (CPU model
    and flags, threads, torch) is what the staleness check compares. Tables written before
    fingerprints existed have none and count as stale: nothing says which machine they describe."""

    profile: str
    device: str
    threads: int
    batch_size: int
    precision: str
    statistic: str
    warmup_runs: int
    n_repeats: int
    n_inputs: int
    torch_version: str
    machine: dict[str, Any]
    fingerprint: dict[str, Any] = field(default_factory=dict)  # see nni_hwnas.hardware.fingerprint
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    format_version: int = FORMAT_VERSION

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def file_version(path: str | Path) -> tuple[str, int, int]:
    """(resolved path, mtime, size) of a file, ``-1`` for a missing one: the key under which a process
    keeps what it read from the file (a table, a config), so a file rewritten on disk is read again."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return str(path.resolve()), -1, -1
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def space_context(definition: Any) -> str:
    """A space at one data shape, e.g. ``conv_net@1x8x8/10``: what fit models and hints are tagged with."""
    shape = "x".join(str(v) for v in definition.input_shape)
    return f"{definition.name}@{shape}/{definition.num_classes}"


def correction_context(context: str) -> str:
    """The context a correction is fitted for: the space and input shape (class count dropped, as
    it changes only the classifier's row), e.g. ``conv_net@1x8x8``."""
    return context.partition("/")[0]


def profile_command(profile: str, context: str | None = None) -> str:
    """The command that (re)measures ``profile``'s table for a context like ``conv_net@1x8x8/10``."""
    command = f"nni-hwnas profile --profile {profile}"
    if context:
        space, _, rest = context.partition("@")
        shape, _, classes = rest.partition("/")
        command += f" --space {space}"
        if shape:
            command += f" --input-shape {shape.replace('x', ',')}"
        if classes:
            command += f" --classes {classes}"
    return command


def current_environment(device: str) -> dict[str, Any]:
    """What staleness is judged on: torch version and the processor that runs the model."""
    import torch

    from nni_hwnas.experiment.runinfo import machine_info

    machine = machine_info()
    if device == "cuda" and torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    return {"torch_version": torch.__version__, "machine": machine}


class LatencyTable:
    """Rows ``LayerKey -> Timing`` for one profile, the whole-model measurements, and the fitted
    corrections: plain dicts per :func:`correction_context` plus ``"*"`` fitted on all models
    (the predictor owns their meaning; see :class:`~nni_hwnas.hardware.predictor.LatencyCorrection`)."""

    def __init__(self, header: TableHeader, rows: Mapping[LayerKey, Timing] | None = None,
                 models: Iterable[ModelMeasurement] = (), corrections: Mapping[str, Mapping[str, Any]] | None = None,
                 path: Path | None = None, runs: Iterable[Mapping[str, Any]] = ()) -> None:
        if header.statistic not in STATISTICS:
            raise ValueError(f"statistic {header.statistic!r} not in {STATISTICS}")
        self.header = header
        self.rows: dict[LayerKey, Timing] = dict(rows or {})
        self.models: list[ModelMeasurement] = list(models)
        self.corrections: dict[str, dict[str, Any]] = dict(corrections or {})
        self.path = path
        self.runs: list[dict[str, Any]] = [dict(r) for r in runs]  # one entry per profiling run: what, how long

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, key: LayerKey) -> bool:
        return key in self.rows

    def ms(self, key: LayerKey, context: str | None = None) -> float:
        """The key's time in ms by the header's statistic; a missing key is a :class:`UserError`."""
        try:
            return self.rows[key].value(self.header.statistic)
        except KeyError:
            where = f" ({self.path})" if self.path else ""
            raise UserError(f"latency table of profile {self.header.profile!r}{where} has no row for "
                            f"{key.describe()}; measure it with: {profile_command(self.header.profile, context)}") from None

    def times_ms(self) -> dict[LayerKey, float]:
        """Every row's time by the header's statistic: the dict the predictor sums from."""
        statistic = self.header.statistic
        return {key: timing.value(statistic) for key, timing in self.rows.items()}

    def model_ids(self) -> set[tuple[str, str]]:
        return {(m.context, m.arch_id) for m in self.models}

    # --- staleness ------------------------------------------------------------------------
    def stale_reasons(self, environment: Mapping[str, Any] | None = None, threads: int | None = None) -> list[str]:
        """Why this table may not describe this machine now (empty when it does).

        ``environment`` is a :func:`current_environment`-style dict (``fingerprint`` and/or
        ``torch_version`` and ``machine``), this host's by default.
        """
        from nni_hwnas.hardware.fingerprint import fingerprint_differences, machine_fingerprint

        header = self.header
        env = dict(environment or {})
        if "fingerprint" not in env and not env:
            env["fingerprint"] = machine_fingerprint(header.threads, header.device)
        reasons = []
        if header.fingerprint and "fingerprint" in env:
            ours = {**env["fingerprint"], "threads": header.threads}  # a thread change is named below
            reasons += fingerprint_differences(header.fingerprint, ours)
        else:
            if not header.fingerprint:
                reasons.append("the table has no machine fingerprint (measured before nni-hwnas recorded CPU flags)")
            current = current_environment(header.device) if "machine" not in env else env
            if current["torch_version"] != header.torch_version:
                reasons.append(f"torch {header.torch_version} there, {current['torch_version']} here")
            processor = "gpu" if header.device == "cuda" else "cpu_model"
            if header.machine.get(processor) != current["machine"].get(processor):
                reasons.append(f"{processor} {header.machine.get(processor)!r} there, "
                               f"{current['machine'].get(processor)!r} here")
        if threads is not None and threads != header.threads:
            reasons.append(f"measured with {header.threads} thread(s), the profile now uses {threads}")
        return reasons

    def timing_settings(self) -> Any:
        """The :class:`~nni_hwnas.hardware.timing.TimingSettings` the rows were measured with, so a
        trial's own measurement can be taken exactly the same way (issue: one timer)."""
        header = self.header
        last = next((run["settings"] for run in reversed(self.runs) if isinstance(run.get("settings"), dict)), {})
        extra = {name: last[name] for name in ("min_repeats", "max_seconds", "noisy_retries") if name in last}
        return TimingSettings(warmup_runs=header.warmup_runs, n_repeats=header.n_repeats, n_inputs=header.n_inputs,
                              statistic=header.statistic, **extra)

    def warn_if_stale(self, threads: int | None = None, environment: Mapping[str, Any] | None = None) -> list[str]:
        """Warn (once per call) when the table was measured elsewhere; returns the reasons."""
        reasons = self.stale_reasons(environment, threads)
        if reasons:
            warnings.warn(f"latency table {self.path or ''} of profile {self.header.profile!r} was measured on "
                          f"another setup ({'; '.join(reasons)}): predictions may be off; re-measure with "
                          f"`{profile_command(self.header.profile)} --space SPACE --fresh`", StaleTableWarning,
                          stacklevel=2)
        return reasons

    # --- JSON round trip ----------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        return {
            "header": self.header.as_dict(),
            "corrections": self.corrections,
            "rows": [{**key.as_dict(), **timing.as_dict()} for key, timing in sorted(self.rows.items())],
            "models": [m.as_dict() for m in self.models],
            "runs": self.runs,
        }

    def save(self, path: str | Path | None = None) -> Path:
        """Write atomically (temp file + rename): an interrupted save never leaves a corrupt table."""
        target = Path(path or self.path or "")
        if not str(target):
            raise ValueError("no path to save the latency table to")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.as_dict(), separators=(",", ":"), allow_nan=False))
        os.replace(tmp, target)
        self.path = target
        return target

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path | None = None, header_only: bool = False) -> "LatencyTable":
        """A table from its JSON form; ``header_only`` skips the rows (see :meth:`load`)."""
        header_data = dict(data["header"])
        if header_data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {header_data.get('format_version')!r}, expected {FORMAT_VERSION}")
        header = TableHeader(**header_data)
        if header_only:
            return cls(header, path=path)
        key_names = [f.name for f in dataclasses.fields(LayerKey)]
        rows = {}
        for row in data["rows"]:
            key = LayerKey.from_dict({name: row[name] for name in key_names if name in row})
            timing = Timing.from_dict(row)
            if not all(math.isfinite(t) and t >= 0 for t in (timing.median_ms, timing.min_ms, timing.p10_ms)):
                raise ValueError(f"non-finite or negative time in row {key.describe()}")
            rows[key] = timing
        models = [ModelMeasurement.from_dict(m) for m in data.get("models", [])]
        return cls(header, rows, models, data.get("corrections"), path, data.get("runs", []))

    @classmethod
    def load(cls, path: str | Path, profile: str | None = None, header_only: bool = False) -> "LatencyTable":
        """Read a table; a missing or corrupt file is a one-line :class:`UserError` with the fix.

        ``header_only`` keeps the header alone (no rows, models or corrections): enough to ask whether
        the table is stale, at a third of the cost, which every trial that picks its table pays."""
        path = Path(path)
        name = profile or path.stem
        if not path.is_file():
            raise UserError(f"latency table {path} not found; measure it with: "
                            f"{profile_command(name)} --space SPACE (e.g. conv_net)")
        try:
            table = cls.from_dict(json.loads(path.read_text()), path, header_only=header_only)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"latency table {path} is corrupt ({type(exc).__name__}: {str(exc)[:120]}); "
                            f"delete it and re-measure with: {profile_command(name)} --space SPACE") from None
        if profile is not None and table.header.profile != profile:
            raise UserError(f"latency table {path} was measured for profile {table.header.profile!r}, "
                            f"not {profile!r}; point the profile at its own table or re-measure with: "
                            f"{profile_command(profile)} --space SPACE")
        return table


class StaleTableWarning(UserWarning):
    """The table was measured on another machine, torch version or thread count."""
