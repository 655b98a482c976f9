"""The runtime refuses, before sending, what the API would refuse as invalid (``PolicyRejected``
saying what to change; nothing reaches the provider), and sends dated snapshots by name."""

from __future__ import annotations

import logging

import openai
import pytest

from keypolicy import PolicyRejected
from tests.runtime.conftest import Start, ledger_rows, mock_requests

HELLO = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"max_tokens": 20_000}, "max_tokens 20,000 is above gpt-4o's output cap of 16,384"),
        ({"max_completion_tokens": -1}, "max_tokens is -1: it must be at least 1"),
        (
            {"messages": [{"role": "user", "content": "word " * 125_000}], "max_tokens": 16_000},
            "above gpt-4o's context window of 128,000",
        ),
    ],
)
def test_an_invalid_call_is_refused_and_never_sent(
    start: Start, captured: list[logging.LogRecord], kwargs: dict[str, object], says: str
) -> None:
    runtime, _ = start()
    call: dict[str, object] = {"model": "gpt-4o", "messages": HELLO, **kwargs}
    with pytest.raises(PolicyRejected) as refused:
        runtime.openai("diagnosis").chat.completions.create(**call)  # type: ignore[call-overload]
    error = refused.value
    assert error.reason == "invalid_request"
    assert says in error.detail
    assert "OpenAI would refuse it with a 400" in error.message  # what to change
    assert mock_requests(captured) == 0
    rows = ledger_rows(runtime)
    assert list(rows.outcome) == ["rejected"]
    assert rows.reason[0].startswith("invalid_request: ")
    assert (rows.attempts[0], rows.key[0]) == (0, "")


def test_a_dated_snapshot_goes_out_by_its_name(
    start: Start, captured: list[logging.LogRecord]
) -> None:
    runtime, _ = start()
    answer = runtime.openai("diagnosis").chat.completions.create(
        model="gpt-4o-2024-08-06", messages=HELLO, max_tokens=20
    )
    assert answer.model == "gpt-4o-2024-08-06"
    assert mock_requests(captured) == 1
    rows = ledger_rows(runtime)
    assert list(rows.outcome) == ["ok"]
    assert (rows.model[0], rows.requested_model[0], rows.project[0]) == (
        "gpt-4o-2024-08-06",
        "gpt-4o-2024-08-06",
        "clinical",
    )
    with pytest.raises(PolicyRejected) as other:
        runtime.openai("diagnosis").chat.completions.create(
            model="gpt-4.1-2025-04-14", messages=HELLO, max_tokens=20
        )
    assert other.value.reason == "model_not_allowed"


def test_max_tokens_0_gets_the_providers_own_400_once(
    start: Start, captured: list[logging.LogRecord]
) -> None:
    runtime, _ = start()
    with pytest.raises(openai.BadRequestError) as refused:
        runtime.openai("diagnosis").chat.completions.create(
            model="gpt-4o", messages=HELLO, max_tokens=0
        )
    assert (refused.value.code, refused.value.param) == ("integer_below_min_value", "max_tokens")
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert mock_requests(captured) == 1  # not retried: a 400 stays a 400
    rows = ledger_rows(runtime)
    assert list(rows.outcome) == ["rejected"]
    assert rows.reason[0].startswith("client_error: ")
