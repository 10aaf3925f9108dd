"""Which data folder a trial reads on a remote worker: its machine's ``data_root``, not the driver's.

NNI's remote training service runs the same trial arguments on every machine, so they cannot
hold one path per machine. They hold every machine's root instead (``machine_data_roots``), and
the trial finds its own machine from ``SSH_CONNECTION``, which sshd sets for the session NNI
starts its trial keeper in and which every trial inherits: the server's port and address are the
ones the driver connected to. NNI's own worker ids (``remote-worker1``) change when NNI restarts a
worker, so they are not used. Only the standard library here: trial processes import it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from nni_hwnas.errors import UserError


def _addresses(host: str, port: int) -> list[str]:
    """The IP addresses ``host`` resolves to here (empty when it does not resolve)."""
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)})
    except (OSError, UnicodeError):
        return []


def machine_data_roots(machines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """The trial-argument form of ``training_service.machines``: host, port, resolved addresses and
    ``data_root`` (None: the driver's) of each; None when no machine names its own root."""
    if not any(isinstance(m, Mapping) and m.get("data_root") for m in machines or ()):
        return None
    roots = []
    for machine in machines:
        host, port = str(machine["host"]), int(machine.get("port", 22))
        roots.append({"host": host, "port": port, "addresses": _addresses(host, port),
                      "data_root": machine.get("data_root")})
    return roots


def _plain_ip(address: str) -> str:
    """``::ffff:10.0.0.2`` (an IPv4 peer on an IPv6 socket) as ``10.0.0.2``; others unchanged."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


def this_machine(roots: Sequence[Mapping[str, Any]], environ: Mapping[str, str]) -> int:
    """Index into ``roots`` of the machine this trial runs on, from ``SSH_CONNECTION``.

    Matched by the sshd port, then (several machines on one port) by the address; a single
    machine needs no match (e.g. behind a port forward). Anything else is a :class:`UserError`."""
    if len(roots) == 1:
        return 0
    fields = environ.get("SSH_CONNECTION", "").split()
    if len(fields) != 4 or not fields[3].isdigit():
        raise UserError("training_service: this remote trial has no SSH_CONNECTION, so it cannot tell which of "
                        "`training_service.machines` it runs on to pick that machine's `data_root`")
    server_ip, server_port = _plain_ip(fields[2]), int(fields[3])
    matches = [i for i, r in enumerate(roots) if int(r["port"]) == server_port]
    if len(matches) != 1:
        matches = [i for i in (matches or range(len(roots)))
                   if server_ip == _plain_ip(str(roots[i]["host"]))
                   or server_ip in {_plain_ip(a) for a in roots[i].get("addresses") or ()}]
    if len(matches) != 1:
        raise UserError(f"training_service: this worker's sshd ({server_ip} port {server_port}) matches "
                        f"{len(matches)} of `training_service.machines`, so its `data_root` is unknown; "
                        "give each machine a distinct host address or port")
    return matches[0]


def data_root_here(default: str | Path | None, roots: Sequence[Mapping[str, Any]] | None,
                   environ: Mapping[str, str] | None = None) -> str | Path | None:
    """The data root a process reads: ``default`` (the driver's) unless it is a trial on one of NNI's
    remote machines whose entry names its own ``data_root`` (``~`` is this machine's home)."""
    environ = os.environ if environ is None else environ
    if not roots or environ.get("NNI_PLATFORM") != "remote":
        return default
    index = this_machine(roots, environ)
    root = roots[index].get("data_root")
    if not root:
        return default
    here = str(Path(str(root)).expanduser())
    print(f"nni-hwnas: this worker is training_service.machines[{index}] ({roots[index]['host']}:"
          f"{roots[index]['port']}); data from {here}", file=sys.stderr, flush=True)
    return here
