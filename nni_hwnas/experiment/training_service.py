"""Where trials run: this machine (``local``) or NNI's remote (SSH) training service.

``training_service:`` in the experiment YAML::

    training_service:
      platform: remote
      nni_manager_ip: 192.168.1.10     # this machine as the workers reach it (default 127.0.0.1 for loopback)
      machines:
        - {host: 192.168.1.21, port: 22, user: me, ssh_key_file: ~/.ssh/id_ed25519}
        - {host: 192.168.1.22, user: me, ssh_key_file: ~/.ssh/id_ed25519, python_path: /opt/venv/bin,
           data_root: /srv/medmnist}

What NNI 3.0 needs (tried on loopback SSH, see ``tests/test_remote_trials.py``):

- NAS trials run the driver's own interpreter path (``sys.executable``), so every machine needs a
  Python with nni-hwnas installed at that same absolute path; ``python_path`` (put first on
  ``PATH``) defaults to its folder. A relative ``python3`` would meet ``~/.bashrc`` over SSH.
- NNI uploads the driver's working folder to every machine (at most 2000 files or 300 MB; a
  ``.nniignore`` there is honoured): start searches from a small folder, not from a home folder.
- Data: a machine's ``data_root`` (absolute, or ``~/...`` for that machine's home) is where its
  trials read the dataset (:mod:`nni_hwnas.data.machine_roots`: each trial finds its machine from
  ``SSH_CONNECTION``); machines without one read the driver's absolute data root, which must then
  exist at the same path there. The latency table is passed as the driver's absolute path: found
  so by default for loopback workers; for other hosts copy the table the driver reports
  (``run.json`` ``hardware.latency_table``) to the same path.
- The workers need an SSH key (``ssh_key_file``) and sshd's ``Subsystem sftp`` (NNI uploads by SFTP).
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from nni_hwnas.errors import UserError, closest

PLATFORMS = ("local", "remote")
MACHINE_KEYS = ("host", "port", "user", "ssh_key_file", "python_path", "data_root")


@dataclass(frozen=True)
class Machine:
    """One SSH worker (NNI's ``RemoteMachineConfig``, key-file login only)."""

    host: str
    user: str
    ssh_key_file: str
    port: int = 22
    python_path: str | None = None
    data_root: str | None = None  # where this machine's trials read the data (None: the driver's path)

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def parse_machines(machines: Sequence[Any], base_dir: Path | None = None) -> list[Machine]:
    """Validate ``training_service.machines``: strict keys, an existing key file, a positive port."""
    if not isinstance(machines, Sequence) or isinstance(machines, (str, bytes)) or not machines:
        raise UserError("config: `training_service.machines` must list at least one machine, e.g. "
                        "[{host: 10.0.0.2, user: me, ssh_key_file: ~/.ssh/id_ed25519}]")
    parsed = []
    for i, entry in enumerate(machines):
        where = f"training_service.machines[{i}]"
        if not isinstance(entry, Mapping):
            raise UserError(f"config: `{where}` must be a mapping with keys {', '.join(MACHINE_KEYS)}")
        for key in entry:
            if key not in MACHINE_KEYS:
                raise UserError(f"config: unknown key `{where}.{key}`{closest(str(key), MACHINE_KEYS)}; "
                                f"allowed here: {', '.join(MACHINE_KEYS)}")
        for key in ("host", "user", "ssh_key_file"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise UserError(f"config: `{where}.{key}` is required and must be a string")
        port = entry.get("port", 22)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise UserError(f"config: `{where}.port` must be an integer in 1..65535, got {port!r}")
        key_file = Path(entry["ssh_key_file"]).expanduser()
        if not key_file.is_absolute():
            key_file = (base_dir or Path.cwd()) / key_file
        if not key_file.is_file():
            raise UserError(f"config: `{where}.ssh_key_file` {key_file} does not exist; NNI logs in with a key file only")
        python_path = entry.get("python_path")
        if python_path is not None and (not isinstance(python_path, str) or not Path(python_path).is_absolute()):
            raise UserError(f"config: `{where}.python_path` must be an absolute folder (a relative one meets "
                            f"~/.bashrc over SSH), got {python_path!r}")
        data_root = entry.get("data_root")
        if data_root is not None and (not isinstance(data_root, str)
                                      or not (Path(data_root).is_absolute() or data_root.startswith("~"))):
            raise UserError(f"config: `{where}.data_root` must be a folder on that machine, absolute or under ~ "
                            f"(trials start in NNI's upload folder), got {data_root!r}")
        parsed.append(Machine(entry["host"], entry["user"], str(key_file.resolve()), port, python_path, data_root))
    return parsed


def nni_training_service(platform: str, machines: Sequence[Any], nni_manager_ip: str | None,
                         base_dir: Path | None = None) -> tuple[Any, str | None]:
    """``(NNI training-service config, nni_manager_ip)``; ``(None, None)`` for ``local``."""
    if platform not in PLATFORMS:
        raise UserError(f"config: `training_service.platform` is {platform!r}{closest(platform, PLATFORMS)}; "
                        f"allowed: {', '.join(PLATFORMS)}")
    if platform == "local":
        if machines:
            raise UserError("config: `training_service.machines` is for `platform: remote`")
        return None, None
    parsed = parse_machines(machines, base_dir)
    if nni_manager_ip is None:
        if not all(m.loopback for m in parsed):
            raise UserError("config: `training_service.nni_manager_ip` is required for machines other than "
                            "127.0.0.1: this machine's address as the workers reach it (trials report to it)")
        nni_manager_ip = "127.0.0.1"
    from nni.experiment.config import RemoteConfig, RemoteMachineConfig

    interpreter_dir = str(Path(sys.executable).parent)  # NAS trials run this path (see the module docstring)
    machine_list = [RemoteMachineConfig(host=m.host, port=m.port, user=m.user, ssh_key_file=m.ssh_key_file,
                                        python_path=m.python_path or interpreter_dir) for m in parsed]
    return RemoteConfig(machine_list=machine_list, reuse_mode=False), nni_manager_ip
