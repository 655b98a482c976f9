"""Budgets as buckets of US dollars, kept in the shared store.

A calendar budget (day, week, month in its time zone) is a bucket of ``usd`` that never refills,
named by its period (``budget:chat-daily:2026-11-27``): a new period starts a new, full bucket. A
rolling budget ("$20 per 24h") is a bucket of ``usd`` refilled continuously at ``usd / window``,
the usual stand-in for a sliding window (it never allows more than ``usd`` in any window of that
length, and forgets spend smoothly rather than all at once).

The estimated cost of a request is held at admission and settled to its actual cost, so spend
(settled plus held) never passes a budget unless a request costs more than its estimate.

Replicas sharing the store (a store that is not :meth:`~keypolicy.core.store.Store.exclusive`):

- **Holds are leased.** Each hold is taken with a lease (:meth:`Store.acquire_leased`) that ends
  ``HOLD_LEASE_S`` after it is taken (``BATCH_LEASE_S`` for the Batch API); settling or giving it
  back ends the lease (:meth:`Store.settle_lease`). A replica that dies with requests in flight
  leaves their leases open: any replica's engine reaps them once they end
  (:meth:`keypolicy.core.engine.Engine.reap`), giving the holds back to their budgets. An answer
  slower than its lease is still settled right: its hold was given back, so its cost is taken.
  A settlement the store failed to apply leaves its lease open too: the whole hold comes back
  when it ends, and that request's cost is then missing from the budget (the ledger has it);
  without the lease the whole hold stayed spent until the period ended.
- **Alerts are claimed.** A threshold a settlement crosses is announced only by the replica that
  claims it (:meth:`Store.claim`, named by the budget's bucket and the threshold): once per
  calendar period across the fleet, at most once per window for a rolling budget.

On an exclusive store (the simulator, one process) neither is needed, and neither is done.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from keypolicy.core.calendar import period_of
from keypolicy.core.config import BudgetDef
from keypolicy.core.store import BucketRef, Store

__all__ = ["BATCH_LEASE_S", "HOLD_LEASE_S", "BudgetBook", "BudgetBucket", "Hold"]

HOLD_LEASE_S: Final = 3600.0
"""How long a live request's hold is leased (seconds from when it is taken): far longer than any
answer takes (the openai client gives up after 600 s by default; a stream of an hour is
unheard of). A replica's holds come back this long after it died."""
BATCH_LEASE_S: Final = 25 * 3600.0
"""How long a Batch API request's hold is leased: the Batch API's 24 hours, and an hour more."""


@dataclass(frozen=True, slots=True, init=False)
class BudgetBucket(BucketRef):
    """One budget's bucket for one period."""

    # name, capacity, rate: from BucketRef
    budget: int
    end: float  # when the period ends (inf for a rolling budget)

    def __init__(self, name: str, capacity: float, rate: float, budget: int, end: float) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "capacity", capacity)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "budget", budget)
        object.__setattr__(self, "end", end)


Hold = tuple[BudgetBucket, float]
"""A budget bucket and the USD held in it for one request."""


