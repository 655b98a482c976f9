"""The in-process store: passive and lazy.

It starts no timer and no thread: a bucket's level is brought up to date against the ``now`` it
is given, when it is touched. That is what lets the simulator use it unchanged on a virtual clock.
Not shared between processes (use the Redis store for that), and not locked: one engine drives
it from one thread at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

from keypolicy.core.store import BucketRef, Store, shortfall_wait

__all__ = ["MemoryStore"]


class _Level:
    """A bucket's level and the time it was last brought up to date (compiled: two C doubles,
    so an update allocates nothing)."""

    __slots__ = ("at", "level")

    def __init__(self, level: float, at: float) -> None:
        self.level = level
        self.at = at


class MemoryStore(Store):
    """A :class:`keypolicy.core.store.Store` in a dict. New buckets start full."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Level] = {}  # name -> its level
        self._cooldowns: dict[str, float] = {}

    def _state(self, bucket: BucketRef, now: float) -> _Level:
        state = self._buckets.get(bucket.name)
        if state is None:
            state = self._buckets[bucket.name] = _Level(bucket.capacity, now)
            return state
        level = self._level(state, bucket, now)
        if now > state.at:  # noqa: PLR1730 (cheaper than max())
            state.at = now
        capacity = bucket.capacity
        state.level = capacity if level > capacity else level
        return state

    def acquire(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
    ) -> float:
        """See :meth:`keypolicy.core.store.Store.acquire`."""
        if not len(buckets) == len(amounts) == len(floors):
            raise ValueError("acquire needs one amount and one floor per bucket")
        # The hot path of every decision: refill and check in one pass, take in a second. A
        # refusal changes nothing (not even the time a level was last brought up to date):
        # trying and not trying are the same.
        table = self._buckets
        wait = 0.0
        # zip without strict=: compiled, it is a plain loop (strict= builds a zip object).
        for bucket, amount, floor in zip(buckets, amounts, floors):  # noqa: B905 (checked above)
            level = self._level(table.get(bucket.name), bucket, now)
            if amount > 0 and level - amount - floor < -1e-9:
                wait = max(wait, shortfall_wait(level, amount, floor, bucket.rate, bucket.capacity))
        if wait > 0:
            return wait
        # Take: each level brought up to date, then lowered. A bucket listed twice takes twice
        # (its second turn finds the level the first left, already up to date).
        for bucket, amount in zip(buckets, amounts):  # noqa: B905 (checked above)
            state = table.get(bucket.name)
            if state is None:
                table[bucket.name] = _Level(bucket.capacity - amount, now)
            else:
                state.level = self._level(state, bucket, now) - amount
                if now > state.at:  # noqa: PLR1730 (cheaper than max())
                    state.at = now
        return 0.0

    @staticmethod
    def _level(state: _Level | None, bucket: BucketRef, now: float) -> float:
        """The level ``state`` has refilled to by ``now`` (a new bucket is full)."""
        capacity = bucket.capacity
        if state is None:
            return capacity
        if now > state.at:
            level = state.level + (now - state.at) * bucket.rate
            return capacity if level > capacity else level
        return state.level

    def adjust(self, bucket: BucketRef, delta: float, now: float) -> float:
        """See :meth:`keypolicy.core.store.Store.adjust`."""
        state = self._state(bucket, now)
        level = state.level + delta
        state.level = level if level < bucket.capacity else bucket.capacity
        return state.level

    def clamp(self, bucket: BucketRef, level: float, now: float) -> None:
        """See :meth:`keypolicy.core.store.Store.clamp`."""
        state = self._state(bucket, now)
        state.level = min(state.level, level)

    def levels(self, buckets: Sequence[BucketRef], now: float) -> list[float]:
        """See :meth:`keypolicy.core.store.Store.levels`. Reading changes nothing: the same
        decisions follow whether or not somebody looked."""
        out = []
        for bucket in buckets:
            state = self._buckets.get(bucket.name)
            if state is None:
                out.append(bucket.capacity)
                continue
            out.append(min(self._level(state, bucket, now), bucket.capacity))
        return out

    def set_cooldown(self, name: str, until: float) -> None:
        """See :meth:`keypolicy.core.store.Store.set_cooldown`."""
        if until > self._cooldowns.get(name, 0.0):
            self._cooldowns[name] = until

    def exclusive(self) -> bool:
        """See :meth:`keypolicy.core.store.Store.exclusive`: one engine drives it."""
        return True

    def cooldown(self, name: str) -> float:
        """See :meth:`keypolicy.core.store.Store.cooldown`."""
        return self._cooldowns.get(name, 0.0) if self._cooldowns else 0.0
