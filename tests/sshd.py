"""Test SSH servers on 127.0.0.1: each with its own config, host key, client key and temp folder.

Debian's ``openssh-server`` (``.ci/run`` installs it). Started in the foreground (``-D``) by the
test, stopped by its PID together with the sessions it forked; nothing outside the temp folder is
touched except ``/run/sshd``, the privilege-separation folder sshd insists on when run as root.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def available() -> bool:
    return Path(SSHD).is_file() and shutil.which("ssh") is not None and shutil.which("ssh-keygen") is not None


@dataclass
class TestSshd:
    """A running test sshd; ``folder / "home"`` is its sessions' HOME."""

    port: int
    user: str
    folder: Path
    process: subprocess.Popen
    client_config: Path

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def target(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def session_processes(self) -> list:
        """Every process the server forked (sessions and what they run), by walking its children."""
        import psutil

        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        for child in self.session_processes():
            try:
                child.kill()
            except Exception:
                pass
        self.process.kill()
        self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sshd(folder: Path, env: dict[str, str] | None = None) -> TestSshd:
    """One sshd on a free port of 127.0.0.1 accepting only a fresh client key; returns once it listens.

    Sessions get ``HOME`` in ``folder`` and the variables of ``env`` (sshd's ``SetEnv``)."""
    (folder / "home").mkdir(parents=True, exist_ok=True)  # sessions' HOME: NNI's uploads land here
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    user, port = getpass.getuser(), _free_port()
    sftp = next((p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server") if Path(p).exists()),
                "internal-sftp")
    config = folder / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
                      f"PidFile {folder / 'sshd.pid'}\nAuthorizedKeysFile {folder / 'authorized_keys'}\n"
                      "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
                      "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
                      f"Subsystem sftp {sftp}\nLogLevel ERROR\n"
                      # one SetEnv line: sshd uses only the first of a keyword
                      + "SetEnv " + " ".join(f"{k}={v}" for k, v in {"HOME": folder / "home", **(env or {})}.items())
                      + "\n")
    client = folder / "ssh_config"
    client.write_text(f"Host 127.0.0.1\n  IdentityFile {folder / 'client_key'}\n  IdentitiesOnly yes\n"
                      "  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  LogLevel ERROR\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                               stderr=open(folder / "sshd.log", "w"), start_new_session=True)
    server = TestSshd(port, user, folder, process, client)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"test sshd did not start: {(folder / 'sshd.log').read_text()[-500:]}")
            time.sleep(0.1)
