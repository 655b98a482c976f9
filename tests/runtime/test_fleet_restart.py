"""Four processes share one Redis that is killed mid-run and started again: the fleet holds the
provider's limits and its budget through it.

As ``test_fleet.py`` (4 spawned processes, threads calling one mock server on loopback, a day's
request limit and a budget), but the Redis is this test's own ``redis-server`` with an
append-only file written before each reply, as a deployment that must not forget its budgets
runs it. The phases follow counts, not a stopwatch:

1. the threads call until the mock has answered 100 calls; the test kills Redis (SIGKILL);
2. with the default ``on_error: fail_closed``, calls that need Redis are refused
   (``store_error``) within its timeouts; once 40 have been, the test starts Redis again;
3. the runtimes use it again by themselves, and the threads call until each limit is reached.

What must hold: no call hangs or crashes; the mock never answers 429 (the day's 300 requests
at most); the budget is never passed and is reached (settled and held) within one call's
estimate; every call is in a ledger. (A Redis that restarts empty forgets the fleet's spend
and use: run it with an append-only file where budgets matter.)
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from keypolicy.core.budgets import BudgetBook
from keypolicy.ledger import read_ledger
from keypolicy.policy import load_policy
from keypolicy.policy.compile import compile_policy
from keypolicy.state.redis import RedisStore
from tests.runtime.test_fleet import BUDGET_USD, KEYS, POLICY, RPD, mock_serving, one_call
from tests.state.conftest import RedisServer

PROCESSES, THREADS = 4, 16
NAMESPACE = "fleet-restart"


def replica(
    index: int, policy_path: str, base_url: str, ledger: str, shared: Any, out: Any
) -> None:
    """One replica: a Runtime and ``THREADS`` threads calling, alternating the two domains,
    until ``shared.stop`` is set; counts what happened in ``shared``. Puts its tally on ``out``."""
    try:
        out.put(_replica(index, policy_path, base_url, ledger, shared))
    except BaseException as exc:
        out.put({"index": index, "failed": f"{type(exc).__name__}: {exc}"})
        raise


def _replica(
    index: int, policy_path: str, base_url: str, ledger: str, shared: Any
) -> dict[str, Any]:
    from keypolicy.runtime import Runtime

    runtime = Runtime.from_file(policy_path, ledger=ledger, environ=KEYS, base_url=base_url)
    clients = {domain: runtime.openai(domain) for domain in ("chat", "notes")}
    tally: Counter[str] = Counter()
    lock = threading.Lock()
    slowest = 0.0

    def calls(thread: int) -> None:
        nonlocal slowest
        i = 0
        while not shared["stop"].is_set():
            domain = ("chat", "notes")[(thread + i) % 2]
            i += 1
            began = time.monotonic()
            what = one_call(clients[domain], "gpt-4o-mini")
            took = time.monotonic() - began
            with lock:
                tally[f"{domain} {what}"] += 1
                slowest = max(slowest, took)
            counter = shared["store_errors"] if what == "refused:store_error" else None
            if counter is not None:
                with counter.get_lock():
                    counter.value += 1
            if shared["phase"].value == 3 and what != "refused:store_error":
                with shared["after"].get_lock():
                    shared["after"].value += 1

    threads = [threading.Thread(target=calls, args=(t,)) for t in range(THREADS)]
    shared["ready"].release()
    shared["go"].wait(60)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runtime.close()
    return {"index": index, "tally": dict(tally), "slowest": slowest}


def _until(what: str, done: Any, limit_s: float = 60.0) -> None:
    """Wait (polling) until ``done()``; fail saying ``what`` after ``limit_s`` seconds."""
    deadline = time.monotonic() + limit_s
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.01)


def test_four_processes_hold_the_limits_through_a_redis_restart(tmp_path: Path) -> None:
    begun = time.monotonic()
    redis_server = RedisServer(tmp_path, persist=True)
    redis_server.start()
    policy_path = tmp_path / "fleet.yaml"
    policy_path.write_text(
        POLICY.format(url=redis_server.url, namespace=NAMESPACE, rpd=RPD, usd=BUDGET_USD)
    )
    spawn = multiprocessing.get_context("spawn")
    shared = {
        "go": spawn.Event(),
        "stop": spawn.Event(),
        "ready": spawn.Semaphore(0),
        "phase": spawn.Value("i", 1),
        "store_errors": spawn.Value("i", 0),
        "after": spawn.Value("i", 0),
    }
    out = spawn.Queue()
    ledgers = [str(tmp_path / f"replica-{i}.sqlite") for i in range(PROCESSES)]
    with mock_serving(policy_path, KEYS) as (url, mock_log):
        processes = [
            spawn.Process(target=replica, args=(i, str(policy_path), url, ledgers[i], shared, out))
            for i in range(PROCESSES)
        ]
        try:
            for process in processes:
                process.start()
            for _ in range(PROCESSES):
                assert shared["ready"].acquire(timeout=25), "a replica did not start"
            shared["go"].set()
            _until("the mock answered 100 calls", lambda: mock_log.statuses["200"] >= 100)
            redis_server.kill()
            _until(
                "40 calls were refused for the store", lambda: shared["store_errors"].value >= 40
            )
            shared["phase"].value = 3
            redis_server.start()
            # Enough calls after the restart for both limits to be reached (600 a replica at
            # most).
            _until("2,400 calls after the restart", lambda: shared["after"].value >= 2_400)
            shared["stop"].set()
            results = [out.get(timeout=60) for _ in processes]
            for process in processes:
                process.join(10)
        finally:
            shared["stop"].set()
            for process in processes:
                if process.is_alive():
                    process.kill()
    try:
        assert not [r["failed"] for r in results if "failed" in r]
        tally: Counter[str] = Counter()
        for result in results:
            tally.update(result["tally"])
        assert not [k for k in tally if "error:" in k], tally
        assert tally["chat refused:store_error"] + tally["notes refused:store_error"] >= 40
        assert max(r["slowest"] for r in results) < 20.0  # nothing hung (loose: a busy machine)
        # The provider's limit held across the restart: no 429, and at most the day's 300.
        # A take Redis applied whose answer the kill cut off counts as used but was refused
        # (store_error): the safe side, so a few of the 300 may go unused.
        assert mock_log.statuses["429"] == 0
        assert tally["chat 429"] + tally["notes 429"] == 0, tally
        assert RPD - tally["chat refused:store_error"] <= tally["chat ok"] <= RPD, tally
        # The budget: never passed. What the store counts (settled and still held) reached it
        # within one call's estimate; the ledgers' sum is below that by the holds whose
        # settlement the kill cut off (leased: they come back when their lease ends).
        rows = [read_ledger(path) for path in ledgers]
        notes = [r[(r["domain"] == "notes") & (r["outcome"] == "ok")] for r in rows]
        costs = [float(c) for frame in notes for c in frame["cost_usd"]]
        assert len(costs) == tally["notes ok"] > 0
        estimate = max(costs)
        spent_by_ledgers = sum(costs)
        # Every call is in a ledger, refusals included.
        assert sum(len(r) for r in rows) == sum(tally.values())
        config = compile_policy(load_policy(policy_path).policy)
        store = RedisStore.from_url(redis_server.url, namespace=NAMESPACE)
        try:
            spent = BudgetBook(config.budgets, store).spent(0, time.time())
            # The 720 h window forgets spend as the test runs: a few millionths of a dollar.
            forgotten = BUDGET_USD / (720 * 3600) * (time.monotonic() - begun)
            assert BUDGET_USD - estimate - forgotten - 1e-9 < spent <= BUDGET_USD + 1e-12
            assert spent_by_ledgers <= spent + forgotten + 1e-9
            stuck = round((spent - spent_by_ledgers) / estimate)
            assert stuck <= tally["notes refused:store_error"] + PROCESSES * THREADS
        finally:
            store.close()
    finally:
        redis_server.kill()
