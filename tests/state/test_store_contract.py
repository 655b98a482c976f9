"""The store contract: what every :class:`keypolicy.core.store.Store` does, run on each store
(the memory store and the Redis store: see conftest.py), and the two held to each other float
for float over random sequences of operations."""

from __future__ import annotations

import math
from collections.abc import Callable
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
)


def _bucket(spec: tuple[int, tuple[float, float]]) -> BucketRef:
    index, (capacity, rate) = spec
    return BucketRef(NAMES[index], capacity, rate)


def _apply(store: Store, ops: list[tuple[Any, ...]]) -> list[Any]:
    """Every operation's result, and at the end every bucket's level and every cooldown."""
    now = T
    out: list[Any] = []
    for op in ops:
        kind = op[0]
        if kind == "acquire":
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
        else:
            out.append(store.cooldown(op[1]))
    for shape in ((10.0, 1.0), (5.0, 0.0)):
        out.append(store.levels([_bucket((i, shape)) for i in range(len(NAMES))], now))
        out.append(store.levels([_bucket((i, shape)) for i in range(len(NAMES))], now + 1e5))
    out.append([store.cooldown(n) for n in ("key:k1", "project:p/gpt-4o")])
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
