"""Parsing what the provider says: Go durations, x-ratelimit-* headers, 429 bodies, retry-after."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keypolicy.core.headers import (
    _go_duration_by_parts,
    parse_error_body,
    parse_go_duration,
    parse_rate_limit_headers,
    retry_after_seconds,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2ms", 0.002),
        ("8.64s", 8.64),
        ("6m0s", 360.0),
        ("24h6m34s", 86794.0),
        ("0", 0.0),
        ("1h", 3600.0),
        ("1m30.5s", 90.5),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("15ns", 1.5e-8),
        (".5s", 0.5),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "5", "5x", "1h-2m", "ms"])
def test_not_go_durations(text: str) -> None:
    assert parse_go_duration(text) is None


def test_rate_limit_headers_as_openai_sends_them() -> None:
    headers = {
        "X-RateLimit-Limit-Requests": "5000",
        "x-ratelimit-limit-tokens": "800000",
        "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-remaining-tokens": "795588",
        "x-ratelimit-reset-requests": "12ms",
        "x-ratelimit-reset-tokens": "330ms",
    }
    info = parse_rate_limit_headers(headers)
    assert info.limit_requests == 5000
    assert info.limit_tokens == 800000
    assert info.remaining_requests == 4999
    assert info.remaining_tokens == 795588
    assert info.reset_requests == pytest.approx(0.012)
    assert info.reset_tokens == pytest.approx(0.33)
    assert info.any()


def test_malformed_headers_count_as_absent() -> None:
    info = parse_rate_limit_headers(
        {"x-ratelimit-limit-tokens": "lots", "x-ratelimit-reset-tokens": "soon"}
    )
    assert info.limit_tokens is None
    assert info.reset_tokens is None
    assert not info.any()


TPM_429 = {
    "error": {
        "message": "Rate limit reached for gpt-4o-mini in organization org-abc on tokens per min "
        "(TPM): Limit 200000, Used 195869, Requested 4412. Please try again in 84ms. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}


def test_429_body_tokens() -> None:
    body = parse_error_body(json.dumps(TPM_429))
    assert body.code == "rate_limit_exceeded"
    assert body.type == "tokens"
    assert body.try_again_s == pytest.approx(0.084)
    assert not body.is_quota


def test_429_body_requests_in_minutes() -> None:
    message = TPM_429["error"]["message"].replace("84ms", "6m0s")  # type: ignore[index]
    data = {"error": {**TPM_429["error"], "type": "requests", "message": message}}
    body = parse_error_body(json.dumps(data).encode())
    assert body.type == "requests"
    assert body.try_again_s == pytest.approx(360.0)


@pytest.mark.parametrize("code", ["insufficient_quota", "billing_hard_limit_reached"])
def test_quota_bodies(code: str) -> None:
    data = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and "
            "billing details.",
            "type": "insufficient_quota",
            "param": None,
            "code": code,
        }
    }
    assert parse_error_body(json.dumps(data)).is_quota


@pytest.mark.parametrize("raw", [None, b"", b"not json", b"[]", b'{"error": "x"}', b"\xff\xfe"])
def test_unreadable_bodies_are_empty(raw: bytes | None) -> None:
    body = parse_error_body(raw)
    assert body.code is None
    assert body.try_again_s is None


def test_retry_after_variants() -> None:
    assert retry_after_seconds({"retry-after-ms": "84"}, 0.0) == pytest.approx(0.084)
    assert retry_after_seconds({"Retry-After": "2"}, 0.0) == 2.0
    assert retry_after_seconds({"retry-after": "1.5"}, 0.0) == 1.5
    date = "Wed, 18 Nov 2026 22:13:30 GMT"
    at = datetime(2026, 11, 18, 22, 13, 30, tzinfo=UTC).timestamp()
    assert retry_after_seconds({"retry-after": date}, at - 10) == pytest.approx(10.0)
    assert retry_after_seconds({"retry-after": date}, at + 10) == 0.0  # in the past: now
    assert retry_after_seconds({}, 0.0) is None
    assert retry_after_seconds({"retry-after": "soon"}, 0.0) is None


@given(
    st.one_of(
        st.from_regex(r"\A[0-9]{0,6}(\.[0-9]{0,4})?(ms|s|m|h|us|ns)?\Z"),
        st.text(alphabet="0123456789.msuhn µ²٣", max_size=8),
    )
)
def test_go_duration_fast_path_agrees_with_the_general_parser(text: str) -> None:
    stripped = text.strip()
    general = 0.0 if stripped == "0" else None if not stripped else _go_duration_by_parts(stripped)
    assert parse_go_duration(text) == general


def test_mixed_case_headers_are_read_as_lowercase_ones() -> None:
    lower = {"x-ratelimit-limit-tokens": "100", "x-ratelimit-remaining-tokens": "40"}
    mixed = {"X-RateLimit-Limit-Tokens": "100", "x-ratelimit-remaining-tokens": "40"}
    assert parse_rate_limit_headers(lower) == parse_rate_limit_headers(mixed)
    assert parse_rate_limit_headers(mixed).limit_tokens == 100.0
