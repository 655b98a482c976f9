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


class MemoryStore(Store):
    """A :class:`keypolicy.core.store.Store` in a dict. New buckets start full."""

    def __init__(self) -> None:
        # name -> [level, time of level]; a list so that an update allocates nothing.
        self._buckets: dict[str, list[float]] = {}
        self._cooldowns: dict[str, float] = {}

    def _state(self, bucket: BucketRef, now: float) -> list[float]:
        state = self._buckets.get(bucket.name)
        if state is None:
            state = self._buckets[bucket.name] = [bucket.capacity, now]
            return state
        level, last = state
        if now > last:
            level += (now - last) * bucket.rate
            state[1] = now
        capacity = bucket.capacity
        state[0] = capacity if level > capacity else level
        return state

    def acquire(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
    ) -> float:
        """See :meth:`keypolicy.core.store.Store.acquire`."""
        # The hot path of every decision: refill and check in one pass, take in a second.
        if not len(buckets) == len(amounts) == len(floors):
            raise ValueError("acquire needs one amount and one floor per bucket")
        # Refill and check in one pass, take in a second. A refusal changes nothing (not even
        # the time a level was last brought up to date): trying and not trying are the same.
        table = self._buckets
        levels = []
        wait = 0.0
        # zip without strict=: compiled, it is a plain loop (strict= builds a zip object).
        for bucket, amount, floor in zip(buckets, amounts, floors):  # noqa: B905 (checked above)
            state = table.get(bucket.name)
            capacity = bucket.capacity
            if state is None:
                level = capacity
            elif now > state[1]:
                level = state[0] + (now - state[1]) * bucket.rate
                if level > capacity:  # noqa: PLR1730 (cheaper than min(), every decision)
                    level = capacity
            else:
                level = state[0]
            levels.append(level)
            if amount > 0 and level - amount - floor < -1e-9:
                wait = max(wait, shortfall_wait(level, amount, floor, bucket.rate, capacity))
        if wait > 0:
            return wait
        self._take(buckets, levels, amounts, now)
        return 0.0

    def _take(
        self,
        buckets: Sequence[BucketRef],
        levels: list[float],
        amounts: Sequence[float],
        now: float,
    ) -> None:
        table = self._buckets
        states = []
        for bucket, level in zip(buckets, levels):  # noqa: B905 (one level per bucket)
            state = table.get(bucket.name)
            if state is None:
                state = table[bucket.name] = [level, now]
            else:
                state[0] = level
                if now > state[1]:  # noqa: PLR1730 (cheaper than max())
                    state[1] = now
            states.append(state)
        for state, amount in zip(states, amounts):  # noqa: B905 (a bucket twice takes twice)
            state[0] -= amount

    def adjust(self, bucket: BucketRef, delta: float, now: float) -> float:
        """See :meth:`keypolicy.core.store.Store.adjust`."""
        state = self._state(bucket, now)
        level = state[0] + delta
        state[0] = level if level < bucket.capacity else bucket.capacity
        return state[0]

    def clamp(self, bucket: BucketRef, level: float, now: float) -> None:
        """See :meth:`keypolicy.core.store.Store.clamp`."""
        state = self._state(bucket, now)
        state[0] = min(state[0], level)

    def levels(self, buckets: Sequence[BucketRef], now: float) -> list[float]:
        """See :meth:`keypolicy.core.store.Store.levels`. Reading changes nothing: the same
        decisions follow whether or not somebody looked."""
        out = []
        for bucket in buckets:
            state = self._buckets.get(bucket.name)
            if state is None:
                out.append(bucket.capacity)
                continue
            level = state[0] + max(now - state[1], 0.0) * bucket.rate
            out.append(min(level, bucket.capacity))
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
