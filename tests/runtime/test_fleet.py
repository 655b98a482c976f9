"""Four processes, 50 threads each, one policy, one Redis, one mock server: the fleet holds the
provider's limits and its budget together, as one process would.

Each process (spawned) runs a :class:`Runtime` whose policy keeps its state in Redis (a namespace
of this test's own); all of them call the one mock server this process serves on loopback, with
the policy's limits. The combined load exceeds both:

- ``chat`` goes to a project allowed 300 requests a day (``rpd``): 600 calls are made, the mock
  answers exactly 300 and never a 429;
- ``notes`` draws on a budget of $0.03 (about 100 calls' worth): it ends spent to within one
  call's estimate of its limit, never above it, and the store's figure is the ledgers' sum.

Time is the wall clock (a fake clock cannot be shared across processes), so nothing here depends
on it: a day's limit and a 30-day budget refill next to nothing in the seconds this takes
(less than 1/300th of a request, $2e-7), and the figures are counts compared with the limits.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keypolicy.core.budgets import BudgetBook
from keypolicy.ledger import read_ledger
from keypolicy.mock import MockOptions, MockServer, create_app
from keypolicy.policy import load_policy
from keypolicy.policy.compile import compile_policy
from keypolicy.state.redis import RedisStore
from tests.services import require_module, require_service

REDIS_URL = os.environ.get("KEYPOLICY_TEST_REDIS", "redis://127.0.0.1:6379/0")
PROCESSES, THREADS, CALLS = 4, 50, 6  # calls per thread, half of them on each domain
RPD, BUDGET_USD = 300, 0.03

POLICY = """\
version: 1
name: fleet
timezone: UTC
organization: {{id: org-fleet}}
state: {{url: {url}, namespace: {namespace}}}
projects:
  daily: {{models: {{gpt-4o-mini: {{rpm: 100_000, rpd: {rpd}, tpm: 100M}}}}}}
  funded: {{models: {{gpt-4o-mini: {{rpm: 100_000, tpm: 100M}}}}}}
keys:
  daily: {{project: daily, env: FLEET_KEY_DAILY}}
  funded: {{project: funded, env: FLEET_KEY_FUNDED}}
pools:
  daily: {{keys: [daily]}}
  funded: {{keys: [funded]}}
priorities:
  - {{name: only, max_wait: 0s}}
domains:
  chat: {{pool: daily, priority: only, model: gpt-4o-mini}}
  notes: {{pool: funded, priority: only, model: gpt-4o-mini}}
budgets:
  notes-budget: {{applies_to: {{domain: notes}}, usd: ${usd}, per: 720h, alert_at: []}}
retry: {{max_attempts: 1}}
"""
KEYS = {"FLEET_KEY_DAILY": "sk-fleet-daily-3b9e0c71a2", "FLEET_KEY_FUNDED": "sk-fleet-funded-8d14"}
# A long prompt and one token out: what a call costs is all but exactly its estimate.
MESSAGES: list[Any] = [{"role": "user", "content": "Summarise the ward round notes. " * 60}]


def replica(
    index: int, policy_path: str, base_url: str, ledger: str, go: Any, ready: Any, out: Any
) -> None:
    """One replica (a spawned process): a Runtime and 50 threads each making ``CALLS`` calls,
    alternating the two domains, once ``go`` is set. Puts what the calls came to on ``out``."""
    try:
        out.put(_replica(index, policy_path, base_url, ledger, go, ready))
    except BaseException as exc:
        out.put({"index": index, "failed": f"{type(exc).__name__}: {exc}"})
        raise


def _replica(
    index: int, policy_path: str, base_url: str, ledger: str, go: Any, ready: Any
) -> dict[str, Any]:
    from keypolicy.runtime import Runtime

    runtime = Runtime.from_file(policy_path, ledger=ledger, environ=KEYS, base_url=base_url)
    clients = {domain: runtime.openai(domain) for domain in ("chat", "notes")}
    tally: Counter[str] = Counter()
    lock = threading.Lock()

    def calls(thread: int) -> None:
        for i in range(CALLS):
            domain = ("chat", "notes")[(thread + i) % 2]
            what = one_call(clients[domain], "gpt-4o-mini")
            with lock:
                tally[f"{domain} {what}"] += 1

    threads = [threading.Thread(target=calls, args=(t,)) for t in range(THREADS)]
    ready.release()
    go.wait(60)
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    runtime.close()
    return {"index": index, "tally": dict(tally), "elapsed": elapsed}


@pytest.fixture
def namespace() -> Iterator[str]:
    """A Redis namespace of the test's own, its keys deleted afterwards (never FLUSHDB)."""
    redis = require_module("redis", "pip install -e '.[dev]'")
    require_service("Redis", "127.0.0.1", 6379, "start redis-server")
    name = f"test-fleet-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"*{{{name}}}*"))
    if keys:
        client.unlink(*keys)
    client.close()


