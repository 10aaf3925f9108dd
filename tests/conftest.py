"""Shared fixtures: isolated NNI homes, free ports, the repo's paths."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# NNI 3.0 warns about torch classes it does not know (harmless, see NNI_NOTES).
warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def nni_home(tmp_path, monkeypatch) -> Path:
    """HOME and NNI_CONFIG_DIR in a temp folder: NNI's experiment list and registry stay private."""
    home = tmp_path / "home"
    (home / "nni-config").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NNI_CONFIG_DIR", str(home / "nni-config"))
    return home
