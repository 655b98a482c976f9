"""The runtime's clock for a replay: wall time run ``speed`` times faster, from the traffic's start.

The runtime reads time only through a :class:`~keypolicy.runtime.clock.Clock`, so a replay at
``--speed 60`` is this clock, not another copy of the runtime: the engine is told model time
(epoch seconds starting at the traffic's first moment, so calendar budgets and deferral windows
fall where the simulator puts them), and the timer waits ``1 / speed`` of each model second.
It is the runtime-side twin of the mock server's :class:`keypolicy.mock.clock.ScaledClock`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["ReplayClock"]


class ReplayClock:
    """Model time (epoch seconds) = ``origin`` + wall seconds elapsed × ``speed``."""

    def __init__(
        self,
        speed: float = 1.0,
        origin: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be above 0, not {speed}")
        self.speed = speed
        self.origin = time.time() if origin is None else origin
        self._monotonic = monotonic
        self._start = monotonic()

    def now(self) -> float:
        """Model time, epoch seconds."""
        return self.origin + (self._monotonic() - self._start) * self.speed

    def real_delay(self, until: float) -> float | None:
        """Wall seconds until model time ``until`` (0 if it has come)."""
        return max(0.0, (until - self.now()) / self.speed)

    def wall_at(self, model_offset: float) -> float:
        """The monotonic wall time at which ``model_offset`` seconds after ``origin`` come."""
        return self._start + model_offset / self.speed

    def on_change(self, callback: Callable[[], None]) -> None:
        """Scaled wall time flows; it never jumps."""
