"""Experiment YAML -> typed, validated dataclasses; one clear line per bad key or value.

Keys are snake_case and strict: an unknown key is named with the closest valid one, a bad value
with its bound. Relative paths resolve against the YAML file's folder, so a config runs the same
from any working directory.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


from nni_hwnas.errors import UserError, closest, read_yaml


def _bounded(default: Any, *, low: float | None = None, high: float | None = None,
             choices: tuple | None = None) -> Any:
    return field(default=default, metadata={"low": low, "high": high, "choices": choices})


@dataclass
class AugmentConfig:
    """Per-dataset augmentation; a key left out keeps the dataset's default."""

    flip: bool | None = None
    crop_padding: int | None = _bounded(None, low=0, high=64)


@dataclass
class DatasetConfig:
    """Which data, from where. ``data_root`` holds the MedMNIST ``.npz`` / CIFAR-10 / idx files;
    ``path`` is the folder (``name: folder``) or file (``name: npz``), ``keys`` the npz key map,
    ``image_size`` ([H, W]) resizes a folder's images instead of refusing mixed sizes."""

    name: str = "digits"
    data_root: str | None = None
    download: bool = False
    val_fraction: float = _bounded(0.2, low=0.01, high=0.9)
    test_fraction: float = _bounded(0.2, low=0.01, high=0.9)
    path: str | None = None
    keys: dict = field(default_factory=dict)
    image_size: list | None = None
    cache: bool = True
    augment: AugmentConfig | None = None


@dataclass
class SpaceConfig:
    """A space by name or by preset; ``choices`` overrides the preset's values per kind."""

    name: str | None = None
    preset: str | None = None
    choices: dict = field(default_factory=dict)


@dataclass
class StrategyConfig:
    """An NNI built-in strategy (or ours) by name, with its constructor arguments."""

    name: str = "Random"
    args: dict = field(default_factory=dict)


@dataclass
class EvaluatorConfig:
    """How a trial scores a candidate: short SGD training (``train``), a training-free proxy
    (``proxy``: rmi, synflow, naswot, grad_norm, params, flops) or costs only (``cost``)."""

    kind: str = _bounded("train", choices=("train", "proxy", "cost"))
    proxy: str = _bounded("rmi", choices=("rmi", "synflow", "naswot", "grad_norm", "params", "flops"))
    proxy_batch_size: int = _bounded(256, low=2, high=65536)
    train_steps: int = _bounded(0, low=0, high=100000)
    reference_checkpoint: str | None = None
    then_train_top_k: int = _bounded(0, low=0, high=1000)
    cost_metric: str = _bounded("latency_ms", choices=("latency_ms", "params", "flops", "peak_mem_kb", "param_kb"))
    epochs: int = _bounded(3, low=1, high=1000)
    batch_size: int = _bounded(64, low=1, high=65536)
    learning_rate: float = _bounded(0.05, low=1e-7, high=10.0)
    momentum: float = _bounded(0.9, low=0.0, high=0.999)
    weight_decay: float = _bounded(5e-4, low=0.0, high=1.0)
    lr_schedule: str = _bounded("cosine", choices=("cosine", "step", "constant"))
    train_subset: int | None = _bounded(None, low=1)
    augment: bool = True
    warmup_epochs: float = _bounded(0.0, low=0.0, high=100.0)
    grad_clip_norm: float | None = _bounded(None, low=1e-6)
    label_smoothing: float = _bounded(0.0, low=0.0, high=0.5)
    precision: str = _bounded("fp32", choices=("fp32", "bf16"))
    weight_init: str = _bounded("default", choices=("default", "kaiming"))
    threads: int = _bounded(1, low=1, high=256)
    latency_repeats: int = _bounded(30, low=1, high=10000)
    default_metric: str = _bounded("accuracy", choices=("accuracy", "mnas_reward"))
    reward_target_ms: float | None = _bounded(None, low=1e-6)
    reward_w: float = _bounded(-0.07, low=-10.0, high=0.0)


