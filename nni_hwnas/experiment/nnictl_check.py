"""``nni-hwnas check-nnictl``: catch what ``nnictl create`` would accept and then fail on silently.

``nnictl create`` exits 0 even when its tuner cannot be found or built (the cause shows up later
in ``dispatcher.log``). This checks an nnictl config before launching: the tuner is known to NNI
(built in, or registered by ``nni-hwnas register``) and its ``classArgs`` pass its validator (NNI 3.0's
``nnictl create`` no longer runs it), the search-space file is the one our space
exports for the trial's experiment YAML, and the port is free. Each problem is one line.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from nni_hwnas.errors import UserError, read_yaml


#: Our trial entry points for nnictl: cold, and warm (forked from a server that has imported torch).
TRIAL_MODULES = {"nni_hwnas.evaluation.hpo_trial", "nni_hwnas.warm_trials"}


def _trial_config(config: dict, base: Path) -> Path | None:
    """The ``--config`` our trial entry point is given in ``trialCommand``, resolved like nnictl does."""
    words = shlex.split(str(config.get("trialCommand", "")))
    if not TRIAL_MODULES & set(words) or "--config" not in words:
        return None
    code_dir = (base / str(config.get("trialCodeDirectory", "."))).resolve()
    return (code_dir / words[words.index("--config") + 1]).resolve()


def check_tuner(name: str, kind: str = "tuner") -> None:
    """``name`` is a ``kind`` (tuner or assessor) NNI can find here, built in or registered."""
    from nni.tools import package_utils

    from nni_hwnas.experiment.registration import OUR_NAMES

    if package_utils.get_algo_meta(name) is None:
        known = sorted(m.name for m in package_utils.get_all_algo_meta() if m.algo_type == kind)
        fix = ("run `nni-hwnas register` first" if name in OUR_NAMES
               else "register it with `nnictl algo register --meta META.yml`")
        raise UserError(f"{kind} {name!r} is not known to NNI here (NNI_CONFIG_DIR); {fix}; known {kind}s: {', '.join(known)}")


def check_class_args(name: str, kind: str, class_args: Any) -> None:
    """``classArgs`` of a known tuner/assessor pass its registered validator (one line if not)."""
    from nni.tools.package_utils.tuner_factory import create_validator_instance

    if class_args is None:
        return
    if not isinstance(class_args, dict):
        raise UserError(f"{kind} {name}: `classArgs` must be a mapping, got {class_args!r}")
    validator = create_validator_instance(kind + "s", name)
    if validator is None:
        return
    try:
        validator.validate_class_args(**class_args)
    except Exception as exc:  # NNI's own validators raise schema errors, ours ValueError
        text = " ".join(str(exc).split())
        raise UserError(text if text.startswith(name) else f"{name} classArgs: {text}") from None


def check_search_space(space_file: Path, experiment_yaml: Path) -> str:
    from search_spaces import make_definition

    from nni_hwnas.experiment.config import load_config
    from nni_hwnas.experiment.trial_args import resolve_space
    from nni_hwnas.experiment.space_export import nni_search_space

    space, choices = resolve_space(load_config(experiment_yaml))
    expected = json.loads(json.dumps(nni_search_space(make_definition(space, choices, (1, 8, 8), 10))))
    try:
        found = json.loads(space_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"search space file {space_file} cannot be read ({exc}); write it with "
                        f"`nni-hwnas export-space --config {experiment_yaml} --output {space_file}`") from None
    if found != expected:
        differing = sorted(set(found) ^ set(expected)) or sorted(k for k in found if found[k] != expected.get(k))
        raise UserError(f"search space file {space_file} does not match space {space!r} of {experiment_yaml} "
                        f"(labels differing: {', '.join(differing[:6])}); regenerate it with "
                        f"`nni-hwnas export-space --config {experiment_yaml} --output {space_file}`")
    return space


def check_nnictl_config(path: str | Path, port: int | None = None) -> list[str]:
    """Validate an nnictl config; returns what was checked, raises :class:`UserError` on a problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"nnictl config {path} not found")
    config: Any = read_yaml(path, "nnictl config")
    if not isinstance(config, dict):
        raise UserError(f"nnictl config {path} must be a YAML mapping")
    checked = []
    tuner = (config.get("tuner") or {}).get("name")
    if tuner:
        check_tuner(str(tuner))
        check_class_args(str(tuner), "tuner", config["tuner"].get("classArgs"))
        checked.append(f"tuner {tuner} is known to NNI and takes its classArgs")
    assessor = (config.get("assessor") or {}).get("name")
    if assessor:
        check_tuner(str(assessor), "assessor")
        check_class_args(str(assessor), "assessor", config["assessor"].get("classArgs"))
        checked.append(f"assessor {assessor} is known to NNI and takes its classArgs")
    experiment_yaml = _trial_config(config, path.parent)
    if experiment_yaml is not None and config.get("searchSpaceFile"):
        space = check_search_space((path.parent / str(config["searchSpaceFile"])).resolve(), experiment_yaml)
        checked.append(f"search space matches space {space} of {experiment_yaml.name}")
    if port is not None:
        from nni_hwnas.experiment.launch import check_port_free

        check_port_free(port)
        checked.append(f"port {port} is free")
    return checked
