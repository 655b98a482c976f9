"""The store contract: what every :class:`keypolicy.core.store.Store` does, run on each store
(the memory store and the Redis store: see conftest.py), and the two held to each other float
for float over random sequences of operations."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keypolicy.core.store import BucketRef, Store
from keypolicy.state import MemoryStore

T = 1_795_000_000.0
INF = math.inf


def ref(name: str = "b", capacity: float = 10.0, rate: float = 1.0) -> BucketRef:
    return BucketRef(name, capacity, rate)


# ---------------------------------------------------------------------- buckets


def test_a_new_bucket_is_full(store: Store) -> None:
    b = ref(capacity=10.0, rate=1.0)
    assert store.levels([b], T) == [10.0]
    assert store.acquire([b], [10.0], [0.0], T) == 0.0
    assert store.levels([b], T) == [0.0]


def test_a_bucket_never_touched_is_full_at_any_time(store: Store) -> None:
    store.acquire([ref("other")], [5.0], [0.0], T)
    assert store.levels([ref("b", 7.5, 0.0)], T - 1e6) == [7.5]
    assert store.levels([ref("b", 7.5, 0.0)], T + 1e6) == [7.5]


def test_refill_is_continuous_and_capped_at_capacity(store: Store) -> None:
    b = ref(capacity=10.0, rate=2.0)
    assert store.acquire([b], [9.0], [0.0], T) == 0.0
    assert store.levels([b], T + 1.5) == [1.0 + 3.0]
    assert store.levels([b], T + 4.0) == [9.0]
    assert store.levels([b], T + 4.5) == [10.0]
    assert store.levels([b], T + 1e6) == [10.0]


def test_taking_refills_first_then_takes(store: Store) -> None:
    b = ref(capacity=10.0, rate=1.0)
    store.acquire([b], [10.0], [0.0], T)
    assert store.acquire([b], [3.0], [0.0], T + 4.0) == 0.0
    assert store.levels([b], T + 4.0) == [1.0]
    assert store.levels([b], T + 5.0) == [2.0]


def test_acquire_is_all_or_nothing(store: Store) -> None:
    a, b = ref("a", 10.0, 1.0), ref("b", 5.0, 0.5)
    store.acquire([b], [4.0], [0.0], T)
    assert store.acquire([a, b], [3.0, 3.0], [0.0, 0.0], T) == pytest.approx(4.0)  # b: 2 short
    assert store.levels([a, b], T) == [10.0, 1.0]  # nothing taken from a either
    assert store.acquire([a, b], [3.0, 1.0], [0.0, 0.0], T) == 0.0
    assert store.levels([a, b], T) == [7.0, 0.0]


def test_the_wait_is_the_longest_of_the_short_buckets(store: Store) -> None:
    a, b = ref("a", 10.0, 1.0), ref("b", 10.0, 2.0)
    store.acquire([a, b], [10.0, 10.0], [0.0, 0.0], T)
    assert store.acquire([a, b], [3.0, 8.0], [0.0, 0.0], T) == 4.0  # a: 3 s, b: 4 s
    assert store.acquire([a, b], [3.0, 8.0], [0.0, 0.0], T + 4.0) == 0.0


def test_floors_keep_a_reserve(store: Store) -> None:
    b = ref(capacity=10.0, rate=1.0)
    store.acquire([b], [3.0], [0.0], T)
    assert store.acquire([b], [6.0], [3.0], T) == 2.0  # 6 would leave 1 < 3: two seconds short
    assert store.levels([b], T) == [7.0]
    assert store.acquire([b], [4.0], [3.0], T) == 0.0  # leaves exactly the floor
    assert store.acquire([b], [1.0], [3.0], T) == 1.0
    assert store.acquire([b], [1.0], [0.0], T) == 0.0  # a class with no floor takes the reserve
    assert store.levels([b], T) == [2.0]


def test_waits_are_infinite_when_refill_cannot_help(store: Store) -> None:
    budget = ref("budget", 5.0, 0.0)  # never refills: a calendar budget
    store.acquire([budget], [4.0], [0.0], T)
    assert store.acquire([budget], [2.0], [0.0], T) == INF
    limit = ref("limit", 10.0, 1.0)
    assert store.acquire([limit], [11.0], [0.0], T) == INF  # more than it can ever hold
    store.acquire([limit], [5.0], [0.0], T)
    assert store.acquire([limit], [4.0], [3.0], T) == 2.0  # short, but 7 fits in 10 one day
    assert store.acquire([limit], [6.0], [5.0], T) == INF  # 11 never fits in 10
    assert store.acquire([limit, budget], [4.0, 2.0], [3.0, 0.0], T) == INF  # the longest


def test_a_shortfall_within_a_nanounit_is_no_shortfall(store: Store) -> None:
    b = ref(capacity=1.0, rate=1.0)
    store.acquire([b], [0.3], [0.0], T)
    assert store.acquire([b], [0.7 + 1e-10], [0.0], T) == 0.0  # 0.7 left, 1e-10 more asked
    assert store.levels([b], T)[0] == pytest.approx(-1e-10, abs=1e-15)


def test_an_amount_of_zero_or_less_always_goes_and_is_given_back(store: Store) -> None:
    b = ref(capacity=10.0, rate=0.0)
    store.acquire([b], [10.0], [0.0], T)
    assert store.acquire([b], [0.0], [5.0], T) == 0.0
    assert store.acquire([b], [-3.0], [5.0], T) == 0.0
    assert store.levels([b], T) == [3.0]


def test_a_bucket_listed_twice_takes_twice(store: Store) -> None:
    b = ref(capacity=10.0, rate=1.0)
    # Each listing is checked against the level before the call, then both are taken.
    assert store.acquire([b, b], [6.0, 6.0], [0.0, 0.0], T) == 0.0
    assert store.levels([b], T) == [-2.0]
    assert store.levels([b], T + 2.0) == [0.0]


def test_a_refusal_changes_nothing(store: Store) -> None:
    b = ref(capacity=10.0, rate=1.0)
    store.acquire([b], [10.0], [0.0], T)
    assert store.acquire([b], [5.0], [0.0], T + 3.0) == 2.0
    # Had the refusal brought the level up to date at T+3, a reading at T+2 would say 3.
    assert store.levels([b], T + 2.0) == [2.0]


def test_acquire_needs_one_amount_and_one_floor_per_bucket(store: Store) -> None:
    with pytest.raises(ValueError, match="one amount and one floor"):
        store.acquire([ref()], [1.0, 2.0], [0.0], T)
    with pytest.raises(ValueError, match="one amount and one floor"):
        store.acquire([ref()], [1.0], [], T)
    assert store.acquire([], [], [], T) == 0.0
    assert store.levels([], T) == []


def test_adjust_gives_back_up_to_capacity(store: Store) -> None:
    b = ref(capacity=10.0, rate=1.0)
    store.acquire([b], [8.0], [0.0], T)
    assert store.adjust(b, 3.0, T) == 5.0
    assert store.adjust(b, 100.0, T + 1.0) == 10.0
    assert store.levels([b], T + 1.0) == [10.0]


def test_adjust_takes_more_below_zero_and_refill_pays_the_debt(store: Store) -> None:
    b = ref(capacity=10.0, rate=2.0)
    assert store.adjust(b, -14.0, T) == -4.0  # a new bucket starts full
    assert store.levels([b], T + 1.0) == [-2.0]
    assert store.acquire([b], [1.0], [0.0], T + 1.0) == 1.5
    assert store.levels([b], T + 7.0) == [10.0]


def test_clamp_only_lowers(store: Store) -> None:
    b = ref(capacity=10.0, rate=1.0)
    store.clamp(b, 4.0, T)  # what the provider says is left
    assert store.levels([b], T) == [4.0]
    store.clamp(b, 8.0, T)
    assert store.levels([b], T) == [4.0]
    store.clamp(b, 5.0, T + 3.0)  # 7 by then
    assert store.levels([b], T + 3.0) == [5.0]
    store.clamp(b, -1.0, T + 3.0)
    assert store.levels([b], T + 4.0) == [0.0]


def test_levels_reads_without_changing_anything(store: Store) -> None:
    b = ref(capacity=10.0, rate=1.0)
    store.acquire([b], [10.0], [0.0], T)
    assert store.levels([b, b], T + 3.0) == [3.0, 3.0]
    assert store.levels([b], T + 1.0) == [1.0]  # the read at T+3 moved nothing


def test_a_smaller_capacity_caps_what_is_read(store: Store) -> None:
    # A limit learnt lower keeps the bucket's name with a smaller capacity.
    store.acquire([ref("b", 100.0, 1.0)], [10.0], [0.0], T)
    assert store.levels([ref("b", 50.0, 1.0)], T) == [50.0]
    assert store.adjust(ref("b", 50.0, 1.0), 0.0, T) == 50.0
    assert store.levels([ref("b", 100.0, 1.0)], T) == [50.0]


def test_times_going_backwards_refill_nothing(store: Store) -> None:
    b = ref(capacity=10.0, rate=1.0)
    store.acquire([b], [10.0], [0.0], T + 100.0)
    assert store.levels([b], T + 50.0) == [0.0]
    assert store.acquire([b], [1.0], [0.0], T + 50.0) == 1.0  # no refill before T+100
    assert store.adjust(b, 2.0, T + 50.0) == 2.0
    store.acquire([b], [1.0], [0.0], T + 60.0)
    # Refill still counts from T+100, the latest time the bucket was brought up to date.
    assert store.levels([b], T + 101.0) == [2.0]


def test_an_earlier_time_does_not_refill_a_new_bucket_either(store: Store) -> None:
    b = ref(capacity=10.0, rate=1.0)
    store.acquire([b], [4.0], [0.0], T)
    assert store.acquire([b], [4.0], [0.0], T - 10.0) == 0.0
    assert store.levels([b], T) == [2.0]


# ---------------------------------------------------------------------- cooldowns


def test_no_cooldown_is_zero(store: Store) -> None:
    assert store.cooldown("key:k1") == 0.0


def test_cooldowns_keep_the_later(store: Store) -> None:
    store.set_cooldown("key:k1", T + 30.0)
    assert store.cooldown("key:k1") == T + 30.0
    store.set_cooldown("key:k1", T + 10.0)
    assert store.cooldown("key:k1") == T + 30.0
    store.set_cooldown("key:k1", T + 30.25)
    assert store.cooldown("key:k1") == T + 30.25
    assert store.cooldown("project:p/gpt-4o") == 0.0


def test_cooldowns_reads_each_name_at_once(store: Store) -> None:
    assert store.cooldowns([]) == []
    assert store.cooldowns(["key:k1", "project:p/gpt-4o"]) == [0.0, 0.0]
    store.set_cooldown("key:k1", T + 30.25)
    store.set_cooldown("project:p/gpt-4o", T + 1 / 3)
    names = ["project:p/gpt-4o", "key:k9", "key:k1", "project:p/gpt-4o"]  # any order, repeats
    assert store.cooldowns(names) == [T + 1 / 3, 0.0, T + 30.25, T + 1 / 3]
    assert store.cooldowns(names) == [store.cooldown(n) for n in names]


def test_a_store_without_cooldowns_reads_them_one_by_one() -> None:
    class OneByOne(Store):  # a plain-Python store written before cooldowns() was added
        def __init__(self) -> None:
            self.memory = MemoryStore()
            self.reads: list[str] = []

        def set_cooldown(self, name: str, until: float) -> None:
            self.memory.set_cooldown(name, until)

        def cooldown(self, name: str) -> float:
            self.reads.append(name)
            return self.memory.cooldown(name)

    store = OneByOne()
    store.set_cooldown("key:k1", T + 5.0)
    assert store.cooldowns(["key:k1", "key:k2"]) == [T + 5.0, 0.0]
    assert store.reads == ["key:k1", "key:k2"]


def test_a_cooldown_at_or_before_zero_is_none(store: Store) -> None:
    store.set_cooldown("key:k1", 0.0)
    store.set_cooldown("key:k2", -5.0)
    assert store.cooldown("key:k1") == 0.0
    assert store.cooldown("key:k2") == 0.0


def test_cooldowns_and_buckets_of_one_name_are_apart(store: Store) -> None:
    store.set_cooldown("x", T + 5.0)
    assert store.levels([ref("x", 3.0, 1.0)], T) == [3.0]
    store.acquire([ref("y", 3.0, 1.0)], [3.0], [0.0], T)
    assert store.cooldown("y") == 0.0


def test_exclusive_says_whether_other_replicas_change_it(store: Store) -> None:
    assert store.exclusive() is isinstance(store, MemoryStore)
    assert not MemoryStore(shared=True).exclusive()  # engines of one process taking turns


# ---------------------------------------------------------------------- claims


def test_a_claim_goes_to_the_first_caller_until_it_ends(store: Store) -> None:
    assert store.claim("alert:budget:b:2026-11:0.8", T + 60.0, T) is True
    assert store.claim("alert:budget:b:2026-11:0.8", T + 90.0, T + 1.0) is False  # another
    assert store.claim("alert:budget:b:2026-11:0.8", T + 90.0, T + 59.5) is False
    assert store.claim("alert:budget:b:2026-11:1.0", T + 60.0, T) is True  # another name
    # It ends at its until, in the caller's time (not the server's: this is long after it).
    assert store.claim("alert:budget:b:2026-11:0.8", T + 120.0, T + 60.0) is True
    assert store.claim("alert:budget:b:2026-11:0.8", T + 200.0, T + 119.0) is False


def test_a_claim_ending_at_once_stands_for_nobody(store: Store) -> None:
    assert store.claim("x", T, T) is True
    assert store.claim("x", T - 5.0, T) is True  # the last one ended: claimed again
    assert store.claim("x", T + 1.0, T) is True


def test_claims_are_apart_from_buckets_and_cooldowns(store: Store) -> None:
    store.set_cooldown("x", T + 50.0)
    store.acquire([ref("x", 3.0, 1.0)], [3.0], [0.0], T)
    assert store.claim("x", T + 10.0, T) is True
    assert store.cooldown("x") == T + 50.0
    assert store.levels([ref("x", 3.0, 1.0)], T) == [0.0]


def test_of_many_callers_claiming_at_once_exactly_one_wins(
    store: Store, twin: Callable[[Store], Store]
) -> None:
    stores = [store, *(twin(store) for _ in range(7))]
    if isinstance(store, MemoryStore):  # one object, not locked: callers take turns
        won = [s.claim("alert:once", T + 60.0, T) for s in stores]
    else:  # eight connections at once
        gate = threading.Barrier(len(stores))

        def claim(s: Store) -> bool:
            gate.wait()
            return s.claim("alert:once", T + 60.0, T)

        with ThreadPoolExecutor(len(stores)) as pool:
            won = list(pool.map(claim, stores))
    assert won.count(True) == 1


# ---------------------------------------------------------------------- leases


BUDGET = ref("budget:b:2026-11", 1.0, 0.0)
ROLLING = ref("budget:r", 2.0, 2.0 / 86_400)
LIMIT = ref("limit:project:p/gpt-4o/rpm", 10.0, 10.0 / 60)


def test_a_leased_take_is_a_take_and_names_its_lease(store: Store) -> None:
    wait, lease = store.acquire_leased(
        [LIMIT, BUDGET, ROLLING], [1.0, 0.25, 0.5], [0.0, 0.0, 0.0], T, 1, T + 3600.0
    )
    assert (wait, lease) == (0.0, "1")
    assert store.levels([LIMIT, BUDGET, ROLLING], T) == [9.0, 0.75, 1.5]
    _, second = store.acquire_leased([BUDGET], [0.25], [0.0], T, 0, T + 3600.0)
    assert second == "2"  # unique among every caller of the store


def test_a_refused_leased_take_takes_and_leases_nothing(store: Store) -> None:
    wait, lease = store.acquire_leased([LIMIT, BUDGET], [1.0, 2.0], [0.0, 0.0], T, 1, T + 60.0)
    assert (wait, lease) == (INF, "")
    assert store.levels([LIMIT, BUDGET], T) == [10.0, 1.0]
    assert store.reap(T + 1e6, 100) == 0
    # Nothing to lease (no bucket from ``leased`` on): a plain take, no lease.
    assert store.acquire_leased([LIMIT], [1.0], [0.0], T, 1, T + 60.0) == (0.0, "")


def test_settling_a_lease_keeps_the_cost_and_gives_the_rest_back(store: Store) -> None:
    _, lease = store.acquire_leased([LIMIT, BUDGET], [1.0, 0.5], [0.0, 0.0], T, 1, T + 60.0)
    assert store.settle_lease(lease, [BUDGET], [0.5], [0.125], T + 1.0) == [0.875]
    # Settled: a reaper after its end finds nothing; the limit is not leased at all.
    assert store.reap(T + 61.0, 100) == 0
    assert store.levels([BUDGET], T + 61.0) == [0.875]


def test_a_reaper_gives_back_what_an_expired_lease_holds_once(
    store: Store, twin: Callable[[Store], Store]
) -> None:
    other = twin(store)  # another replica on the same store
    buckets = [LIMIT, BUDGET, ROLLING]
    store.acquire_leased(buckets, [1.0, 0.5, 1.0], [0.0] * 3, T, 1, T + 60.0)
    assert store.reap(T + 59.0, 100) == 0  # not over yet
    assert store.levels([BUDGET], T + 59.0) == [0.5]
    assert other.reap(T + 60.0, 100) == 1  # at its end: over
    assert store.reap(T + 60.0, 100) == 0  # once only, whoever reaps
    assert store.levels([BUDGET, ROLLING], T + 60.0) == [1.0, 2.0]
    assert store.levels([LIMIT], T) == [9.0]  # the limits' part is not leased


def test_a_lease_settled_after_it_was_reaped_keeps_only_the_cost(store: Store) -> None:
    _, lease = store.acquire_leased([BUDGET], [0.5], [0.0], T, 0, T + 60.0)
    assert store.reap(T + 70.0, 100) == 1
    assert store.levels([BUDGET], T + 70.0) == [1.0]
    # The holder was slow, not dead: its cost is taken, nothing given back twice.
    assert store.settle_lease(lease, [BUDGET], [0.5], [0.125], T + 80.0) == [0.875]
    _, gone = store.acquire_leased([BUDGET], [0.25], [0.0], T, 0, T + 60.0)
    assert store.reap(T + 70.0, 100) == 1
    assert store.settle_lease(gone, [BUDGET], [0.25], [0.0], T + 80.0) == [0.875]  # released


def test_the_reaper_takes_the_soonest_first_and_at_most_its_share(store: Store) -> None:
    ends = [T + 30.0, T + 10.0, T + 20.0, T + 10.0]
    leases = [store.acquire_leased([BUDGET], [0.125], [0.0], T, 0, end)[1] for end in ends]
    assert store.reap(T + 25.0, 2) == 2  # leases 2 and 4 (ends T+10)
    assert store.levels([BUDGET], T + 25.0) == [0.75]
    store.settle_lease(leases[2], [BUDGET], [0.125], [0.125], T + 25.0)  # still stood: kept
    assert store.levels([BUDGET], T + 25.0) == [0.75]
    assert store.reap(T + 25.0, 2) == 0
    assert store.reap(T + 1e6, 0) == 0
    assert store.reap(T + 1e6, 5) == 1
    assert store.levels([BUDGET], T + 1e6) == [0.875]


# ---------------------------------------------------------------------- the stores agree exactly

NAMES = ("limit:project:p/gpt-4o/tpm", "limit:organization:org/gpt-4o/rpm", "budget:b:2026-11")
SHAPES = st.sampled_from(
    [(10.0, 1.0), (10.0, 0.1), (1_000.0, 1_000.0 / 60.0), (0.3, 0.3 / 86400.0), (5.0, 0.0)]
)
AMOUNTS = st.one_of(
    st.floats(0.0, 20.0, allow_nan=False),
    st.floats(-5.0, 1_100.0, allow_nan=False),
    st.sampled_from([0.0, 1.0, 0.1, 1e-10, 1.0 / 3.0, 1e-300]),
)
STEPS = st.one_of(
    st.floats(0.0, 30.0, allow_nan=False),
    st.sampled_from([0.0, 1e-9, 0.1, 86_400.0]),
    st.floats(-20.0, 0.0, allow_nan=False),  # clocks that step back
)
BUCKET = st.tuples(st.integers(0, len(NAMES) - 1), SHAPES)

OPS = st.one_of(
    st.tuples(
        st.just("acquire"),
        st.lists(st.tuples(BUCKET, AMOUNTS, st.sampled_from([0.0, 0.0, 1.0, 2.5])), max_size=5),
        STEPS,
    ),
    st.tuples(st.just("adjust"), BUCKET, st.floats(-50.0, 50.0, allow_nan=False), STEPS),
    st.tuples(st.just("clamp"), BUCKET, st.floats(-5.0, 1_100.0, allow_nan=False), STEPS),
    st.tuples(st.just("levels"), st.lists(BUCKET, max_size=4), STEPS),
    st.tuples(
        st.just("set_cooldown"),
        st.sampled_from(["key:k1", "project:p/gpt-4o"]),
        st.floats(-10.0, 120.0, allow_nan=False),
    ),
    st.tuples(st.just("cooldown"), st.sampled_from(["key:k1", "project:p/gpt-4o", "key:k9"])),
    st.tuples(
        st.just("cooldowns"),
        st.lists(st.sampled_from(["key:k1", "project:p/gpt-4o", "key:k9"]), max_size=4),
    ),
    st.tuples(
        st.just("claim"),
        st.sampled_from(["alert:a", "alert:b"]),
        st.floats(-10.0, 60.0, allow_nan=False),
        STEPS,
    ),
    st.tuples(
        st.just("acquire_leased"),
        st.lists(st.tuples(BUCKET, AMOUNTS, st.sampled_from([0.0, 0.0, 1.0])), max_size=4),
        st.integers(0, 4),
        st.floats(0.0, 100.0, allow_nan=False),
        STEPS,
    ),
    st.tuples(
        st.just("settle_lease"),
        st.integers(0, 20),
        st.floats(0.0, 2.0, allow_nan=False),
        STEPS,
    ),
    st.tuples(st.just("reap"), st.integers(0, 3), STEPS),
)


def _bucket(spec: tuple[int, tuple[float, float]]) -> BucketRef:
    index, (capacity, rate) = spec
    return BucketRef(NAMES[index], capacity, rate)


def _apply_shared(
    store: Store,
    op: tuple[Any, ...],
    now: float,
    leases: list[tuple[str, list[BucketRef], list[float]]],
    out: list[Any],
) -> float:
    """Apply one claim or lease operation (leases made are kept in ``leases``); the new now."""
    kind = op[0]
    if kind == "claim":
        _, name, until, step = op
        now += step
        out.append(store.claim(name, now + until, now))
    elif kind == "acquire_leased":
        _, items, leased, until, step = op
        now += step
        buckets = [_bucket(b) for b, _, _ in items]
        amounts = [a for _, a, _ in items]
        got = store.acquire_leased(
            buckets, amounts, [f for *_, f in items], now, leased, now + until
        )
        out.append(got)
        if got[1]:
            leases.append((got[1], buckets[leased:], amounts[leased:]))
    elif kind == "settle_lease":
        _, pick, share, step = op
        now += step
        if leases:
            name, buckets, held = leases.pop(pick % len(leases))
            kept = [h * share for h in held]
            out.append(store.settle_lease(name, buckets, held, kept, now))
    else:
        _, most, step = op
        now += step
        out.append(store.reap(now, most))
    return now


def _apply(store: Store, ops: list[tuple[Any, ...]]) -> list[Any]:
    """Every operation's result, and at the end every bucket's level and every cooldown."""
    now = T
    out: list[Any] = []
    leases: list[tuple[str, list[BucketRef], list[float]]] = []
    for op in ops:
        kind = op[0]
        if kind in ("claim", "acquire_leased", "settle_lease", "reap"):
            now = _apply_shared(store, op, now, leases, out)
        elif kind == "acquire":
            _, items, step = op
            now += step
            buckets = [_bucket(b) for b, _, _ in items]
            out.append(
                store.acquire(buckets, [a for _, a, _ in items], [f for *_, f in items], now)
            )
        elif kind in ("adjust", "clamp"):
            _, spec, value, step = op
            now += step
            method = store.adjust if kind == "adjust" else store.clamp
            out.append(method(_bucket(spec), value, now))
        elif kind == "levels":
            _, specs, step = op
            now += step
            out.append(store.levels([_bucket(s) for s in specs], now))
        elif kind == "set_cooldown":
            store.set_cooldown(op[1], T + op[2])
        elif kind == "cooldowns":
            out.append(store.cooldowns(op[1]))
        else:
            out.append(store.cooldown(op[1]))
    out.append(store.reap(now + 1e3, 1_000))  # what every lease left open holds, given back
    for shape in ((10.0, 1.0), (5.0, 0.0)):
        out.append(store.levels([_bucket((i, shape)) for i in range(len(NAMES))], now))
        out.append(store.levels([_bucket((i, shape)) for i in range(len(NAMES))], now + 1e5))
    out.append([store.cooldown(n) for n in ("key:k1", "project:p/gpt-4o")])
    out.append(store.cooldowns(["key:k1", "project:p/gpt-4o", "key:k9"]))
    return out


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(OPS, max_size=30))
def test_the_redis_store_agrees_with_the_memory_store_exactly(
    ops: list[tuple[Any, ...]], redis_stores: Callable[[], Store]
) -> None:
    # redis_stores gives a fresh namespace to every example; all are deleted after the test.
    expected = _apply(MemoryStore(), ops)
    got = _apply(redis_stores(), ops)
    assert got == expected  # exact float equality: not approx
    # Not even the sign of a zero differs.
    assert repr(got) == repr(expected)