class BudgetBook:
    """The engine's view of its budgets: current period buckets, holds, alerts."""

    def __init__(self, budgets: Sequence[BudgetDef], store: Store) -> None:
        self._defs = tuple(budgets)
        self._store = store
        self.shared = not store.exclusive()
        """Whether other replicas share the store: holds are leased, alerts claimed."""
        self._current: dict[int, BudgetBucket] = {}
        self._alerted: dict[str, int] = {}  # bucket name -> thresholds already announced
        self._lines = [tuple(share * b.usd for share in b.alert_at) for b in self._defs]
        self.generation = 0
        """Counts the period buckets made: whatever was built from the old ones is stale."""

    def bucket(self, index: int, now: float) -> BudgetBucket:
        """The bucket of budget ``index`` for the period holding ``now``."""
        current = self._current.get(index)
        if current is not None and now < current.end:
            return current
        b = self._defs[index]
        if b.period == "rolling":
            bucket = BudgetBucket(f"budget:{b.name}", b.usd, b.usd / b.window_s, index, math.inf)
        else:
            ident, _, end = period_of(b.period, b.timezone, now)
            bucket = BudgetBucket(f"budget:{b.name}:{ident}", b.usd, 0.0, index, end)
        self._current[index] = bucket
        self.generation += 1
        return bucket

    def holds(self, indices: Sequence[int], usd: float, now: float) -> list[Hold]:
        """What holding ``usd`` in each budget of ``indices`` would take."""
        return [(self.bucket(i, now), usd) for i in indices]

    def first_short(self, indices: Sequence[int], usd: float, now: float) -> int | None:
        """The first budget of ``indices`` that cannot hold ``usd`` now, or ``None``."""
        if not indices:
            return None
        buckets = [self.bucket(i, now) for i in indices]
        for bucket, level in zip(buckets, self._store.levels(buckets, now), strict=True):
            if level + 1e-12 < usd:
                return bucket.budget
        return None

    def spent(self, index: int, now: float) -> float:
        """USD settled or held in budget ``index``'s current period (or rolling window)."""
        bucket = self.bucket(index, now)
        return bucket.capacity - self._store.levels([bucket], now)[0]

    def refill_time(self, index: int, usd: float, now: float) -> float:
        """When budget ``index`` can next hold ``usd``: its next period, or when the rolling
        window has forgotten enough (epoch seconds; inf if never)."""
        bucket = self.bucket(index, now)
        if bucket.rate == 0.0:
            return bucket.end if usd <= bucket.capacity else math.inf
        if usd > bucket.capacity:
            return math.inf
        level = self._store.levels([bucket], now)[0]
        return now + max(usd - level, 0.0) / bucket.rate

    def take(self, holds: Sequence[Hold], now: float, lease_s: float) -> str | None:
        """Hold USD for requests that skip the limits, all or nothing, in one atomic take:
        ``None`` if a budget cannot hold it, else the hold's lease (``""``: none, on an
        exclusive store; else leased for ``lease_s`` seconds)."""
        if not holds:
            return ""
        buckets = [bucket for bucket, _ in holds]
        amounts = [usd for _, usd in holds]
        floors = [0.0] * len(holds)
        if self.shared:
            wait, lease = self._store.acquire_leased(
                buckets, amounts, floors, now, 0, now + lease_s
            )
            return lease if wait == 0.0 else None
        return "" if self._store.acquire(buckets, amounts, floors, now) == 0.0 else None

    def settle(
        self, holds: Sequence[Hold], cost: float, now: float, lease: str = ""
    ) -> list[float]:
        """Replace each hold with the actual ``cost`` (ending its ``lease``, if it has one);
        return each budget's level after."""
        if lease:
            buckets = [bucket for bucket, _ in holds]
            held = [usd for _, usd in holds]
            return self._store.settle_lease(lease, buckets, held, [cost] * len(holds), now)
        return [self._store.adjust(bucket, usd - cost, now) for bucket, usd in holds]

    def release(self, holds: Sequence[Hold], now: float, lease: str = "") -> None:
        """Give holds back (the request cost nothing), ending their ``lease`` if they have one."""
        if lease:
            buckets = [bucket for bucket, _ in holds]
            held = [usd for _, usd in holds]
            self._store.settle_lease(lease, buckets, held, [0.0] * len(holds), now)
            return
        for bucket, usd in holds:
            self._store.adjust(bucket, usd, now)

    def crossed(
        self, holds: Sequence[Hold], levels: Sequence[float], cost: float, now: float
    ) -> list[tuple[int, float, float]]:
        """Alert thresholds that a settlement of ``cost`` USD crossed, the budgets of ``holds``
        now being at ``levels`` (USD left): ``(budget index, threshold share, USD spent)``.

        A threshold alerts the first time spend reaches it in a period, and again whenever a
        settlement carries spend across it (a rolling window that forgot old spend re-arms).
        On a shared store, only if this replica claims it (:meth:`claimed`).
        """
        if len(holds) != len(levels):
            raise ValueError("crossed needs one level per hold")
        found = []
        for (bucket, _), level in zip(holds, levels):  # noqa: B905 (checked above)
            lines = self._lines[bucket.budget]
            spent = bucket.capacity - level
            reached = bisect_right(lines, spent + 1e-12)
            done = self._alerted.get(bucket.name, 0)
            if reached:
                first = min(done, bisect_right(lines, spent - cost + 1e-12))
                if first < reached:  # (no list built for the settlements that cross nothing)
                    shares = self._defs[bucket.budget].alert_at
                    found += [
                        (bucket.budget, shares[i], spent)
                        for i in range(first, reached)
                        if not self.shared or self.claimed(bucket, shares[i], now)
                    ]
            if reached != done:
                # Calendar spend only grows within its period; a rolling window forgets.
                self._alerted[bucket.name] = reached if bucket.rate else max(done, reached)
        return found

    def claimed(self, bucket: BudgetBucket, share: float, now: float) -> bool:
        """Whether this replica claims the alert at ``share`` of ``bucket`` (so announces it):
        the claim stands until the bucket's period ends (its name holds the period), or, for a
        rolling budget, for one window (spend forgotten by then may cross it again)."""
        until = bucket.end if bucket.rate == 0.0 else now + bucket.capacity / bucket.rate
        return self._store.claim(f"alert:{bucket.name}:{share!r}", until, now)
