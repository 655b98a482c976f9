"""The mock server's clock: wall time, run ``speed`` times faster.

The provider model reads no clock; the server hands it ``now`` from here. Model time starts at
``origin`` (by default the Unix time when the clock was made) and advances ``speed`` model seconds
per wall second, so ``--speed 60`` replays an hour of limits and latencies in a minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["ScaledClock"]


class ScaledClock:
    """Model seconds from a monotonic wall clock scaled by ``speed``."""

    def __init__(
        self,
        speed: float = 1.0,
        origin: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self.speed = speed
        self.origin = time.time() if origin is None else origin
        self._monotonic = monotonic
        self._start = monotonic()

    def now(self) -> float:
        """Model time in seconds: origin + wall seconds elapsed * speed."""
        return self.origin + (self._monotonic() - self._start) * self.speed

    def wall(self, model_seconds: float) -> float:
        """Wall seconds that ``model_seconds`` of model time take."""
        return model_seconds / self.speed
