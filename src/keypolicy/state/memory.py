"""The in-process store: passive and lazy.

It starts no timer and no thread: a bucket's level is brought up to date against the ``now`` it
is given, when it is touched. That is what lets the simulator use it unchanged on a virtual clock.
Not shared between processes (use the Redis store for that), and not locked: one engine drives
it from one thread at a time, or several engines of one process take turns on it
(``MemoryStore(shared=True)``: then it says it is not :meth:`~MemoryStore.exclusive`, and the
engines coordinate through its claims and leases as replicas do through Redis).
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


class _Lease:
    """What a lease holds: the buckets' amounts to give back if it is not settled by ``until``."""

    __slots__ = ("amounts", "buckets", "until")

    def __init__(self, buckets: list[BucketRef], amounts: list[float], until: float) -> None:
        self.buckets = buckets
        self.amounts = amounts
        self.until = until


# Claims kept before the ones that ended are dropped (they read as absent either way).
_CLAIMS_KEPT = 1024


class MemoryStore(Store):
    """A :class:`keypolicy.core.store.Store` in a dict. New buckets start full.

    ``shared``: several engines of this process use it (taking turns, never at once): it is
    then not :meth:`exclusive`.
    """

    def __init__(self, shared: bool = False) -> None:
        self._buckets: dict[str, _Level] = {}  # name -> its level
        self._cooldowns: dict[str, float] = {}
        self._claims: dict[str, float] = {}  # name -> until
        self._leases: dict[str, _Lease] = {}
        self._lease_seq = 0
        self._shared = shared

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
        """See :meth:`keypolicy.core.store.Store.exclusive`: one engine drives it, unless it
        was made ``shared``."""
        return not self._shared

    def cooldown(self, name: str) -> float:
        """See :meth:`keypolicy.core.store.Store.cooldown`."""
        return self._cooldowns.get(name, 0.0) if self._cooldowns else 0.0

    def cooldowns(self, names: Sequence[str]) -> list[float]:
        """See :meth:`keypolicy.core.store.Store.cooldowns`."""
        table = self._cooldowns
        if not table:
            return [0.0] * len(names)
        return [table.get(name, 0.0) for name in names]

    # ------------------------------------------------------------------ claims and leases

    def claim(self, name: str, until: float, now: float) -> bool:
        """See :meth:`keypolicy.core.store.Store.claim`."""
        claims = self._claims
        standing = claims.get(name)
        if standing is not None and standing > now:
            return False
        if len(claims) >= _CLAIMS_KEPT:
            for old in [n for n, end in claims.items() if not end > now]:
                del claims[old]
        claims[name] = until
        return True

    def acquire_leased(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
        leased: int,
        until: float,
    ) -> tuple[float, str]:
        """See :meth:`keypolicy.core.store.Store.acquire_leased`. Lease names are ``"1"``,
        ``"2"``... as the Redis store's."""
        wait = self.acquire(buckets, amounts, floors, now)
        if wait != 0.0 or leased >= len(buckets):
            return wait, ""
        self._lease_seq += 1
        name = str(self._lease_seq)
        start = leased if leased > 0 else 0
        self._leases[name] = _Lease(list(buckets[start:]), list(amounts[start:]), until)
        return 0.0, name

    def settle_lease(
        self,
        lease: str,
        buckets: Sequence[BucketRef],
        held: Sequence[float],
        kept: Sequence[float],
        now: float,
    ) -> list[float]:
        """See :meth:`keypolicy.core.store.Store.settle_lease`."""
        if not len(buckets) == len(held) == len(kept):
            raise ValueError("settle_lease needs one held and one kept amount per bucket")
        stood = self._leases.pop(lease, None) is not None
        out = []
        for bucket, h, k in zip(buckets, held, kept):  # noqa: B905 (checked above)
            out.append(self.adjust(bucket, h - k if stood else -k, now))
        return out

    def reap(self, now: float, most: int) -> int:
        """See :meth:`keypolicy.core.store.Store.reap`."""
        if not self._leases:
            return 0
        due = sorted(
            (lease.until, name) for name, lease in self._leases.items() if lease.until <= now
        )[: max(most, 0)]
        for _, name in due:
            lease = self._leases.pop(name)
            for bucket, amount in zip(lease.buckets, lease.amounts):  # noqa: B905 (same lease)
                self.adjust(bucket, amount, now)
        return len(due)
