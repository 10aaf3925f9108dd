"""Serve the dashboard: one background poller per server, however many browsers are open.

The poller reads every source every ``interval_s`` and rebuilds the snapshot only when the trial
rows changed (a hash of them), so a browser's poll costs one dict lookup, and NNI's manager sees
two REST calls per interval from us, not per browser. A browser sends the version it has and gets
``{"unchanged": true}`` back until there is something new.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence
from urllib.parse import parse_qs, urlparse

from nni_hwnas.dashboard.page import plotly_js, render_page
from nni_hwnas.dashboard.snapshot import build_snapshot, fingerprint
from nni_hwnas.dashboard.sources import Source
from nni_hwnas.errors import UserError

_log = logging.getLogger("nni_hwnas.dashboard")


def check_port_free(host: str, port: int, flag: str = "--port") -> None:
    """Fail in one line, before anything starts, when ``host:port`` is taken (``flag`` names the fix)."""
    if not 1 <= port <= 65535:
        raise UserError(f"dashboard port {port} is out of range; choose one in 1-65535 with {flag}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(f"dashboard port {port} on {host} is not available ({exc.strerror}); "
                            f"choose another with {flag}" + ("" if exc.errno == 98 else " or the host")) from None


class SnapshotCache:
    """The latest snapshot of the sources and its version, refreshed by :meth:`refresh`."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)
        self.version = 0
        self.snapshot: dict[str, Any] | None = None
        self.body: bytes = b""
        self.error: str | None = None
        self._print = ""
        self._data: list | None = None
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Read every source; rebuild when the trials changed. True when there is a new version."""
        try:
            data = [source.read() for source in self.sources]
        except Exception as exc:  # the manager is starting or stopping: keep the last data, say why
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        self.error = None
        if self._data is not None and all(a is b for a, b in zip(data, self._data)):
            return False  # every source returned its cached object: nothing changed, nothing to hash
        self._data = data
        mark = fingerprint([[*d.rows, d.status] for d in data])
        if mark == self._print:
            return False
        snapshot = build_snapshot(data, live=True, version=self.version + 1)
        body = json.dumps(snapshot, allow_nan=False).encode()
        with self._lock:
            self.version, self.snapshot, self.body, self._print = snapshot["version"], snapshot, body, mark
        return True

    def response(self, known_version: int | None) -> bytes:
        with self._lock:
            if self.snapshot is None or known_version == self.version:
                return json.dumps({"version": self.version, "unchanged": True, "error": self.error}).encode()
            return self.body


class _Handler(BaseHTTPRequestHandler):
    server: "DashboardServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlparse(self.path)
        if url.path in ("/", "/index.html"):
            self._send(self.server.page, "text/html; charset=utf-8")
        elif url.path == "/plotly.min.js":
            self._send(self.server.plotly, "application/javascript", cache=True)
        elif url.path == "/api/snapshot":
            raw = parse_qs(url.query).get("version", [""])[0]
            known = int(raw) if raw.lstrip("-").isdigit() else None
            self._send(self.server.cache.response(known), "application/json")
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def _send(self, body: bytes, kind: str, cache: bool = False) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=86400" if cache else "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # keep the search's terminal quiet
        _log.debug(format, *args)


class DashboardServer(ThreadingHTTPServer):
    """HTTP server plus poller thread; use :meth:`start` / :meth:`stop` or as a context manager."""

    daemon_threads = True

    def __init__(self, sources: Sequence[Source], *, host: str = "127.0.0.1", port: int = 8090,
                 interval_s: float = 2.0, title: str = "nni-hwnas dashboard") -> None:
        check_port_free(host, port)
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:  # taken between the check and now
            raise UserError(f"dashboard port {port} on {host} is not available ({exc.strerror}); "
                            f"choose another with --port") from None
        self.cache = SnapshotCache(sources)
        self.interval_s = interval_s
        self.page = render_page(None, title=title, poll_ms=int(interval_s * 1000)).encode()
        self.plotly = plotly_js().encode()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"

    def _poll(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self.cache.refresh()
            self._stop.wait(max(0.1, self.interval_s - (time.perf_counter() - started)))

    def start(self) -> "DashboardServer":
        self.cache.refresh()
        for target in (self._poll, self.serve_forever):
            thread = threading.Thread(target=target, daemon=True, name=f"dashboard-{target.__name__}")
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.shutdown()
        self.server_close()
        for thread in self._workers:
            thread.join(timeout=10)

    def __enter__(self) -> "DashboardServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def bind_note(host: str) -> str:
    """What the user should know about who can reach the page."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return "only this machine can open it; --host 0.0.0.0 opens it to the network"
    return f"listening on {host}: anyone who can reach this machine can open it"


def serve_until_interrupted(server: DashboardServer, echo: Callable[[str], None] = print) -> None:
    """Block until Ctrl-C, then stop the server."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        echo("nni-hwnas: dashboard stopped")
    finally:
        server.stop()
