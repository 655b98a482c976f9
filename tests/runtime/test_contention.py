"""Many callers at once: threads and tasks, bursts past a limit, priorities, budgets, faults."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from keypolicy import PolicyRejected
from keypolicy.runtime import FakeClock
from tests.runtime.conftest import (
    POLICY,
    Start,
    assert_no_canary,
    ledger_rows,
    mock_requests,
    wait_until,
)

MESSAGES = [{"role": "user", "content": "Is this dose safe for a child of 20 kg?"}]


def _all_at_once(count: int, call: Callable[[], Any]) -> list[Any]:
    """Run ``call`` on ``count`` threads released together; each result or exception."""
    gate = threading.Barrier(count)

    def one() -> Any:
        gate.wait()
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: one(), range(count)))


def test_a_burst_of_100_on_5_a_minute_sends_exactly_5_and_refuses_95(
    start: Start, captured: list[logging.LogRecord]
) -> None:
    clock = FakeClock()
    runtime, _ = start(clock=clock)
    client = runtime.openai("urgent")  # critical: may use all 5 requests a minute
    results: list[Any] = []
    burst = threading.Thread(
        target=lambda: results.extend(
            _all_at_once(
                100,
                lambda: client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, max_tokens=10
                ),
            )
        )
    )
    burst.start()
    wait_until(lambda: len(runtime.engine.waiting()) == 95, "95 callers queued behind the limit")
    clock.advance(5.5)  # past the critical class's max_wait of 5s; one refill is 12s away
    burst.join(30)
    answered = [r for r in results if isinstance(r, openai.types.chat.ChatCompletion)]
    refused = [r for r in results if isinstance(r, PolicyRejected)]
    assert (len(answered), len(refused)) == (5, 95)
    assert {r.reason for r in refused} == {"max_wait"}
    assert all("max_wait" in str(r) and "waited" in str(r) for r in refused)
    assert mock_requests(captured) == 5  # exactly 5 reached the provider...
    assert not [r for r in captured if "-> 429" in r.getMessage()]  # ...and none was refused
    rows = ledger_rows(runtime)
    assert len(rows) == 100
    assert sorted(rows.outcome.value_counts().items()) == [("ok", 5), ("rejected", 95)]
    assert_no_canary(*(r.getMessage() for r in captured), *refused)


def test_200_threads_at_once_all_served_and_recorded(
    start: Start, captured: list[logging.LogRecord]
) -> None:
    runtime, _ = start()
    client = runtime.openai("chat")
    results = _all_at_once(
        200,
        lambda: client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=8
        ),
    )
    assert all(isinstance(r, openai.types.chat.ChatCompletion) for r in results), [
        r for r in results if isinstance(r, Exception)
    ][:3]
    rows = ledger_rows(runtime)
    assert len(rows) == 200
    assert rows.request_id.is_unique
    assert set(rows.outcome) == {"ok"}
    assert sorted(rows.completion_tokens) == sorted(r.usage.completion_tokens for r in results)
    assert runtime.engine.waiting() == []
    assert_no_canary(*(r.getMessage() for r in captured))


def test_1000_tasks_at_once_all_served_and_recorded(start: Start) -> None:
    runtime, _ = start()

    async def main() -> int:
        client = runtime.async_openai("chat")
        answers = await asyncio.gather(
            *[
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=8)
                for _ in range(1000)
            ]
        )
        await client.close()
        return sum(a.usage.completion_tokens for a in answers if a.usage)

    completion = asyncio.run(main())
    rows = ledger_rows(runtime)
    assert len(rows) == 1000
    assert set(rows.outcome) == {"ok"}
    assert rows.completion_tokens.sum() == completion


def test_critical_is_served_before_background_under_contention(start: Start) -> None:
    clock = FakeClock()
    runtime, _ = start(clock=clock)
    background = runtime.openai("burst")
    urgent = runtime.openai("urgent")

    def ask(client: openai.OpenAI) -> Any:
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)

    for _ in range(5):  # the pool's whole minute: 5 requests
        ask(urgent)
    clock.advance(10.0)  # 0.83 of a request refilled
    with ThreadPoolExecutor(4) as pool:
        late = [pool.submit(ask, background) for _ in range(3)]
        wait_until(lambda: len(runtime.engine.waiting()) == 3, "background queued first")
        first = pool.submit(ask, urgent)
        wait_until(lambda: len(runtime.engine.waiting()) == 4, "the critical call queued")
        clock.advance(2.5)  # one request refilled: the critical call takes it (max_wait 5s)
        assert first.result(10).usage is not None
        clock.advance(24.0)  # background needs 2 free (1 + the 20% reserve)
        assert late[0].result(10).usage is not None
        clock.advance(31.0)  # the rest wait past the background class's max_wait of 30s
        assert all(isinstance(f.exception(10), PolicyRejected) for f in late[1:])
    rows = ledger_rows(runtime)
    served = rows[rows.outcome == "ok"].sort_values("started")
    assert list(served.domain[5:]) == ["urgent", "burst"]
    asked = [int(rid.rsplit("-", 1)[1]) for rid in served.request_id[5:]]
    assert asked[0] > asked[1]  # asked last, served first


def test_a_budget_holds_under_concurrency(start: Start) -> None:
    policy = POLICY + (
        "budgets:\n"
        "  chat-tiny:\n"
        "    applies_to: {domain: chat}\n"
        "    usd: $0.0005\n"
        "    on_exhausted: reject\n"
    )
    runtime, _ = start(policy=policy)
    client = runtime.openai("chat")
    results = _all_at_once(
        60,
        lambda: client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=200
        ),
    )
    refused = [r for r in results if isinstance(r, PolicyRejected)]
    assert refused, "the budget never ran out"
    assert {r.reason for r in refused} == {"budget"}
    assert "chat-tiny" in str(refused[0])
    rows = ledger_rows(runtime)
    assert rows.cost_usd.sum() <= 0.0005
    assert set(rows.outcome) == {"ok", "budget_exhausted"}


def test_upstream_429s_are_the_policys_to_retry_never_the_clients(
    start: Start, captured: list[logging.LogRecord]
) -> None:
    # The provider allows 6 requests a minute where the policy declares 100,000, and the
    # policy tries once: 30 calls at once meet 24 upstream 429s, which the caller sees as
    # openai's RateLimitError, marked so that no client retries them.
    clock = FakeClock()
    runtime, _ = start(
        clock=clock,
        policy=POLICY.replace("max_attempts: 3", "max_attempts: 1"),
        limits=("roomy/gpt-4o-mini:rpm=6",),
    )
    client = runtime.openai("chat")
    results = _all_at_once(
        30,
        lambda: client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
        ),
    )
    rows = ledger_rows(runtime)
    assert sorted(rows.outcome.value_counts().items()) == [("ok", 6), ("upstream_429", 24)]
    assert rows.attempts.sum() == mock_requests(captured) == 30
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 24
    assert all(isinstance(e, openai.RateLimitError) for e in errors)
    assert all(e.response.headers["x-should-retry"] == "false" for e in errors)
    # The engine learnt the provider's real limit from the answers' headers.
    learnt = [runtime.engine.bucket(i) for i in range(len(runtime.engine.config.buckets))]
    assert any(b.owner == "roomy" and b.dimension == "rpm" and b.capacity == 6 for b in learnt)


def test_5xx_are_retried_by_the_policy(start: Start, captured: list[logging.LogRecord]) -> None:
    runtime, _ = start(error_rate=0.4, seed=3)
    client = runtime.openai("chat")
    results = _all_at_once(
        40,
        lambda: client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
        ),
    )
    rows = ledger_rows(runtime)
    assert (rows.attempts > 1).any()
    assert rows.attempts.sum() == mock_requests(captured)
    assert rows.attempts.max() <= 3  # retry.max_attempts
    failed = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(e, openai.InternalServerError) for e in failed)
    assert len(failed) == (rows.outcome == "error").sum()


def test_an_unreachable_provider_ends_as_a_connection_error_after_the_policys_attempts(
    policy_path: Any, keys: dict[str, str], tmp_path: Any
) -> None:
    from keypolicy import Runtime
    from keypolicy.mock.server import bind

    sock = bind("127.0.0.1", 0)  # a port nobody serves once closed
    port = sock.getsockname()[1]
    sock.close()
    with Runtime.from_file(
        policy_path, ledger=tmp_path / "u.sqlite", base_url=f"http://127.0.0.1:{port}/v1"
    ) as runtime:
        with pytest.raises(openai.APIConnectionError):
            runtime.openai("chat").chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
            )
        row = ledger_rows(runtime).iloc[0]
    assert (row.outcome, row.attempts) == ("error", 3)


def test_a_caller_that_gives_up_while_queued_cancels_and_is_recorded(start: Start) -> None:
    clock = FakeClock()
    runtime, _ = start(clock=clock)

    async def main() -> None:
        client = runtime.async_openai("urgent")
        for _ in range(5):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
            )
        waiting = asyncio.create_task(
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
        )
        while not runtime.engine.waiting():
            await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await client.close()

    asyncio.run(main())
    rows = ledger_rows(runtime)
    assert len(rows) == 6
    last = rows.iloc[-1]
    assert last.outcome == "rejected"
    assert last.reason.startswith("cancelled")
    assert runtime.engine.waiting() == []


def test_a_queue_domain_waits_for_its_window_and_never_past_its_deadline(start: Start) -> None:
    # The fake clock starts at 2026-11-18 11:06:40 UTC: sched's window opens 200s later, late's
    # only after its deadline.
    policy = POLICY.replace(
        "  chat: {pool: roomy, priority: background, model: gpt-4o-mini}",
        "  chat: {pool: roomy, priority: background, model: gpt-4o-mini}\n"
        "  sched:\n"
        "    pool: roomy\n"
        "    priority: background\n"
        "    model: gpt-4o-mini\n"
        "    defer: {mode: queue, windows: ['11:10-12:00'], deadline: 30m}\n"
        "  late:\n"
        "    pool: roomy\n"
        "    priority: background\n"
        "    model: gpt-4o-mini\n"
        "    defer: {mode: queue, windows: ['12:00-13:00'], deadline: 30m}",
    )
    clock = FakeClock(1_795_000_000.0)
    runtime, _ = start(clock=clock, policy=policy)
    with pytest.raises(PolicyRejected, match="deferral deadline") as refused:
        runtime.openai("late").chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
        )
    assert refused.value.reason == "deadline"
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            runtime.openai("sched").chat.completions.create,
            model="gpt-4o-mini",
            messages=MESSAGES,
            max_tokens=5,
        )
        wait_until(lambda: runtime.pending_calls == 1, "the call parked")
        clock.advance(201.0)  # 11:10:01
        assert waiting.result(10).usage is not None
    rows = ledger_rows(runtime)
    assert list(rows.outcome) == ["rejected", "ok"]
    assert bool(rows.deferred.iloc[1])
    assert rows.wait_s.iloc[1] == pytest.approx(201.0)


def test_an_exhausted_quota_is_never_retried(
    start: Start, captured: list[logging.LogRecord]
) -> None:
    runtime, _ = start(quota_rate=1.0)
    with pytest.raises(openai.RateLimitError) as refused:
        runtime.openai("chat").chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
        )
    assert refused.value.code == "insufficient_quota"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert mock_requests(captured) == 1
    row = ledger_rows(runtime).iloc[0]
    assert (row.outcome, row.attempts) == ("error", 1)
    assert row.reason.startswith("quota")
