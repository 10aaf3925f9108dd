"""The trial command of warm trials: hands the trial to the experiment's warm server and stands in
for it, to NNI, until it ends.

``python -m nni_hwnas.warm_trials --config X.yaml`` runs what
``python -m nni_hwnas.evaluation.hpo_trial --config X.yaml`` runs, with the same stdout, stderr,
exit code and reports, in a child forked from a server that has already imported torch and our
trial code. The first trial of an experiment starts the server; it leaves after
``NNI_HWNAS_WARM_IDLE_S`` seconds (default 120) without a trial. ``-m MODULE ARGS`` and
``SCRIPT ARGS`` run other Python entry points the same way.

Faults, each a line on the trial's stderr: a server that cannot start or warm up runs the trial
cold, in this process; a server that dies during a trial fails that trial (it may have reported)
and the next trial starts a new server. A signal NNI sends this process (SIGINT to stop a trial)
is passed on to the trial, and a trial that dies of it ends this process by the same signal;
if NNI has to SIGKILL it, the server kills the trial.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
from typing import Sequence

from nni_hwnas.warm_trials import protocol

USAGE = ("usage: python -m nni_hwnas.warm_trials --config EXPERIMENT.yaml | -m MODULE [ARGS] | SCRIPT [ARGS]")
#: Seconds to wait for a just-started server to listen (it binds before it imports anything).
CONNECT_WAIT_S = 30.0


def target_argv(argv: Sequence[str]) -> list[str]:
    """What follows ``python`` in the equivalent cold command."""
    argv = list(argv)
    if not argv or argv[0].startswith("-") and argv[0] != "-m":
        return [*protocol.HPO_TRIAL, *argv]
    return argv


def say(text: str) -> None:
    print(f"nni-hwnas warm trial: {text}", file=sys.stderr, flush=True)


def run_cold(target: list[str]) -> int:
    """Become the cold trial process (same pid, so NNI watches it unchanged)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *target])
    return 1  # not reached


def connect(key: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(protocol.address(key))
    except OSError:
        sock.close()
        return None
    return sock


def start_server(key: str) -> socket.socket | None:
    """Start the experiment's server and connect; ``None`` if none came up."""
    import subprocess

    log = protocol.log_path(os.environ)
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        log_file = log.open("a")
    except OSError:
        log_file = None
    command = [sys.executable, "-m", "nni_hwnas.warm_trials.server", "--key", key,
               "--idle-s", str(protocol.idle_seconds(os.environ))]
    if log_file is not None:
        command += ["--log", str(log)]
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=log_file or subprocess.DEVNULL, start_new_session=True)
    if log_file is not None:
        log_file.close()  # the server has its own copy
    deadline = time.monotonic() + CONNECT_WAIT_S
    while time.monotonic() < deadline:
        sock = connect(key)
        if sock is not None:
            return sock
        if server.poll() is not None:  # lost the bind race (then another listens) or failed
            return connect(key)
        time.sleep(0.02)
    return None


def run_warm(sock: socket.socket, target: list[str]) -> int | None:
    """Send the trial; forward NNI's signals; return its exit code, or ``None`` if the server
    ended before starting it (nothing ran, so running it cold is safe)."""
    held: list[int] = []  # signals that came before the request went: the first message must be it
    sent = False

    def forward(number: int, _frame: object) -> None:
        if not sent:
            held.append(number)
            return
        try:
            protocol.send(sock, {"signal": number})
        except OSError:
            pass

    # Handlers first: the trial may start, and NNI may signal this process, before send() returns.
    # A signal that lands just before a blocking recv() would wait, unhandled, for the trial's
    # end; the wakeup pipe wakes the select() below instead, and the handler then runs.
    wake_read, wake_write = os.pipe()
    for fd in (wake_read, wake_write):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, forward)
    try:
        protocol.send(sock, {"argv": target, "env": dict(os.environ), "cwd": os.getcwd()}, protocol.STANDARD_FDS)
    except OSError:
        if held:  # stopped before anything ran: stop, don't run it cold
            protocol.die_of(held[0])
        return None  # the server closed (it failed to warm up, or left idle) before taking the trial
    sent = True
    for number in held:
        forward(number, None)
    started = False
    while True:
        readable, _, _ = select.select([sock, wake_read], [], [])
        if wake_read in readable:
            os.read(wake_read, 64)
            if sock not in readable:
                continue  # the handler runs here, before select() is entered again
        message, _ = protocol.receive(sock)
        if message is None:
            if not started:
                return None
            say(f"the warm server ended during this trial (see {protocol.log_path(os.environ)}); "
                "the trial failed; the next trial starts a new server")
            return 1
        if "started" in message:
            started = True
        elif "exit" in message:
            if message.get("signal"):
                protocol.die_of(int(message["signal"]))
            return int(message["exit"])


def main(argv: Sequence[str] | None = None) -> int:
    target = target_argv(sys.argv[1:] if argv is None else argv)
    if target[0] == "-m" and len(target) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    if not protocol.supported() or os.environ.get("NNI_HWNAS_WARM_TRIALS") == "0":
        return run_cold(target)
    key = protocol.server_key(os.environ, sys.executable, os.getcwd())
    sock = connect(key) or start_server(key)
    code = None if sock is None else run_warm(sock, target)
    if code is None:
        say(f"no warm server came up (see {protocol.log_path(os.environ)}); running this trial cold")
        return run_cold(target)
    return code
