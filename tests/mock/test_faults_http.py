"""Faults on demand, as the real openai client meets them."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import openai
import pytest

from keypolicy.mock import MockOptions, MockServer, create_app
from tests.mock.conftest import KEYS, StartMock


def call(url: str, timeout: float = 5.0) -> object:
    with openai.OpenAI(
        base_url=f"{url}/v1", api_key=KEYS["roomy"], max_retries=0, timeout=timeout
    ) as c:
        return c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "abcd"}], max_tokens=10
        )


def test_server_errors(start_mock: StartMock) -> None:
    url = start_mock(error_rate=1.0)
    statuses = set()
    for _ in range(10):
        with pytest.raises(openai.InternalServerError) as caught:
            call(url)
        statuses.add(caught.value.status_code)
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["type"] == "server_error"
    assert statuses <= {500, 502, 503}
    assert len(statuses) > 1


def test_dropped_connection(start_mock: StartMock, caplog: pytest.LogCaptureFixture) -> None:
    url = start_mock(disconnect_rate=1.0)
    with pytest.raises(openai.APIConnectionError):
        call(url)
    assert "Traceback" not in caplog.text
    assert "DroppedConnection" not in caplog.text


def test_timeout_hangs_past_the_client_timeout(start_mock: StartMock) -> None:
    url = start_mock(timeout_rate=1.0, timeout_delay=600.0)
    began = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        call(url, timeout=0.3)
    assert time.monotonic() - began < 3.0


def test_timeout_delay_is_settable(start_mock: StartMock) -> None:
    url = start_mock(timeout_rate=1.0, timeout_delay=0.05)  # ends by dropping the connection
    with pytest.raises(openai.APIConnectionError) as caught:
        call(url)
    assert not isinstance(caught.value, openai.APITimeoutError)


def test_malformed_body(start_mock: StartMock) -> None:
    url = start_mock(malformed_rate=1.0)
    with pytest.raises(json.JSONDecodeError):  # what the openai client lets through
        call(url)


def test_insufficient_quota(start_mock: StartMock) -> None:
    url = start_mock(quota_rate=1.0)
    with pytest.raises(openai.RateLimitError) as caught:
        call(url)
    assert caught.value.code == "insufficient_quota"
    assert caught.value.type == "insufficient_quota"


def test_429_without_headers(start_mock: StartMock) -> None:
    url = start_mock(bare_429_rate=1.0)
    with pytest.raises(openai.RateLimitError) as caught:
        call(url)
    assert caught.value.code == "rate_limit_exceeded"
    assert not any(h.startswith("x-ratelimit") for h in caught.value.response.headers)


def test_a_server_stops_promptly_with_a_request_hanging(
    mock_policy: Path, mock_keys: dict[str, str]
) -> None:
    options = MockOptions(latency=False, timeout_rate=1.0, timeout_delay=600.0)
    server = MockServer(create_app(mock_policy, options=options))
    url = server.start()
    errors: list[Exception] = []

    def hang() -> None:
        try:
            call(url, timeout=30.0)
        except openai.APIError as error:
            errors.append(error)

    client = threading.Thread(target=hang)
    client.start()
    deadline = time.monotonic() + 10.0  # wait (bounded) until the hanging request is in
    while server.state.provider.open_tickets == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    server.stop()
    client.join(10.0)  # the request would hang 600 s: the stop must end it, not wait for it
    assert not client.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], openai.APIConnectionError)
