"""The real openai client against the mock: what the API refuses as invalid comes back as
``openai.BadRequestError`` (an unknown model as ``NotFoundError``) with OpenAI's code, param and
words; dated snapshots are served."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.mock.conftest import KEYS

HELLO = [{"role": "user", "content": "hello"}]


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["roomy"], max_retries=0)


def _refusal(url: str, call: str, **kwargs: Any) -> openai.APIStatusError:
    with client(url) as c:
        create: Any = {
            "chat": c.chat.completions.create,
            "responses": c.responses.create,
            "embeddings": c.embeddings.create,
        }[call]
        with pytest.raises(openai.APIStatusError) as caught:
            create(**kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("call", "kwargs", "code", "param", "message"),
    [
        (
            "chat",
            {"model": "gpt-4o", "messages": HELLO, "max_tokens": 20_000},
            "invalid_value",
            "max_tokens",
            "max_tokens is too large: 20000. This model supports at most 16384 completion "
            "tokens, whereas you provided 20000.",
        ),
        (
            "chat",
            {"model": "gpt-4o-mini", "messages": HELLO, "max_completion_tokens": 16_385},
            "invalid_value",
            "max_completion_tokens",
            "max_completion_tokens is too large: 16385. This model supports at most 16384 "
            "completion tokens, whereas you provided 16385.",
        ),
        (
            "chat",
            {
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "x" * 4 * 120_000}],
                "max_tokens": 10_000,
            },
            "context_length_exceeded",
            "messages",
            "This model's maximum context length is 128000 tokens. However, you requested "
            "130000 tokens (120000 in the messages, 10000 in the completion). Please reduce the "
            "length of the messages or completion.",
        ),
        (
            "chat",
            {"model": "gpt-4o", "messages": []},
            "empty_array",
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
        ),
        (
            "chat",
            {"model": "gpt-4o", "messages": HELLO, "max_tokens": 0},
            "integer_below_min_value",
            "max_tokens",
            "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got "
            "0 instead.",
        ),
        (
            "responses",
            {"model": "gpt-4o", "input": "x" * 4 * 130_000},
            "context_length_exceeded",
            "input",
            "Your input exceeds the context window of this model. Please adjust your input and "
            "try again.",
        ),
        (
            "responses",
            {"model": "gpt-4o", "input": "hi", "max_output_tokens": 20_000},
            "invalid_value",
            "max_output_tokens",
            "max_output_tokens is too large: 20000. This model supports at most 16384 "
            "completion tokens, whereas you provided 20000.",
        ),
        (
            "responses",
            {"model": "gpt-4o", "input": "hi", "max_output_tokens": 10},
            "integer_below_min_value",
            "max_output_tokens",
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, "
            "but got 10 instead.",
        ),
        (
            "embeddings",
            {"model": "text-embedding-3-small", "input": ["x" * 4 * 9_000]},
            None,
            None,
            "This model's maximum context length is 8192 tokens, however you requested 9000 "
            "tokens (9000 in your prompt; 0 for the completion). Please reduce your prompt; or "
            "completion length.",
        ),
    ],
)
def test_invalid_requests_are_bad_request_errors(
    mock_server: str,
    call: str,
    kwargs: dict[str, Any],
    code: str | None,
    param: str | None,
    message: str,
) -> None:
    error = _refusal(mock_server, call, **kwargs)
    assert isinstance(error, openai.BadRequestError)
    assert error.status_code == 400
    assert (error.code, error.param, error.type) == (code, param, "invalid_request_error")
    assert error.body == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }
    assert error.response.headers["x-request-id"].startswith("req_")


def test_an_invalid_request_uses_no_capacity(mock_server: str) -> None:
    _refusal(mock_server, "chat", model="gpt-4o", messages=HELLO, max_tokens=20_000)
    with client(mock_server) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=HELLO, max_tokens=10
        )
    assert raw.headers["x-ratelimit-remaining-requests"] == "999"  # this call alone


def test_an_unknown_model_is_not_found(mock_server: str) -> None:
    for name in ("gpt-9", "gpt-4o-2099-01-01"):
        error = _refusal(mock_server, "chat", model=name, messages=HELLO)
        assert isinstance(error, openai.NotFoundError)
        assert (error.code, error.param) == ("model_not_found", None)
        assert error.message.endswith(
            f"The model `{name}` does not exist or you do not have access to it."
        )


def test_dated_snapshots_are_served_on_their_familys_limits(mock_server: str) -> None:
    with client(mock_server) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="gpt-4o-2024-08-06", messages=HELLO, max_tokens=10
        )
        answer = raw.parse()
        ids = [m.id for m in c.models.list()]
        retrieved = c.models.retrieve("gpt-4o-mini-2024-07-18").id
        with pytest.raises(openai.BadRequestError) as too_long:
            c.chat.completions.create(model="gpt-4o-2024-11-20", messages=HELLO, max_tokens=16_385)
    assert answer.model == "gpt-4o-2024-08-06"
    assert raw.headers["x-ratelimit-limit-tokens"] == "30000"  # the project's gpt-4o limit
    assert {"gpt-4o-2024-08-06", "gpt-4o-2024-11-20", "gpt-4o-mini-2024-07-18"} <= set(ids)
    assert retrieved == "gpt-4o-mini-2024-07-18"
    assert too_long.value.code == "invalid_value"
