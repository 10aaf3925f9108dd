"""Experiment YAML -> typed, validated dataclasses; one clear line per bad key or value.

Keys are snake_case and strict: an unknown key is named with the closest valid one, a bad value
with its bound. Relative paths resolve against the YAML file's folder, so a config runs the same
from any working directory.
"""

from __future__ import annotations

import dataclasses
import re
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
    (``proxy``: rmi, synflow, naswot, grad_norm, params, flops), costs only (``cost``), or a
    benchmark's table (``tabular``: ``benchmark: nb201`` with ``dataset.name`` cifar10, cifar100
    or imagenet16, on space ``nb201``), or inherited weights of a super-network trained once
    (``supernet``, in-process, see nni_hwnas.oneshot.runner)."""

    kind: str = _bounded("train", choices=("train", "proxy", "cost", "tabular", "supernet"))
    benchmark: str = _bounded("nb201", choices=("nb201",))
    proxy: str = _bounded("rmi", choices=("rmi", "synflow", "naswot", "grad_norm", "params", "flops"))
    proxy_batch_size: int = _bounded(256, low=2, high=65536)
    train_steps: int = _bounded(0, low=0, high=100000)
    reference_checkpoint: str | None = None
    then_train_top_k: int = _bounded(0, low=0, high=1000)
    supernet_epochs: int = _bounded(10, low=1, high=1000)
    supernet_sampling: str = _bounded("uniform", choices=("uniform", "sandwich"))
    supernet_calibrate: int = _bounded(0, low=0, high=1000)
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
    # EfficientNAS's gradient fine-tuning of offspring: every trial saves its trained weights in the
    # experiment's folder; a child of ``hw_evolution`` starts from its parent's where shapes match.
    inherit_weights: bool = False


@dataclass
class HardwareConfig:
    """The target device: a profile (``hw_profiles/<name>.yaml`` or a path) and budget overrides.

    With a profile, ``latency_ms`` is predicted from its lookup table and ``within_budget`` checks
    its budgets; without one (``profile: null``) latency is measured on this host at batch 1.
    With no table measured on this machine for the space, ``on_first_use: profile`` measures one
    into the user's cache before the search starts; ``refuse`` stops with the command instead.
    """

    profile: str | None = None
    table: str | None = None
    budgets: dict = field(default_factory=dict)
    measure_latency: bool = False
    on_first_use: str = _bounded("profile", choices=("profile", "refuse"))


@dataclass
class ExperimentConfig:
    """NNI experiment settings: trial budget, concurrency, web UI port, working directory."""

    max_trials: int = _bounded(12, low=1, high=100000)
    concurrency: int = _bounded(2, low=1, high=256)
    port: int = _bounded(8080, low=1024, high=65535)
    max_duration: str | None = None
    working_directory: str | None = None


@dataclass
class TrainingServiceConfig:
    """Where trials run: ``local`` (this machine) or ``remote`` (NNI's SSH training service over
    ``machines``: host, port, user, ssh_key_file, python_path); see
    :mod:`nni_hwnas.experiment.training_service`."""

    platform: str = _bounded("local", choices=("local", "remote"))
    nni_manager_ip: str | None = None
    machines: list = field(default_factory=list)


@dataclass
class MultiFidelityConfig:
    """MO-ASHA early stopping of training trials (``strategies/multi_fidelity.py``).

    At each rung (epoch count) a trial goes on only if it is among the ``1/reduction_factor``
    best of the trials that reached that rung, by non-dominated rank over (``score_metric``,
    ``cost_metric`` down); NNI stops the rest. ``score_metric`` may also be the epoch's
    ``train_loss`` or ``val_loss`` (``strategies.multi_fidelity.DEFAULT_RUNG_METRIC`` says what
    each measured). ``rungs`` default to ``min_epochs * eta**k`` below
    ``evaluator.epochs``.
    """

    enabled: bool = False
    rungs: list | None = None
    min_epochs: int = _bounded(1, low=1, high=1000)
    reduction_factor: float = _bounded(3.0, low=1.01, high=100.0)
    score_metric: str = "accuracy"
    cost_metric: str | None = "latency_ms"
    poll_interval_s: float = _bounded(0.5, low=0.05, high=60.0)


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
    training_service: TrainingServiceConfig = field(default_factory=TrainingServiceConfig)
    multi_fidelity: MultiFidelityConfig = field(default_factory=MultiFidelityConfig)
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
    check_duration("experiment.max_duration", config.experiment.max_duration)
    check_inheritance(config)
    return config


def check_inheritance(config: RunConfig) -> None:
    """``evaluator.inherit_weights`` needs trained trials and a strategy that knows each child's parent."""
    if not config.evaluator.inherit_weights:
        return
    if config.evaluator.kind != "train":
        raise UserError(f"config: `evaluator.inherit_weights` needs `evaluator.kind: train` (trials that train), "
                        f"not {config.evaluator.kind!r}")
    if config.strategy.name != "hw_evolution":
        raise UserError(f"config: `evaluator.inherit_weights` needs `strategy.name: hw_evolution` (it passes each "
                        f"child's parent to the trial); {config.strategy.name!r} does not")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([dhms])\s*$")


def check_duration(where: str, value: str | None) -> None:
    """NNI parses ``max_duration`` only when the manager starts (a ``ValueError`` traceback); check it here."""
    if value is None:
        return
    match = _DURATION.match(value.lower())
    if match is None or float(match.group(1)) <= 0:
        raise UserError(f"config: `{where}` is {value!r}; give a positive number and one unit of "
                        "s, m, h, d, e.g. '30m' or '2h'")


def apply_override(config: RunConfig, where: str, value: Any, flag: str) -> None:
    """Set the dotted key ``where`` from command-line ``flag`` with the same checks as the YAML.

    ``--max-trials 0`` is refused like ``max_trials: 0``, in one line naming the flag.
    """
    *sections, name = where.split(".")
    target = config
    for section in sections:
        target = getattr(target, section)
    f = {f.name: f for f in dataclasses.fields(target)}[name]
    try:
        setattr(target, name, _coerce(where, value, typing.get_type_hints(type(target))[name], f.metadata))
    except UserError as exc:
        raise UserError(str(exc).replace(f"config: `{where}`", flag, 1)) from None


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