def one_call(client: Any, model: str) -> str:
    """Make one chat completion on ``client``; what came of it: ``ok``, ``refused:REASON``
    (keypolicy refused it), ``429`` (the provider did), or ``error:...`` (anything else: a test
    fails on it, by name)."""
    import openai

    from keypolicy.runtime.errors import PolicyRejected

    try:
        client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=1)
    except PolicyRejected as exc:
        return f"refused:{exc.reason}"
    except openai.RateLimitError:
        return "429"
    except Exception as exc:
        return f"error:{type(exc).__name__}: {exc}"
    return "ok"


@contextlib.contextmanager
def mock_serving(policy_path: Path, environ: dict[str, str]) -> Iterator[tuple[str, MockLog]]:
    """The mock server on loopback enforcing ``policy_path``: its base URL, and a count of its
    answers by status (its log, listened to until it stops)."""
    mock_log = MockLog()
    logger = logging.getLogger("keypolicy.mock")
    level = logger.level
    logger.addHandler(mock_log)
    logger.setLevel(logging.INFO)
    server = MockServer(
        create_app(policy_path, environ=environ, options=MockOptions(latency=False))
    )
    server.start()
    try:
        yield server.url + "/v1", mock_log
    finally:
        server.stop()
        logger.removeHandler(mock_log)
        logger.setLevel(level)


class MockLog(logging.Handler):
    """Counts the mock's answers by status (it logs each one: ``... -> 429 rate_limited``)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.statuses: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if " -> " in message:
            self.statuses[message.rpartition(" -> ")[2].split(" ")[0]] += 1


def test_four_processes_hold_the_limits_and_the_budget_together(
    tmp_path: Path, namespace: str
) -> None:
    begun = time.monotonic()
    policy_path = tmp_path / "fleet.yaml"
    policy_path.write_text(
        POLICY.format(url=REDIS_URL, namespace=namespace, rpd=RPD, usd=BUDGET_USD)
    )
    spawn = multiprocessing.get_context("spawn")
    go, ready, out = spawn.Event(), spawn.Semaphore(0), spawn.Queue()
    ledgers = [str(tmp_path / f"replica-{i}.sqlite") for i in range(PROCESSES)]
    with mock_serving(policy_path, KEYS) as (url, mock_log):
        processes = [
            spawn.Process(
                target=replica, args=(i, str(policy_path), url, ledgers[i], go, ready, out)
            )
            for i in range(PROCESSES)
        ]
        try:
            for process in processes:
                process.start()
            for _ in range(PROCESSES):  # every runtime made: all four begin together
                assert ready.acquire(timeout=25), "a replica did not start"
            go.set()
            results = [out.get(timeout=25) for _ in processes]
            for process in processes:
                process.join(10)
        finally:
            for process in processes:
                if process.is_alive():
                    process.kill()
    assert not [r["failed"] for r in results if "failed" in r]

    tally: Counter[str] = Counter()
    for result in results:
        tally.update(result["tally"])
    calls = PROCESSES * THREADS * CALLS
    assert sum(tally.values()) == calls
    assert not [k for k in tally if "error:" in k], tally
    # The provider's limit held: not one 429 from the mock, in any process.
    assert mock_log.statuses["429"] == 0
    assert tally["chat 429"] + tally["notes 429"] == 0, tally
    # A day's 300 requests, all of them and no more: the rest refused before being sent.
    assert tally["chat ok"] == RPD
    assert tally["chat refused:max_wait"] == calls // 2 - RPD
    assert mock_log.statuses["200"] == tally["chat ok"] + tally["notes ok"]

    # The budget: spent to within one call's estimate of its limit, never above it.
    rows = [read_ledger(path) for path in ledgers]
    notes = [r[(r["domain"] == "notes") & (r["outcome"] == "ok")] for r in rows]
    costs = [float(c) for frame in notes for c in frame["cost_usd"]]
    assert len(costs) == tally["notes ok"] > 0
    estimate = max(costs)  # one token out and the same prompt: what every call was held at
    assert min(costs) == pytest.approx(estimate, rel=1e-9)
    spent_by_ledgers = sum(costs)
    assert spent_by_ledgers <= BUDGET_USD + 1e-12
    assert spent_by_ledgers > BUDGET_USD - estimate
    assert tally["notes refused:budget"] == calls // 2 - tally["notes ok"]
    # The shared store says the same (every hold settled: nothing held any more).
    config = compile_policy(load_policy(policy_path).policy)
    store = RedisStore.from_url(REDIS_URL, namespace=namespace)
    try:
        book = BudgetBook(config.budgets, store)
        spent = book.spent(0, time.time())
        forgotten = BUDGET_USD / (720 * 3600) * (time.monotonic() - begun)  # the window's refill
        assert spent_by_ledgers - forgotten - 1e-12 <= spent <= spent_by_ledgers + 1e-12
        assert store.reap(time.time() + 1e9, 1_000) == 0  # no hold left leased
    finally:
        store.close()
    assert time.monotonic() - begun < 30.0
