"""Drive headless Chromium over the DevTools protocol: the dashboard's tests and benchmark use it.

One page stays open across calls, so a check can watch the page update without a reload (which
``chromium --dump-dom`` cannot). Needs Debian's ``chromium`` (``.ci/run`` installs it) and the
``websockets`` package NNI already depends on. Offline: every host but 127.0.0.1 is unresolvable.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from nni_hwnas.processes import ClosedOnExit, end_process


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HeadlessPage(ClosedOnExit):
    """One headless Chromium tab: :meth:`goto`, :meth:`js`, :meth:`wait_for`, :meth:`screenshot`."""

    def __init__(self, width: int = 1400, height: int = 1000, timeout_s: float = 60.0) -> None:
        from websockets.sync.client import connect

        binary = chromium_path()
        if binary is None:
            raise RuntimeError("chromium is not installed (apt-get install chromium)")
        self._profile = tempfile.TemporaryDirectory(prefix="nni-hwnas-chromium-", ignore_cleanup_errors=True)
        port = _free_port()
        # SwiftShader gives WebGL without a GPU (Plotly's parcoords and splom need it).
        self._proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu-sandbox", "--use-angle=swiftshader",
             "--enable-unsafe-swiftshader", f"--remote-debugging-port={port}", f"--user-data-dir={self._profile.name}",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", f"--window-size={width},{height}",
             "--no-first-run", "--no-default-browser-check", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.timeout_s = timeout_s
        deadline = time.monotonic() + timeout_s
        target = None
        while target is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
                    pages = [t for t in json.loads(response.read()) if t.get("type") == "page"]
                target = pages[0]["webSocketDebuggerUrl"] if pages else None
            except OSError:
                pass
            if target is None:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.close()
                    raise RuntimeError("headless chromium did not start")
                time.sleep(0.2)
        self._ws = connect(target, max_size=None, open_timeout=timeout_s)
        self._ids = itertools.count(1)
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def send(self, method: str, **params: Any) -> dict:
        """One DevTools command; events arriving meanwhile are dropped."""
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def js(self, expression: str) -> Any:
        """Evaluate ``expression`` (promises awaited) and return its JSON value."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float | None = None) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for: {expression}")
            time.sleep(0.2)

    def hover(self, selector: str, click: bool = False) -> None:
        """Move the mouse over the centre of the first element matching ``selector`` (and click there)."""
        box = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                      " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()")
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=box["x"], y=box["y"])
        for kind in ("mousePressed", "mouseReleased") if click else ():
            self.send("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)

    def screenshot(self, path: Path, selector: str | None = None) -> Path:
        """PNG of the page, or of one element (scrolled into view) when ``selector`` is given."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if not selector:  # a full page: draw every lazily drawn view first
            self.js("document.getElementById('many-view') && document.getElementById('many-view').scrollIntoView()")
            time.sleep(0.2)
            self.wait_for("!window.dashboard || window.dashboard.stale.size === 0")
            self.js("window.scrollTo(0, 0)")
        if selector:
            element = f"document.querySelector({json.dumps(selector)})"
            self.js(f"{element}.scrollIntoView()")
            time.sleep(0.2)  # lazily drawn views start drawing once on screen
            self.wait_for(f"!window.dashboard || !window.dashboard.stale.has({element}.id)")
            box = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                          " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })()")
            params["clip"] = {**box, "scale": 1}
        data = self.send("Page.captureScreenshot", **params)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            ws.close()
        end_process(self._proc, timeout_s=10)
        self._profile.cleanup()
