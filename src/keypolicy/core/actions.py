"""What the engine tells drivers to do. Plain values: drivers carry them out and report back."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Action", "Alert", "Complete", "Defer", "Reject", "Retry", "Send"]


@dataclass(frozen=True, slots=True, init=False)
class Send:
    """Send the request now on key ``key`` (alias) for ``model``; attempt number from 1.

    ``charge_tokens`` is what the attempt was charged against the token limits.
    """

    request_id: str
    key: str
    project: str
    model: str
    attempt: int
    waited_s: float
    charge_tokens: int

    def __init__(
        self,
        request_id: str,
        key: str,
        project: str,
        model: str,
        attempt: int,
        waited_s: float,
        charge_tokens: int,
    ) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "project", project)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "attempt", attempt)
        object.__setattr__(self, "waited_s", waited_s)
        object.__setattr__(self, "charge_tokens", charge_tokens)


@dataclass(frozen=True, slots=True, init=False)
class Reject:
    """The request will not be sent. ``reason`` is a code; ``message`` says why, for people.

    Codes: ``too_large``, ``model_not_allowed``, ``unknown_domain``, ``max_wait``, ``deadline``,
    ``budget``, ``quota``, ``client_error``, ``gave_up``, ``cancelled``, ``no_key``.
    """

    request_id: str
    reason: str
    message: str
    attempts: int = 0

    def __init__(
        self,
        request_id: str,
        reason: str,
        message: str,
        attempts: int = 0,
    ) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "attempts", attempts)


@dataclass(frozen=True, slots=True, init=False)
class Defer:
    """The request is parked: ``mode`` ``queue`` (runs later, not before ``until``) or ``batch``
    (goes through the Batch API at batch prices, completing within its window)."""

    request_id: str
    mode: str
    until: float | None
    reason: str
    model: str
    key: str | None = None  # for batch: the key the batch goes out on

    def __init__(
        self,
        request_id: str,
        mode: str,
        until: float | None,
        reason: str,
        model: str,
        key: str | None = None,
    ) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "until", until)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "key", key)


@dataclass(frozen=True, slots=True, init=False)
class Retry:
    """A failed attempt will be tried again, not before ``at``."""

    request_id: str
    at: float
    reason: str
    attempt: int

    def __init__(
        self,
        request_id: str,
        at: float,
        reason: str,
        attempt: int,
    ) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "attempt", attempt)


@dataclass(frozen=True, slots=True, init=False)
class Complete:
    """The request succeeded; what it cost (USD) and what it used."""

    request_id: str
    key: str
    project: str
    model: str
    attempts: int
    cost_usd: float
    batch: bool

    def __init__(
        self,
        request_id: str,
        key: str,
        project: str,
        model: str,
        attempts: int,
        cost_usd: float,
        batch: bool,
    ) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "project", project)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "attempts", attempts)
        object.__setattr__(self, "cost_usd", cost_usd)
        object.__setattr__(self, "batch", batch)


@dataclass(frozen=True, slots=True, init=False)
class Alert:
    """A budget crossed one of its ``alert_at`` thresholds (share of ``usd``)."""

    budget: str
    threshold: float
    spent_usd: float
    usd: float
    at: float

    def __init__(
        self,
        budget: str,
        threshold: float,
        spent_usd: float,
        usd: float,
        at: float,
    ) -> None:
        object.__setattr__(self, "budget", budget)
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "spent_usd", spent_usd)
        object.__setattr__(self, "usd", usd)
        object.__setattr__(self, "at", at)


Action = Send | Reject | Defer | Retry | Complete | Alert
