"""Profiles of SSH devices: which profile ``nni-hwnas profile --ssh`` measures, and the YAML it
writes for a new device, so searches name the device and predict its latency on the driver."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import yaml

from nni_hwnas.errors import UserError
from nni_hwnas.hardware.profiles import DeviceProfile, load_profile, profile_names

DEFAULT_PYTHON = "python3"


def new_profile_path(name: str) -> Path:
    """Where a new device's profile goes: the path given, or ``NAME.yaml`` in the working folder."""
    path = Path(name)
    return path if path.suffix in (".yaml", ".yml") else Path.cwd() / f"{name}.yaml"


def write_device_profile(path: Path, ssh: str, python: str, threads: int, environment: dict[str, Any]) -> DeviceProfile:
    """Write the YAML of a new SSH device (its table goes to ``tables/<name>.json`` beside it)."""
    machine = environment.get("machine", {})
    name = path.stem
    data = {"name": name, "version": 1,
            "description": f"{machine.get('cpu_model')} ({machine.get('hostname')}), {threads} thread(s), batch 1, "
                           f"float32, torch {environment.get('torch_version')}",
            "kind": "cpu", "threads": threads, "batch_size": 1, "precision": "float32", "ssh": ssh, "python": python,
            "budgets": {"latency_ms": None, "params": None, "flops": None, "peak_mem_kb": None, "param_kb": None},
            "latency_table": f"tables/{name}.json"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# SSH device {ssh}, written by `nni-hwnas profile --ssh` on "
                    f"{datetime.now(timezone.utc).date().isoformat()}.\n"
                    f"# Extend its table with: nni-hwnas profile --profile {path} --space SPACE\n"
                    + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_profile(path)


def _existing(name: str) -> DeviceProfile | None:
    path = Path(name)
    if (path.suffix in (".yaml", ".yml") and path.is_file()) or name in profile_names():
        return load_profile(name)
    return None


@contextlib.contextmanager
def open_device(name: str, ssh: str | None, python: str | None, threads: int | None, ssh_config: str | None,
                timeout_s: float | None, settings: Any) -> Iterator[tuple[DeviceProfile, Any]]:
    """``(profile, measurer)`` for ``nni-hwnas profile``: this host (measurer None), or an SSH device
    (a connected :class:`~nni_hwnas.hardware.remote.RemoteMeasurer`, closed on exit)."""
    profile = _existing(name)
    if profile is not None and not profile.remote and ssh is None:
        if threads is not None:
            raise UserError("--threads sets a new SSH device's threads; this host's profile sets its own in its YAML")
        yield profile, None
        return
    if profile is None and ssh is None:
        load_profile(name)  # the unknown-profile error, with the closest names
    if profile is not None and not profile.remote:
        raise UserError(f"profile {profile.name!r} describes this host; give the SSH device a profile of its own, "
                        f"e.g. --profile my-device (writes my-device.yaml naming {ssh})")
    if profile is not None and threads is not None and threads != profile.threads:
        raise UserError(f"profile {profile.name!r} uses {profile.threads} thread(s); edit its YAML to change that")
    if profile is not None and profile.kind != "cpu":
        raise UserError(f"profile {profile.name!r}: only CPU devices can be profiled over SSH")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    from nni_hwnas.hardware.remote import RemoteMeasurer, SshTarget

    target = SshTarget.parse(ssh or profile.ssh)  # type: ignore[union-attr]
    interpreter = python or (profile.python if profile else None) or DEFAULT_PYTHON
    n_threads = profile.threads if profile else (threads or 1)
    measurer = RemoteMeasurer(target, interpreter, n_threads, 1 if profile is None else profile.batch_size, settings,
                              ssh_config=ssh_config, timeout_s=timeout_s)
    try:
        if profile is None:
            path = new_profile_path(name)
            profile = write_device_profile(path, str(target), interpreter, n_threads, measurer.environment)
            print(f"nni-hwnas: wrote device profile {path} (use it as `hardware.profile: {path}`)")
        yield profile, measurer
    finally:
        measurer.close()
