"""Budgets as buckets of US dollars, kept in the shared store.

A calendar budget (day, week, month in its time zone) is a bucket of ``usd`` that never refills,
named by its period (``budget:chat-daily:2026-11-27``): a new period starts a new, full bucket. A
rolling budget ("$20 per 24h") is a bucket of ``usd`` refilled continuously at ``usd / window``,
the usual stand-in for a sliding window (it never allows more than ``usd`` in any window of that
length, and forgets spend smoothly rather than all at once).

The estimated cost of a request is held at admission and settled to its actual cost, so spend
(settled plus held) never passes a budget unless a request costs more than its estimate.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from keypolicy.core.calendar import period_of
from keypolicy.core.config import BudgetDef
from keypolicy.core.store import BucketRef, Store

__all__ = ["BudgetBook", "BudgetBucket", "Hold"]


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

    def take(self, holds: Sequence[Hold], now: float) -> bool:
        """Hold USD for requests that skip the limits, all or nothing (the caller checked that
        they fit: False only if they no longer do, spent meanwhile by another replica)."""
        if not holds:
            return True
        buckets = [bucket for bucket, _ in holds]
        amounts = [usd for _, usd in holds]
        return self._store.acquire(buckets, amounts, [0.0] * len(holds), now) == 0.0

    def settle(self, holds: Sequence[Hold], cost: float, now: float) -> list[float]:
        """Replace each hold with the actual ``cost``; return each budget's level after."""
        return [self._store.adjust(bucket, usd - cost, now) for bucket, usd in holds]

    def release(self, holds: Sequence[Hold], now: float) -> None:
        """Give holds back (the request cost nothing)."""
        for bucket, usd in holds:
            self._store.adjust(bucket, usd, now)

    def crossed(
        self, holds: Sequence[Hold], levels: Sequence[float], cost: float
    ) -> list[tuple[int, float, float]]:
        """Alert thresholds that a settlement of ``cost`` USD crossed, the budgets of ``holds``
        now being at ``levels`` (USD left): ``(budget index, threshold share, USD spent)``.

        A threshold alerts the first time spend reaches it in a period, and again whenever a
        settlement carries spend across it (a rolling window that forgot old spend re-arms).
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
                    found += [(bucket.budget, shares[i], spent) for i in range(first, reached)]
            if reached != done:
                # Calendar spend only grows within its period; a rolling window forgets.
                self._alerted[bucket.name] = reached if bucket.rate else max(done, reached)
        return found
