"""Rate limits and authentication over HTTP, as the real openai client sees them."""

from __future__ import annotations

import math
import re

import httpx
import openai
import pytest

from keypolicy.upstream import request_from_body
from keypolicy.upstream.durations import go_duration
from tests.mock.conftest import CANARIES, KEYS, WRONG_KEY, StartMock

MESSAGE = re.compile(
    r"^Rate limit reached for gpt-4o-mini in organization org-mocktest on requests per min "
    r"\(RPM\): Limit 3, Used (\d+), Requested 1\. Please try again in ([0-9.hms]+)\. "
    r"Visit https://platform\.openai\.com/account/rate-limits to learn more\.$"
)
GO = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?(?:(\d+)ms)?$")


def seconds(go: str) -> float:
    """Seconds in a Go duration as the mock writes them."""
    match = GO.match(go)
    assert match, go
    h, m, s, ms = match.groups()
    return int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0) + int(ms or 0) / 1000


def chat(c: openai.OpenAI) -> int:
    """One small chat completion; its total tokens."""
    completion = c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "abcd"}], max_tokens=10
    )
    assert completion.usage is not None
    return completion.usage.total_tokens


def test_burst_over_rpm_raises_rate_limit_error(mock_server: str) -> None:
    with openai.OpenAI(base_url=f"{mock_server}/v1", api_key=KEYS["small"], max_retries=0) as c:
        tokens = sum(chat(c) for _ in range(3))
        with pytest.raises(openai.RateLimitError) as caught:
            chat(c)
    error = caught.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    assert isinstance(error.body, dict)
    assert set(error.body) == {"message", "type", "param", "code"}
    assert error.body["param"] is None
    match = MESSAGE.match(error.body["message"])
    assert match, error.body["message"]
    used, wait = int(match.group(1)), seconds(match.group(2))
    rate = 3 / 60  # requests per second
    assert used == 4  # the three, and the refused one: failed requests count (count_failed)
    # the wait is (used + requested - limit) / rate with the unrounded usage (a hair under 3)
    assert (used - 1 + 1 - 3) / rate < wait <= (used + 1 - 3) / rate + 0.001
    headers = error.response.headers
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-limit-tokens"] == "10000"
    # the three requests' charge (prompt estimate + max_tokens 10: unused tokens are not given
    # back, refund_unused) is still in the bucket, less what refilled since (166.7 tokens a
    # second: the slack allows 0.3 s for a slow machine)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "abcd"}]}
    charged = 3 * (request_from_body("p", "chat.completions", body).prompt_tokens + 10)
    assert charged > tokens  # what was charged, not what was used
    remaining = int(headers["x-ratelimit-remaining-tokens"])
    assert 10_000 - charged <= remaining <= 10_000 - charged + 50
    reset_requests = seconds(headers["x-ratelimit-reset-requests"])
    assert (used - 1) / rate < reset_requests <= used / rate + 0.001  # until empty again
    # empty again = the wait for one more request + the 2 requests the limit leaves: 40 s
    assert reset_requests == pytest.approx(wait + 2 / rate, abs=0.002)
    reset_tokens = seconds(headers["x-ratelimit-reset-tokens"])
    assert charged / (10_000 / 60) - 0.3 <= reset_tokens <= charged / (10_000 / 60) + 0.001
    assert "retry-after" not in headers
    assert go_duration(wait) == match.group(2)


def test_retry_after_when_enabled(start_mock: StartMock) -> None:
    url = start_mock(retry_after=True)
    with openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["small"], max_retries=0) as c:
        for _ in range(3):
            chat(c)
        with pytest.raises(openai.RateLimitError) as caught:
            chat(c)
    assert isinstance(caught.value.body, dict)
    match = MESSAGE.match(caught.value.body["message"])
    assert match
    assert caught.value.response.headers["retry-after"] == str(math.ceil(seconds(match.group(2))))


def test_speed_runs_the_refill_faster(start_mock: StartMock) -> None:
    url = start_mock(speed=60_000.0)  # 3 RPM refills 3 requests per wall millisecond
    admitted = 0
    with openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["small"], max_retries=0) as c:
        for _ in range(30):
            try:
                chat(c)
                admitted += 1
            except openai.RateLimitError:
                pass
    assert admitted > 20  # at speed 1 it would be 3


def test_request_too_large(mock_server: str) -> None:
    with (
        openai.OpenAI(base_url=f"{mock_server}/v1", api_key=KEYS["roomy"], max_retries=0) as c,
        pytest.raises(openai.RateLimitError) as caught,
    ):
        c.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "x" * 100_000}],
            max_tokens=16_000,  # within gpt-4o's output cap: refused by the limit, not as invalid
        )
    assert caught.value.body == {
        "message": "Request too large for gpt-4o in organization org-mocktest on tokens per min "
        "(TPM): Limit 30000, Requested 41000. The input or output tokens must be reduced in order "
        "to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }


def test_unknown_and_missing_keys_get_401(mock_server: str) -> None:
    with (
        openai.OpenAI(base_url=f"{mock_server}/v1", api_key=WRONG_KEY, max_retries=0) as c,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        chat(c)
    assert caught.value.code == "invalid_api_key"
    assert caught.value.body == {
        "message": "Incorrect API key provided: sk-***. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    with httpx.Client(base_url=f"{mock_server}/v1") as http:
        missing = http.get("/models")
        basic = http.get("/models", headers={"Authorization": "Basic abc"})
    assert missing.status_code == basic.status_code == 401
    assert "You didn't provide an API key" in missing.json()["error"]["message"]


def test_keys_of_one_project_share_its_limits(mock_server: str) -> None:
    with (
        openai.OpenAI(base_url=f"{mock_server}/v1", api_key=KEYS["small"], max_retries=0) as a,
        openai.OpenAI(base_url=f"{mock_server}/v1", api_key=KEYS["roomy"], max_retries=0) as b,
    ):
        for _ in range(3):
            chat(a)
        chat(b)  # another project: its own buckets
        with pytest.raises(openai.RateLimitError):
            chat(a)


def test_no_secret_reaches_the_logs(
    start_mock: StartMock, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level("DEBUG")
    url = start_mock(error_rate=0.3, disconnect_rate=0.2)
    for key in CANARIES:
        with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as c:
            for _ in range(5):
                try:
                    chat(c)
                    c.models.list()
                except openai.APIError:
                    pass
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert "key=small" in logged  # requests are logged, by alias
    for canary in CANARIES:
        assert canary not in logged
        assert canary[8:] not in logged
