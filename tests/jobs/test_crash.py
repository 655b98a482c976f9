"""A standalone worker (``keypolicy worker``) killed with SIGKILL mid-queue and mid-batch, then
restarted: every job ends exactly once in the ledger, and none is sent twice.

The worker runs in processes of its own on the wall clock, against a mock server in this
process (a tenth of a second per live call, two seconds per batch). The test waits for the
worker to get somewhere (jobs done, a batch submitted), never for time to pass.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from keypolicy.jobs.store import open_job_store
from keypolicy.ledger import read_ledger
from keypolicy.mock import MockOptions, MockServer, create_app
from keypolicy.runtime import Runtime
from tests.jobs.conftest import chat, wait_until


@pytest.fixture
def server(policy_path: Path) -> Iterator[MockServer]:
    options = MockOptions(ttft=0.1, tokens_per_second=2000, jitter=0.0, batch_delay=2.0)
    mock = MockServer(create_app(policy_path, options=options))
    mock.start()
    yield mock
    mock.stop()


@pytest.fixture
def posts() -> Iterator[list[str]]:
    """The paths of the POST requests the mock server answered."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if text.startswith("POST "):
                seen.append(text.split()[1])

    handler = Keep(logging.DEBUG)
    mock_log = logging.getLogger("keypolicy.mock")
    old = mock_log.level
    mock_log.setLevel(logging.DEBUG)
    mock_log.addHandler(handler)
    yield seen
    mock_log.removeHandler(handler)
    mock_log.setLevel(old)


_STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _no_worker_left() -> Iterator[None]:
    """A worker a failing test left running is killed."""
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            _kill(process)


def _worker(policy: Path, ledger: Path, server: MockServer, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "keypolicy",
        "worker",
        str(policy),
        "--ledger",
        str(ledger),
        "--base-url",
        server.url + "/v1",
        "--gather",
        "200ms",
        "--poll",
        "500ms",
    ]
    with log.open("ab") as out:  # a file, not a pipe: a worker never blocks on its output
        process = subprocess.Popen(command, env=dict(os.environ), stdout=out, stderr=out)
    _STARTED.append(process)
    return process


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()  # SIGKILL: no clean-up at all
    process.wait(10)  # reaped: its pid is gone, as after a crash


def _stop(process: subprocess.Popen[bytes], log: Path) -> str:
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    text = log.read_text()
    assert process.returncode == 0, text
    return text


def _defer(policy: Path, ledger: Path, domain: str, count: int) -> list[str]:
    with Runtime.from_file(policy, ledger=ledger, jobs_worker=False) as rt:
        return [rt.defer(domain, "chat.completions", chat(f"job {i}")).id for i in range(count)]


def _counts(ledger: Path) -> dict[str, int]:
    store = open_job_store(ledger)
    try:
        return store.counts()
    finally:
        store.close()


def test_killed_mid_queue_every_job_ends_once_and_none_is_sent_twice(
    policy_path: Path, keys: dict[str, str], tmp_path: Path, server: MockServer, posts: list[str]
) -> None:
    ledger = tmp_path / "usage.sqlite"
    ids = _defer(policy_path, ledger, "scheduling", 120)
    log = tmp_path / "worker.log"
    first = _worker(policy_path, ledger, server, log)
    wait_until(lambda: _counts(ledger).get("done", 0) >= 20, "20 jobs done", 60)
    _kill(first)
    left = _counts(ledger)
    assert left.get("waiting", 0) + left.get("running", 0) > 0, left  # killed mid-queue
    second = _worker(policy_path, ledger, server, log)
    wait_until(
        lambda: sum(_counts(ledger).get(s, 0) for s in ("done", "failed")) == 120,
        "every job ended",
        90,
    )
    err = _stop(second, log)
    assert "stopped; 0 waiting, 0 running" in err
    counts = _counts(ledger)
    frame = read_ledger(ledger)
    assert sorted(frame["request_id"]) == sorted(ids)  # each job once in the ledger
    interrupted = frame["reason"].str.startswith("interrupted").sum()
    assert counts.get("failed", 0) == interrupted  # only those in flight at the kill failed
    assert interrupted <= 16  # at most the worker's concurrency
    sent = posts.count("/v1/chat/completions")
    assert counts["done"] <= sent <= counts["done"] + interrupted  # never sent twice
    assert (frame[frame["outcome"] == "ok"]["cost_usd"] > 0).all()


def test_killed_mid_batch_the_batch_is_polled_again_not_sent_again(
    policy_path: Path, keys: dict[str, str], tmp_path: Path, server: MockServer
) -> None:
    ledger = tmp_path / "usage.sqlite"
    ids = _defer(policy_path, ledger, "financial", 10)
    log = tmp_path / "worker.log"
    first = _worker(policy_path, ledger, server, log)

    def submitted() -> bool:
        store = open_job_store(ledger)
        try:
            return any(b.state == "submitted" for b in store.batches())
        finally:
            store.close()

    wait_until(submitted, "a batch submitted", 60)
    _kill(first)
    assert _counts(ledger).get("done", 0) == 0  # killed while its batch runs
    second = _worker(policy_path, ledger, server, log)
    try:
        wait_until(lambda: _counts(ledger).get("done", 0) == 10, "every job done", 90)
    except AssertionError:
        raise AssertionError(log.read_text()[-5000:]) from None
    _stop(second, log)
    frame = read_ledger(ledger)
    assert sorted(frame["request_id"]) == sorted(ids)
    assert frame["batch"].all()
    assert (frame["outcome"] == "ok").all()
    store = open_job_store(ledger)
    try:
        rows = store.batches(open_only=False)
    finally:
        store.close()
    made = server.state.batches._jobs
    assert {r.batch_id for r in rows if r.batch_id} == set(made)  # each found, none unknown
    assert sum(len(b.lines) for b in made.values()) == 10  # no request sent twice
