"""Live jobs (defer: queue): run through the engine when the policy allows, inside their
windows (policy time zone, across DST), expired past their deadline; on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from keypolicy.ledger import read_ledger
from keypolicy.mock import MockServer
from keypolicy.runtime import FakeClock, Runtime
from tests.jobs.conftest import CANARIES, START, chat, looked

NEW_YORK = ZoneInfo("America/New_York")


def _at(text: str) -> float:
    """Epoch seconds of a New York wall time (``2026-10-31 12:00``)."""
    return datetime.fromisoformat(text).replace(tzinfo=NEW_YORK).timestamp()


def test_a_queue_job_runs_as_a_live_call_and_is_in_the_ledger_once(
    mock: Callable[..., MockServer], runtime: Callable[..., Runtime]
) -> None:
    rt = runtime(mock())
    job = rt.defer("scheduling", "chat.completions", chat("Remind Ms Diaz of Tuesday"))
    job.wait(20)
    assert job.status == "done", job.error
    assert job.result is not None
    assert job.result["choices"]
    rt.ledger.flush()
    ledger = read_ledger(rt.ledger.path)
    row = ledger[ledger["request_id"] == job.id]
    assert len(row) == 1
    assert len(ledger) == 1
    assert row["outcome"].iloc[0] == "ok"
    assert bool(row["deferred"].iloc[0])
    assert not bool(row["batch"].iloc[0])
    assert row["cost_usd"].iloc[0] == job.cost_usd > 0
    assert row["key"].iloc[0] in ("office-a", "office-b")
    assert all(c not in repr(job) + str(job.record) for c in CANARIES)


def test_a_job_outside_its_windows_waits_for_them(
    mock: Callable[..., MockServer], runtime: Callable[..., Runtime], clock: FakeClock
) -> None:
    rt = runtime(mock())
    job = rt.defer("nightly", "chat.completions", chat())  # 06:06 New York; window 01:00-05:00
    clock.advance(3600)
    clock.advance(10 * 3600)  # 17:06
    looked(rt)
    assert job.status == "waiting"
    clock.advance(_at("2026-11-19 01:00") - clock.now())
    job.wait(20)
    assert job.status == "done"
    assert job.record.finished is not None
    assert job.record.finished >= _at("2026-11-19 01:00")


def test_a_job_whose_windows_open_past_its_deadline_expires_with_the_reason(
    mock: Callable[..., MockServer], runtime: Callable[..., Runtime]
) -> None:
    rt = runtime(mock())
    job = rt.defer("reminders", "chat.completions", chat())  # 19:00 is 13 h away; deadline 4 h
    job.wait(20)
    assert job.status == "expired"
    assert job.error is not None
    assert job.error["reason"] == "deadline"
    assert "windows do not open again before its deadline" in job.error["message"]
    rt.ledger.flush()
    ledger = read_ledger(rt.ledger.path)
    assert list(ledger["request_id"]) == [job.id]
    assert ledger["outcome"].iloc[0] == "rejected"
    assert ledger["reason"].iloc[0].startswith("deadline:")


def test_a_job_left_waiting_past_its_deadline_expires_when_a_worker_looks(
    mock: Callable[..., MockServer], runtime: Callable[..., Runtime], clock: FakeClock
) -> None:
    server = mock()
    deferring = runtime(server, jobs_worker=False)  # the service defers; no worker runs here
    job = deferring.defer("scheduling", "chat.completions", chat())
    clock.advance(2 * 3600 + 1)  # past its 2 h deadline
    deferring.close()
    worker = runtime(server)  # restarted: unfinished jobs start the worker at once
    assert worker._worker is not None
    found = worker.job(job.id)
    assert found is not None
    found.wait(20)
    assert found.status == "expired"
    assert found.error is not None
    assert "deadline passed" in found.error["message"]


@pytest.mark.parametrize(
    ("deferred", "opens"),
    [
        # Fall back: 01:00 comes twice on 1 November; the window opens at the first.
        ("2026-10-31 12:00", "2026-11-01 01:00"),
        # Spring forward: 8 March has no 02:00-03:00; 01:00 comes once, an hour shorter night.
        ("2026-03-07 12:00", "2026-03-08 01:00"),
    ],
)
def test_windows_follow_the_policy_time_zone_across_dst(
    mock: Callable[..., MockServer],
    runtime: Callable[..., Runtime],
    clock: FakeClock,
    deferred: str,
    opens: str,
) -> None:
    clock.advance(_at(deferred) - START)
    rt = runtime(mock())
    job = rt.defer("nightly", "chat.completions", chat())
    clock.advance(_at(opens) - clock.now() - 1)  # a second before the window opens
    looked(rt)
    assert job.status == "waiting"
    clock.advance(1)
    job.wait(20)
    assert job.status == "done"
    assert job.record.started is not None
    assert job.record.started == pytest.approx(_at(opens))
    assert datetime.fromtimestamp(job.record.started, NEW_YORK).hour == 1


def test_a_csv_ledger_keeps_its_jobs_in_a_sqlite_file_beside_it(
    mock: Callable[..., MockServer], runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    rt = runtime(mock(), ledger=tmp_path / "usage.csv")
    job = rt.defer("scheduling", "embeddings", {"model": "gpt-4o-mini", "input": "visit 12"})
    job.wait(20)
    assert job.status == "done", job.error
    assert (tmp_path / "usage.csv.jobs.sqlite").exists()
    rt.ledger.flush()
    ledger = read_ledger(tmp_path / "usage.csv")
    assert list(ledger["request_id"]) == [job.id]
