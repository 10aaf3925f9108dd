"""Shared fixtures: isolated NNI homes, free ports, the repo's paths."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# NNI 3.0 warns about torch classes it does not know (harmless, docs/nni-quirks.md).
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


def rest(port: int, path: str):
    """GET NNI's REST API (what the web UI reads); an empty body (server starting) reads as None."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/nni{path}", timeout=10) as response:
        return json.loads(response.read() or b"null")


def decode(data):
    """Undo NNI's (often double) JSON encoding of metric values."""
    import json

    while isinstance(data, str):
        data = json.loads(data)
    return data


@pytest.fixture(scope="session", autouse=True)
def latency_table_cache(tmp_path_factory) -> Path:
    """A private latency-table cache for the whole session (NNI_HWNAS_CACHE_DIR, inherited by the
    searches and trials tests start): tests never read or fill the user's own cache, and a table
    profiled on first use by one test is reused by the next."""
    import os

    cache = tmp_path_factory.mktemp("nni-hwnas-cache")
    previous = os.environ.get("NNI_HWNAS_CACHE_DIR")
    os.environ["NNI_HWNAS_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("NNI_HWNAS_CACHE_DIR", None)
    else:
        os.environ["NNI_HWNAS_CACHE_DIR"] = previous