@dataclass
class HardwareConfig:
    """The target device: a profile (``hw_profiles/<name>.yaml`` or a path) and budget overrides.

    With a profile, ``latency_ms`` is predicted from its lookup table and ``within_budget`` checks
    its budgets; without one (``profile: null``) latency is measured on this host at batch 1.
    """

    profile: str | None = None
    table: str | None = None
    budgets: dict = field(default_factory=dict)
    measure_latency: bool = False


@dataclass
class ExperimentConfig:
    """NNI experiment settings: trial budget, concurrency, web UI port, working directory."""

    max_trials: int = _bounded(12, low=1, high=100000)
    concurrency: int = _bounded(2, low=1, high=256)
    port: int = _bounded(8080, low=1024, high=65535)
    max_duration: str | None = None
    working_directory: str | None = None


@dataclass
class RunConfig:
    """One search: data, space, evaluator, strategy and the NNI experiment around them."""

    name: str = "nni-hwnas"
    seed: int = _bounded(0, low=0, high=2**31 - 1)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    output: str | None = None
    source: str | None = field(default=None, metadata={"internal": True})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            dict: "a mapping", list: "a list"}.get(tp, str(tp))


def _coerce(where: str, value: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(where, value, options[0], meta)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise UserError(f"config: `{where}` must be a mapping of keys, got {value!r}")
        return _build(tp, value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if tp is float and isinstance(value, str):
        try:
            value = float(value)  # YAML reads 5e-4 as a string
        except ValueError:
            pass
    ok = isinstance(value, tp) and not (tp in (int, float) and isinstance(value, bool))
    if not ok:
        raise UserError(f"config: `{where}` must be {_type_name(tp)}, got {value!r}")
    low, high, choices = meta.get("low"), meta.get("high"), meta.get("choices")
    if choices is not None and value not in choices:
        raise UserError(f"config: `{where}` is {value!r}{closest(value, choices)}; allowed: {', '.join(map(str, choices))}")
    if low is not None and value < low:
        raise UserError(f"config: `{where}` must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise UserError(f"config: `{where}` must be <= {high}, got {value!r}")
    return value


def _build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for key in data:
        if key not in fields:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise UserError(f"config: unknown key `{where}`{closest(key, fields)}; allowed here: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        if name in data:
            where = f"{prefix}.{name}" if prefix else name
            values[name] = _coerce(where, data[name], hints[name], f.metadata)
    return cls(**values)


def parse_config(data: Mapping[str, Any] | None, base_dir: Path | None = None) -> RunConfig:
    """Validate a config mapping; relative paths resolve against ``base_dir``."""
    config = _build(RunConfig, data or {})
    base = (base_dir or Path.cwd()).resolve()

    def resolve(value: str | None, only_files: bool = False) -> str | None:
        """A path relative to the YAML's folder; with ``only_files``, names (presets) stay names."""
        if value is None or (only_files and not value.endswith((".yaml", ".yml"))):
            return value
        return str((base / Path(value).expanduser()).resolve())

    config.dataset.data_root = resolve(config.dataset.data_root)
    config.dataset.path = resolve(config.dataset.path)
    config.experiment.working_directory = resolve(config.experiment.working_directory)
    config.space.preset = resolve(config.space.preset, only_files=True)
    config.evaluator.reference_checkpoint = resolve(config.evaluator.reference_checkpoint)
    config.hardware.table = resolve(config.hardware.table)
    config.hardware.profile = resolve(config.hardware.profile, only_files=True)
    if config.space.name is None and config.space.preset is None:
        config.space.name = "conv_net"
    return config


def load_config(path: str | Path) -> RunConfig:
    """Read and validate an experiment YAML file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found; pass an existing YAML file, e.g. experiments/quickstart.yaml")
    data = read_yaml(path, "config")
    if data is not None and not isinstance(data, Mapping):
        raise UserError(f"config {path} must be a YAML mapping of sections (dataset, space, ...), got {type(data).__name__}")
    config = parse_config(data, path.parent)
    config.source = str(path.resolve())
    return config
