"""The state that service replicas must share, behind a few atomic primitives.

Bucket levels (rate limits and budgets alike), cooldowns, claims and leases. A budget is a
bucket too: a
calendar budget is a bucket of ``usd`` that never refills, named by its period (a new period is
a new, full bucket); a rolling budget refills at ``usd / window``. Time is always passed in by the
caller, never read from the store's server, so one implementation serves wall time and virtual
time alike. Implementations: :class:`keypolicy.state.memory.MemoryStore` (passive, lazy, the
simulator's) and :class:`keypolicy.state.redis.RedisStore` (one round trip per call, atomic via a
script).

Two primitives serve replicas sharing one store (an engine on an exclusive store never needs
them):

- a *claim* (:meth:`Store.claim`): a name only one caller gets until a time, so that something
  happens once per fleet, not once per replica (a budget alert);
- a *lease* (:meth:`Store.acquire_leased`, :meth:`Store.settle_lease`, :meth:`Store.reap`):
  what a take removed from some buckets, written down with the time by which its holder will
  have settled it; if the holder dies first, whoever reaps after that time gives it back
  (a budget hold of a crashed replica).

A store written in plain Python may leave them out: the defaults grant every claim and lease
nothing, which is what one process alone needs.
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
    :meth:`exclusive`, :meth:`cooldowns` and the corrections held back: :meth:`adjust_later`,
    :meth:`clamp_later`, :meth:`flush`). A base class, not a protocol: compiled, the
    engine's calls into the store are direct. Stores written in plain Python may subclass it too.
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

    def cooldowns(self, names: Sequence[str]) -> list[float]:
        """When each of ``names``' cooldowns ends (0.0 for one that has none), read at once: one
        round trip for the cooldowns an admission needs.

        Default (a store written without it): one :meth:`cooldown` per name.
        """
        return [self.cooldown(name) for name in names]

    def exclusive(self) -> bool:
        """Whether one engine alone changes this store (then it sees every change itself)."""
        return False

    # ------------------------------------------------------------ corrections held back

    def adjust_later(self, bucket: BucketRef, delta: float, now: float) -> None:
        """:meth:`adjust`, whose new level the caller does not need: a store that pays a round
        trip per call may hold it back and carry it with its next call (or :meth:`flush`). Every
        later call, of any kind, finds it applied first, in the order given.

        Default: adjusted at once.
        """
        self.adjust(bucket, delta, now)

    def clamp_later(self, bucket: BucketRef, level: float, now: float) -> None:
        """:meth:`clamp`, held back as :meth:`adjust_later` may be. Default: clamped at once."""
        self.clamp(bucket, level, now)

    def flush(self) -> None:
        """Apply the corrections held back (one round trip, if any are). The engine calls it
        at the end of each event it handles, so none outlives the event. Default: nothing is
        ever held back."""

    # -------------------------------------------------------------- replicas sharing the store

    def claim(self, name: str, until: float, now: float) -> bool:
        """Claim ``name`` until ``until``: True for the one caller that finds no claim standing
        on it (none was made, or the last one ended: its ``until`` is at or before ``now``),
        which then holds it until ``until``; False while another stands. Atomic across every
        caller of the store. Claims are apart from buckets and cooldowns of the same name.

        Default (a store that cannot coordinate): every claim is granted.
        """
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
        """:meth:`acquire`, and, when taken, in the same atomic step a *lease* on what was taken
        from ``buckets[leased:]``: ``(0.0, lease name)``; when not taken, ``(wait, "")``.

        A lease stands until :meth:`settle_lease` ends it, or until a :meth:`reap` at or after
        ``until`` gives its amounts back to its buckets. Its name is unique among every caller
        of the store.

        Default: no lease is recorded (the name is ``""``: settle with :meth:`adjust`).
        """
        return self.acquire(buckets, amounts, floors, now), ""

    def settle_lease(
        self,
        lease: str,
        buckets: Sequence[BucketRef],
        held: Sequence[float],
        kept: Sequence[float],
        now: float,
    ) -> list[float]:
        """End ``lease``, which held ``held[i]`` of each ``buckets[i]``, keeping ``kept[i]`` (the
        actual cost; 0 to give it all back). If it still stood, each bucket gets
        ``held[i] - kept[i]`` back; if a reaper gave the holds back already, each gives
        ``kept[i]`` up again (``-kept[i]``). Atomic; returns each bucket's level after (as
        :meth:`adjust`).

        Default (nothing is ever reaped): each bucket is adjusted by ``held[i] - kept[i]``.
        """
        if not len(buckets) == len(held) == len(kept):
            raise ValueError("settle_lease needs one held and one kept amount per bucket")
        return [
            self.adjust(bucket, h - k, now)
            for bucket, h, k in zip(buckets, held, kept)  # noqa: B905 (checked above)
        ]

    def reap(self, now: float, most: int) -> int:
        """Give back to their buckets (as :meth:`adjust`) the amounts of the leases whose
        ``until`` is at or before ``now``, at most ``most`` of them, soonest first (then by
        name), and end them: each once, whoever else reaps at the same time. Returns how many.

        Default: nothing is leased, nothing to reap.
        """
        return 0


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
