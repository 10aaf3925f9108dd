"""Render the dashboard page: one HTML template, our script, and Plotly.js from the ``plotly`` wheel.

The live page loads ``plotly.min.js`` from our server and polls ``api/snapshot``; the static page
(``dashboard.html`` in a results directory) inlines Plotly.js and the snapshot, so it opens from
``file://`` with no network and no server.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from nni_hwnas.errors import UserError

_ASSETS = resources.files("nni_hwnas.dashboard") / "assets"


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """Plotly.js as shipped inside the ``plotly`` Python wheel (``plotly/package_data/plotly.min.js``)."""
    try:
        return (resources.files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        raise UserError("the dashboard needs Plotly.js from the `plotly` package: pip install 'plotly>=5'") from None


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def _script_safe(text: str) -> str:
    """Text that can sit inside a <script> element without closing it early."""
    return text.replace("</", "<\\/")


def render_page(snapshot: Mapping[str, Any] | None, *, title: str = "nni-hwnas dashboard",
                poll_ms: int = 2000) -> str:
    """The page; with ``snapshot`` it is static and self-contained, without it it polls the server."""
    if snapshot is not None:
        plotly_tag = f"<script>{_script_safe(plotly_js())}</script>"
        data = _script_safe(json.dumps(snapshot, allow_nan=False))
    else:
        plotly_tag = '<script src="plotly.min.js"></script>'
        data = "null"
    config = json.dumps({"pollMs": poll_ms, "live": snapshot is None})
    parts = {"title": title.replace("<", "&lt;"), "style": _asset("dashboard.css"), "plotly": plotly_tag,
             "config": config, "snapshot": data, "script": _script_safe(_asset("dashboard.js"))}
    # One pass, so text inserted for one slot (Plotly.js, trial data) is never read as another slot.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], _asset("dashboard.html"))


def write_static_dashboard(path: Path, snapshot: Mapping[str, Any], title: str = "nni-hwnas dashboard") -> Path:
    """Write a self-contained ``dashboard.html`` (about 5 MB, most of it Plotly.js)."""
    path = Path(path)
    path.write_text(render_page(snapshot, title=title), encoding="utf-8")
    return path
