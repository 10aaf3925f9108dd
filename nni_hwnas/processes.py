"""Child processes we start (a headless browser, an ssh session): end them without leaking one.

Both ask the child to end its own way first (SIGTERM; closing stdin ends a device's loop), give it
a few seconds, then kill and reap it, so no zombie or orphan outlives the object that started it.
"""

from __future__ import annotations

import abc
import subprocess
from typing import Any, Callable


def end_process(proc: subprocess.Popen, timeout_s: float, ask: Callable[[], None] | None = None) -> None:
    """End ``proc`` if it still runs: ``ask`` (default: SIGTERM), wait ``timeout_s``, else kill it.

    ``ask`` raising :class:`OSError` (e.g. a broken pipe) counts as not having ended."""
    if proc.poll() is not None:
        return
    try:
        (ask or proc.terminate)()
        proc.wait(timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()


class ClosedOnExit(abc.ABC):
    """``with obj: ...`` calls ``obj.close()`` on the way out, whatever happened inside."""

    @abc.abstractmethod
    def close(self) -> None:
        """End what the object started (its child process)."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
