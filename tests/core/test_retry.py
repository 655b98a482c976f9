"""Retry verdicts and backoff, with a seeded generator."""

from __future__ import annotations

import json
import random

import pytest

from keypolicy.core.config import RetryDef
from keypolicy.core.retry import backoff_delay, judge_failure

RETRY = RetryDef(max_attempts=4, initial=0.5, max_delay=8.0, multiplier=2.0, jitter="none")


def _body(type_: str, code: str, message: str = "x") -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "code": code}}).encode()


def test_backoff_grows_and_caps() -> None:
    rng = random.Random(0)
    assert [backoff_delay(RETRY, a, rng) for a in range(1, 7)] == [0.5, 1, 2, 4, 8, 8]


@pytest.mark.parametrize("jitter", ["full", "equal"])
def test_jitter_is_seeded_and_bounded(jitter: str) -> None:
    retry = RetryDef(jitter=jitter, initial=1.0, max_delay=100.0)
    a = [backoff_delay(retry, 3, random.Random(7)) for _ in range(3)]
    b = [backoff_delay(retry, 3, random.Random(7)) for _ in range(3)]
    assert a == b
    low = 0.0 if jitter == "full" else 2.0
    assert all(low <= d <= 4.0 for d in a)


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (429, _body("insufficient_quota", "insufficient_quota"), "quota"),
        (429, _body("tokens", "rate_limit_exceeded"), "retry"),
        (401, _body("invalid_request_error", "invalid_api_key"), "other_key"),
        (403, None, "other_key"),
        (400, _body("invalid_request_error", "context_length_exceeded"), "client_error"),
        (404, None, "client_error"),
        (422, None, "client_error"),
        (408, None, "retry"),
        (409, None, "retry"),
        (500, None, "retry"),
        (503, None, "retry"),
        (None, None, "retry"),
    ],
)
def test_verdicts(status: int | None, body: bytes | None, kind: str) -> None:
    verdict = judge_failure(RETRY, status, {}, body, 1, 0.0, random.Random(0))
    assert verdict.kind == kind


def test_gives_up_after_max_attempts() -> None:
    verdict = judge_failure(RETRY, 503, {}, None, 4, 0.0, random.Random(0))
    assert verdict.kind == "gave_up"
    assert verdict.reason == "HTTP 503 on attempt 4 of 4"


def test_delay_prefers_retry_after_then_body_then_reset_then_backoff() -> None:
    body = _body("tokens", "rate_limit_exceeded", "... Please try again in 1.5s. Visit ...")
    rng = random.Random(0)
    hdr = {"retry-after-ms": "250", "x-ratelimit-reset-tokens": "3s"}
    assert judge_failure(RETRY, 429, hdr, body, 1, 0.0, rng).delay == 0.25
    hdr = {"x-ratelimit-reset-tokens": "3s"}
    assert judge_failure(RETRY, 429, hdr, body, 1, 0.0, rng).delay == 1.5
    nobody = _body("tokens", "rate_limit_exceeded")
    assert judge_failure(RETRY, 429, hdr, nobody, 1, 0.0, rng).delay == 3.0
    assert judge_failure(RETRY, 429, {}, nobody, 2, 0.0, rng).delay == 1.0
    verdict = judge_failure(RETRY, 429, {}, nobody, 2, 0.0, rng)
    assert verdict.rate_limit == "tokens"


def test_hints_can_be_ignored_by_policy() -> None:
    retry = RetryDef(honor_retry_after=False, honor_reset_headers=False, jitter="none")
    hdr = {"retry-after": "30", "x-ratelimit-reset-requests": "20s"}
    verdict = judge_failure(
        retry, 429, hdr, _body("requests", "rate_limit_exceeded"), 1, 0.0, random.Random(0)
    )
    assert verdict.delay == 0.5
