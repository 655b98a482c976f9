"""The state that service replicas must share, behind a few atomic primitives.

Bucket levels (rate limits and budgets alike), and cooldowns. A budget is a bucket too: a
calendar budget is a bucket of ``usd`` that never refills, named by its period (a new period is
a new, full bucket); a rolling budget refills at ``usd / window``. Time is always passed in by the
caller, never read from the store's server, so one implementation serves wall time and virtual
time alike. Implementations: :class:`keypolicy.state.memory.MemoryStore` (passive, lazy, the
simulator's) and, later, a Redis store (one round trip per call, atomic via a script).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mypy_extensions import mypyc_attr

__all__ = ["BucketRef", "Store", "level_at", "shortfall_wait"]


@dataclass(frozen=True, slots=True, init=False)
class BucketRef:
    """A bucket as the store sees it: a stable ``name``, ``capacity`` units, ``rate`` units/s.

    The limits' and the budgets' buckets extend it. A class, not a protocol: compiled, its fields
    are read natively on every decision.
    """

    name: str
    capacity: float
    rate: float

    def __init__(self, name: str, capacity: float, rate: float) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "capacity", capacity)
        object.__setattr__(self, "rate", rate)


@mypyc_attr(allow_interpreted_subclasses=True)
class Store:
    """Shared counters. All amounts are in the bucket's units; all times in epoch seconds.

    The interface every store implements (subclasses override every method but
    :meth:`exclusive`). A base class, not a protocol: compiled, the engine's calls into the
    store are direct. Stores written in plain Python may subclass it too.
    """

    def acquire(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
    ) -> float:
        """Take ``amounts[i]`` from every ``buckets[i]`` if each stays at or above ``floors[i]``.

        All or nothing. Returns 0.0 when taken, else the seconds until all could be taken if
        nothing else drew on them (``inf`` when a bucket that never refills is short).
        """
        raise NotImplementedError

    def adjust(self, bucket: BucketRef, delta: float, now: float) -> float:
        """Add ``delta`` units (give back if positive, take more if negative), up to capacity;
        return the new level."""
        raise NotImplementedError

    def clamp(self, bucket: BucketRef, level: float, now: float) -> None:
        """Lower the bucket's level to at most ``level`` (what the provider says is left)."""
        raise NotImplementedError

    def levels(self, buckets: Sequence[BucketRef], now: float) -> list[float]:
        """Current levels (units available), refilled up to ``now``."""
        raise NotImplementedError

    def set_cooldown(self, name: str, until: float) -> None:
        """Mark ``name`` (a project/model, or a key) unusable until ``until``; keeps the later."""
        raise NotImplementedError

    def cooldown(self, name: str) -> float:
        """When ``name``'s cooldown ends (0.0 if it has none)."""
        raise NotImplementedError

    def exclusive(self) -> bool:
        """Whether one engine alone changes this store (then it sees every change itself)."""
        return False


def level_at(level: float, last: float, capacity: float, rate: float, now: float) -> float:
    """A bucket's level at ``now`` given its ``level`` at ``last``: refilled, capped at capacity."""
    if now <= last:
        return min(level, capacity)
    return min(capacity, level + (now - last) * rate)


def shortfall_wait(
    level: float, amount: float, floor: float, rate: float, capacity: float
) -> float:
    """Seconds until ``level`` covers ``amount`` above ``floor`` at ``rate`` (0 if it does now;
    ``inf`` if it never can: no refill, or more than the bucket can ever hold)."""
    missing = amount + floor - level
    if missing <= 1e-9:
        return 0.0
    if rate <= 0 or amount + floor > capacity + 1e-9:
        return float("inf")
    return missing / rate
