"""The in-process store: passive and lazy.

It starts no timer and no thread: a bucket's level is brought up to date against the ``now`` it
is given, when it is touched. That is what lets the simulator use it unchanged on a virtual clock.
Not shared between processes; use the Redis store for that.
"""

from __future__ import annotations

from collections.abc import Sequence

from keypolicy.core.store import BucketRef, level_at, shortfall_wait

__all__ = ["MemoryStore"]


class MemoryStore:
    """A :class:`keypolicy.core.store.Store` in a dict. New buckets start full."""

    def __init__(self) -> None:
        # name -> [level, time of level]; a list so that updates need no new tuple.
        self._buckets: dict[str, list[float]] = {}
        self._cooldowns: dict[str, float] = {}

    def _state(self, bucket: BucketRef, now: float) -> list[float]:
        state = self._buckets.get(bucket.name)
        if state is None:
            state = [bucket.capacity, now]
            self._buckets[bucket.name] = state
        else:
            state[0] = level_at(state[0], state[1], bucket.capacity, bucket.rate, now)
            state[1] = max(state[1], now)
        return state

    def acquire(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
    ) -> float:
        """See :meth:`keypolicy.core.store.Store.acquire`."""
        states = [self._state(b, now) for b in buckets]
        wait = 0.0
        for bucket, state, amount, floor in zip(buckets, states, amounts, floors, strict=True):
            if amount > 0:
                wait = max(wait, shortfall_wait(state[0], amount, floor, bucket.rate))
        if wait > 0:
            return wait
        for state, amount in zip(states, amounts, strict=True):
            state[0] -= amount
        return 0.0

    def adjust(self, bucket: BucketRef, delta: float, now: float) -> None:
        """See :meth:`keypolicy.core.store.Store.adjust`."""
        state = self._state(bucket, now)
        state[0] = min(bucket.capacity, state[0] + delta)

    def clamp(self, bucket: BucketRef, level: float, now: float) -> None:
        """See :meth:`keypolicy.core.store.Store.clamp`."""
        state = self._state(bucket, now)
        state[0] = min(state[0], level)

    def levels(self, buckets: Sequence[BucketRef], now: float) -> list[float]:
        """See :meth:`keypolicy.core.store.Store.levels`."""
        return [self._state(b, now)[0] for b in buckets]

    def set_cooldown(self, name: str, until: float) -> None:
        """See :meth:`keypolicy.core.store.Store.set_cooldown`."""
        if until > self._cooldowns.get(name, 0.0):
            self._cooldowns[name] = until

    def cooldown(self, name: str) -> float:
        """See :meth:`keypolicy.core.store.Store.cooldown`."""
        return self._cooldowns.get(name, 0.0)
