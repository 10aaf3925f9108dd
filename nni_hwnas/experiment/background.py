"""A loop in a daemon thread for the length of a ``with`` block: the search's progress bar and the
MO-ASHA early stopper both poll NNI's REST API this way while the experiment runs."""

from __future__ import annotations

import abc
import threading
from typing import Any


class BackgroundLoop(abc.ABC):
    """Subclasses implement :meth:`_loop`, which returns soon after ``self._stop`` is set."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def __enter__(self) -> "BackgroundLoop":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @abc.abstractmethod
    def _loop(self) -> None:
        """The polling loop; runs until ``self._stop`` is set."""
