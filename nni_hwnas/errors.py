"""The one exception type users see as a single line.

Anything a user can fix (a bad config key, a missing data file, a port in use) raises
:class:`UserError`; the CLI prints ``error: <message>`` and exits with code 2, without a traceback.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """A problem in the user's input, described in one line that names the fix."""

    exit_code = 2


def closest(name: str, allowed: Iterable[str]) -> str:
    """Return a ``did you mean`` hint for ``name`` among ``allowed`` (empty when nothing is close)."""
    matches = difflib.get_close_matches(str(name), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def unknown(kind: str, name: str, allowed: Iterable[str]) -> UserError:
    """Build the standard error for an unknown name, listing what is allowed."""
    allowed = sorted(str(a) for a in allowed)
    return UserError(f"unknown {kind} {name!r}{closest(name, allowed)}; allowed: {', '.join(allowed)}")


def read_yaml(path: "str | object", what: str) -> object:
    """Parse a YAML file; a syntax error becomes one line naming the file, the line and the fix."""
    from pathlib import Path

    import yaml

    path = Path(str(path))
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise UserError(f"{what} {path} is not valid YAML{where} ({problem}): fix the syntax") from None
