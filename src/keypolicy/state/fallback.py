"""A shared store with a local fallback: ``state: {on_error: local}``.

While the shared store (Redis) answers, every call goes to it. When a call fails
(:class:`~keypolicy.state.StoreUnavailable`), this replica goes on alone: a
:class:`~keypolicy.state.memory.MemoryStore` of its own serves the calls, each limit and budget cut
to the replica's declared share (``1 / replicas``: capacity, refill rate and class floors alike;
a level the provider's headers report, which is the whole project's, too). Every
``RECONNECT_S`` seconds (of the monotonic clock) the next call tries the shared store again; when
it answers, the replica goes back to it:

- **budgets**: what the replica spent alone (taken minus given back, per budget bucket) is
  charged to the shared budget then, so the fleet's budget counts it; a hold taken alone and
  settled after is settled on both;
- **limits** are not reconciled: they refill within a minute, and the shared buckets (full, if
  Redis restarted empty) only say more than is true for that long;
- cooldowns, claims and leases of the time alone stay local (an alert may be announced once per
  replica meanwhile); a lease taken on the shared store before the failure and settled alone is
  settled locally, and comes back on the shared store when its lease ends (its cost missing from
  the shared budget: the engine's documented loss of a settlement).

What the fleet may overspend while apart is bounded by the shares: every replica takes at most
its share of each limit and of what is left of each budget *as the replica alone knows it*,
which starts full. So in the worst case a budget's period sees up to one more budget spent
(every replica spending its whole share of a full budget during the outage), and limits are
held to their sum. ``on_error: fail_closed`` (the default) refuses instead: no call goes out
while the shared store is down.

Each episode (start, end, the error, the calls served alone) is logged (a warning when it
starts, one when it ends) and kept in :attr:`FallbackStore.episodes`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from keypolicy.core.store import BucketRef, Store
from keypolicy.state import StoreUnavailable
from keypolicy.state.memory import MemoryStore

__all__ = ["RECONNECT_S", "Episode", "FallbackStore"]

log = logging.getLogger("keypolicy.state")

RECONNECT_S = 1.0
"""How long a replica on its own waits before it tries the shared store again."""

_LOCAL = "local-"  # the names of leases taken alone (never a shared store's)
_BUDGET = "budget:"  # the names of budgets' buckets (see keypolicy.core.budgets)


@dataclass
class Episode:
    """A time this replica went on alone: ``started`` and ``ended`` (wall clock, epoch seconds;
    ``ended`` None while it lasts), the ``error`` that started it, the store ``calls`` served
    alone."""

    started: float
    error: str
    ended: float | None = None
    calls: int = 0


class FallbackStore(Store):
    """``shared``, and while it fails, a local store holding ``share`` of every bucket (see
    the module's docstring). ``clock``: monotonic seconds (tests bring a fake one)."""

    def __init__(
        self,
        shared: Store,
        share: float,
        *,
        reconnect_s: float = RECONNECT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"a replica's share must be in (0, 1], not {share}")
        self.shared = shared
        self.share = share
        self.local = MemoryStore(shared=True)
        self.episodes: list[Episode] = []
        self._reconnect_s = reconnect_s
        self._clock = clock
        self._retry_at: float | None = None  # None: on the shared store
        self._owed: dict[str, tuple[BucketRef, float]] = {}  # budget name -> (bucket, delta)
        self._scaled: dict[str, BucketRef] = {}
        self._lock = threading.Lock()
        self._now = 0.0  # the latest time a call was handed (to charge the spend alone at)
        self._charged = 0  # budgets charged with the spend alone on the way back

    def __repr__(self) -> str:
        return f"FallbackStore({self.shared!r}, share={self.share:g})"

    @property
    def alone(self) -> bool:
        """Whether this replica is on its own now."""
        return self._retry_at is not None

    def close(self) -> None:
        """Close the shared store (if it can be closed)."""
        close = getattr(self.shared, "close", None)
        if close is not None:
            close()

    # ------------------------------------------------------------------ which store

    def _use_shared(self) -> bool:
        """Whether to try the shared store for this call: on it, or, alone, when it is time to
        try again (the spend alone is charged to it first: if that fails, still alone)."""
        retry_at = self._retry_at
        if retry_at is None:
            return True
        if self._clock() < retry_at:
            return False
        with self._lock:
            owed = list(self._owed.values())
            self._owed = {}
        for i, (bucket, delta) in enumerate(owed):
            try:
                self.shared.adjust(bucket, delta, self._now)
            except StoreUnavailable as exc:
                for bucket_left, delta_left in owed[i:]:  # not charged: still owed
                    self._owe(bucket_left, delta_left)
                self._failed(exc)
                return False
        self._charged = len(owed)
        return True

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self._retry_at = self._clock() + self._reconnect_s
            if self.episodes and self.episodes[-1].ended is None:
                return
            self.episodes.append(Episode(time.time(), f"{type(exc).__name__}: {exc}"))
        log.warning(
            "keypolicy: the shared state store failed (%s); this replica goes on alone with "
            "%.0f%% of every limit and budget (state.on_error: local), and tries it again "
            "every %g s",
            exc,
            self.share * 100,
            self._reconnect_s,
        )

    def _answered(self, now: float | None) -> None:
        """The shared store answered: if this replica was alone, it is back."""
        if now is not None and now > self._now:
            self._now = now
        if self._retry_at is None:
            return
        with self._lock:
            if self._retry_at is None:
                return
            self._retry_at = None
            episode = self.episodes[-1]
            episode.ended = time.time()
        log.warning(
            "keypolicy: the shared state store answers again after %.1f s; this replica is "
            "back on it (%d calls served alone, spend alone charged to %d budget(s))",
            episode.ended - episode.started,
            episode.calls,
            self._charged,
        )

    def _alone(self) -> MemoryStore:
        if self.episodes:
            self.episodes[-1].calls += 1
        return self.local

    def _cut(self, bucket: BucketRef) -> BucketRef:
        """The bucket as this replica holds it alone: its share."""
        found = self._scaled.get(bucket.name)
        if found is None or found.capacity != bucket.capacity * self.share:
            found = BucketRef(bucket.name, bucket.capacity * self.share, bucket.rate * self.share)
            self._scaled[bucket.name] = found
        return found

    def _owe(self, bucket: BucketRef, delta: float) -> None:
        """Note a change to a budget made alone, to charge to the shared one later."""
        if bucket.name.startswith(_BUDGET) and delta:
            _, before = self._owed.get(bucket.name, (bucket, 0.0))
            self._owed[bucket.name] = (bucket, before + delta)

    # ------------------------------------------------------------------ the interface

    def acquire(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
    ) -> float:
        if self._use_shared():
            try:
                wait = self.shared.acquire(buckets, amounts, floors, now)
            except StoreUnavailable as exc:
                self._failed(exc)
            else:
                self._answered(now)
                return wait
        wait = self._alone().acquire(
            [self._cut(b) for b in buckets], amounts, [f * self.share for f in floors], now
        )
        if wait == 0.0:
            for bucket, amount in zip(buckets, amounts, strict=True):
                self._owe(bucket, -amount)
        return wait

    def acquire_leased(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
        leased: int,
        until: float,
    ) -> tuple[float, str]:
        if self._use_shared():
            try:
                got = self.shared.acquire_leased(buckets, amounts, floors, now, leased, until)
            except StoreUnavailable as exc:
                self._failed(exc)
            else:
                self._answered(now)
                return got
        wait, lease = self._alone().acquire_leased(
            [self._cut(b) for b in buckets],
            amounts,
            [f * self.share for f in floors],
            now,
            leased,
            until,
        )
        if wait != 0.0:
            return wait, ""
        for bucket, amount in zip(buckets, amounts, strict=True):
            self._owe(bucket, -amount)
        return 0.0, _LOCAL + lease if lease else ""

    def settle_lease(
        self,
        lease: str,
        buckets: Sequence[BucketRef],
        held: Sequence[float],
        kept: Sequence[float],
        now: float,
    ) -> list[float]:
        if lease.startswith(_LOCAL):
            # Taken alone: settled alone; and, if back on the shared store (which was charged
            # the whole hold on the way back), there too.
            levels = self.local.settle_lease(
                lease[len(_LOCAL) :], [self._cut(b) for b in buckets], held, kept, now
            )
            for bucket, h, k in zip(buckets, held, kept, strict=True):
                if self.alone:
                    self._owe(bucket, h - k)
                else:
                    self.shared.adjust_later(bucket, h - k, now)
            return levels
        if self._use_shared():
            try:
                levels = self.shared.settle_lease(lease, buckets, held, kept, now)
            except StoreUnavailable as exc:
                self._failed(exc)
            else:
                self._answered(now)
                return levels
        # A shared lease settled alone: its hold comes back on the shared store when the lease
        # ends; here, the cost is taken from this replica's share.
        return [self._adjust_alone(b, -k, now) for b, k in zip(buckets, kept, strict=True)]

    def adjust(self, bucket: BucketRef, delta: float, now: float) -> float:
        if self._use_shared():
            try:
                level = self.shared.adjust(bucket, delta, now)
            except StoreUnavailable as exc:
                self._failed(exc)
            else:
                self._answered(now)
                return level
        return self._adjust_alone(bucket, delta, now)

    def _adjust_alone(self, bucket: BucketRef, delta: float, now: float) -> float:
        self._owe(bucket, delta)
        return self._alone().adjust(self._cut(bucket), delta, now)

    def clamp(self, bucket: BucketRef, level: float, now: float) -> None:
        if self._use_shared():
            try:
                self.shared.clamp(bucket, level, now)
            except StoreUnavailable as exc:
                self._failed(exc)
            else:
                self._answered(now)
                return
        self._alone().clamp(self._cut(bucket), level * self.share, now)

    def adjust_later(self, bucket: BucketRef, delta: float, now: float) -> None:
        if self.alone:
            self._adjust_alone(bucket, delta, now)
        else:
            self.shared.adjust_later(bucket, delta, now)

    def clamp_later(self, bucket: BucketRef, level: float, now: float) -> None:
        if self.alone:
            self._alone().clamp(self._cut(bucket), level * self.share, now)
        else:
            self.shared.clamp_later(bucket, level, now)

    def flush(self) -> None:
        if self.alone:
            return
        try:
            self.shared.flush()
        except StoreUnavailable as exc:
            self._failed(exc)  # the corrections are lost (see Engine.handle)

    def levels(self, buckets: Sequence[BucketRef], now: float) -> list[float]:
        if self._use_shared():
            try:
                levels = self.shared.levels(buckets, now)
            except StoreUnavailable as exc:
                self._failed(exc)
            else:
                self._answered(now)
                return levels
        return self._alone().levels([self._cut(b) for b in buckets], now)

    def set_cooldown(self, name: str, until: float) -> None:
        if self._use_shared():
            try:
                self.shared.set_cooldown(name, until)
            except StoreUnavailable as exc:
                self._failed(exc)
            else:
                self._answered(None)
                return
        self._alone().set_cooldown(name, until)

    def cooldown(self, name: str) -> float:
        return self.cooldowns((name,))[0]

    def cooldowns(self, names: Sequence[str]) -> list[float]:
        if self._use_shared():
            try:
                ends = self.shared.cooldowns(names)
            except StoreUnavailable as exc:
                self._failed(exc)
            else:
                self._answered(None)
                return ends
        return self._alone().cooldowns(names)

    def exclusive(self) -> bool:
        return False

    def claim(self, name: str, until: float, now: float) -> bool:
        if self._use_shared():
            try:
                claimed = self.shared.claim(name, until, now)
            except StoreUnavailable as exc:
                self._failed(exc)
            else:
                self._answered(now)
                return claimed
        return self._alone().claim(name, until, now)

    def reap(self, now: float, most: int) -> int:
        reaped = self.local.reap(now, most)  # leases taken alone and never settled
        if self._use_shared():
            try:
                reaped += self.shared.reap(now, most)
            except StoreUnavailable as exc:
                self._failed(exc)
            else:
                self._answered(now)
        return reaped
