"""A remote trial reads its own machine's ``data_root``: which machine it is comes from sshd's
``SSH_CONNECTION`` (port, then address), and anything ambiguous is one clear line."""

from __future__ import annotations

import pytest

from nni_hwnas.data.machine_roots import data_root_here, machine_data_roots, this_machine
from nni_hwnas.errors import UserError

MACHINES = [{"host": "127.0.0.1", "port": 2201, "user": "me", "ssh_key_file": "k", "data_root": "/srv/a"},
            {"host": "127.0.0.1", "port": 2202, "user": "me", "ssh_key_file": "k", "data_root": "~/data"},
            {"host": "127.0.0.1", "port": 2203, "user": "me", "ssh_key_file": "k"}]


def remote(port: int, ip: str = "127.0.0.1") -> dict[str, str]:
    return {"NNI_PLATFORM": "remote", "SSH_CONNECTION": f"127.0.0.1 50000 {ip} {port}"}


def test_each_worker_reads_its_own_root():
    roots = machine_data_roots(MACHINES)
    assert [r["data_root"] for r in roots] == ["/srv/a", "~/data", None]
    assert "127.0.0.1" in roots[0]["addresses"]
    assert data_root_here("/driver/data", roots, remote(2201)) == "/srv/a"
    home = data_root_here("/driver/data", roots, {**remote(2202), "HOME": "/ignored"})
    assert home.endswith("/data") and not home.startswith("~")  # this machine's home
    assert data_root_here("/driver/data", roots, remote(2203)) == "/driver/data"  # no root of its own
    assert data_root_here("/driver/data", roots, {"SSH_CONNECTION": "x"}) == "/driver/data"  # local trial, driver
    assert machine_data_roots([{k: v for k, v in m.items() if k != "data_root"} for m in MACHINES]) is None


def test_same_port_machines_are_told_apart_by_address():
    roots = [{"host": "10.0.0.2", "port": 22, "addresses": ["10.0.0.2"], "data_root": "/a"},
             {"host": "pi.local", "port": 22, "addresses": ["10.0.0.3"], "data_root": "/b"}]
    assert this_machine(roots, remote(22, "10.0.0.3")) == 1
    assert this_machine(roots, remote(22, "::ffff:10.0.0.2")) == 0  # IPv4 peer on an IPv6 socket
    with pytest.raises(UserError, match="matches 0 of `training_service.machines`") as info:
        this_machine(roots, remote(22, "10.0.0.9"))
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="no SSH_CONNECTION"):
        this_machine(roots, {"NNI_PLATFORM": "remote"})
    assert this_machine(roots[:1], {"NNI_PLATFORM": "remote"}) == 0  # one machine: nothing to tell apart


def test_trial_arguments_carry_roots_only_for_remote_machines_with_one(tmp_path):
    from nni_hwnas.experiment.config import parse_config
    from nni_hwnas.experiment.trial_args import trial_dataset_args

    key = tmp_path / "id"
    key.write_text("k")
    machines = [{"host": "127.0.0.1", "port": 2201, "user": "me", "ssh_key_file": str(key), "data_root": "/srv/a"}]
    remote_cfg = parse_config({"dataset": {"name": "digits"},
                               "training_service": {"platform": "remote", "machines": machines}})
    assert trial_dataset_args(remote_cfg)["machine_data_roots"][0]["data_root"] == "/srv/a"
    assert "machine_data_roots" not in trial_dataset_args(parse_config({"dataset": {"name": "digits"}}))
