"""The measuring loop that runs on a target device: JSON requests in on stdin, JSON replies out.

Sent over SSH as part of one self-contained script (:mod:`nni_hwnas.hardware.remote_script`),
so the device needs only Python and torch. It builds each layer or network with the same
:mod:`search_spaces.layers` code and times it with the same :mod:`nni_hwnas.hardware.timing`
as a local profile; the driver keeps the table. One request per line:

- ``{"cmd": "hello", "threads": 1}`` -> the device's fingerprint, machine info and torch version;
- ``{"cmd": "layer" or "model", "specs": [{...}, ...], "shape": [1, 1, 8, 8], "threads": 1,
  "settings": {...}}`` (one layer spec, or a network's; the input shape with the batch)
  -> ``{"ok": true, "times_ms": [...]}`` (raw times; the driver summarises them).

A failed request answers ``{"ok": false, "error": "..."}`` and the loop goes on.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Mapping, TextIO

import torch

from nni_hwnas.experiment.runinfo import machine_info
from nni_hwnas.hardware.fingerprint import machine_fingerprint
from nni_hwnas.hardware.timing import TimingSettings, time_series, timing_inputs
from search_spaces.layers import LayerSpec, build_layer, build_network


def handle(request: Mapping[str, Any]) -> dict[str, Any]:
    """Answer one request (see the module docstring)."""
    command = request.get("cmd")
    if command == "hello":
        return {"ok": True, "fingerprint": machine_fingerprint(int(request["threads"])), "machine": machine_info(),
                "torch_version": torch.__version__}
    if command not in ("layer", "model"):
        return {"ok": False, "error": f"unknown command {command!r}"}
    specs = [LayerSpec(**spec) for spec in request["specs"]]
    torch.manual_seed(0)
    module = build_layer(specs[0]) if command == "layer" else build_network(specs)
    settings = TimingSettings(**request["settings"])
    inputs = timing_inputs(request["shape"], settings.n_inputs)
    return {"ok": True, "times_ms": time_series(module, inputs, int(request["threads"]), settings)}


def main(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
    """Serve requests until stdin closes."""
    for line in stdin:
        if not line.strip():
            continue
        try:
            reply = handle(json.loads(line))
        except Exception as exc:  # one bad request must not end the session: report and go on
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()


if __name__ == "__main__":
    main()
