"""What only the Redis store has: its keys (namespaced, one hash tag, one Cluster slot), its
expiry, sharing between processes, choosing a store by URL, and working without redis-py."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from typing import Any

import pytest

from keypolicy.core.store import BucketRef
from keypolicy.state import MemoryStore, open_store
from keypolicy.state.redis import (
    EXPIRY_MARGIN_S,
    LONGEST_TTL_S,
    STILL_TTL_S,
    RedisStore,
)
from keypolicy.urls import mask_url
from tests.state.conftest import RedisStores

T = 1_795_000_000.0
PROJECT = BucketRef("limit:project:clinical/gpt-4o/tpm", 800_000.0, 800_000.0 / 60)
ORG = BucketRef("limit:organization:org-clinic/gpt-4o/rpm", 10_000.0, 10_000.0 / 60)
BUDGET = BucketRef("budget:clinic-monthly:2026-11", 12_500.0, 0.0)
ROLLING = BucketRef("budget:chat-rolling", 40.0, 40.0 / 86_400)


# ---------------------------------------------------------------------- keys


def test_keys_are_namespaced_and_one_namespace_is_one_cluster_slot(
    redis_stores: RedisStores,
) -> None:
    from redis.crc import key_slot

    store = redis_stores()
    store.acquire([PROJECT, ORG, BUDGET], [300.0, 1.0, 0.0015], [0.0, 0.0, 0.0], T)
    store.set_cooldown("project:clinical/gpt-4o", T + 2.0)
    keys = redis_stores.keys(store)
    base = f"keypolicy:{{{store.namespace}}}:"
    assert keys == sorted(
        [
            base + "bucket:" + PROJECT.name,
            base + "bucket:" + ORG.name,
            base + "bucket:" + BUDGET.name,
            base + "cooldown:project:clinical/gpt-4o",
            base + "cooldown-gen",
        ]
    )
    slots = {key_slot(k.encode()) for k in keys}
    assert slots == {key_slot(store.namespace.encode())}  # the hash tag alone decides


def test_stores_in_one_namespace_share_and_other_namespaces_do_not(
    redis_stores: RedisStores,
) -> None:
    a = redis_stores()
    b = RedisStore.from_url(redis_stores.url, namespace=a.namespace)  # another replica
    other = redis_stores()
    try:
        assert a.acquire([ORG], [9_000.0], [0.0], T) == 0.0
        assert b.levels([ORG], T) == [1_000.0]
        assert b.acquire([ORG], [2_000.0], [0.0], T) == pytest.approx(6.0)
        b.set_cooldown("key:diagnosis", T + 9.0)
        assert a.cooldown("key:diagnosis") == T + 9.0
        assert other.levels([ORG], T) == [10_000.0]
        assert other.cooldown("key:diagnosis") == 0.0
    finally:
        b.close()


def test_cooldowns_are_read_in_one_round_trip(
    redis_stores: RedisStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = redis_stores()
    store.set_cooldown("key:k1", T + 0.1)
    sent: list[tuple[Any, ...]] = []
    execute = store._execute

    def counted(*command: Any) -> Any:
        sent.append(command)
        return execute(*command)

    monkeypatch.setattr(store, "_execute", counted)
    names = ["key:k1", "key:k2", "project:p/gpt-4o"]
    assert store.cooldowns(names) == [T + 0.1, 0.0, 0.0]
    assert [c[0] for c in sent] == ["MGET"]
    assert store.cooldowns([]) == []  # nothing to read: no round trip
    assert len(sent) == 1


def _counting(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The commands ``store`` sends from now on (each one round trip)."""
    sent: list[tuple[Any, ...]] = []
    execute = store._execute

    def counted(*command: Any) -> Any:
        sent.append(command)
        return execute(*command)

    monkeypatch.setattr(store, "_execute", counted)
    return sent


