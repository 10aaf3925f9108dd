"""What a trial process needs from a run config, as plain dicts: space, data, training, hardware.

Kept apart from :mod:`nni_hwnas.experiment.launch` so a trial process (the nnictl route's
``hpo_trial`` and NNI's NAS trials) imports neither the results writer nor matplotlib.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nni_hwnas.budgets import Budgets
from nni_hwnas.errors import UserError
from nni_hwnas.experiment.config import RunConfig


def resolve_space(config: RunConfig) -> tuple[str, dict]:
    """Space name and choices from ``space.name`` / ``space.preset`` / ``space.choices``."""
    from search_spaces import load_preset

    name, choices = config.space.name, {}
    if config.space.preset is not None:
        preset_space, choices = load_preset(config.space.preset)
        if name is not None and name != preset_space:
            raise UserError(f"config: space.name is {name!r} but preset {config.space.preset!r} "
                            f"is for {preset_space!r}; drop one of them")
        name = preset_space
    choices = {**choices, **(config.space.choices or {})}
    return str(name), choices


def trial_dataset_args(config: RunConfig) -> dict[str, Any]:
    """Dataset arguments a trial process loads with: the absolute folder the driver checked, and on
    remote machines that name their own ``data_root``, every machine's root (the trial picks its own)."""
    from nni_hwnas.data.datasets import resolve_data_root
    from nni_hwnas.data.machine_roots import machine_data_roots

    d = config.dataset
    args = {"name": d.name, "data_root": str(resolve_data_root(d.data_root)), "download": False,
            "val_fraction": d.val_fraction, "test_fraction": d.test_fraction, "path": d.path, "keys": d.keys,
            "image_size": d.image_size, "cache": d.cache, "augment": dataclasses.asdict(d.augment) if d.augment else None}
    ts = config.training_service
    roots = machine_data_roots(ts.machines) if ts.platform == "remote" else None
    if roots is not None:
        args["machine_data_roots"] = roots
    return args


def trial_training_args(config: RunConfig) -> dict[str, Any]:
    """:class:`~nni_hwnas.evaluation.training.TrainSettings` fields from the evaluator section."""
    ev = config.evaluator
    return {"epochs": ev.epochs, "batch_size": ev.batch_size, "learning_rate": ev.learning_rate,
            "momentum": ev.momentum, "weight_decay": ev.weight_decay, "lr_schedule": ev.lr_schedule,
            "train_subset": ev.train_subset, "augment": ev.augment, "warmup_epochs": ev.warmup_epochs,
            "grad_clip_norm": ev.grad_clip_norm, "label_smoothing": ev.label_smoothing, "precision": ev.precision,
            "weight_init": ev.weight_init}


def run_budgets(config: RunConfig, device: Any = None) -> Budgets:
    """The run's one :class:`~nni_hwnas.budgets.Budgets`: the profile's budgets with the experiment's
    ``hardware.budgets`` over them, plus ``hw_evolution``'s ``budget`` argument for its cost metric
    (refused when it disagrees with a budget already set on that metric).

    The driver (``device``: the loaded profile, budgets merged) and the nnictl route's trials
    (profile loaded here) build it the same way; NAS trials receive it whole."""
    hw = config.hardware
    if device is None and hw.profile:
        from nni_hwnas.hardware.profiles import load_profile

        device = load_profile(hw.profile).with_budgets(hw.budgets or None)
    budgets = device.budgets if device is not None else Budgets()
    if config.strategy.name == "hw_evolution":
        args = config.strategy.args or {}
        # The strategy's own default cost metric (strategies.settings.HwEvolutionSettings).
        budgets = budgets.with_limit(str(args.get("cost_metric", "latency_ms")), args.get("budget"),
                                     "config: strategy hw_evolution")
    return budgets


def trial_hardware_args(config: RunConfig, table: str | None = None,
                        budgets: Budgets | None = None) -> dict[str, Any] | None:
    """The device profile a trial predicts costs on (absolute paths) and the run's budgets, or None
    to measure here without a budget.

    ``table`` is the one the driver chose (:func:`~nni_hwnas.hardware.table_cache.table_for_search`),
    so trials predict from the table the search was checked against, not their own guess;
    ``budgets`` the driver's :func:`run_budgets` (built here when not given), passed whole so a
    trial's ``within_budget`` checks exactly the budgets the strategy and the results use."""
    hw = config.hardware
    budgets = run_budgets(config) if budgets is None else budgets
    if not hw.profile:
        return {"profile": None, "budgets": budgets.as_mapping()} if budgets.limits() else None
    return {"profile": hw.profile, "table": table or hw.table, "budgets": budgets.as_mapping(),
            "measure_latency": hw.measure_latency}


def trial_objective_args(config: RunConfig) -> dict[str, Any]:
    """What ``default`` means: accuracy, or the MnasNet reward with its target and exponent."""
    ev = config.evaluator
    if ev.default_metric == "mnas_reward" and ev.reward_target_ms is None:
        raise UserError("config: `evaluator.default_metric: mnas_reward` needs `evaluator.reward_target_ms` "
                        "(the latency target in ms, e.g. the profile's latency budget)")
    return {"default_metric": ev.default_metric, "reward_target_ms": ev.reward_target_ms, "reward_w": ev.reward_w}
