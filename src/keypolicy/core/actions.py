"""What the engine tells drivers to do. Plain values: drivers carry them out and report back."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Action", "Alert", "Complete", "Defer", "Reject", "Retry", "Send"]


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Reject:
    """The request will not be sent. ``reason`` is a code; ``message`` says why, for people.

    Codes: ``too_large``, ``model_not_allowed``, ``unknown_domain``, ``max_wait``, ``deadline``,
    ``budget``, ``quota``, ``client_error``, ``gave_up``, ``cancelled``, ``no_key``.
    """

    request_id: str
    reason: str
    message: str
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Defer:
    """The request is parked: ``mode`` ``queue`` (runs later, not before ``until``) or ``batch``
    (goes through the Batch API at batch prices, completing within its window)."""

    request_id: str
    mode: str
    until: float | None
    reason: str
    model: str
    key: str | None = None  # for batch: the key the batch goes out on


@dataclass(frozen=True, slots=True)
class Retry:
    """A failed attempt will be tried again, not before ``at``."""

    request_id: str
    at: float
    reason: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Complete:
    """The request succeeded; what it cost (USD) and what it used."""

    request_id: str
    key: str
    project: str
    model: str
    attempts: int
    cost_usd: float
    batch: bool


@dataclass(frozen=True, slots=True)
class Alert:
    """A budget crossed one of its ``alert_at`` thresholds (share of ``usd``)."""

    budget: str
    threshold: float
    spent_usd: float
    usd: float
    at: float


Action = Send | Reject | Defer | Retry | Complete | Alert