def test_cooldowns_read_once_are_reused_until_a_replica_changes_one(
    redis_stores: RedisStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = redis_stores()
    b = redis_stores.twin(a)
    names = ["key:k1", "project:p/gpt-4o"]
    assert a.cooldowns(names) == [0.0, 0.0]
    sent = _counting(a, monkeypatch)
    assert a.acquire([ORG], [1.0], [0.0], T) == 0.0
    assert a.cooldowns(names) == [0.0, 0.0]  # nothing changed: no round trip
    a.set_cooldown("key:k1", T + 5.0)  # its own change is written into what it read
    assert a.cooldowns(names) == [T + 5.0, 0.0]
    assert [c[0] for c in sent] == ["EVALSHA", "EVALSHA"]  # the acquire and the set
    b.set_cooldown("project:p/gpt-4o", T + 9.0)  # another replica's change...
    assert a.cooldowns(names) == [T + 5.0, 0.0]  # ...is not seen before a's next reply,
    assert a.acquire([ORG], [1.0], [0.0], T) == 0.0  # whose generation shows it changed:
    assert a.cooldowns(names) == [T + 5.0, T + 9.0]  # read again, once
    assert [c[0] for c in sent][2:] == ["EVALSHA", "MGET"]
    a.set_cooldown("key:k1", T + 1.0)  # not later: nothing changes
    assert a.cooldowns(names) == [T + 5.0, T + 9.0]


def test_held_corrections_travel_with_the_next_call_and_apply_first(
    redis_stores: RedisStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, memory = redis_stores(), MemoryStore()
    lease_bucket = BucketRef("budget:b", 10.0, 0.0)
    for s in (store, memory):
        assert s.acquire([PROJECT, ORG], [5_000.0, 3.0], [0.0, 0.0], T) == 0.0
    sent = _counting(store, monkeypatch)
    for s in (store, memory):
        s.adjust_later(PROJECT, 1_200.0, T + 1.0)  # unused tokens given back
        s.clamp_later(ORG, 9_000.0, T + 1.0)  # the provider says less is left
        s.adjust_later(PROJECT, -100.0, T + 1.5)
    assert sent == []  # held back
    wait, lease = store.acquire_leased(
        [PROJECT, lease_bucket], [10.0, 2.0], [0.0, 0.0], T + 2.0, 1, T + 60.0
    )
    memory.acquire([PROJECT, lease_bucket], [10.0, 2.0], [0.0, 0.0], T + 2.0)
    assert (wait, len(sent)) == (0.0, 1)  # one round trip for the corrections and the take
    assert store.levels([PROJECT, ORG], T + 2.0) == memory.levels([PROJECT, ORG], T + 2.0)
    store.clamp_later(ORG, 8_000.0, T + 3.0)
    memory.clamp_later(ORG, 8_000.0, T + 3.0)
    before = len(sent)
    store.settle_lease(lease, [lease_bucket], [2.0], [0.5], T + 3.0)
    assert len(sent) == before + 1
    store.adjust_later(PROJECT, 7.0, T + 4.0)
    memory.adjust_later(PROJECT, 7.0, T + 4.0)
    store.flush()
    store.flush()  # nothing held: no round trip
    assert len(sent) == before + 2
    assert store.levels([PROJECT, ORG], T + 4.0) == memory.levels([PROJECT, ORG], T + 4.0)


def test_the_prefix_is_a_prefix(redis_stores: RedisStores) -> None:
    store = RedisStore.from_url(redis_stores.url, namespace="x", prefix="kp-test-prefix:")
    assert store.bucket_key("a") == "kp-test-prefix:{x}:bucket:a"
    assert store.cooldown_key("key:k") == "kp-test-prefix:{x}:cooldown:key:k"
    assert store.key_pattern() == "kp-test-prefix:{x}:*"
    store.close()


@pytest.mark.parametrize(
    ("namespace", "prefix"), [("", "keypolicy:"), ("a{b", "keypolicy:"), ("a", "kp{"), ("b}", "")]
)
def test_a_namespace_or_prefix_that_would_break_the_hash_tag_is_refused(
    namespace: str, prefix: str
) -> None:
    pytest.importorskip("redis")
    with pytest.raises(ValueError, match=r"namespace|prefix"):
        RedisStore.from_url("redis://127.0.0.1:1/0", namespace=namespace, prefix=prefix)


# ---------------------------------------------------------------------- expiry


def _ttl(stores: RedisStores, key: str) -> float:
    return float(stores.client.pttl(key)) / 1000


def test_a_bucket_lives_until_it_would_be_full_again_plus_the_margin(
    redis_stores: RedisStores,
) -> None:
    store = redis_stores()
    b = BucketRef("limit:b", 10.0, 0.5)
    store.acquire([b], [6.0], [0.0], T)  # 6 short: full again in 12 s
    assert _ttl(redis_stores, store.bucket_key(b.name)) == pytest.approx(12 + EXPIRY_MARGIN_S, 0.2)
    store.adjust(b, -10.0, T + 2.0)  # 15 short at T+2: full at T+32
    assert _ttl(redis_stores, store.bucket_key(b.name)) == pytest.approx(30 + EXPIRY_MARGIN_S, 0.2)
    store.adjust(b, 0.0, T - 5.0)  # an earlier time: still full at T+32, 37 s from the caller's now
    assert _ttl(redis_stores, store.bucket_key(b.name)) == pytest.approx(37 + EXPIRY_MARGIN_S, 0.2)
    store.adjust(b, 100.0, T + 2.0)  # full: only the margin
    assert _ttl(redis_stores, store.bucket_key(b.name)) == pytest.approx(EXPIRY_MARGIN_S, 0.2)


def test_a_bucket_that_never_refills_lives_forty_days(redis_stores: RedisStores) -> None:
    store = redis_stores()
    store.acquire([BUDGET, ROLLING], [1.0, 1.0], [0.0, 0.0], T)
    assert STILL_TTL_S == 40 * 86_400  # > 31 days: a month's bucket outlives its month
    assert _ttl(redis_stores, store.bucket_key(BUDGET.name)) == pytest.approx(STILL_TTL_S, 1e-3)
    assert _ttl(redis_stores, store.bucket_key(ROLLING.name)) == pytest.approx(
        1.0 / ROLLING.rate + EXPIRY_MARGIN_S, 1e-3
    )


def test_no_key_lives_longer_than_the_cap(redis_stores: RedisStores) -> None:
    store = redis_stores()
    slow = BucketRef("limit:slow", 1e9, 1e-9)
    store.adjust(slow, -1e9, T)
    assert _ttl(redis_stores, store.bucket_key(slow.name)) == pytest.approx(LONGEST_TTL_S, 1e-3)


def test_a_cooldown_lives_until_it_ends_plus_the_margin(redis_stores: RedisStores) -> None:
    store = redis_stores()
    store.set_cooldown("key:a", T + 30.0)  # no time seen yet: forty days
    assert _ttl(redis_stores, store.cooldown_key("key:a")) == pytest.approx(STILL_TTL_S, 1e-3)
    store.levels([], T)  # the caller's clock, seen
    store.set_cooldown("key:b", T + 30.0)
    assert _ttl(redis_stores, store.cooldown_key("key:b")) == pytest.approx(
        30 + EXPIRY_MARGIN_S, 0.2
    )
    store.set_cooldown("key:c", T - 30.0)  # already over: the margin
    assert _ttl(redis_stores, store.cooldown_key("key:c")) == pytest.approx(EXPIRY_MARGIN_S, 0.2)
    store.set_cooldown("key:b", T + 10.0)  # the later one stays, with its expiry
    assert _ttl(redis_stores, store.cooldown_key("key:b")) == pytest.approx(
        30 + EXPIRY_MARGIN_S, 0.2
    )


def test_claims_and_leases_are_keys_of_the_namespace_in_its_slot(
    redis_stores: RedisStores,
) -> None:
    from redis.crc import key_slot

    store = redis_stores()
    assert store.claim("alert:budget:b:2026-11:0.8", T + 100.0, T)
    _, lease = store.acquire_leased([PROJECT, BUDGET], [1.0, 0.5], [0.0, 0.0], T, 1, T + 3600.0)
    base = f"keypolicy:{{{store.namespace}}}:"
    assert redis_stores.keys(store) == sorted(
        [
            base + "bucket:" + PROJECT.name,
            base + "bucket:" + BUDGET.name,
            base + "claim:alert:budget:b:2026-11:0.8",
            base + "lease-seq",
            base + "lease:" + lease,
            base + "leases",
        ]
    )
    assert {key_slot(k.encode()) for k in redis_stores.keys(store)} == {
        key_slot(store.namespace.encode())
    }
    # A claim lives until it ends plus the margin; a lease until it ends plus forty days (a
    # reaper may come late), and so do the leases' index and counter.
    assert _ttl(redis_stores, store.claim_key("alert:budget:b:2026-11:0.8")) == pytest.approx(
        100 + EXPIRY_MARGIN_S, 0.2
    )
    for key in (store.lease_key(lease), store.leases_key(), base + "lease-seq"):
        assert _ttl(redis_stores, key) == pytest.approx(3600 + STILL_TTL_S, 1e-3)
    # Settled: the lease's record and its place in the index are gone (an empty index with it).
    store.settle_lease(lease, [BUDGET], [0.5], [0.25], T + 1.0)
    assert not redis_stores.client.exists(store.lease_key(lease), store.leases_key())


def test_lease_records_keep_bucket_names_of_any_text(redis_stores: RedisStores) -> None:
    store = redis_stores()
    odd = BucketRef('budget:a "quoted" name, with\nescapes and ünïcode:2026-11', 2.0, 0.0)
    store.acquire_leased([odd], [0.5], [0.0], T, 0, T + 1.0)
    assert store.reap(T + 2.0, 10) == 1
    assert store.levels([odd], T + 2.0) == [2.0]


def test_an_expired_bucket_reads_full_as_the_memory_store_reads_it(
    redis_stores: RedisStores,
) -> None:
    store = redis_stores(expiry_margin=0.0)
    memory = MemoryStore()
    b = BucketRef("limit:fast", 1.0, 20.0)  # full again 50 ms after it is emptied
    for s in (store, memory):
        s.acquire([b], [1.0], [0.0], T)
    key = store.bucket_key(b.name)
    deadline = time.monotonic() + 5.0
    while redis_stores.client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not redis_stores.client.exists(key)
    assert store.levels([b], T + 1) == memory.levels([b], T + 1) == [1.0]
    assert store.acquire([b], [0.5], [0.0], T + 1) == memory.acquire([b], [0.5], [0.0], T + 1)


def test_reading_writes_nothing(redis_stores: RedisStores) -> None:
    store = redis_stores()
    assert store.levels([PROJECT, ORG], T) == [PROJECT.capacity, ORG.capacity]
    assert store.cooldown("key:x") == 0.0
    assert store.acquire([ORG], [20_000.0], [0.0], T) == math.inf  # refused: nothing written
    assert redis_stores.keys(store) == []


# ---------------------------------------------------------------------- by URL


def test_open_store_by_url(redis_url: str) -> None:
    assert isinstance(open_store(None), MemoryStore)
    assert isinstance(open_store("memory"), MemoryStore)
    store = open_store(redis_url, namespace="org-clinic")
    assert isinstance(store, RedisStore)
    assert store.namespace == "org-clinic"
    assert repr(store) == f"RedisStore('{redis_url}', namespace='org-clinic')"
    assert not store.exclusive()
    store.close()


@pytest.mark.parametrize(
    "url", ["postgresql://u:s3cret-canary@db/x", "http://127.0.0.1:6379", "127.0.0.1:6379", ""]
)
def test_open_store_refuses_anything_else_clearly(url: str) -> None:
    with pytest.raises(ValueError, match="unknown state store") as info:
        open_store(url)
    assert "s3cret-canary" not in str(info.value)
    assert "redis://" in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw-canary@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:pw-canary@h/1", "redis://user:***@h/1"),
        ("rediss://user@h", "rediss://user@h"),
        ("redis://h:6379/0?password=pw-canary&db=2", "redis://h:6379/0?password=***&db=2"),
        (
            "unix:///run/redis.sock?db=0&Password=pw-canary",
            "unix:///run/redis.sock?db=0&Password=***",
        ),
        ("redis://:p%40ss-canary@h", "redis://:***@h"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://u:a:b@h?x=1#password=frag", "redis://u:***@h?x=1#password=frag"),
        ("redis://h/0?db=1&password=", "redis://h/0?db=1&password=***"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_a_bad_url_is_refused_without_its_password() -> None:
    pytest.importorskip("redis")
    with pytest.raises(ValueError, match="cannot use the Redis URL") as info:
        RedisStore.from_url("redis://:pw-canary@h:6379/0?db=notanumber")
    assert "pw-canary" not in str(info.value)


def test_keypolicy_works_without_redis_and_says_how_to_get_it() -> None:
    code = """
import sys
sys.modules["redis"] = None  # as if not installed
import keypolicy.state, keypolicy.state.redis
from keypolicy.state import open_store, MemoryStore
assert isinstance(open_store(None), MemoryStore)
try:
    open_store("redis://127.0.0.1:6379/0")
except ImportError as exc:
    print(exc)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'keypolicy[redis]'" in out.stdout


def _same(a: Any, b: Any) -> bool:
    return repr(a) == repr(b)


def test_floats_travel_exactly(redis_stores: RedisStores) -> None:
    # Numbers Redis would truncate as integer replies, or Lua would print with 14 digits.
    store = redis_stores()
    memory = MemoryStore()
    b = BucketRef("limit:exact", 1.0 / 3.0, 0.1)
    for delta in (-0.75, 1e-300, -1.0 / 7.0, 5e-324, -(2.0**-40)):
        assert _same(store.adjust(b, delta, T + 0.1), memory.adjust(b, delta, T + 0.1))
    assert _same(store.levels([b], T + 0.3), memory.levels([b], T + 0.3))
    assert store.acquire([b], [0.3], [0.0], T + 0.3) == memory.acquire([b], [0.3], [0.0], T + 0.3)
