"""What a run records about itself so it can be reproduced: seed, versions, machine."""

from __future__ import annotations

import os
import platform
import socket
import sys
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

PACKAGES = ("nni-hwnas", "nni", "torch", "torchvision", "numpy", "medmnist", "pytorch-lightning", "scikit-learn")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (falls back to ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_info() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def run_record(seed: int, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The ``run.json`` content: seed, config, versions and machine, plus caller's extras."""
    return {
        "seed": seed,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "versions": package_versions(),
        "machine": machine_info(),
        **extra,
    }
