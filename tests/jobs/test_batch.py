"""Batch jobs against the mock server's Batch API, through the real openai client."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from keypolicy.ledger import read_ledger
from keypolicy.mock import MockServer
from keypolicy.runtime import FakeClock, Runtime
from tests.jobs.conftest import CANARIES, KEYS, chat, looked, wait_until


def test_batch_jobs_gathered_in_one_file_and_mapped_back(
    mock: Callable[..., MockServer],
    runtime: Callable[..., Runtime],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # openai's, httpx2's and the mock's logs too
    server = mock()
    rt = runtime(server)
    jobs = [rt.defer("financial", "chat.completions", chat(f"Bill visit {i}")) for i in range(5)]
    assert {j.status for j in jobs} <= {"waiting", "running"}
    wait_until(lambda: rt._worker is not None and rt._worker._batches.held == 5, "gathered")
    assert not server.state.batches._jobs  # gathering: nothing sent before gather_s
    clock.advance(61)
    # One file per key the engine chose (the pool takes turns: office-a, office-b, ...).
    wait_until(lambda: len(server.state.batches._jobs) == 2, "a batch per key created")
    wait_until(lambda: not rt._job_store.find(["waiting"]), "every job in a batch")
    batches = {b.key: b.requests for b in rt._job_store.batches()}
    assert batches == {"office-a": 3, "office-b": 2}
    clock.advance(3600)  # the batch's time (--batch-delay), then a poll
    wait_until(lambda: all(j.refresh().record.ended for j in jobs), "every job ended", 30)
    assert [j.status for j in jobs] == ["done"] * 5
    first = jobs[0]
    assert first.result is not None
    assert first.result["object"] == "chat.completion"
    assert first.cost_usd > 0
    rt.ledger.flush()
    ledger = read_ledger(rt.ledger.path)
    assert sorted(ledger["request_id"]) == sorted(j.id for j in jobs)
    assert ledger["batch"].all()
    assert ledger["deferred"].all()
    assert (ledger["outcome"] == "ok").all()
    assert ledger["cost_usd"].sum() == pytest.approx(sum(j.cost_usd for j in jobs))
    # At batch prices: half of what the same tokens cost live.
    price = rt.engine.config.prices["gpt-4o-mini"]
    for row in ledger.itertuples():
        live = row.prompt_tokens * price.input + row.completion_tokens * price.output
        assert row.cost_usd == pytest.approx(live / 2)
    shown = caplog.text + "".join(repr(j) + str(j.record) for j in jobs)
    assert "/v1/files" in caplog.text  # the Batch API calls were logged (and looked at)
    assert all(canary not in shown for canary in CANARIES)  # no key's secret anywhere


def test_a_batch_past_its_window_expires_its_jobs_with_the_reason(
    mock: Callable[..., MockServer], runtime: Callable[..., Runtime], clock: FakeClock
) -> None:
    server = mock(batch_delay=30 * 3600.0)  # longer than the 24 h window: the batch expires
    rt = runtime(server)
    job = rt.defer("financial", "chat.completions", chat())
    looked(rt)
    clock.advance(61)
    wait_until(lambda: len(server.state.batches._jobs) == 1, "the batch created")
    looked(rt)
    clock.advance(86400)
    job.wait(20)
    assert job.status == "expired"
    assert job.error is not None
    assert job.error["reason"] == "batch_expired"
    assert "completion window expired" in job.error["message"]
    rt.ledger.flush()
    ledger = read_ledger(rt.ledger.path)
    assert list(ledger["request_id"]) == [job.id]
    assert ledger["outcome"].iloc[0] == "error"
    assert ledger["cost_usd"].iloc[0] == 0


def test_files_stay_within_the_batch_queue_limit(
    mock: Callable[..., MockServer], runtime: Callable[..., Runtime], clock: FakeClock
) -> None:
    # Tier 1 holds 90,000 enqueued gpt-4o prompt tokens. A prompt of 30,000 words is 30,000
    # tokens, 37,500 as the provider estimates them (150,000 characters): two fit, a third
    # waits for the first batch to end; a job of 100,000 words can never fit.
    server = mock()
    rt = runtime(server)
    big = {**chat("word " * 30_000, max_tokens=10), "model": "gpt-4o"}
    jobs = [rt.defer("financial", "chat.completions", big) for _ in range(3)]
    huge = rt.defer(
        "financial",
        "chat.completions",
        {**chat("word " * 100_000, max_tokens=10), "model": "gpt-4o"},
    )
    looked(rt)
    clock.advance(61)
    huge.wait(20)
    assert huge.status == "failed"
    assert huge.error is not None
    assert huge.error["reason"] == "batch_queue_full"
    # The pool takes turns: the first and third on office-a (80,000 tokens: one file), the
    # second on office-b, which must wait for room.
    wait_until(lambda: len(server.state.batches._jobs) == 1, "the first batch created")
    looked(rt)
    assert len(server.state.batches._jobs) == 1
    assert [b.tokens for b in rt._job_store.batches()] == [2 * 37_500]
    clock.advance(3600)  # the first batch ends: room for the second job
    wait_until(lambda: len(server.state.batches._jobs) == 2, "the second batch created")
    looked(rt)
    clock.advance(3600)
    for job in jobs:
        job.wait(20)
    assert [j.status for j in jobs] == ["done"] * 3
    assert all(b.status == "completed" for b in server.state.batches._jobs.values())


def test_a_batch_whose_worker_died_creating_it_is_found_by_its_metadata(
    mock: Callable[..., MockServer], runtime: Callable[..., Runtime], clock: FakeClock
) -> None:
    """A worker recorded the batch (``creating``), uploaded its file and created it, and died
    before it wrote the batch's id: the next worker finds it by its metadata instead of
    creating it again."""
    import openai

    from keypolicy.jobs.model import BatchRow

    server = mock()
    rt = runtime(server, jobs_worker=False)
    job = rt.defer("financial", "chat.completions", chat())
    store, _ = rt._jobs_queue()
    dead = "gone-host/1/000000"
    now = clock.now()
    [claimed] = store.claim(dead, "batch", ["financial"], now, now + 60, 10)
    row = BatchRow(
        "kpb_dead",
        dead,
        now + 60,
        "office-a",
        "office",
        "gpt-4o-mini",
        "chat.completions",
        "creating",
        now,
        10,
        1,
        next_poll=now + 30,
        interval=30,
    )
    store.add_batch(row, [claimed.id])
    client = openai.OpenAI(api_key=KEYS["JOBS_TEST_KEY_A"], base_url=server.url + "/v1")
    line = json.dumps(
        {
            "custom_id": job.id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {**chat(), "model": "gpt-4o-mini"},
        }
    )
    upload = client.files.create(file=("x.jsonl", line.encode()), purpose="batch")
    client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"keypolicy_batch": "kpb_dead"},
    )
    rt.close()
    clock.advance(120)  # the dead worker's lease ends (another host: only its lease tells)
    again = runtime(server)
    found = again.job(job.id)
    assert found is not None
    looked(again)
    clock.advance(3600)
    found.wait(20)
    assert found.status == "done"
    assert len(server.state.batches._jobs) == 1  # found, not created again
    again.ledger.flush()
    assert list(read_ledger(again.ledger.path)["request_id"]) == [job.id]


def test_responses_and_embeddings_go_in_files_of_their_own(
    mock: Callable[..., MockServer], runtime: Callable[..., Runtime], clock: FakeClock
) -> None:
    server = mock()
    rt = runtime(server)
    asked = rt.defer("financial", "responses", {"input": "Code visit 3", "max_output_tokens": 60})
    embedded = rt.defer("financial", "embeddings", {"model": "gpt-4o-mini", "input": "visit 3"})
    looked(rt)
    clock.advance(61)
    wait_until(lambda: len(server.state.batches._jobs) == 2, "a batch per endpoint")
    assert {b.endpoint for b in server.state.batches._jobs.values()} == {
        "/v1/responses",
        "/v1/embeddings",
    }
    looked(rt)
    clock.advance(3600)
    asked.wait(20)
    embedded.wait(20)
    assert asked.status == "done"
    assert embedded.status == "done"
    assert asked.result is not None
    assert asked.result["object"] == "response"
    assert asked.cost_usd > 0
