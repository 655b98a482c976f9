"""The runtime's clocks: what time the engine is told, and how long the timer really waits.

The engine never reads a clock; the runtime does, through one of these. :class:`WallClock` is the
real one (epoch seconds). :class:`FakeClock` moves only when a test advances it, so timing is
tested without sleeping: a timer waiting on it is woken by :meth:`FakeClock.advance`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "FakeClock", "WallClock"]


class Clock(Protocol):
    """Engine time in epoch seconds, and how long to wait in real time for a moment of it."""

    def now(self) -> float:
        """The current time, epoch seconds."""
        ...

    def real_delay(self, until: float) -> float | None:
        """Real seconds to wait before ``until`` comes (0 if it has), or ``None``: wait until
        the clock says it moved (see :meth:`on_change`)."""
        ...

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever time jumps rather than flows (a fake clock advanced)."""
        ...


class WallClock:
    """The system's clock."""

    def now(self) -> float:
        return time.time()

    def real_delay(self, until: float) -> float | None:
        return max(0.0, until - time.time())

    def on_change(self, callback: Callable[[], None]) -> None:
        """Wall time flows; it never jumps."""


class FakeClock:
    """A clock that stands still until :meth:`advance` moves it (tests)."""

    def __init__(self, start: float = 1_795_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def now(self) -> float:
        return self._now

    def real_delay(self, until: float) -> float | None:
        return 0.0 if until <= self._now else None

    def on_change(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake whatever waits on it."""
        with self._lock:
            self._now += seconds
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()
