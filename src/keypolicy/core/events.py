"""What drivers tell the engine. Every event carries its time ``now`` (epoch seconds).

Times must not go backwards; an event stamped earlier than the last one is taken as happening at
the last one's time (a wall clock may step back; decisions must not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from keypolicy.core.headers import RateLimitHeaders

__all__ = ["Advance", "Cancel", "Event", "Failed", "Settled", "Submit"]


@dataclass(frozen=True, slots=True, init=False)
class Submit:
    """A request wants to go out.

    ``prompt_tokens`` is the exact count (tokenizer) used for budget estimates;
    ``rate_prompt_tokens`` is the provider's own estimate used for the rate-limit charge (it
    estimates from characters; ``None`` means the same as ``prompt_tokens``). ``max_output_tokens``
    is per choice (``None``: the model's maximum); ``n`` choices. ``model`` ``None`` means the
    domain's default.
    """

    request_id: str
    domain: str
    now: float
    prompt_tokens: int
    max_output_tokens: int | None = None
    n: int = 1
    model: str | None = None
    rate_prompt_tokens: int | None = None

    def __init__(
        self,
        request_id: str,
        domain: str,
        now: float,
        prompt_tokens: int,
        max_output_tokens: int | None = None,
        n: int = 1,
        model: str | None = None,
        rate_prompt_tokens: int | None = None,
    ) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "now", now)
        object.__setattr__(self, "prompt_tokens", prompt_tokens)
        object.__setattr__(self, "max_output_tokens", max_output_tokens)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "rate_prompt_tokens", rate_prompt_tokens)


@dataclass(frozen=True, slots=True, init=False)
class Settled:
    """An attempt succeeded; its actual usage (tokens) and the response's headers.

    ``attempt`` (from the Send action) guards against a late answer to an attempt that was
    already given up on; ``None`` skips the check. ``rate_limits``: the ``x-ratelimit-*``
    headers already read, by a driver that has them as numbers (the simulator's provider model);
    ``None`` (the runtime): the engine reads ``headers``.
    """

    request_id: str
    now: float
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    attempt: int | None = None
    rate_limits: RateLimitHeaders | None = None

    def __init__(
        self,
        request_id: str,
        now: float,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        headers: Mapping[str, str] | None = None,
        attempt: int | None = None,
        rate_limits: RateLimitHeaders | None = None,
    ) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "now", now)
        object.__setattr__(self, "prompt_tokens", prompt_tokens)
        object.__setattr__(self, "completion_tokens", completion_tokens)
        object.__setattr__(self, "cached_tokens", cached_tokens)
        object.__setattr__(self, "headers", {} if headers is None else headers)
        object.__setattr__(self, "attempt", attempt)
        object.__setattr__(self, "rate_limits", rate_limits)


@dataclass(frozen=True, slots=True, init=False)
class Failed:
    """An attempt failed: HTTP ``status`` (``None`` for a timeout or a dropped connection)."""

    request_id: str
    now: float
    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | None = None
    attempt: int | None = None

    def __init__(
        self,
        request_id: str,
        now: float,
        status: int | None,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
        attempt: int | None = None,
    ) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "now", now)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "headers", {} if headers is None else headers)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "attempt", attempt)


@dataclass(frozen=True, slots=True, init=False)
class Cancel:
    """The caller gave up on a request (it releases whatever the request held)."""

    request_id: str
    now: float

    def __init__(
        self,
        request_id: str,
        now: float,
    ) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "now", now)


@dataclass(frozen=True, slots=True, init=False)
class Advance:
    """Time passed; the engine may admit, expire or wake what was waiting."""

    now: float

    def __init__(
        self,
        now: float,
    ) -> None:
        object.__setattr__(self, "now", now)


Event = Submit | Settled | Failed | Cancel | Advance
