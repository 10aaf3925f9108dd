"""The warm-trial server: one interpreter that has imported torch and our trial code, forking a
child per trial, so a trial pays its epochs instead of ~3.5 CPU-s of imports.

Why fork and not a pool of long-lived workers: a forked child is a fresh process to NNI and to the
trial code (its own pid, environment, working directory, stdout/stderr, exit code), so a trial
runs exactly as ``python -m nni_hwnas.evaluation.hpo_trial`` would, and nothing one trial leaves
behind (threads, global state, a crash) reaches the next.

What must hold, and how:
- ``nni`` itself is never imported here: it reads the trial's environment (``NNI_PLATFORM``,
  ``NNI_TRIAL_JOB_ID``, its command channel) when imported, so each child imports it fresh, after
  taking on its trial's environment (about 0.2 CPU-s once its dependencies are warm).
- The loop runs on one thread (a selector over the listener, the clients' sockets and the
  children's pidfds), so no lock is held by another thread at ``fork``; no torch op runs here, so
  no intra-op thread pool exists to be copied half-used.
- Before forking a training trial, the server reads its config's latency table (once per config
  version, :func:`prepare`), so trials inherit it parsed instead of each parsing it (about
  0.1 CPU-s of a trial's ~0.35 outside its epochs); no dataset is read and no torch op runs here.
- CUDA is never initialised here (importing torch does not), so a child still sees and uses its
  own trial's ``CUDA_VISIBLE_DEVICES``. Not tried on a GPU machine.
- The code is the code of the server's start: edits made during an experiment reach its trials
  only after the server has left (idle) or been stopped.
- A child dies with the server (``PR_SET_PDEATHSIG``) and is killed when its client disappears
  (NNI's SIGKILL of a trial that did not stop in 5 s): no trial outlives the process NNI watches.

Run by a client (``python -m nni_hwnas.warm_trials``); by hand only to test:
``python -m nni_hwnas.warm_trials.server --key KEY``.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TextIO

from nni_hwnas.warm_trials import protocol

#: Imported before the first fork: what a training trial spends its start-up on (torch, our trial
#: code and its data, hardware and space modules) and the heavy dependencies of ``nni``.
WARM_MODULES = ("nni_hwnas.evaluation.hpo_trial", "nni_hwnas.evaluation.trial", "nni_hwnas.evaluation.training",
                "nni_hwnas.experiment.trial_args", "nni_hwnas.data.datasets", "nni_hwnas.data.npz",
                "nni_hwnas.data.folder", "nni_hwnas.data.machine_roots", "nni_hwnas.experiment.runinfo",
                "nni_hwnas.hardware.costs", "nni_hwnas.hardware.table_cache", "search_spaces")
#: Imported when installed: missing ones only make the first use in each trial slower. ``filelock``,
#: ``colorama`` and ``sqlite3`` are what ``import nni`` loads besides ``nni`` itself.
OPTIONAL_WARM_MODULES = ("sklearn.metrics", "medmnist", "requests", "json_tricks", "schema", "typeguard",
                         "filelock", "colorama", "sqlite3")
_PR_SET_PDEATHSIG = 1


@dataclass
class Job:
    """One trial being run: the client waiting on it and the forked child running it."""

    connection: socket.socket
    pid: int
    pidfd: int
    started: float
    argv: list[str]
    client_gone: bool = False
    killed_here: bool = False  # by this server's own shutdown, not by a signal the trial was sent


def warm_up(modules: Sequence[str] = WARM_MODULES, optional: Sequence[str] = OPTIONAL_WARM_MODULES) -> list[str]:
    """Import ``modules`` (and ``optional`` where installed); returns the optional ones missing.

    Refuses a warm-up that pulled in ``nni``: its state would be the server's, not the trial's."""
    for name in modules:
        importlib.import_module(name)
    missing = []
    for name in optional:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if "nni" in sys.modules:
        raise RuntimeError("warming up imported `nni`, whose settings must come from each trial's environment")
    return missing


def run_target(argv: list[str]) -> int:
    """Run a trial command's Python part in this (forked) process and return its exit code.

    ``argv`` is what follows ``python`` in a cold command: ``-m MODULE ARGS`` or ``SCRIPT ARGS``.
    ``hpo_trial`` is already imported, so it is called, not re-executed."""
    import runpy

    try:
        if argv[:2] == list(protocol.HPO_TRIAL):
            from nni_hwnas.evaluation import hpo_trial

            sys.argv = ["hpo_trial", *argv[2:]]
            return int(hpo_trial.main(argv[2:]) or 0)
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            sys.path[0] = str(Path(argv[0]).resolve().parent)
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return int(exc.code or 0)
        print(exc.code, file=sys.stderr)
        return 1
    return 0


def prepare(request: dict) -> str | None:
    """Before forking a trial: run its entry point's ``prepare_warm`` (``hpo_trial`` reads the
    config's latency table), in the trial's environment and working directory, so the child
    inherits what every trial of that config would read. Returns what was read, or None when the
    entry point has nothing to prepare. Its errors reach the caller: the trial itself then meets
    the same error and reports it on its own stderr."""
    argv = list(request["argv"])
    if argv[:2] != list(protocol.HPO_TRIAL):
        return None
    from nni_hwnas.evaluation import hpo_trial

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    try:
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        return hpo_trial.prepare_warm(argv[2:])
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)


def become_trial(request: dict, fds: list[int], inherited: list[int]) -> None:
    """In the forked child: take on the client's process state, run the trial, and exit as a
    normal interpreter would (threads joined, ``atexit`` run, streams flushed), or, after an
    uncaught Ctrl-C, by SIGINT as Python does (NNI reads a trial that died of a signal as stopped,
    one that exited non-zero as failed). Never returns."""
    code, died_of = 1, None
    try:
        os.setpgid(0, 0)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        for fd in inherited:
            os.close(fd)
        for target, fd in zip(protocol.STANDARD_FDS, fds):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(number, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        code = run_target(list(request["argv"]))
    except KeyboardInterrupt:  # its traceback too, as a cold python prints it
        traceback.print_exc()
        code, died_of = 128 + signal.SIGINT, signal.SIGINT
    except BaseException:  # the trial's own crash: its traceback goes to its stderr, as cold
        traceback.print_exc()
        code = 1
    finally:
        try:
            import atexit
            import threading

            threading._shutdown()  # what a normal interpreter exit does: join non-daemon threads
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
            if died_of is not None:
                protocol.die_of(died_of)
        finally:
            os._exit(code)


class WarmTrialServer:
    """Accepts trial requests on :func:`protocol.address` and runs each in a forked child."""

    def __init__(self, listener: socket.socket, idle_s: float, log: TextIO):
        self.listener = listener
        self.idle_s = idle_s
        self.log = log
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.jobs: dict[int, Job] = {}
        self.last_activity = time.monotonic()
        self.stopping = False
        self.prepared: set[tuple] = set()

    def note(self, **fields: Any) -> None:
        """One JSON line in the log: what ran, for how long and how much CPU, how it ended."""
        self.log.write(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "server_pid": os.getpid(), **fields}) + "\n")
        self.log.flush()

    def serve(self) -> None:
        """Until idle for ``idle_s`` with no trial running, or until SIGTERM/SIGINT."""
        while not self.stopping:
            for key, _ in self.selector.select(timeout=0.5):
                if key.data == "accept":
                    self.accept()
                elif key.data[1] not in self.jobs:
                    continue  # its child was reaped earlier in this batch
                elif key.data[0] == "client":
                    self.from_client(key.data[1])
                else:
                    self.reap(key.data[1])
            if not self.jobs and time.monotonic() - self.last_activity > self.idle_s:
                self.note(event="idle exit", idle_s=self.idle_s)
                break
        if self.stopping:
            self.note(event="stopped", running=sorted(self.jobs))
        self.close()

    def accept(self) -> None:
        connection, _ = self.listener.accept()
        pid, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != os.getuid():
            self.note(event="refused", client_pid=pid, uid=uid)
            connection.close()
            return
        request, fds = protocol.receive(connection, max_fds=len(protocol.STANDARD_FDS))
        if request is None or len(fds) != len(protocol.STANDARD_FDS):
            for fd in fds:
                os.close(fd)
            connection.close()
            return
        self.prepare_once(request, pid)
        sys.stdout.flush()
        sys.stderr.flush()
        inherited = [self.listener.fileno(), self.selector.fileno() if hasattr(self.selector, "fileno") else -1,
                     connection.fileno()] + [fd for job in self.jobs.values() for fd in (job.connection.fileno(), job.pidfd)]
        child = os.fork()
        if child == 0:
            become_trial(request, fds, [fd for fd in inherited if fd >= 0])
        for fd in fds:
            os.close(fd)
        try:
            os.setpgid(child, child)  # also set here: no signal may reach a group that does not exist yet
        except OSError:
            pass  # the child already exec'd its setpgid, or already ended
        job = Job(connection, child, os.pidfd_open(child), time.monotonic(), list(request["argv"]))
        self.jobs[child] = job
        self.selector.register(connection, selectors.EVENT_READ, ("client", child))
        self.selector.register(job.pidfd, selectors.EVENT_READ, ("child", child))
        try:
            protocol.send(connection, {"started": child})
        except OSError:
            pass  # the client has gone already: its EOF, read next, kills the child
        self.last_activity = time.monotonic()
        self.note(event="start", pid=child, client_pid=pid, argv=job.argv, cwd=request["cwd"],
                  trial=request["env"].get("NNI_TRIAL_JOB_ID"))

    def prepare_once(self, request: dict, client_pid: int) -> None:
        """:func:`prepare` once per trial command, working directory and config file version."""
        argv = [str(a) for a in request["argv"]]
        if argv[:2] != list(protocol.HPO_TRIAL):
            return  # nothing to prepare for other entry points
        key = (request["cwd"], tuple(argv), *self.config_version(argv, request["cwd"]))
        if key in self.prepared:
            return
        self.prepared.add(key)
        before = time.process_time()
        try:
            what = prepare(request)
        except (Exception, SystemExit) as exc:  # the trial meets it too, and reports it itself
            what = f"failed ({type(exc).__name__}: {str(exc)[:200]})"
        if what is not None:
            self.note(event="prepared", client_pid=client_pid, argv=argv, read=what,
                      cpu_s=round(time.process_time() - before, 3))

    @staticmethod
    def config_version(argv: list[str], cwd: str) -> tuple:
        """Which ``--config`` file ``argv`` names, and its version (``()`` without one): an edited
        config is prepared again."""
        from nni_hwnas.hardware.latency_table import file_version

        if "--config" not in argv[:-1]:
            return ()
        return file_version(Path(cwd) / argv[argv.index("--config") + 1])

    def from_client(self, pid: int) -> None:
        """A client forwards a signal NNI sent it, or has gone (killed): end the child the same way."""
        job = self.jobs[pid]
        message, _ = protocol.receive(job.connection)
        if message is None:
            self.selector.unregister(job.connection)
            job.client_gone = True
            self.signal_child(job, signal.SIGKILL)
        elif "signal" in message:
            self.signal_child(job, int(message["signal"]))

    def signal_child(self, job: Job, number: int) -> None:
        try:
            os.killpg(job.pid, number)
        except ProcessLookupError:
            pass

    def reap(self, pid: int) -> None:
        job = self.jobs.pop(pid)
        _, status, usage = os.wait4(pid, 0)
        code = protocol.exit_code(status)
        died_of = os.WTERMSIG(status) if os.WIFSIGNALED(status) and not job.killed_here else None
        cpu_s = usage.ru_utime + usage.ru_stime
        self.selector.unregister(job.pidfd)
        os.close(job.pidfd)
        if not job.client_gone:
            self.selector.unregister(job.connection)
            try:
                protocol.send(job.connection, {"exit": code, "signal": died_of, "cpu_s": cpu_s})
            except OSError:
                pass  # the client went between the child's end and this answer
        job.connection.close()
        self.last_activity = time.monotonic()
        self.note(event="end", pid=pid, exit=code, cpu_s=round(cpu_s, 3),
                  wall_s=round(time.monotonic() - job.started, 3), client_gone=job.client_gone,
                  server_cpu_s=round(time.process_time(), 3))

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def close(self) -> None:
        """Kill what still runs (its clients then exit non-zero and NNI records the trials failed)."""
        for job in list(self.jobs.values()):
            job.killed_here = True
            self.signal_child(job, signal.SIGKILL)
            self.reap(job.pid)
        self.selector.close()
        self.listener.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="nni-hwnas warm-trial server (started by the trial command)")
    parser.add_argument("--key", required=True, help="protocol.server_key of the trials it serves")
    parser.add_argument("--idle-s", type=float, default=protocol.DEFAULT_IDLE_S)
    parser.add_argument("--log", type=Path, help="JSON lines log (default stderr)")
    args = parser.parse_args(argv)
    log: TextIO = sys.stderr
    if args.log is not None:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        log = args.log.open("a")
    # Bound before warming up: of servers started at once by concurrent first trials, only one
    # binds, the others leave before paying for imports, and clients queue while it warms up.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind(protocol.address(args.key))
    except OSError as exc:
        log.write(json.dumps({"event": "not serving", "error": str(exc), "server_pid": os.getpid()}) + "\n")
        return 0  # another server of the same key is up: the clients use that one
    listener.listen(64)
    try:
        missing = warm_up()
    except Exception as exc:  # queued clients read EOF before "started" and run their trials cold
        log.write(json.dumps({"event": "warm-up failed", "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        return 1
    server = WarmTrialServer(listener, args.idle_s, log)
    signal.signal(signal.SIGTERM, server.stop)
    signal.signal(signal.SIGINT, server.stop)
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)  # interpreter start-up and imports: paid once per server
    server.note(event="serving", key=args.key, warm_up_cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
                not_installed=missing, python=sys.executable)
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
