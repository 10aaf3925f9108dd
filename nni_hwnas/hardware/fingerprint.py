"""Which machine a latency table describes: CPU model and instruction-set flags, threads, torch.

Two hosts sold under one marketing name ("AMD EPYC") can differ in vector units, and the same host
runs another kernel mix under another torch or thread count, so a table is reused only where all
of these match. Needs only torch and the standard library: the remote measuring script
(:mod:`nni_hwnas.hardware.remote_script`) carries this source so the device reports itself the
same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from typing import Any

FINGERPRINT_FIELDS = ("cpu_model", "cpu_flags_sha1", "arch", "threads", "torch_version", "gpu")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                name, sep, value = line.partition(":")
                if not sep:
                    if fields:
                        break  # a blank line ends the first processor
                    continue
                fields.setdefault(name.strip().lower(), value.strip())
    except OSError:
        pass
    return fields


def machine_fingerprint(threads: int, device: str = "cpu") -> dict[str, Any]:
    """The facts a table's rows depend on; ``threads`` is the profile's, not the host's core count.

    Flags are hashed (x86 ``flags``, ARM ``Features``): the list is long, and only equality matters.
    """
    import torch

    info = _cpuinfo()
    model = info.get("model name") or info.get("hardware") or info.get("cpu model") or platform.processor() \
        or platform.machine()
    flags = " ".join(sorted((info.get("flags") or info.get("features") or "").split()))
    gpu = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else None
    return {"cpu_model": model, "cpu_flags_sha1": hashlib.sha1(flags.encode()).hexdigest()[:16] if flags else None,
            "arch": platform.machine(), "threads": int(threads), "torch_version": torch.__version__, "gpu": gpu,
            "cpu_count": os.cpu_count()}


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    """A short stable name for a fingerprint (over :data:`FINGERPRINT_FIELDS`), for cache file names."""
    core = {name: fingerprint.get(name) for name in FINGERPRINT_FIELDS}
    return hashlib.sha1(json.dumps(core, sort_keys=True).encode()).hexdigest()[:12]


def fingerprint_differences(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """Readable differences over :data:`FINGERPRINT_FIELDS` (empty when the machines match)."""
    return [f"{name} {theirs.get(name)!r} there, {ours.get(name)!r} here"
            for name in FINGERPRINT_FIELDS if theirs.get(name) != ours.get(name)]
