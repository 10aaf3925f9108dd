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
