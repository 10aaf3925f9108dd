"""Which latency table a search predicts from, so it is never another machine's table used silently.

A table counts for this host when its machine fingerprint (CPU model and flags, threads, torch;
:mod:`nni_hwnas.hardware.fingerprint`) matches and it covers the search's space and shape (every
layer row plus whole models fitted for that shape). In order:

1. ``hardware.table`` given in the config: the user's choice, used as is (a stale one warns);
2. a profile of an SSH device (``ssh:`` in its YAML): its own table, measured on that device;
3. the profile's bundled table, when it matches this host and covers the space;
4. this host's cached table, ``<cache>/tables/<profile>-<fingerprint id>.json``;
5. otherwise the search profiles what is missing into that cached table on first use (a progress
   bar and an estimate first), or, with ``hardware.on_first_use: refuse``, stops with the one
   command that measures it.

The cache lives in ``$NNI_HWNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/nni-hwnas``, else
``~/.cache/nni-hwnas``: per user, outside the installed package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from nni_hwnas.errors import UserError
from nni_hwnas.hardware.fingerprint import fingerprint_id, machine_fingerprint
from nni_hwnas.hardware.latency_table import (LatencyTable, correction_context, file_version, profile_command,
                                              space_context)
from nni_hwnas.hardware.profiles import DeviceProfile

ON_FIRST_USE = ("profile", "refuse")
FIRST_USE_FIT_MODELS = 40  # whole models per shape to fit the correction, as `nni-hwnas profile` does


def cache_dir() -> Path:
    """The user's nni-hwnas cache folder (see the module docstring for the order)."""
    if os.environ.get("NNI_HWNAS_CACHE_DIR"):
        return Path(os.environ["NNI_HWNAS_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "nni-hwnas"


def cached_table_path(profile: DeviceProfile) -> Path:
    """This host's table for ``profile``: one file per profile and machine fingerprint."""
    device = "cuda" if profile.kind == "cuda" else "cpu"
    return cache_dir() / "tables" / f"{profile.name}-{fingerprint_id(machine_fingerprint(profile.threads, device))}.json"


def uncovered(table: LatencyTable, definition: Any) -> str | None:
    """Why ``table`` can't predict every architecture of ``definition`` (None when it can)."""
    from nni_hwnas.hardware.predictor import LatencyPredictor

    context = space_context(definition)
    if correction_context(context) not in table.corrections:
        return f"no whole models measured for {correction_context(context)}"
    missing = LatencyPredictor(table, definition).missing_keys()
    return f"{len(missing)} layer row(s) of {context} missing" if missing else None


def _usable(path: Path | None, profile: DeviceProfile, definition: Any, check_machine: bool) -> tuple[bool, str]:
    if path is None or not path.is_file():
        return False, f"no table at {path}"
    table = LatencyTable.load(path, profile.name)
    reasons = table.stale_reasons(threads=profile.threads) if check_machine else []
    if reasons:
        return False, f"{path.name} was measured on another setup ({'; '.join(reasons)})"
    gap = uncovered(table, definition)
    return (gap is None), (gap or "")


#: Why each bundled table is stale here, by (path, mtime, size, profile, threads): every trial asks,
#: and reading even the header parses the whole JSON (a warm-trial server asks once for its trials).
_STALE: dict[tuple[str, int, int, str, int], tuple[str, ...]] = {}


def _stale_reasons(path: Path, profile: DeviceProfile) -> tuple[str, ...]:
    key = (*file_version(path), profile.name, profile.threads)
    if key not in _STALE:
        header = LatencyTable.load(path, profile.name, header_only=True)
        _STALE[key] = tuple(header.stale_reasons(threads=profile.threads))
    return _STALE[key]


def default_table(profile: DeviceProfile) -> Path:
    """The table to read when none is named: the bundled one for an SSH device or where it matches
    this host, else this host's cached one if it exists, else the bundled one (it will warn)."""
    bundled = profile.latency_table
    if profile.remote or bundled is None:
        return bundled  # type: ignore[return-value]
    if bundled.is_file() and not _stale_reasons(bundled, profile):
        return bundled
    cached = cached_table_path(profile)
    return cached if cached.is_file() else bundled


def first_use_command(profile: DeviceProfile, definition: Any) -> str:
    """The one command that fills this host's cached table for ``definition``."""
    return f"{profile_command(str(profile.source or profile.name), space_context(definition))} --cache"


def table_for_search(profile: DeviceProfile, definition: Any, explicit: str | Path | None = None,
                     on_first_use: str = "profile", echo: Callable[[str], None] = print,
                     fit_models: int | None = None, seed: int = 0) -> Path:
    """The table a search on ``profile`` over ``definition`` predicts from (see the module docstring)."""
    if on_first_use not in ON_FIRST_USE:
        raise UserError(f"config: `hardware.on_first_use` is {on_first_use!r}; allowed: {', '.join(ON_FIRST_USE)}")
    if explicit is not None:
        return Path(explicit)
    if profile.remote:
        ok, why = _usable(profile.latency_table, profile, definition, check_machine=False)
        if not ok:
            raise UserError(f"profile {profile.name!r} is the SSH device {profile.ssh} and its table can't predict "
                            f"{space_context(definition)} ({why}); measure it on the device with: "
                            f"{profile_command(str(profile.source), space_context(definition))} --ssh {profile.ssh}")
        return profile.latency_table  # type: ignore[return-value]
    reasons = []
    for path in (profile.latency_table, cached_table_path(profile)):
        ok, why = _usable(path, profile, definition, check_machine=True)
        if ok:
            return path  # type: ignore[return-value]
        reasons.append(why)
    if on_first_use == "refuse":
        raise UserError(f"no latency table of profile {profile.name!r} describes this machine for "
                        f"{space_context(definition)} ({reasons[0]}); measure it once (minutes) with: "
                        f"{first_use_command(profile, definition)}")
    echo(f"nni-hwnas: profiling {profile.name} on this machine for {space_context(definition)} "
         f"({reasons[0]}); cached for later runs")
    return profile_into_cache(profile, [definition], fit_models=fit_models or FIRST_USE_FIT_MODELS, seed=seed,
                              echo=echo).path


def profile_into_cache(profile: DeviceProfile, definitions: list[Any], fit_models: int = FIRST_USE_FIT_MODELS,
                       seed: int = 0, echo: Callable[[str], None] = print, progress: bool = True) -> Any:
    """Measure what this host's cached table lacks for ``definitions`` (resumable); the report."""
    from nni_hwnas.hardware.profiler import TimingSettings, estimate_seconds, open_table, profile_spaces

    path = cached_table_path(profile)
    settings = TimingSettings()
    fresh = path.is_file() and bool(LatencyTable.load(path, profile.name).stale_reasons(threads=profile.threads))
    table = open_table(profile, path, settings, fresh=fresh)
    layers, models, seconds = estimate_seconds(table, profile, definitions, settings, fit_models, seed)
    echo(f"nni-hwnas: {layers} layer rows and {models} whole models to measure, about {seconds / 60:.1f} min "
         f"(timing a sample of them just now); into {path}")
    return profile_spaces(table, profile, definitions, settings, fit_models=fit_models, seed=seed, progress=progress)
