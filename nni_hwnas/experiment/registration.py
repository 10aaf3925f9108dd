"""``nni-hwnas register`` / ``unregister``: our tuners and assessor under names nnictl configs can use.

Wraps ``nnictl algo register --meta`` (which writes ``registered_algorithms.yml`` under
``$NNI_CONFIG_DIR``) so it is idempotent and checked: registering twice updates the entry;
unregistering a name that is not there says so and succeeds.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from nni_hwnas.errors import UserError

META = {
    "algoType": "tuner",
    "builtinName": "HwEvolution",
    "className": "strategies.nni_tuner.HwEvolutionTuner",
    "classArgsValidator": "strategies.nni_tuner.HwEvolutionClassArgsValidator",
}
#: Multi-objective CMA-ES: ``tuner: {name: CmaEs, classArgs: {space: nb201, cost_metric: latency_ms}}``.
CMAES_META = {
    "algoType": "tuner",
    "builtinName": "CmaEs",
    "className": "strategies.nni_tuner.CmaEsTuner",
    "classArgsValidator": "strategies.nni_tuner.CmaEsClassArgsValidator",
}
#: MO-ASHA early stopping for nnictl configs: ``assessor: {name: MoAsha, classArgs: {max_epochs: 9}}``.
ASSESSOR_META = {
    "algoType": "assessor",
    "builtinName": "MoAsha",
    "className": "strategies.nni_multi_fidelity.MoAshaAssessor",
    "classArgsValidator": "strategies.nni_multi_fidelity.MoAshaClassArgsValidator",
}
ALL_META = (META, CMAES_META, ASSESSOR_META)


def nnictl_path() -> str:
    candidate = Path(sys.executable).with_name("nnictl")
    return str(candidate) if candidate.exists() else "nnictl"


def registered_class(name: str = META["builtinName"]) -> str | None:
    """The class registered under ``name`` in the current NNI config dir, or None."""
    from nni.tools import package_utils

    meta = package_utils.get_algo_meta(name)
    return None if meta is None else meta.class_name


def _register_all(metas: tuple[dict, ...]) -> str:
    """One ``nnictl algo register`` for all of them (its meta file takes an ``algorithms`` list):
    each call starts a Python that imports NNI, tens of seconds on a loaded machine."""
    with tempfile.TemporaryDirectory() as tmp:
        meta_path = Path(tmp) / "meta.yml"
        meta_path.write_text(yaml.safe_dump({"algorithms": [dict(meta) for meta in metas]}))
        result = subprocess.run([nnictl_path(), "algo", "register", "--meta", str(meta_path)],
                                capture_output=True, text=True)
    lines = []
    for meta in metas:
        if registered_class(meta["builtinName"]) != meta["className"]:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise UserError(f"nnictl could not register {meta['builtinName']}: {detail[-1] if detail else 'no output'}")
        kind = meta["algoType"]
        lines.append(f"registered {kind} {meta['builtinName']} ({meta['className']}); "
                     f"use `{kind}: {{name: {meta['builtinName']}}}`")
    return "\n".join(lines)


def _unregister_one(meta: dict) -> str:
    name, kind = meta["builtinName"], meta["algoType"]
    if registered_class(name) is None:
        return f"{kind} {name} is not registered; nothing to do"
    from nni.tools import package_utils

    package_utils.unregister_algo_meta(name)  # what `nnictl algo unregister` runs, without a new Python
    if registered_class(name) is not None:
        raise UserError(f"nnictl could not unregister {name}; try `nnictl algo unregister {name}`")
    return f"unregistered {kind} {name}"


OUR_NAMES = tuple(meta["builtinName"] for meta in ALL_META)


def register() -> str:
    """Register our tuners (``HwEvolution``, ``CmaEs``) and our assessor (``MoAsha``)."""
    return _register_all(ALL_META)


def unregister() -> str:
    return "\n".join(_unregister_one(meta) for meta in ALL_META)
