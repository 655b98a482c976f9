"""What the provider model answers: plain values a driver carries out.

An :class:`Outcome` says what the client sees (status, headers, error body, usage) and when
(``timing``, seconds after the request arrived). A driver waits ``timing.total`` (in virtual time
for the simulator, scaled wall time for the mock server) and then hands ``ticket`` back to
:meth:`keypolicy.upstream.Provider.settle`, which corrects the token charge to actual usage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from keypolicy.upstream.limits import Dimension

__all__ = ["Hit", "Kind", "Outcome", "RateLimitNumbers", "Timing", "Usage"]

Kind = Literal[
    "ok",
    "rate_limited",
    "too_large",
    "insufficient_quota",
    "bare_429",
    "server_error",
    "timeout",
    "disconnect",
    "malformed",
    "model_not_found",
    "invalid_request",
]
"""What happened: ``ok``; a refusal by the limits (``rate_limited``, ``too_large``); an injected
fault (``insufficient_quota``, ``bare_429``, ``server_error``, ``timeout``, ``disconnect``,
``malformed``); a model neither the project nor the organization has (``model_not_found``); or a
request the API refuses as invalid, a 400 (``invalid_request``: see
:mod:`keypolicy.upstream.validation`)."""


RateLimitNumbers = tuple[
    float | None, float | None, float | None, float | None, float | None, float | None
]
"""The numbers of ``x-ratelimit-limit-requests``, ``-limit-tokens``, ``-remaining-requests``,
``-remaining-tokens``, ``-reset-requests`` and ``-reset-tokens`` (resets in seconds, at the
headers' millisecond precision; ``None`` where there is no such header)."""


@dataclass(frozen=True, slots=True, init=False)
class Usage:
    """Tokens of one request: prompt (``cached`` of them from the prompt cache) and completion.

    ``choices`` holds the completion tokens of each of the ``n`` choices (their sum is
    ``completion_tokens``).
    """

    prompt_tokens: int
    completion_tokens: int = 0
    cached_tokens: int = 0
    choices: tuple[int, ...] = ()

    def __init__(
        self,
        prompt_tokens: int,
        completion_tokens: int = 0,
        cached_tokens: int = 0,
        choices: tuple[int, ...] = (),
    ) -> None:
        object.__setattr__(self, "prompt_tokens", prompt_tokens)
        object.__setattr__(self, "completion_tokens", completion_tokens)
        object.__setattr__(self, "cached_tokens", cached_tokens)
        object.__setattr__(self, "choices", choices)

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True, init=False)
class Timing:
    """When the answer comes, in seconds after the request arrived.

    ``first_token`` is when the first byte of the answer (or the first streamed token) is sent,
    ``total`` when the answer is complete.
    """

    first_token: float = 0.0
    total: float = 0.0

    def __init__(
        self,
        first_token: float = 0.0,
        total: float = 0.0,
    ) -> None:
        object.__setattr__(self, "first_token", first_token)
        object.__setattr__(self, "total", total)


@dataclass(frozen=True, slots=True, init=False)
class Hit:
    """The limit that refused a request: which one, and the arithmetic of its bucket.

    ``scope`` is a project name or ``*`` (the organization); ``limit`` is the published limit per
    window, ``used`` the usage the message states, ``requested`` the request's draw (requests or
    tokens) and ``wait`` the seconds until it fits: (used + requested - limit) / rate.
    """

    dimension: Dimension
    scope: str
    limit: int
    used: float
    requested: int
    wait: float

    def __init__(
        self,
        dimension: Dimension,
        scope: str,
        limit: int,
        used: float,
        requested: int,
        wait: float,
    ) -> None:
        object.__setattr__(self, "dimension", dimension)
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "used", used)
        object.__setattr__(self, "requested", requested)
        object.__setattr__(self, "wait", wait)


@dataclass(frozen=True, slots=True, init=False)
class Outcome:
    """The provider's answer to one request.

    ``status`` is the HTTP status (0 when no answer comes: a timeout or a dropped connection),
    ``error`` the JSON error body for a non-2xx status. ``ticket`` is set when the request was
    admitted (and must be settled); ``usage`` when it produced tokens. ``rate_limits``, on an
    answer with usage, is what the rate-limit headers say, as numbers (for the simulator, which
    hands them to the engine as read).
    """

    kind: Kind
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    usage: Usage | None = None
    timing: Timing = field(default_factory=Timing)
    ticket: int | None = None
    hit: Hit | None = None
    rate_limits: RateLimitNumbers | None = None

    def __init__(
        self,
        kind: Kind,
        status: int,
        headers: dict[str, str] | None = None,
        error: dict[str, Any] | None = None,
        usage: Usage | None = None,
        timing: Timing | None = None,
        ticket: int | None = None,
        hit: Hit | None = None,
        rate_limits: RateLimitNumbers | None = None,
    ) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "headers", {} if headers is None else headers)
        object.__setattr__(self, "error", error)
        object.__setattr__(self, "usage", usage)
        object.__setattr__(self, "timing", Timing() if timing is None else timing)
        object.__setattr__(self, "ticket", ticket)
        object.__setattr__(self, "hit", hit)
        object.__setattr__(self, "rate_limits", rate_limits)

    @property
    def ok(self) -> bool:
        """Whether the client gets a usable answer."""
        return self.kind == "ok"
