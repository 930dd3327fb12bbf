"""The emulator's clock: real time plus an offset that tests move forward with ``advance``."""

from __future__ import annotations

import threading
import time


class Clock:
    """A wall clock that tests can move forward: :meth:`now` is ``time.time()`` plus an offset."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        """The seconds added to the real time."""
        return self._offset

    def now(self) -> float:
        """Return the emulated epoch time in seconds."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0) and return the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += float(seconds)
        return self.now()
