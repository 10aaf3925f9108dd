"""Arguments NNI 3.0's built-in strategies need to mean what their names say."""

from __future__ import annotations

from typing import Any


def builtin_defaults(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the defaults that make a built-in maximise ``default`` ("TPE minimises").

    NNI 3.0's NAS ``TPE`` strategy wraps ``TpeTuner``, whose ``optimize_mode`` defaults to
    ``minimize``, while every other NAS strategy maximises the metric (``default`` = accuracy).
    A user's own ``optimize_mode`` is kept.
    """
    out = dict(kwargs)
    if name == "TPE":
        out.setdefault("optimize_mode", "maximize")
    return out
