"""The job queue in the fleet's PostgreSQL ledger: two runtimes' workers share it (claims with
FOR UPDATE SKIP LOCKED), and every job is in the ledger exactly once."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from keypolicy.ledger import read_ledger
from keypolicy.mock import MockServer
from keypolicy.runtime import FakeClock, Runtime
from tests.jobs.conftest import chat, looked, wait_until
from tests.services import postgres_database


@pytest.fixture
def url() -> Iterator[str]:
    with postgres_database() as made:
        yield made


def test_two_workers_share_the_queue_and_run_each_job_once(
    url: str,
    mock: Callable[..., MockServer],
    runtime: Callable[..., Runtime],
    clock: FakeClock,
) -> None:
    server = mock()
    one = runtime(server, ledger=url)
    two = runtime(server, ledger=url)
    keyed = one.defer("financial", "chat.completions", chat("invoice 9"), key="invoice-9")
    assert two.defer("financial", "chat.completions", chat("invoice 9"), key="invoice-9").id == (
        keyed.id
    )
    live = [one.defer("scheduling", "chat.completions", chat(f"slot {i}")) for i in range(30)]
    batch = [two.defer("financial", "chat.completions", chat(f"bill {i}")) for i in range(5)]
    batch.append(keyed)
    one._start_worker()
    for job in live:
        job.wait(30)
    assert {j.status for j in live} == {"done"}, [j.error for j in live if j.error]
    looked(one)
    looked(two)
    clock.advance(61)
    wait_until(lambda: not two.jobs(status="waiting"), "the batch jobs in batches")
    looked(one)
    looked(two)
    clock.advance(3600)
    for job in batch:
        job.wait(30)
    assert {j.status for j in batch} == {"done"}
    one.ledger.flush()
    frame = read_ledger(one.ledger.path)
    ids = sorted(j.id for j in live + batch)
    assert sorted(frame["request_id"]) == ids  # each job once, whichever worker ran it
    assert frame[frame["batch"]]["request_id"].nunique() == 6
    both = {r.owner for r in one._job_store.batches(open_only=False)}
    assert both  # the batches are recorded, with the worker that made each
    assert one._worker is not None
    assert two._worker is not None
    assert one._worker.ended + two._worker.ended == 36  # ended once, by one of them
    assert len(server.state.batches._jobs) == len(one._job_store.batches(open_only=False))
