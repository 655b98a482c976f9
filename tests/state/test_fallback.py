"""``state.on_error: local``: a replica goes on with its share while the shared store is down."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from keypolicy.core import Engine, Reject, Send, Submit
from keypolicy.core.store import BucketRef, Store
from keypolicy.policy import PolicyError, load_policy_text
from keypolicy.policy.compile import compile_policy
from keypolicy.runtime.runtime import policy_store
from keypolicy.state import MemoryStore, StoreUnavailable
from keypolicy.state.fallback import RECONNECT_S, FallbackStore
from keypolicy.state.redis import RedisStore
from tests.state.conftest import RedisServer

T = 1_795_000_000.0
LIMIT = BucketRef("limit:project:p/gpt-4o/rpm", 100.0, 100.0 / 60)
BUDGET = BucketRef("budget:month:2026-11", 40.0, 0.0)


class Flaky(Store):
    """A memory store as a shared store that fails while ``down`` (a wrapper: the compiled
    memory store cannot be subclassed here)."""

    def __init__(self) -> None:
        self.memory = MemoryStore(shared=True)
        self.down = False

    def _check(self) -> MemoryStore:
        if self.down:
            raise StoreUnavailable("the Redis store at redis://127.0.0.1:1/0 could not: refused")
        return self.memory

    def acquire(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
    ) -> float:
        return self._check().acquire(buckets, amounts, floors, now)

    def acquire_leased(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
        leased: int,
        until: float,
    ) -> tuple[float, str]:
        return self._check().acquire_leased(buckets, amounts, floors, now, leased, until)

    def adjust(self, bucket: BucketRef, delta: float, now: float) -> float:
        return self._check().adjust(bucket, delta, now)

    def clamp(self, bucket: BucketRef, level: float, now: float) -> None:
        self._check().clamp(bucket, level, now)

    def levels(self, buckets: Sequence[BucketRef], now: float) -> list[float]:
        return self._check().levels(buckets, now)

    def set_cooldown(self, name: str, until: float) -> None:
        self._check().set_cooldown(name, until)

    def cooldown(self, name: str) -> float:
        return self._check().cooldown(name)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_alone_a_replica_takes_its_share_and_goes_back_when_the_store_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared, clock = Flaky(), Clock()
    store = FallbackStore(shared, 0.25, clock=clock)
    assert store.acquire([LIMIT, BUDGET], [10.0, 4.0], [0.0, 0.0], T) == 0.0  # shared
    shared.down = True
    with caplog.at_level(logging.WARNING, "keypolicy.state"):
        # Alone: a quarter of the limit (25 requests) and of the budget ($10).
        assert store.acquire([LIMIT, BUDGET], [25.0, 1.0], [0.0, 0.0], T) == 0.0
        assert store.alone
        assert store.acquire([LIMIT], [1.0], [0.0], T) > 0.0  # its share is spent
        assert store.acquire([BUDGET], [9.5], [0.0], T) > 0.0  # $9 left of its $10
        assert store.adjust(BUDGET, 0.5, T) == pytest.approx(9.5)  # a hold given back
        assert store.levels([LIMIT], T + 6.0) == [pytest.approx(25.0 * 0 + 6.0 * 100 / 60 / 4)]
        clock.t += RECONNECT_S / 2
        shared.down = False
        assert store.acquire([BUDGET], [1.0], [0.0], T) == 0.0  # not tried again yet
        assert store.alone
        clock.t += RECONNECT_S
        assert store.acquire([LIMIT], [1.0], [0.0], T + 7.0) == 0.0  # back on the shared store
    assert not store.alone
    # What was spent alone ($1 + $1 - $0.5) is charged to the shared budget.
    assert shared.levels([BUDGET], T + 7.0) == [pytest.approx(40.0 - 4.0 - 1.5)]
    (episode,) = store.episodes
    assert episode.ended is not None
    assert episode.calls == 6
    assert "StoreUnavailable" in episode.error
    messages = [r.getMessage() for r in caplog.records]
    assert any("goes on alone with 25%" in m for m in messages)
    assert any("answers again" in m and "6 calls served alone" in m for m in messages)


def test_a_hold_taken_alone_and_settled_after_is_settled_on_both() -> None:
    shared, clock = Flaky(), Clock()
    store = FallbackStore(shared, 0.5, clock=clock)
    shared.down = True
    wait, lease = store.acquire_leased([LIMIT, BUDGET], [1.0, 3.0], [0.0, 0.0], T, 1, T + 60)
    assert wait == 0.0
    assert lease.startswith("local-")
    clock.t += RECONNECT_S
    shared.down = False
    assert store.levels([BUDGET], T + 1) == [pytest.approx(37.0)]  # the hold charged on return
    store.settle_lease(lease, [BUDGET], [3.0], [1.25], T + 2)
    store.flush()
    assert shared.levels([BUDGET], T + 2) == [pytest.approx(40.0 - 1.25)]


POLICY = """\
version: 1
name: fallback
timezone: UTC
state: {url: "redis://127.0.0.1:1/0", on_error: local, replicas: 2}
projects:
  p: {models: {gpt-4o-mini: {rpm: 60, tpm: 60000}}}
keys:
  k1: {project: p, env: K1}
pools:
  one: {keys: [k1]}
priorities:
  - {name: high, max_wait: 10s}
domains:
  urgent: {pool: one, priority: high, model: gpt-4o-mini}
"""


def test_on_error_local_needs_the_number_of_replicas() -> None:
    text = POLICY.replace(", replicas: 2", "")
    with pytest.raises(PolicyError, match=r"needs state\.replicas"):
        load_policy_text(text, "fallback.yaml")


def test_the_policy_wraps_a_shared_store_only() -> None:
    loaded = load_policy_text(POLICY, "fallback.yaml").policy
    store = policy_store(loaded, {})
    try:
        assert isinstance(store, FallbackStore)
        assert isinstance(store.shared, RedisStore)
        assert store.share == 0.5
    finally:
        store.close()
    assert isinstance(policy_store(loaded, {"KEYPOLICY_STATE": "memory"}), MemoryStore)


def test_an_engine_goes_on_through_a_redis_restart(redis_server: RedisServer) -> None:
    """Fail closed, a request is refused while Redis is down; with on_error: local it goes out
    on the replica's share, and the replica is back on Redis once it restarts."""
    policy = load_policy_text(POLICY, "fallback.yaml").policy
    config = compile_policy(policy)
    store = FallbackStore(RedisStore.from_url(redis_server.url, namespace="fb"), 0.5)
    engine = Engine(config, store, 0)
    try:
        assert isinstance(engine.handle(Submit("r1", "urgent", T, 100, 100))[-1], Send)
        redis_server.kill()
        sent = 0
        for i in range(40):  # a minute's share is 30 requests (60 RPM / 2 replicas)
            actions = engine.handle(Submit(f"a{i}", "urgent", T + 1, 100, 100))
            sent += sum(isinstance(a, Send) for a in actions)
            assert not any(isinstance(a, Reject) and a.reason == "store_error" for a in actions)
        assert 25 <= sent <= 31  # its share of the burst (refill over the second included)
        assert store.alone
        redis_server.start()
        store._retry_at = 0.0  # the reconnect interval has passed (no wall-clock sleep)
        engine.handle(Submit("r2", "urgent", T + 120, 100, 100))
        assert not store.alone
        assert store.episodes[-1].ended is not None
    finally:
        store.close()
