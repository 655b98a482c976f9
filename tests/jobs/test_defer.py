"""``rt.defer()``: what it refuses at once (with the API's reason), idempotency keys, and
``rt.jobs()`` finding jobs again after a restart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keypolicy.mock import MockServer
from keypolicy.runtime import PolicyRejected, Runtime
from tests.jobs.conftest import chat


@pytest.mark.parametrize(
    ("body", "reason", "says"),
    [
        ({"messages": [], "max_tokens": 5}, "invalid_request", "Invalid 'messages': empty array"),
        (chat(max_tokens=0), "invalid_request", "Invalid 'max_tokens': integer below minimum"),
        (chat(max_tokens=20_000), "invalid_request", "above gpt-4o-mini's output cap of 16,384"),
        ({"max_tokens": 5}, "invalid_request", "Missing required parameter: 'messages'"),
        ({**chat(), "model": "gpt-4.1"}, "model_not_allowed", "may not call 'gpt-4.1'"),
    ],
)
def test_a_body_the_endpoint_would_refuse_is_refused_at_defer(
    runtime: Callable[..., Runtime], body: dict[str, Any], reason: str, says: str
) -> None:
    rt = runtime(jobs_worker=False)
    with pytest.raises(PolicyRejected) as refused:
        rt.defer("financial", "chat.completions", body)
    assert refused.value.reason == reason
    assert says in str(refused.value)
    assert rt.jobs() == []  # nothing queued


def test_a_prompt_past_the_context_window_is_refused_for_the_batch_too(
    runtime: Callable[..., Runtime],
) -> None:
    rt = runtime(jobs_worker=False)
    huge = chat("word " * 130_000, max_tokens=100)
    with pytest.raises(PolicyRejected, match="context window"):
        rt.defer("financial", "chat.completions", {**huge, "model": "gpt-4o"})


@pytest.mark.parametrize(
    ("domain", "endpoint", "body", "says"),
    [
        ("diagnosis", "chat.completions", chat(), "does not defer"),
        ("nobody", "chat.completions", chat(), "has no domain 'nobody'"),
        ("financial", "images.generate", chat(), "a job calls one of"),
        ("financial", "chat.completions", {**chat(), "stream": True}, "cannot stream"),
        ("financial", "chat.completions", ["not", "a", "dict"], "JSON object"),
    ],
)
def test_a_job_the_policy_cannot_take_is_a_value_error(
    runtime: Callable[..., Runtime], domain: str, endpoint: str, body: Any, says: str
) -> None:
    rt = runtime(jobs_worker=False)
    with pytest.raises(ValueError, match=says):
        rt.defer(domain, endpoint, body)


def test_an_idempotency_key_returns_the_same_job(runtime: Callable[..., Runtime]) -> None:
    rt = runtime(jobs_worker=False)
    first = rt.defer("financial", "chat.completions", chat("Invoice 7"), key="invoice-7")
    again = rt.defer("financial", "chat.completions", chat("Invoice 7"), key="invoice-7")
    assert again.id == first.id
    assert len(rt.jobs()) == 1
    with pytest.raises(ValueError, match="another body"):
        rt.defer("financial", "chat.completions", chat("Invoice 8"), key="invoice-7")


def test_jobs_are_found_again_after_a_restart(
    mock: Callable[..., MockServer], runtime: Callable[..., Runtime]
) -> None:
    server = mock()
    before = runtime(server, jobs_worker=False)
    made = [before.defer("scheduling", "chat.completions", chat(f"slot {i}")) for i in range(3)]
    made.append(before.defer("financial", "chat.completions", chat("bill")))
    before.close()
    after = runtime(server, jobs_worker=False)
    assert [j.id for j in after.jobs()] == [j.id for j in made]
    assert [j.id for j in after.jobs(domain="financial")] == [made[-1].id]
    assert len(after.jobs(status="waiting")) == 4
    assert after.jobs(status=["done", "failed"]) == []
    with pytest.raises(ValueError, match="no job status"):
        after.jobs(status="finished")
