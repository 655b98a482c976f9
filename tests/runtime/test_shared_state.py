"""Runtimes sharing their state in Redis hold the provider's limits together: the peers'
scenario (two keys in two projects of 100 requests a minute each, 600 requests at once from two
runtimes) gives the mock no 429 and exactly the bucket arithmetic's successes, where runtimes
with state of their own each send a full share and draw 429s."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from keypolicy import PolicyRejected
from keypolicy.policy import load_policy_text
from keypolicy.runtime import FakeClock, Runtime
from keypolicy.runtime.runtime import STATE_ENV, policy_store
from keypolicy.state import MemoryStore
from tests.runtime.conftest import Start, assert_no_canary
from tests.services import require_module, require_service

REDIS_URL = os.environ.get("KEYPOLICY_TEST_REDIS", "redis://127.0.0.1:6379/0")

PEERS = """\
version: 1
name: peers
organization: {{id: org-peers}}
state: {{url: {state}, namespace: {namespace}}}
projects:
  one: {{models: {{gpt-4o-mini: {{rpm: 100, tpm: 10M}}}}}}
  two: {{models: {{gpt-4o-mini: {{rpm: 100, tpm: 10M}}}}}}
keys:
  clinical: {{project: one, env: RT_TEST_KEY_CLINICAL}}
  tight: {{project: two, env: RT_TEST_KEY_TIGHT}}
pools:
  both: {{keys: [clinical, tight]}}
priorities:
  - {{name: only, max_wait: 0s}}
domains:
  chat: {{pool: both, priority: only, model: gpt-4o-mini}}
retry: {{max_attempts: 1}}
"""
MESSAGES = [{"role": "user", "content": "When is my appointment?"}]


@pytest.fixture
def namespace() -> Iterator[str]:
    """A Redis namespace of the test's own, its keys deleted afterwards (never FLUSHDB)."""
    redis = require_module("redis", "pip install -e '.[dev]'")
    require_service("Redis", "127.0.0.1", 6379, "start redis-server")
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"*{name}*"):
        client.delete(key)
    client.close()


def _send(runtimes: list[Runtime], per_runtime: int) -> list[Any]:
    """``per_runtime`` calls from each runtime, all released at once."""
    count = per_runtime * len(runtimes)
    gate = threading.Barrier(count)
    clients = [r.openai("chat") for r in runtimes]

    def one(i: int) -> Any:
        client = clients[i % len(clients)]
        gate.wait()
        try:
            return client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
            )
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def _peers(start: Start, state: str, namespace: str) -> tuple[list[Runtime], list[Any]]:
    clock = FakeClock()
    text = PEERS.format(state=state, namespace=namespace)
    first, server = start(clock=clock, policy=text)
    second = Runtime(
        first.policy,
        ledger=first.ledger.path.with_name("second.sqlite"),
        base_url=server.url + "/v1",
        clock=clock,
    )
    try:
        return [first, second], _send([first, second], 300)
    finally:
        second.close()


def test_two_runtimes_sharing_redis_hold_the_limits_together(start: Start, namespace: str) -> None:
    _, results = _peers(start, "redis://127.0.0.1:6379/0", namespace)
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, PolicyRejected)]
    upstream = [r for r in results if isinstance(r, openai.RateLimitError)]
    # 100 a minute in each project, nothing refilled (the clock stands still): 200 in all.
    assert (len(ok), len(refused), len(upstream)) == (200, 400, 0)
    assert_no_canary(*results)


def test_runtimes_with_state_of_their_own_each_take_a_full_share(
    start: Start, namespace: str
) -> None:
    """The same without Redis: each runtime believes it has 200, the provider has 200 in all."""
    _, results = _peers(start, "memory", namespace)
    ok = [r for r in results if not isinstance(r, Exception)]
    upstream = [r for r in results if isinstance(r, openai.RateLimitError)]
    refused = [r for r in results if isinstance(r, PolicyRejected)]
    # Each believes it has 200 (two projects of 100) and sends up to that: the provider answers
    # 200 in all and refuses the rest with 429s. How many a runtime sends before a 429 rests
    # the project for it (refusing the rest itself) depends on the threads' order.
    assert len(ok) == 200
    assert len(upstream) + len(refused) == 400
    assert len(upstream) > 0


def test_the_state_url_comes_from_the_environment_or_the_policy(namespace: str) -> None:
    policy = load_policy_text(PEERS.format(state="memory", namespace=namespace), "p.yaml").policy
    assert isinstance(policy_store(policy, {}), MemoryStore)
    shared = policy_store(policy, {STATE_ENV: REDIS_URL})
    assert type(shared).__name__ == "RedisStore"
    with_env = policy.model_copy(
        update={"state": policy.state.model_copy(update={"url_env": "CLINIC_STATE"})}
    )
    with pytest.raises(ValueError, match=r"state.url_env names \$CLINIC_STATE, which is not set"):
        policy_store(with_env, {STATE_ENV: REDIS_URL})
