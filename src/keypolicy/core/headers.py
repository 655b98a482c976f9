"""Reading what the provider says about its limits: headers, 429 bodies, Go durations.

Formats, as OpenAI sends them: ``x-ratelimit-limit-requests: 5000``,
``x-ratelimit-remaining-tokens: 795000``, ``x-ratelimit-reset-tokens: 6m0s`` (a Go duration:
``2ms``, ``8.64s``, ``6m0s``, ``24h6m34s``), ``retry-after: 2`` (seconds, or an HTTP date),
``retry-after-ms: 84`` (Azure). A 429 body's message states "Limit 200000, Used 195869, Requested
4412" and ends "Please try again in 84ms."; its ``type`` is ``tokens`` or ``requests`` and its
``code`` tells rate limits from quota errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = [
    "ErrorBody",
    "RateLimitHeaders",
    "parse_error_body",
    "parse_go_duration",
    "parse_rate_limit_headers",
    "retry_after_seconds",
]

_GO_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_TRY_AGAIN: Final = re.compile(
    r"try again in ((?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)"
)
_REQUESTED: Final = re.compile(r"Requested (\d+)")

QUOTA_CODES: Final = frozenset(
    {
        "insufficient_quota",
        "billing_hard_limit_reached",
        "billing_not_active",
        "quota_exceeded",
        "access_terminated",
        "account_deactivated",
    }
)
"""429 codes that mean money or access, not pace: retrying cannot help."""


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration string (``6m0s``, ``8.64s``, ``2ms``); ``None`` if it is not one."""
    text = text.strip()
    if text in ("0", ""):
        return 0.0 if text == "0" else None
    # The forms every response carries ("84ms", "8.64s") without the regular expression.
    if text.endswith("ms"):
        head = text[:-2]
        if head.isascii() and head.isdigit():
            return float(head) * 1e-3
    elif text.endswith("s"):
        head = text[:-1]
        if head.isascii() and head.replace(".", "", 1).isdigit():
            return float(head)
    return _go_duration_by_parts(text)


def _go_duration_by_parts(text: str) -> float | None:
    """The general reading of a stripped Go duration: number-unit parts, summed."""
    pos, total = 0, 0.0
    for match in _GO_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


def _lower(headers: Mapping[str, str]) -> Mapping[str, str]:
    if type(headers) is dict and all(k.islower() for k in headers):
        return headers  # already as the lookups spell them (the simulator's, the mock's)
    return {k.lower(): v for k, v in headers.items()}


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, init=False)
class RateLimitHeaders:
    """The ``x-ratelimit-*`` headers of one response; ``None`` for each that was absent.

    Limits and remaining are counts (requests, tokens); resets are seconds until the bucket is
    full again.
    """

    limit_requests: float | None = None
    limit_tokens: float | None = None
    remaining_requests: float | None = None
    remaining_tokens: float | None = None
    reset_requests: float | None = None
    reset_tokens: float | None = None

    def __init__(
        self,
        limit_requests: float | None = None,
        limit_tokens: float | None = None,
        remaining_requests: float | None = None,
        remaining_tokens: float | None = None,
        reset_requests: float | None = None,
        reset_tokens: float | None = None,
    ) -> None:
        object.__setattr__(self, "limit_requests", limit_requests)
        object.__setattr__(self, "limit_tokens", limit_tokens)
        object.__setattr__(self, "remaining_requests", remaining_requests)
        object.__setattr__(self, "remaining_tokens", remaining_tokens)
        object.__setattr__(self, "reset_requests", reset_requests)
        object.__setattr__(self, "reset_tokens", reset_tokens)

    def any(self) -> bool:
        """Whether the response carried any of the headers."""
        return (
            self.limit_requests is not None
            or self.limit_tokens is not None
            or self.remaining_requests is not None
            or self.remaining_tokens is not None
        )


_RATE_LIMIT_NAMES: Final = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)


def parse_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitHeaders:
    """Read the ``x-ratelimit-*`` headers; malformed values count as absent."""
    get = headers.get
    values = [get(name) for name in _RATE_LIMIT_NAMES]
    if None in values:  # absent, or spelt in other case: look again, case-blind
        lowered = _lower(headers)
        values = [lowered.get(name) for name in _RATE_LIMIT_NAMES]
    reset_requests, reset_tokens = values[4], values[5]
    return RateLimitHeaders(
        _number(values[0]),
        _number(values[1]),
        _number(values[2]),
        _number(values[3]),
        None if reset_requests is None else parse_go_duration(reset_requests),
        None if reset_tokens is None else parse_go_duration(reset_tokens),
    )


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait per ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date).

    ``now`` (epoch seconds) is only used to turn an HTTP date into a delay.
    """
    h = _lower(headers)
    ms = _number(h.get("retry-after-ms"))
    if ms is not None and ms >= 0:
        return ms / 1000.0
    value = h.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """What an OpenAI error body says: ``code``, ``type``, the "try again in" delay (seconds)
    and, for a rate limit, the "Requested" amount the provider counted (tokens or requests)."""

    code: str | None = None
    type: str | None = None
    message: str = ""
    try_again_s: float | None = None
    requested: float | None = None

    @property
    def is_quota(self) -> bool:
        """A billing or access problem: never worth a retry."""
        return self.code in QUOTA_CODES or self.type in QUOTA_CODES


def parse_error_body(body: bytes | str | None) -> ErrorBody:
    """Parse an error response body; anything unreadable gives an empty :class:`ErrorBody`."""
    if not body:
        return ErrorBody()
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ErrorBody()
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ErrorBody()
    message = error.get("message")
    message = message if isinstance(message, str) else ""
    match = _TRY_AGAIN.search(message)
    delay = parse_go_duration(match.group(1)) if match else None
    asked = _REQUESTED.search(message) if delay is not None else None

    def text(key: str) -> str | None:
        value = error.get(key)
        return value if isinstance(value, str) else None

    return ErrorBody(
        text("code"), text("type"), message, delay, float(asked.group(1)) if asked else None
    )
