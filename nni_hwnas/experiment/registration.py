"""``nni-hwnas register`` / ``unregister``: our tuner under a name nnictl configs can use.

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


def nnictl_path() -> str:
    candidate = Path(sys.executable).with_name("nnictl")
    return str(candidate) if candidate.exists() else "nnictl"


def registered_class(name: str = META["builtinName"]) -> str | None:
    """The class registered under ``name`` in the current NNI config dir, or None."""
    from nni.tools import package_utils

    meta = package_utils.get_algo_meta(name)
    return None if meta is None else meta.class_name


def register() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        meta_path = Path(tmp) / "meta.yml"
        meta_path.write_text(yaml.safe_dump(META))
        result = subprocess.run([nnictl_path(), "algo", "register", "--meta", str(meta_path)],
                                capture_output=True, text=True)
    if registered_class() != META["className"]:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise UserError(f"nnictl could not register {META['builtinName']}: {detail[-1] if detail else 'no output'}")
    return f"registered tuner {META['builtinName']} ({META['className']}); use `tuner: {{name: {META['builtinName']}}}`"


def unregister() -> str:
    if registered_class() is None:
        return f"tuner {META['builtinName']} is not registered; nothing to do"
    subprocess.run([nnictl_path(), "algo", "unregister", META["builtinName"]], capture_output=True, text=True)
    if registered_class() is not None:
        raise UserError(f"nnictl could not unregister {META['builtinName']}; try `nnictl algo unregister {META['builtinName']}`")
    return f"unregistered tuner {META['builtinName']}"
