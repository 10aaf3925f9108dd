"""Measure a latency table on a device reached over SSH, keeping the table on this machine.

One ``ssh`` session runs the self-contained measuring script
(:mod:`nni_hwnas.hardware.remote_script`) with the device's own Python and torch; each row is a
JSON request and a reply with the raw times. The driver summarises, saves and resumes exactly as
for a local profile (:func:`~nni_hwnas.hardware.profiler.profile_spaces` with this measurer).

A device that drops (network gone, device off, process hung) is noticed by a per-request
deadline (and by ssh's keep-alives, which end the session) and becomes one :class:`DeviceLost`
line; what was measured is already in the table, and the same command resumes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import selectors
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Sequence

from search_spaces.layers import LayerSpec

from nni_hwnas.errors import UserError
from nni_hwnas.processes import ClosedOnExit, end_process
from nni_hwnas.hardware.latency_table import LayerKey, Timing
from nni_hwnas.hardware.timing import TimingSettings

CONNECT_TIMEOUT_S = 10


class DeviceLost(UserError):
    """The device stopped answering or the session ended; the table keeps what was measured."""


@dataclass(frozen=True)
class SshTarget:
    """``user@host[:port]`` as given on the command line."""

    user: str | None
    host: str
    port: int | None

    @classmethod
    def parse(cls, text: str) -> "SshTarget":
        user, _, rest = text.rpartition("@")
        host, _, port = rest.partition(":")
        if not host or (port and not port.isdigit()) or any(c.isspace() for c in text):
            raise UserError(f"--ssh {text!r}: expected user@host or user@host:port, e.g. pi@raspberrypi.local:22")
        return cls(user or None, host, int(port) if port else None)

    def __str__(self) -> str:
        return (f"{self.user}@" if self.user else "") + self.host + (f":{self.port}" if self.port else "")


def ssh_command(target: SshTarget, python: str, ssh_config: str | None = None,
                identity: str | None = None) -> list[str]:
    """The ``ssh`` command line that starts ``python`` on the device, reading the script on stdin.

    ``BatchMode`` never stops to ask for a password (a search must not hang on a prompt); the
    keep-alives end a session whose device went away after about 15 s.
    """
    from nni_hwnas.hardware.remote_script import BOOTSTRAP

    command = ["ssh", "-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
               "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
    if ssh_config:
        command += ["-F", ssh_config]
    if identity:
        command += ["-i", identity]
    if target.port:
        command += ["-p", str(target.port)]
    command += [(f"{target.user}@" if target.user else "") + target.host]
    return command + [f"{shlex.quote(python)} -u -c {shlex.quote(BOOTSTRAP)}"]


class RemoteMeasurer(ClosedOnExit):
    """Times rows and whole models on an SSH device (the ``measurer`` of ``profile_spaces``)."""

    def __init__(self, target: SshTarget, python: str, threads: int, batch_size: int, settings: TimingSettings,
                 ssh_config: str | None = None, identity: str | None = None, timeout_s: float | None = None) -> None:
        self.target, self.python, self.threads, self.batch_size = target, python, threads, batch_size
        self.settings = settings
        # A row takes at most ~1.5 max_seconds per series, (1 + retries) series; slow devices get 30 s more.
        self.timeout_s = timeout_s or 30.0 + 2.0 * settings.max_seconds * (1 + settings.noisy_retries)
        self.where = f"ssh {target}"
        self.answered = 0
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._process = subprocess.Popen(ssh_command(target, python, ssh_config, identity), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr, bufsize=0,
                                         start_new_session=True)  # Ctrl-C reaches us, and we close ssh
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._process.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        from nni_hwnas.hardware.remote_script import measuring_script

        script = measuring_script()
        self._send(f"{len(script)}\n{script}")
        hello = self._request({"cmd": "hello", "threads": threads}, CONNECT_TIMEOUT_S + 60.0)
        self.environment = {"fingerprint": hello["fingerprint"], "machine": hello["machine"],
                            "torch_version": hello["torch_version"]}

    # --- the measurer interface ------------------------------------------------------------
    def layer(self, key: LayerKey) -> Timing:
        from nni_hwnas.hardware.profiler import layer_input_shape

        return self._time("layer", [key.to_spec()], layer_input_shape(key, self.batch_size))

    def model(self, specs: Sequence[LayerSpec], input_shape: Sequence[int]) -> Timing:
        return self._time("model", list(specs), (self.batch_size, *input_shape))

    def close(self) -> None:
        """End the session (closing stdin ends the device's loop); kill ssh if it lingers."""
        end_process(self._process, timeout_s=5, ask=self._process.stdin.close)  # type: ignore[union-attr]
        self._selector.close()
        self._stderr.close()

    # --- protocol ----------------------------------------------------------------------------
    def _time(self, command: str, specs: list[LayerSpec], shape: Sequence[int]) -> Timing:
        reply = self._request({"cmd": command, "specs": [dataclasses.asdict(s) for s in specs], "shape": list(shape),
                               "threads": self.threads, "settings": dataclasses.asdict(self.settings)}, self.timeout_s)
        return Timing.from_times_ms(reply["times_ms"])

    def _send(self, text: str) -> None:
        try:
            self._process.stdin.write(text.encode("ascii"))  # type: ignore[union-attr]
            self._process.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            raise self._lost("the SSH session closed") from None

    def _request(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        self._send(json.dumps(request) + "\n")
        deadline = time.monotonic() + timeout_s
        while True:
            line = self._read_line(deadline, timeout_s)
            if line.lstrip().startswith("{"):
                break  # anything else is the device's shell talking (a login banner): skip it
        reply = json.loads(line)
        if not reply.get("ok"):
            raise UserError(f"device {self.target} could not measure {request.get('cmd')}: {reply.get('error')}")
        self.answered += 1
        return reply

    def _read_line(self, deadline: float, timeout_s: float) -> str:
        """The next line from the device, by ``deadline``; unbuffered, so select never misses data."""
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(timeout=left):
                self._process.kill()
                raise self._lost(f"no answer within {timeout_s:.0f} s")
            chunk = os.read(self._process.stdout.fileno(), 65536)  # type: ignore[union-attr]
            if not chunk:
                self._process.wait()
                raise self._lost(f"the SSH session ended (exit code {self._process.returncode})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", errors="replace")

    def _lost(self, what: str) -> DeviceLost:
        self._stderr.flush()
        self._stderr.seek(0)
        said = [line.strip() for line in self._stderr.read().splitlines() if line.strip()]
        detail = f"; it said: {said[-1][:200]}" if said else ""
        if not self.answered:  # never got going: access or interpreter
            return DeviceLost(f"could not start measuring on {self.target}: {what}{detail}; check that "
                              f"`ssh {self.target.host}` logs in without a password and that "
                              f"`{self.python} -c 'import torch'` works there (or pass --python)")
        return DeviceLost(f"device {self.target} dropped: {what}{detail}")


def describe_environment(environment: dict[str, Any]) -> str:
    """``Intel Xeon, 4 cores, torch 2.3.0`` for the CLI's summary."""
    machine = environment.get("machine", {})
    return f"{machine.get('cpu_model')}, {machine.get('cpu_count')} cores, torch {environment.get('torch_version')}"
