"""The Redis store when its Redis dies, hangs and comes back: it raises its one error within its
timeouts (no hang), the engine turns that into ``StoreFault`` and ``Reject(store_error)``, and once
a redis-server is listening again the very next call works. Each test runs a redis-server of its
own on a free port (``redis_server`` in conftest.py); the shared one on 6379 is never touched."""

from __future__ import annotations

import multiprocessing
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keypolicy.core import Engine, Reject, Send, StoreFault, Submit
from keypolicy.core.store import BucketRef
from keypolicy.policy import load_policy_text
from keypolicy.policy.compile import compile_policy
from keypolicy.state import StoreUnavailable
from keypolicy.state.redis import RedisStore
from tests.state.conftest import RedisServer

T = 1_795_000_000.0
B = BucketRef("limit:project:p/gpt-4o-mini/rpm", 10.0, 1.0)
CANARY = "canary-7f3a9c-pw"
WRONG = "canary-wrong-41d2e8"

POLICY = """\
version: 1
name: faults
timezone: UTC
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


def _timed(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    try:
        call()
    except StoreUnavailable as exc:
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


def _every_call(store: RedisStore) -> list[Callable[[], Any]]:
    return [
        lambda: store.acquire([B], [1.0], [0.0], T),
        lambda: store.adjust(B, 1.0, T),
        lambda: store.clamp(B, 1.0, T),
        lambda: store.levels([B], T),
        lambda: store.set_cooldown("key:k1", T + 5),
        lambda: store.cooldown("key:k1"),
    ]


def test_a_killed_redis_fails_every_call_fast_and_a_restarted_one_is_used_again(
    redis_server: RedisServer,
) -> None:
    store = RedisStore.from_url(redis_server.url, namespace="faults")
    assert store.acquire([B], [4.0], [0.0], T) == 0.0
    assert store.levels([B], T) == [6.0]
    redis_server.kill()
    for call in _every_call(store):
        error, took = _timed(call)
        assert isinstance(error, StoreUnavailable)
        assert "could not" in str(error)
        assert f"127.0.0.1:{redis_server.port}" in str(error)
        assert took < 3.0  # refused at once, not retried (loose: a loaded machine is slow)
    redis_server.start()  # same port, empty (no persistence): every bucket full again
    assert store.levels([B], T) == [10.0]  # the first call after the restart works
    assert store.acquire([B], [4.0], [0.0], T) == 0.0  # its script loaded again (NOSCRIPT)
    store.set_cooldown("key:k1", T + 5)
    assert store.cooldown("key:k1") == T + 5


def test_a_hung_redis_times_out_within_the_timeout(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, namespace="faults")  # timeouts: 0.5 s
    assert store.acquire([B], [1.0], [0.0], T) == 0.0
    redis_server.pause()
    try:
        error, took = _timed(lambda: store.acquire([B], [1.0], [0.0], T))
        assert isinstance(error, StoreUnavailable)
        assert "Timeout" in str(error)
        assert 0.4 < took < 5.0  # the read timeout, once: no retry, no backoff (10 s with)
        error, took = _timed(lambda: store.cooldown("key:k1"))
        assert isinstance(error, StoreUnavailable)
        assert took < 5.0
    finally:
        redis_server.resume()
    # The timed-out acquire reached Redis and runs once it wakes (applied at most once): 8 left.
    seen = store.levels([B], T)
    deadline = time.monotonic() + 5.0
    while seen != [8.0] and time.monotonic() < deadline:
        assert seen == [9.0]
        time.sleep(0.01)
        seen = store.levels([B], T)
    assert seen == [8.0]
    assert store.acquire([B], [1.0], [0.0], T) == 0.0  # and the store works on


def test_a_short_timeout_is_kept(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, namespace="faults", timeout=0.1)
    store.levels([B], T)
    redis_server.pause()
    try:
        error, took = _timed(lambda: store.levels([B], T))
    finally:
        redis_server.resume()
    assert isinstance(error, StoreUnavailable)
    kwargs = store._client.connection_pool.connection_kwargs  # the setting, not a stopwatch
    assert kwargs["socket_timeout"] == 0.1
    assert took < 5.0


def test_the_engine_rejects_with_store_error_while_redis_is_down_and_recovers(
    redis_server: RedisServer,
) -> None:
    store = RedisStore.from_url(redis_server.url, namespace="faults")
    engine = Engine(compile_policy(load_policy_text(POLICY, "faults.yaml").policy), store, 0)
    assert isinstance(engine.handle(Submit("r1", "urgent", T, 100, 100))[-1], Send)
    redis_server.kill()
    start = time.monotonic()
    actions = engine.handle(Submit("r2", "urgent", T + 1, 100, 100))
    assert time.monotonic() - start < 5.0  # bounded (loose: a loaded machine is slow)
    assert any(isinstance(a, StoreFault) and "StoreUnavailable" in a.error for a in actions)
    assert isinstance(actions[-1], Reject)
    assert actions[-1].reason == "store_error"
    assert engine.store_errors >= 1
    redis_server.start()
    actions = engine.handle(Submit("r3", "urgent", T + 2, 100, 100))
    assert isinstance(actions[-1], Send)


def test_no_password_in_any_message_repr_or_traceback(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, password=CANARY)
    server.start()
    try:
        store = RedisStore.from_url(server.url, namespace="faults")
        assert CANARY in server.url
        assert store.acquire([B], [1.0], [0.0], T) == 0.0  # the password works
        shown = [repr(store), str(store)]
        wrong = RedisStore.from_url(server.url.replace(CANARY, WRONG), namespace="faults")
        errors = [_timed(lambda: wrong.levels([B], T))[0]]
        assert "AuthenticationError" in str(errors[0]) or "WRONGPASS" in str(errors[0])
        shown += [repr(wrong)]
        in_query = RedisStore.from_url(
            f"redis://127.0.0.1:{server.port}/0?password={CANARY}", namespace="faults"
        )
        assert in_query.levels([B], T) == [9.0]
        shown += [repr(in_query)]
        server.kill()
        errors += [_timed(call)[0] for s in (store, in_query) for call in _every_call(s)]
        engine = Engine(compile_policy(load_policy_text(POLICY, "f.yaml").policy), store, 0)
        faults = [
            a for a in engine.handle(Submit("r", "urgent", T, 1, 1)) if a.__class__ is StoreFault
        ]
        assert faults
        shown += [repr(a) for a in faults]
    finally:
        server.kill()
    assert all(isinstance(e, StoreUnavailable) for e in errors)
    for error in errors:
        assert error is not None
        shown += [str(error), repr(error), "".join(traceback.format_exception(error))]
        shown += [repr(error.__cause__), repr(error.__context__)]
    for text in shown:
        assert CANARY not in text, text
        assert WRONG not in text, text
    assert any(":***@" in text for text in shown)
    assert any("password=***" in text for text in shown)


def test_the_defaults_bound_every_call(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, namespace="faults")
    assert store.cooldown("key:k1") == 0.0
    (connection,) = store._made  # the connection the call used
    assert connection.socket_timeout == 0.5
    assert connection.socket_connect_timeout == 0.5
    assert connection.protocol == 2
    assert connection.retry.get_retries() == 0  # never applied twice
    store.close()
    assert store.cooldown("key:k1") == 0.0  # closed: a new connection


def test_threads_share_a_store(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, namespace="faults")
    bucket = BucketRef("limit:shared", 1e9, 0.0)

    def work() -> None:
        for _ in range(200):
            assert store.acquire([bucket, B], [1.0, 0.0], [0.0, 0.0], T) == 0.0

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.levels([bucket], T) == [1e9 - 1_600]
    assert len(store._made) <= 8


def test_a_forked_child_uses_connections_of_its_own(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, namespace="faults")
    assert store.acquire([B], [1.0], [0.0], T) == 0.0
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_take_one, args=(store,))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert store.levels([B], T) == [8.0]  # the parent's connection still works
    assert len(store._made) == 1


def _take_one(store: RedisStore) -> None:
    assert store.acquire([B], [1.0], [0.0], T) == 0.0
