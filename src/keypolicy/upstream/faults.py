"""Faults on demand: errors the real provider produces now and then, at set rates.

Each rate is the probability (0 to 1) that one request meets that fault; together they may not
exceed 1. One uniform draw per request picks at most one fault, and only when some rate is set,
so turning faults off leaves every other random draw unchanged.

When a fault strikes, as far as the model goes:

- ``insufficient_quota`` and ``bare_429`` (a 429 without ``x-ratelimit-*`` headers and without a
  wait in its message) refuse the request before the limits see it: nothing is charged.
- ``server_error`` (500, 502 or 503, equally likely), ``timeout`` (no answer for
  ``timeout_delay`` seconds, then the connection closes) and ``disconnect`` (the connection drops
  at the first token) strike after admission: the request counts against the request limits and
  its token charge is settled to zero.
- ``malformed`` answers 200 with a truncated JSON body; the request is charged as a success.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Final, Literal

__all__ = ["FaultKind", "FaultSettings"]

FaultKind = Literal[
    "insufficient_quota", "bare_429", "server_error", "timeout", "disconnect", "malformed"
]

_ORDER: Final[tuple[FaultKind, ...]] = (
    "insufficient_quota",
    "bare_429",
    "server_error",
    "timeout",
    "disconnect",
    "malformed",
)


@dataclass(frozen=True)
class FaultSettings:
    """Fault rates (probability per request) and how long a timeout hangs (seconds)."""

    insufficient_quota: float = 0.0
    bare_429: float = 0.0
    server_error: float = 0.0
    timeout: float = 0.0
    disconnect: float = 0.0
    malformed: float = 0.0
    timeout_delay: float = 600.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "timeout_delay" and not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rate {f.name} must lie between 0 and 1, not {value}")
        if self.total > 1.0 + 1e-12:
            raise ValueError(f"fault rates add up to {self.total:g}; at most 1 is possible")
        if self.timeout_delay < 0:
            raise ValueError("timeout_delay cannot be negative")

    @property
    def total(self) -> float:
        """The probability that a request meets some fault."""
        return float(sum(self.rate(kind) for kind in _ORDER))

    def rate(self, kind: FaultKind) -> float:
        """The probability that a request meets ``kind``."""
        value: float = getattr(self, kind)
        return value

    def draw(self, rng: random.Random) -> FaultKind | None:
        """The fault this request meets, if any (draws only when some rate is set)."""
        if not (  # every request asks: plain reads, no sum (rates are never negative)
            self.insufficient_quota
            or self.bare_429
            or self.server_error
            or self.timeout
            or self.disconnect
            or self.malformed
        ):
            return None
        u = rng.random()
        for kind in _ORDER:
            u -= self.rate(kind)
            if u < 0:
                return kind
        return None
