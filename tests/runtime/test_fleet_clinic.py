"""The clinic's own policy across four processes sharing one Redis: its pools, priorities,
reserves and budgets hold together, as in one process.

``policies/clinic-merged.yaml`` as shipped, extended by a test policy that only keeps its state
in Redis (a namespace of this test's own) and makes two of its numbers small enough to reach in
seconds: a day's limit of 150 requests on the clinical project's gpt-4o (a limit that does not
refill while the test runs, so nothing depends on the wall clock) and $0.005 a day for chat;
and its classes' waits cut to a second (calls past the limits wait that long before they are
refused).
Four spawned processes of 16 threads call diagnosis, x-ray, treatment and chat through one mock
server that enforces the same policy. The mock must never answer 429, the clinical project
must serve at most its 150 (and its critical domains must get their reserve), and chat's budget
must end within one call of its limit.
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
from tests.runtime.test_fleet import REDIS_URL, mock_serving, namespace, one_call  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, THREADS, CALLS = 4, 16, 12
RPD, CHAT_USD = 150, 0.005
DOMAINS = ("diagnosis", "xray", "treatment", "chat")
MODELS = {"diagnosis": "gpt-4o", "xray": "gpt-4o", "treatment": "gpt-4o", "chat": "gpt-4o-mini"}

POLICY = """\
version: 1
extends: {base}
name: clinic-fleet
state: {{url: {url}, namespace: {namespace}}}
projects:
  clinical:
    models:
      gpt-4o: {{rpm: 5_000, tpm: 800_000, rpd: {rpd}}}
budgets:
  chat-daily: {{usd: ${usd}}}
priorities:  # the clinic's classes and reserves; waits cut short, so that the test is
  - {{name: critical, reserve: 20%, max_wait: 1s}}
  - {{name: clinical, reserve: 10%, max_wait: 1s}}
  - {{name: interactive, max_wait: 1s}}
  - {{name: background, max_wait: 15m, deferrable: true}}
"""


def _keys() -> dict[str, str]:
    lines = (ROOT / "policies" / "clinic-demo.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def replica(
    index: int, policy_path: str, base_url: str, ledger: str, go: Any, ready: Any, out: Any
) -> None:
    """One replica: a Runtime and ``THREADS`` threads, each making ``CALLS`` calls over the four
    domains, once ``go`` is set. Puts its tally on ``out``."""
    try:
        out.put(_replica(policy_path, base_url, ledger, go, ready))
    except BaseException as exc:
        out.put({"index": index, "failed": f"{type(exc).__name__}: {exc}"})
        raise


def _replica(policy_path: str, base_url: str, ledger: str, go: Any, ready: Any) -> dict[str, Any]:
    from keypolicy.runtime import Runtime

    runtime = Runtime.from_file(policy_path, ledger=ledger, environ=_keys(), base_url=base_url)
    clients = {domain: runtime.openai(domain) for domain in DOMAINS}
    tally: Counter[str] = Counter()
    lock = threading.Lock()

    def calls(thread: int) -> None:
        for i in range(CALLS):
            domain = DOMAINS[(thread + i) % len(DOMAINS)]
            what = one_call(clients[domain], MODELS[domain])
            with lock:
                tally[f"{domain} {what}"] += 1

    threads = [threading.Thread(target=calls, args=(t,)) for t in range(THREADS)]
    ready.release()
    go.wait(60)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runtime.close()
    return {"tally": dict(tally)}


def test_the_clinic_policy_holds_across_four_processes(tmp_path: Path, namespace: str) -> None:  # noqa: F811
    policy_path = tmp_path / "clinic-fleet.yaml"
    policy_path.write_text(
        POLICY.format(
            base=ROOT / "policies" / "clinic-merged.yaml",
            url=REDIS_URL,
            namespace=namespace,
            rpd=RPD,
            usd=CHAT_USD,
        )
    )
    spawn = multiprocessing.get_context("spawn")
    go, ready, out = spawn.Event(), spawn.Semaphore(0), spawn.Queue()
    ledgers = [str(tmp_path / f"replica-{i}.sqlite") for i in range(PROCESSES)]
    with mock_serving(policy_path, _keys()) as (url, mock_log):
        processes = [
            spawn.Process(
                target=replica, args=(i, str(policy_path), url, ledgers[i], go, ready, out)
            )
            for i in range(PROCESSES)
        ]
        try:
            for process in processes:
                process.start()
            for _ in range(PROCESSES):
                assert ready.acquire(timeout=25), "a replica did not start"
            go.set()
            results = [out.get(timeout=120) for _ in processes]
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
    assert sum(tally.values()) == PROCESSES * THREADS * CALLS
    assert not [k for k in tally if "error:" in k or "429" in k], tally
    assert mock_log.statuses["429"] == 0
    # The clinical project's day: at most its 150, shared by the three domains of its pool;
    # treatment (class "clinical") stops at the critical reserve (20%), the critical domains
    # take the rest.
    clinical = {d: tally[f"{d} ok"] for d in ("diagnosis", "xray", "treatment")}
    assert sum(clinical.values()) == RPD, tally
    assert tally["treatment ok"] <= RPD * 0.8
    # Chat's daily budget: reached within one call's estimate, never passed.
    rows = [read_ledger(path) for path in ledgers]
    chat = [r[(r["domain"] == "chat") & (r["outcome"] == "ok")] for r in rows]
    costs = [float(c) for frame in chat for c in frame["cost_usd"]]
    assert len(costs) == tally["chat ok"] > 0
    spent = sum(costs)
    assert CHAT_USD - max(costs) < spent <= CHAT_USD + 1e-12
    assert tally["chat refused:budget"] > 0
    config = compile_policy(load_policy(policy_path).policy)
    store = RedisStore.from_url(REDIS_URL, namespace=namespace)
    try:
        index = next(i for i, b in enumerate(config.budgets) if b.name == "chat-daily")
        assert BudgetBook(config.budgets, store).spent(index, time.time()) == pytest.approx(
            spent, abs=1e-9
        )
    finally:
        store.close()
