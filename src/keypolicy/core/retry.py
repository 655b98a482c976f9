"""Deciding what a failed attempt means: give up, or try again after how long.

Rules (OpenAI's semantics): quota and billing 429s are never retried; 4xx other than 408, 409
and 429 are never retried (401/403 may be tried on another key); 408, 409, 429, 5xx and lost
connections are retried up to ``max_attempts`` in all. The delay honours ``retry-after-ms`` /
``retry-after``, then the "try again in" of a 429 body, then the ``x-ratelimit-reset-*`` header of
the limit that was hit, and falls back to exponential backoff with jitter from a seeded generator.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from keypolicy.core.actions import RejectReason
from keypolicy.core.config import RetryDef
from keypolicy.core.headers import (
    ErrorBody,
    parse_error_body,
    parse_rate_limit_headers,
    retry_after_seconds,
)

__all__ = ["Verdict", "backoff_delay", "judge_batch_failure", "judge_failure"]

RETRYABLE: Final = frozenset({408, 409, 429})
KEY_PROBLEMS: Final = frozenset({401, 403})
BATCH_FAILURES: Final[dict[str, RejectReason]] = {
    "token_limit_exceeded": "batch_queue_full",
    "batch_expired": "batch_expired",
    "insufficient_quota": "quota",  # the month's usage limit spent: no batch is created
}
"""The Batch API's error codes a batch request's failure is known by (else ``gave_up``)."""


@dataclass(frozen=True, slots=True, init=False)
class Verdict:
    """What to do after a failed attempt.

    ``kind``: ``retry``, ``other_key`` (this key is unusable; try another), ``quota``,
    ``client_error``, ``gave_up``. ``delay`` in seconds. ``rate_limit`` is ``tokens`` or
    ``requests`` for a pace 429 (which limit was hit), else ``None``.
    """

    kind: str
    delay: float
    reason: str
    rate_limit: str | None = None
    body: ErrorBody | None = None

    def __init__(
        self,
        kind: str,
        delay: float,
        reason: str,
        rate_limit: str | None = None,
        body: ErrorBody | None = None,
    ) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "delay", delay)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "rate_limit", rate_limit)
        object.__setattr__(self, "body", body)


def backoff_delay(retry: RetryDef, attempt: int, rng: random.Random) -> float:
    """Seconds before attempt ``attempt + 1``, after ``attempt`` failures (1-based)."""
    delay = min(retry.max_delay, retry.initial * retry.multiplier ** max(attempt - 1, 0))
    if retry.jitter == "full":
        return rng.uniform(0.0, delay)
    if retry.jitter == "equal":
        return delay / 2 + rng.uniform(0.0, delay / 2)
    return delay


def judge_failure(
    retry: RetryDef,
    status: int | None,
    headers: Mapping[str, str],
    body: bytes | str | None,
    attempt: int,
    now: float,
    rng: random.Random,
) -> Verdict:
    """Classify a failed attempt and, if it is worth retrying, say after how long."""
    error = parse_error_body(body)
    label = "connection lost" if status is None else f"HTTP {status}"
    if error.code:
        label += f" {error.code}"
    if status == 429 and error.is_quota:
        return Verdict("quota", 0.0, f"{label}: quota or billing, not retried", body=error)
    if status in KEY_PROBLEMS:
        return Verdict("other_key", 0.0, f"{label}: the key was refused", body=error)
    if status is not None and status < 500 and status not in RETRYABLE:
        return Verdict("client_error", 0.0, f"{label}: not retried", body=error)
    limit = None
    if status == 429:
        limit = error.type if error.type in ("tokens", "requests") else "requests"
    delay = _hinted_delay(retry, headers, error, limit, now)
    if delay is None:
        delay = backoff_delay(retry, attempt, rng)
    if attempt >= retry.max_attempts:
        # Still say how long the limit needs: the engine rests the project for that long.
        reason = f"{label} on attempt {attempt} of {retry.max_attempts}"
        return Verdict("gave_up", delay, reason, limit, error)
    return Verdict("retry", delay, label, limit, error)


def judge_batch_failure(status: int | None, body: bytes | str | None) -> tuple[RejectReason, str]:
    """Why a request handed to the Batch API failed, and the message: a driver reports its
    batch's error (``errors.data[0]`` of a failed batch, an expired request's error) as the
    body's ``error``; its ``code`` names the reason where the Batch API has one."""
    error = parse_error_body(body)
    reason = BATCH_FAILURES.get(error.code or "", "gave_up")
    if error.message:
        return reason, f"the batch failed: {error.message}"
    return reason, f"the batch failed (HTTP {status})"


def _hinted_delay(
    retry: RetryDef,
    headers: Mapping[str, str],
    error: ErrorBody,
    limit: str | None,
    now: float,
) -> float | None:
    if retry.honor_retry_after:
        after = retry_after_seconds(headers, now)
        if after is not None:
            return after
        if error.try_again_s is not None:
            return error.try_again_s
    if retry.honor_reset_headers and limit is not None:
        info = parse_rate_limit_headers(headers)
        reset = info.reset_tokens if limit == "tokens" else info.reset_requests
        if reset is not None:
            return reset
    return None
