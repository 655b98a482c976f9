"""One continuously refilled bucket: the arithmetic behind every provider limit.

A bucket holds how much of a limit is in use (``level``). It leaks ``rate`` units per second
(``limit / window``) down to zero, and a draw fits while ``level + min(amount, capacity) <=
capacity``. Without a quantum the capacity is the limit itself (and no draw exceeds it: a larger
one is refused outright); with a quantum of ``q`` seconds it is ``limit * q / window`` (60,000 RPM
with ``q = 1s`` holds 1,000) while the rate stays the same, which is how OpenAI enforces large
per-minute limits in slices. A draw larger than one slice is not refused: it fits once the bucket
is empty, and leaves it that much over its capacity (so over any span of ``t`` seconds a bucket
admits at most ``max(capacity, largest draw) + rate * t``, never more than ``limit + rate * t``).
A request bucket always holds at least one request, so a quantized small limit still lets
requests through one at a time.

The bucket never reads a clock: every method takes ``now`` in seconds. Time that runs backwards
(``now`` earlier than the last update) counts as no time at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = ["EPSILON", "TIME_SLACK", "Bucket"]

EPSILON: Final = 1e-9
"""Units of float noise forgiven when checking that a draw fits."""

TIME_SLACK: Final = 1e-6
"""Seconds of clock noise forgiven: a draw that would fit within a microsecond fits now.

Timestamps near the Unix epoch's present (1.8e9 s) are exact only to about 2e-7 s, so a client
that comes back exactly when told could otherwise find its bucket a hair short."""


@dataclass(slots=True)
class Bucket:
    """A continuously refilled bucket.

    ``limit`` is the published limit per ``window`` seconds (requests or tokens), ``capacity`` the
    most the bucket holds (units), ``rate`` its refill in units per second, ``level`` the amount in
    use at time ``updated`` (seconds).
    """

    limit: int
    window: float
    capacity: float
    rate: float
    level: float = 0.0
    updated: float = 0.0

    @classmethod
    def create(
        cls, limit: int, window: float, now: float, quantum: float | None = None, *, unit: bool
    ) -> Bucket:
        """An empty bucket for ``limit`` per ``window`` seconds, quantized to ``quantum`` seconds.

        ``unit`` marks a request bucket, whose capacity never drops below one request.
        """
        capacity = float(limit)
        if quantum is not None and quantum < window:
            capacity = limit * quantum / window
            if unit:
                capacity = max(capacity, min(float(limit), 1.0))
        return cls(limit, window, capacity, limit / window, 0.0, now)

    def used(self, now: float) -> float:
        """Units in use at ``now`` (after the leak since the last update)."""
        # max(0, level - rate * max(0, elapsed)), spelt out: it runs several times a request.
        if now <= self.updated:
            return self.level if self.level > 0.0 else 0.0
        level = self.level - self.rate * (now - self.updated)
        return level if level > 0.0 else 0.0

    def _advance(self, now: float) -> None:
        self.level = self.used(now)
        if now > self.updated:  # noqa: PLR1730 (cheaper than max(), several times a request)
            self.updated = now

    def _slack(self) -> float:
        return EPSILON + self.rate * TIME_SLACK

    def fits(self, amount: float, now: float) -> bool:
        """Whether ``amount`` units can be drawn at ``now``: used + min(amount, capacity) <=
        capacity (a draw larger than a slice fits an empty bucket)."""
        return self.used(now) + self._checked(amount) <= self.capacity + self._slack()

    def _checked(self, amount: float) -> float:
        """What a draw is checked as: at most one slice of a sliced bucket (capacity below
        its limit); in a whole one, all of it (a larger draw is too large, or never fits)."""
        capacity = self.capacity
        return capacity if amount > capacity and capacity < self.limit else amount

    def too_large(self, amount: float) -> bool:
        """Whether ``amount`` could never fit: it exceeds the whole limit (not one slice)."""
        return amount > self.limit + EPSILON

    def wait(self, amount: float, now: float) -> float:
        """Seconds from ``now`` until ``amount`` units fit:
        (used + min(amount, capacity) - capacity) / rate."""
        short = self.used(now) + self._checked(amount) - self.capacity
        if short <= self._slack():
            return 0.0
        return short / self.rate if self.rate > 0 else math.inf

    def draw(self, amount: float, now: float) -> None:
        """Take ``amount`` units at ``now`` (the caller has checked that they fit)."""
        self._advance(now)
        self.level += amount

    def correct(self, delta: float, now: float) -> None:
        """Add ``delta`` units (negative to give some back) at ``now``; never below empty."""
        self._advance(now)
        self.level = max(0.0, self.level + delta)

    def remaining(self, now: float) -> int:
        """Whole units that would still fit at ``now`` (0 while a large draw is in debt)."""
        return max(0, math.floor(self.capacity - self.used(now) + self._slack()))

    def reset(self, now: float) -> float:
        """Seconds from ``now`` until the bucket is empty (fully available) again."""
        used = self.used(now)
        if used <= self._slack():
            return 0.0
        return used / self.rate if self.rate > 0 else math.inf

    def shown_used(self, now: float) -> float:
        """Usage as a 429 message states it, against the published ``limit`` (units).

        For a quantized bucket this is the level shifted by ``limit - capacity``, so that
        (used + requested - limit) / rate still equals :meth:`wait`, as in OpenAI's messages.
        """
        return self.used(now) + (self.limit - self.capacity)
