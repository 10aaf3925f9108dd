"""Who owns an NNI manager: one search per port, and no manager left running unnoticed.

NNI 3.0 checks a port only just before its manager binds it, so two searches started together
both pass and the loser's driver ends up driving the winner's manager. And a driver killed with
``kill -9`` leaves its node manager running (re-parented to init, still launching trials), often
out of ``nnictl``'s sight. So each search:

- holds an exclusive lock on its port for its whole run (:func:`claim_port`); a second search on
  the port is refused before it starts anything;
- writes ``<working dir>/<id>/nni-hwnas-driver.json`` (driver pid, manager pid, port) as soon as
  its manager is up, so a later command finds a manager whose driver is gone
  (:func:`find_orphans`) and ``nni-hwnas stop ID`` can stop it (:func:`stop_experiment`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

from nni_hwnas.errors import UserError
from nni_hwnas.nni_compat.rest import manager_experiment_id

RECORD_NAME = "nni-hwnas-driver.json"


def _lock_dir() -> Path:
    """Machine-wide (ports are), not per HOME: one folder in the system's temp dir."""
    path = Path(tempfile.gettempdir()) / "nni-hwnas-ports"
    path.mkdir(exist_ok=True)
    with contextlib.suppress(OSError):
        path.chmod(0o1777)  # every user may create their lock; the sticky bit keeps them apart
    return path


@contextlib.contextmanager
def claim_port(port: int) -> Iterator[None]:
    """Hold ``port`` for this process until the block ends; refuse when another search holds it."""
    import fcntl

    path = _lock_dir() / f"{int(port)}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)  # another user's lock file: flock works read-only too
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise UserError(f"port {port} is in use by another nni-hwnas search (pid {holder}); "
                            "choose another --port or wait for that search to end") from None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@dataclass
class DriverRecord:
    """Which process drives experiment ``experiment_id`` and where its manager listens."""

    experiment_id: str
    driver_pid: int
    manager_pid: int | None
    port: int
    started: float

    def write(self, experiment_dir: Path) -> None:
        experiment_dir.mkdir(parents=True, exist_ok=True)
        (experiment_dir / RECORD_NAME).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, experiment_dir: Path) -> "DriverRecord | None":
        try:
            return cls(**json.loads((Path(experiment_dir) / RECORD_NAME).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def driver_alive(self) -> bool:
        return pid_alive(self.driver_pid)

    def manager_alive(self) -> bool:
        """True when a manager answers on the recorded port *as this experiment*."""
        return manager_experiment_id(self.port, timeout_s=2.0) == self.experiment_id


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie (killed, not yet reaped) is not alive
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def find_orphans(working_directory: Path) -> list[DriverRecord]:
    """Experiments under ``working_directory`` whose manager still runs but whose driver is gone."""
    root = Path(working_directory).expanduser()
    records = (DriverRecord.read(p.parent) for p in root.glob(f"*/{RECORD_NAME}")) if root.is_dir() else ()
    return [r for r in records if r is not None and not r.driver_alive() and r.manager_alive()]


def orphan_line(record: DriverRecord) -> str:
    return (f"experiment {record.experiment_id}'s NNI manager (pid {record.manager_pid}, port {record.port}) "
            f"is still running although its nni-hwnas (pid {record.driver_pid}) is gone; "
            f"stop it with `nni-hwnas stop {record.experiment_id}`")


def port_holder_hint(port: int, working_directory: Path) -> str:
    """Why ``port`` is busy, when we can tell: an experiment's manager, orphaned or not."""
    owner = manager_experiment_id(port, timeout_s=2.0)
    if owner is None:
        return ""
    record = DriverRecord.read(Path(working_directory).expanduser() / owner)
    if record is not None and not record.driver_alive():
        return f" by {orphan_line(record)}"
    return f" by the NNI manager of experiment {owner} (`nni-hwnas stop {owner}` stops it)"


def _nnictl_entry(experiment_id: str) -> dict | None:
    with contextlib.suppress(Exception):
        from nni.tools.nnictl.config_utils import Experiments

        return Experiments().get_all_experiments().get(experiment_id)
    return None


def _is_manager_of(pid: int, experiment_id: str) -> bool:
    """Guard against a reused pid: the process's command line names the experiment."""
    try:
        return experiment_id.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop_experiment(experiment_id: str, working_directories: Iterable[Path], timeout_s: float = 20.0) -> str:
    """Stop experiment ``experiment_id``'s manager even when ``nnictl`` lost track of it.

    Asks the manager to stop over REST (it stops its trials), then ends the process if it lingers.
    Returns one line saying what happened.

    Raises:
        UserError: When nothing is known of the experiment.
    """
    record = next((r for r in (DriverRecord.read(Path(d).expanduser() / experiment_id) for d in working_directories)
                   if r is not None), None)
    entry = _nnictl_entry(experiment_id)
    if record is None and entry is not None:
        record = DriverRecord(experiment_id, 0, entry.get("pid"), int(entry.get("port", 0)), 0.0)
    if record is None:
        places = ", ".join(str(Path(d).expanduser()) for d in working_directories)
        raise UserError(f"experiment {experiment_id!r} is unknown to nni-hwnas (no {RECORD_NAME} in {places}) "
                        "and to nnictl; pass --experiment-dir with the experiment's working directory")
    stopped_by = None
    if record.manager_alive():
        with contextlib.suppress(OSError):
            request = urllib.request.Request(f"http://127.0.0.1:{record.port}/api/v1/nni/experiment", method="DELETE")
            urllib.request.urlopen(request, timeout=10).close()
            stopped_by = "REST"
    pid = record.manager_pid
    deadline = time.monotonic() + timeout_s
    while pid and pid_alive(pid) and _is_manager_of(pid, experiment_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    if pid and pid_alive(pid) and _is_manager_of(pid, experiment_id):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            stopped_by = "SIGKILL"
    if entry is not None:
        with contextlib.suppress(Exception):
            from nni.tools.nnictl.config_utils import Experiments

            Experiments().update_experiment(experiment_id, "status", "STOPPED")
    if stopped_by is None:
        return f"experiment {experiment_id} is not running (port {record.port} does not answer as it)"
    return f"stopped experiment {experiment_id} (manager pid {pid}, port {record.port}, via {stopped_by})"


def ensure_not_running(experiment_id: str, working_directory: Path) -> None:
    """A resume of an experiment whose manager still runs is refused, saying whose it is."""
    record = DriverRecord.read(Path(working_directory).expanduser() / experiment_id)
    if record is None or not record.manager_alive():
        return
    if record.driver_alive():
        raise UserError(f"experiment {experiment_id} is still running (nni-hwnas pid {record.driver_pid}, "
                        f"port {record.port}); wait for it or stop it with `nni-hwnas stop {experiment_id}`")
    raise UserError(orphan_line(record) + " before resuming")


__all__ = ["DriverRecord", "claim_port", "ensure_not_running", "find_orphans", "orphan_line", "pid_alive",
           "port_holder_hint", "stop_experiment"]
