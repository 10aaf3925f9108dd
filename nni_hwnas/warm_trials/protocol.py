"""What a warm-trial client and its server say to each other, and where they meet.

Both sides import only the standard library: the client is the process NNI starts for every
trial, and anything it imports is paid per trial, which is what warm trials exist to avoid.

A server serves one experiment (``NNI_EXP_ID``) from one interpreter, ``PYTHONPATH`` and working
directory, so a trial never runs under code or paths other than the ones its own command would
have used. They meet on a Linux abstract Unix socket (no file to clean up, no path-length limit)
of ``SOCK_SEQPACKET`` type: one ``send`` is one message, and a peer that dies reads as EOF.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Mapping

#: The largest message either side sends (a request carries the trial's whole environment).
MAX_MESSAGE = 1 << 20
#: The client's stdin, stdout and stderr, passed to the server so the forked trial writes where
#: NNI reads (``trial.stdout`` / ``trial.stderr``).
STANDARD_FDS = (0, 1, 2)
#: The training trial's command after ``python``: the server calls it in place and prepares for it.
HPO_TRIAL = ("-m", "nni_hwnas.evaluation.hpo_trial")
#: Seconds a server with nothing to run waits before it exits (``NNI_HWNAS_WARM_IDLE_S``).
DEFAULT_IDLE_S = 120.0


def server_key(environ: Mapping[str, str], executable: str, cwd: str) -> str:
    """What must match for a server's warm interpreter to stand in for a trial's own: the user,
    the experiment, the interpreter, the import path and the directory modules are found from."""
    parts = [str(os.getuid()), environ.get("NNI_EXP_ID", "standalone"), executable,
             environ.get("PYTHONPATH", ""), cwd]
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:20]


def address(key: str) -> str:
    """The abstract-namespace socket name of the server for ``key``."""
    return f"\0nni-hwnas-warm-trials-{key}"


def log_path(environ: Mapping[str, str]) -> Path:
    """Where the server logs: beside NNI's own logs (``<experiment folder>/log``, found above the
    trial's output folder) when the trial runs in an NNI experiment, else ``environ``'s temp folder."""
    output, experiment = environ.get("NNI_OUTPUT_DIR"), environ.get("NNI_EXP_ID")
    for folder in Path(output).parents if output and experiment else ():
        if folder.name == experiment:
            return folder / "log" / "warm_trials.log"
    import tempfile

    return Path(environ.get("TMPDIR") or tempfile.gettempdir()) / f"nni-hwnas-warm-trials-{os.getuid()}.log"


def die_of(number: int) -> None:
    """End this process by signal ``number`` (streams flushed), as a cold trial that got it would
    end: NNI records a trial killed by a signal as stopped (``EARLY_STOPPED``, ``USER_CANCELED``)
    but one that exits non-zero as ``FAILED``. Used by the trial's fork and by its client."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)


def read_log(path: Path) -> list[dict[str, Any]]:
    """The server's log as events (one JSON object per line; none before the server has written)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def idle_seconds(environ: Mapping[str, str]) -> float:
    """``NNI_HWNAS_WARM_IDLE_S`` if set to a number, else :data:`DEFAULT_IDLE_S`."""
    try:
        return max(0.5, float(environ["NNI_HWNAS_WARM_IDLE_S"]))
    except (KeyError, ValueError):
        return DEFAULT_IDLE_S


def send(sock: socket.socket, message: Mapping[str, Any], fds: tuple[int, ...] = ()) -> None:
    """One JSON message, with ``fds`` attached (``SCM_RIGHTS``) when given."""
    data = json.dumps(message).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"message of {len(data)} bytes is over {MAX_MESSAGE}")
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict | None, list[int]]:
    """The next message and any descriptors with it; ``(None, [])`` when the peer has gone.

    A peer killed with data it had not read yet (a ``kill -9`` of a client just sent "started")
    resets the connection instead of closing it: that is gone too, not an error to crash on."""
    try:
        data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, max_fds) if max_fds else (sock.recv(MAX_MESSAGE), [], 0, None)
    except ConnectionResetError:
        return None, []
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), list(fds)


def exit_code(status: int) -> int:
    """A shell's exit code for a ``waitpid`` status: the code, or 128 + the signal that ended it."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def supported() -> bool:
    """Warm trials need ``fork``, ``pidfd_open`` and abstract Unix sockets: Linux only."""
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")
