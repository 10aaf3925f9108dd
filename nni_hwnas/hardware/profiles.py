"""Device profiles: a short YAML of facts per target device, and the budgets an architecture must meet.

A profile says how the device runs a network (``threads``, ``batch_size``, ``precision``), where its
measured latency table lives (``latency_table``, a file beside the YAML; none for a budget-only
device), where the device is when it is not this host (``ssh: user@host[:port]`` and the
device's ``python``, for ``nni-hwnas profile --ssh``) and which budgets apply (``budgets``:
``latency_ms``, ``params``, ``flops`` (MACs), ``peak_mem_kb``, ``param_kb``; ``null`` means no limit). Keys are snake_case and strict: an unknown
key is named with the closest valid one. No latency is ever assumed for a device nobody measured.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping


import hw_profiles

from nni_hwnas.budgets import BudgetCheck, Budgets, Violation
from nni_hwnas.errors import UserError, closest, read_yaml, unknown

PROFILE_DIR = Path(hw_profiles.__file__).resolve().parent
KINDS = ("cpu", "cuda", "budget-only")
BYTES_PER_VALUE = {"float32": 4, "float16": 2, "int8": 1}
PROFILE_KEYS = ("name", "version", "description", "kind", "threads", "batch_size", "precision",
                "budgets", "latency_table", "ssh", "python")


@dataclass(frozen=True)
class DeviceProfile:
    """One target device. ``threads`` is already resolved (``all`` -> this host's core count)."""

    name: str
    kind: str
    threads: int
    batch_size: int
    precision: str
    budgets: Budgets
    latency_table: Path | None
    version: int = 1
    description: str = ""
    source: Path | None = None
    ssh: str | None = None
    python: str | None = None

    @property
    def remote(self) -> bool:
        """True for a device reached over SSH: its table describes that device, not this host."""
        return self.ssh is not None

    @property
    def measures_latency(self) -> bool:
        """False for a budget-only device: its costs are analytic, it has no latency."""
        return self.kind != "budget-only"

    @property
    def bytes_per_value(self) -> int:
        return BYTES_PER_VALUE[self.precision]

    def with_budgets(self, overrides: Mapping[str, Any] | None, where: str = "hardware.budgets") -> "DeviceProfile":
        """This profile with an experiment's budgets replacing the profile's, key by key."""
        budgets = self.budgets.merged(overrides, where)
        if budgets.latency_ms is not None and not self.measures_latency:
            raise UserError(f"{where}: profile {self.name!r} is budget-only and has no latency; "
                            "drop `latency_ms` or use a profile with a latency table (host-cpu-1t, host-cpu, cuda)")
        return dataclasses.replace(self, budgets=budgets)


def profile_names() -> list[str]:
    """The bundled profiles (``hw_profiles/*.yaml``)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _resolve_threads(value: Any, where: str) -> int:
    if value == "all":
        return os.cpu_count() or 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{where}: `threads` must be a positive integer or 'all', got {value!r}")
    return value


def parse_profile(data: Any, path: Path) -> DeviceProfile:
    """Validate a profile mapping read from ``path`` (relative table paths resolve against its folder)."""
    where = f"profile {path}"
    if not isinstance(data, Mapping):
        raise UserError(f"{where} must be a YAML mapping with keys {', '.join(PROFILE_KEYS)}")
    for key in data:
        if key not in PROFILE_KEYS:
            raise UserError(f"{where}: unknown key `{key}`{closest(key, PROFILE_KEYS)}; allowed: {', '.join(PROFILE_KEYS)}")
    for key in ("name", "kind"):
        if not isinstance(data.get(key), str):
            raise UserError(f"{where}: `{key}` is required and must be a string")
    kind = data["kind"]
    if kind not in KINDS:
        raise UserError(f"{where}: `kind` is {kind!r}{closest(kind, KINDS)}; allowed: {', '.join(KINDS)}")
    precision = data.get("precision", "float32")
    if precision not in BYTES_PER_VALUE:
        raise UserError(f"{where}: `precision` is {precision!r}; allowed: {', '.join(BYTES_PER_VALUE)}")
    batch = data.get("batch_size", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UserError(f"{where}: `batch_size` must be a positive integer, got {batch!r}")
    table = data.get("latency_table")
    if kind == "budget-only" and table is not None:
        raise UserError(f"{where}: a budget-only profile has no `latency_table` (nothing was measured)")
    if kind != "budget-only" and not isinstance(table, str):
        raise UserError(f"{where}: `latency_table` (a JSON file beside the YAML, e.g. tables/{data['name']}.json) is required for kind {kind!r}")
    budgets = Budgets.from_mapping(data.get("budgets"), where)
    if budgets.latency_ms is not None and kind == "budget-only":
        raise UserError(f"{where}: a budget-only profile can't have a `latency_ms` budget")
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise UserError(f"{where}: `version` must be an integer, got {version!r}")
    for key in ("ssh", "python"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise UserError(f"{where}: `{key}` must be a string (ssh: user@host[:port], python: /path/to/python)")
    if data.get("python") is not None and data.get("ssh") is None:
        raise UserError(f"{where}: `python` names the interpreter on an SSH device; add `ssh: user@host[:port]`")
    return DeviceProfile(
        ssh=data.get("ssh"), python=data.get("python"),
        name=data["name"], kind=kind, threads=_resolve_threads(data.get("threads", 1), where),
        batch_size=batch, precision=precision, budgets=budgets,
        latency_table=(path.parent / table).resolve() if table else None,
        version=version, description=str(data.get("description") or ""), source=path.resolve(),
    )


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A bundled profile by name (``host-cpu-1t``) or a profile YAML by path."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        if str(name_or_path) not in profile_names():
            raise unknown("device profile", str(name_or_path), profile_names())
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    return parse_profile(read_yaml(path, "profile"), path)
