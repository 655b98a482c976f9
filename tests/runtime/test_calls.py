"""Live calls through the runtime to the mock server, with the real openai client."""

from __future__ import annotations

import asyncio
import gc
import logging

import openai
import pytest

from keypolicy import PolicyRejected
from keypolicy.runtime import FakeClock
from tests.runtime.conftest import (
    Start,
    assert_no_canary,
    ledger_rows,
    mock_requests,
    wait_until,
)

MESSAGES = [{"role": "user", "content": "Summarise the patient's history in two lines."}]


def test_a_sync_call_goes_out_on_the_domains_key_and_ends_as_one_record(start: Start) -> None:
    runtime, _ = start()
    client = runtime.openai("diagnosis")
    assert isinstance(client, openai.OpenAI)
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=60)
    assert answer.usage is not None
    rows = ledger_rows(runtime)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row.domain, row.key, row.project, row.model) == (
        "diagnosis",
        "clinical",
        "clinical",
        "gpt-4o",
    )
    assert (row.outcome, row.attempts, row.priority) == ("ok", 1, "critical")
    assert row.prompt_tokens == answer.usage.prompt_tokens
    assert row.completion_tokens == answer.usage.completion_tokens
    assert row.cost_usd > 0
    assert row.requested_model == "gpt-4o"
    assert row.requested_max_tokens == 60
    assert row.requested_prompt_tokens > 0
    assert not row.usage_estimated


def test_async_calls_go_out_concurrently_over_the_pool(start: Start) -> None:
    runtime, _ = start()

    async def main() -> list[int]:
        client = runtime.async_openai("chat")
        answers = await asyncio.gather(
            *[
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, max_tokens=20
                )
                for _ in range(50)
            ]
        )
        await client.close()
        return [a.usage.completion_tokens for a in answers if a.usage]

    completions = asyncio.run(main())
    rows = ledger_rows(runtime)
    assert len(rows) == 50
    assert sorted(rows.completion_tokens) == sorted(completions)
    assert set(rows["key"]) == {"roomy-a", "roomy-b"}  # round robin over the pool


def test_a_queued_async_call_waits_without_blocking_the_event_loop(start: Start) -> None:
    clock = FakeClock()
    runtime, _ = start(clock=clock)

    async def main() -> None:
        # 5 requests a minute, of which this background domain may use 4 (20% is reserved)
        client = runtime.async_openai("burst")
        first = [
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
            )
            for _ in range(4)
        ]
        assert len(first) == 4
        sixth = asyncio.create_task(
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
        )
        while not runtime.engine.waiting():  # the loop runs while the sixth waits its turn
            await asyncio.sleep(0)
        for _ in range(100):
            await asyncio.sleep(0)
        assert not sixth.done()
        clock.advance(12.5)  # one request's worth of refill at 5 a minute, and a bit
        answer = await sixth
        assert answer.usage is not None
        await client.close()

    asyncio.run(main())
    rows = ledger_rows(runtime)
    assert list(rows.outcome) == ["ok"] * 5
    assert rows.wait_s.max() == pytest.approx(12.5)


def test_a_stream_settles_on_its_usage_and_hides_the_chunk_keypolicy_asked_for(
    start: Start,
) -> None:
    runtime, _ = start()
    client = runtime.openai("chat")
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=40, stream=True
        )
    )
    assert all(c.choices for c in chunks)  # no usage-only chunk the caller did not ask for
    asked = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            max_tokens=40,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert asked[-1].usage is not None
    assert not asked[-1].choices
    rows = ledger_rows(runtime)
    assert list(rows.outcome) == ["ok", "ok"]
    assert not rows.usage_estimated.any()
    assert rows.completion_tokens.iloc[1] == asked[-1].usage.completion_tokens
    assert (rows.completion_tokens > 0).all()


def test_a_stream_abandoned_half_read_settles_on_an_estimate(start: Start) -> None:
    runtime, _ = start()
    client = runtime.openai("chat")
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=200, stream=True
    )
    for _ in zip(range(3), stream, strict=False):
        pass
    stream.close()
    rows = ledger_rows(runtime)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row.outcome == "ok"
    assert row.usage_estimated
    assert "closed the stream" in row.reason
    assert runtime.engine.request_state(row.request_id) is None  # nothing left in flight


def test_responses_api_streams_and_embeddings_are_metered(start: Start) -> None:
    runtime, _ = start()

    async def main() -> None:
        client = runtime.async_openai("chat")
        stream = await client.responses.create(
            model="gpt-4o-mini", input="hello", max_output_tokens=30, stream=True
        )
        kinds = [event.type async for event in stream]
        assert kinds[-1] == "response.completed"
        await client.close()

    asyncio.run(main())
    runtime.openai("chat").embeddings.create(model="gpt-4o-mini", input="a b c")
    rows = ledger_rows(runtime)
    assert len(rows) == 2
    assert not rows.usage_estimated.any()


def test_calls_the_policy_refuses_raise_policy_rejected_with_a_reason(start: Start) -> None:
    runtime, _ = start()
    with pytest.raises(PolicyRejected) as refused:
        runtime.openai("chat").chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=5
        )
    assert refused.value.reason == "model_not_allowed"
    assert "domains.chat.models" in str(refused.value)
    assert isinstance(refused.value, openai.OpenAIError)
    with pytest.raises(PolicyRejected, match="Batch API") as batch:
        runtime.openai("billing").chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
        )
    assert batch.value.reason == "batch_domain"
    rows = ledger_rows(runtime)
    assert list(rows.outcome) == ["rejected", "rejected"]


def test_unmetered_calls_pass_through_on_the_pools_key(start: Start) -> None:
    runtime, _ = start()
    models = runtime.openai("chat").models.list()
    assert any(m.id == "gpt-4o-mini" for m in models)
    assert len(ledger_rows(runtime)) == 0


def test_a_downgrade_rewrites_the_model_on_the_wire(start: Start) -> None:
    from tests.runtime.conftest import POLICY

    policy = POLICY + (
        "budgets:\n"
        "  tiny:\n"
        "    applies_to: {domain: diagnosis}\n"
        "    usd: $0.0001\n"
        "    on_exhausted: {downgrade: gpt-4o-mini}\n"
    )
    runtime, _ = start(policy=policy)
    answer = runtime.openai("diagnosis").chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=20
    )
    assert answer.model.startswith("gpt-4o-mini")
    row = ledger_rows(runtime).iloc[0]
    assert (row.model, row.requested_model) == ("gpt-4o-mini", "gpt-4o")


def test_no_secret_in_logs_errors_reprs_or_the_ledger(
    start: Start, captured: list[logging.LogRecord]
) -> None:
    runtime, _ = start(error_rate=0.3)
    client = runtime.openai("chat")
    errors: list[BaseException] = []
    for _ in range(20):
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
        except openai.OpenAIError as exc:
            errors.append(exc)
    try:
        runtime.openai("chat").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    except PolicyRejected as exc:
        errors.append(exc)
    logging.getLogger("somebody.else").warning("leaking %s", "sk-canary-tight-b81e4c2f90a7")
    runtime.ledger.flush()
    assert mock_requests(captured) >= 20
    assert_no_canary(
        *(r.getMessage() for r in captured),
        *errors,
        *(repr(e) for e in errors),
        repr(runtime),
        repr(client),
        repr(runtime._keys),
        runtime.ledger.path.read_bytes(),
    )


def test_a_stream_dropped_unread_is_settled_and_recorded(start: Start) -> None:
    runtime, _ = start()
    stream = runtime.openai("chat").chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=50, stream=True
    )
    assert runtime.pending_calls == 1
    del stream  # never read, never closed
    gc.collect()
    wait_until(lambda: runtime.pending_calls == 0, "the dropped stream to be settled")
    row = ledger_rows(runtime).iloc[0]
    assert row.outcome == "ok"
    assert row.usage_estimated
    assert row.completion_tokens == 50  # what it held: the provider may have generated it all
