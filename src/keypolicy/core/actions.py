"""What the engine tells drivers to do. Plain values: drivers carry them out and report back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Action",
    "Alert",
    "Complete",
    "Defer",
    "Reject",
    "RejectReason",
    "Retry",
    "Send",
    "StoreFault",
]

RejectReason = Literal[
    "too_large",
    "model_not_allowed",
    "unknown_domain",
    "invalid_request",
    "max_wait",
    "deadline",
    "budget",
    "quota",
    "client_error",
    "gave_up",
    "batch_queue_full",
    "batch_expired",
    "cancelled",
    "store_error",
    "batch_domain",
]
"""Why a request will not be sent (again):

- ``too_large``: no key of its pool could ever hold it (its class's share of a limit);
- ``model_not_allowed``, ``unknown_domain``: the policy does not allow the call;
- ``invalid_request``: the provider would refuse it as invalid for its model (a 400 that no
  retry can change): ``max_tokens`` below 1 or above the model's output cap, or the prompt plus
  ``max_tokens`` above its context window; never sent;
- ``batch_domain``: (the runtime, not the engine) a batch domain's call came through a plain
  client, which would bypass the Batch API;
- ``max_wait``: it waited for capacity past its class's or domain's ``max_wait``;
- ``deadline``: a deferred request could not run before its deferral deadline;
- ``budget``: a budget with ``on_exhausted: reject`` (or nothing left to downgrade to);
- ``quota``: the provider refused it for quota or billing (never retried);
- ``client_error``: the provider refused it as invalid (4xx), or refused every key (401/403);
- ``gave_up``: the provider failed it on its last attempt (429 pace, 5xx, lost connection), or
  the batch failed; ``Reject.status`` says which;
- ``batch_queue_full``: the Batch API refused its batch at creation, the organization's queue
  of enqueued tokens for the model being full (``token_limit_exceeded``);
- ``batch_expired``: its batch ran past the 24 h completion window before running it
  (``batch_expired``);
- ``cancelled``: the caller gave up;
- ``store_error``: the store failed while the engine was deciding for it; nothing was sent
  (see :meth:`keypolicy.core.engine.Engine.handle`).
"""


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
    """The request ends unsent (or not sent again). ``reason`` is a code (:data:`RejectReason`);
    ``message`` says why, for people. ``status``: the HTTP status of the provider's answer that
    ended it (``quota``, ``client_error``, ``gave_up``), ``None`` when no provider's answer did
    (a policy's refusal, a lost connection)."""

    request_id: str
    reason: RejectReason
    message: str
    attempts: int = 0
    status: int | None = None

    def __init__(
        self,
        request_id: str,
        reason: RejectReason,
        message: str,
        attempts: int = 0,
        status: int | None = None,
    ) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "attempts", attempts)
        object.__setattr__(self, "status", status)


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


@dataclass(frozen=True, slots=True, init=False)
class StoreFault:
    """A store call raised while the engine handled an event; the engine carried on (see
    :meth:`keypolicy.core.engine.Engine.handle`). ``doing``: what it was doing, for people;
    ``request_id``: the request it was doing it for (``""`` if none); ``error``: the exception's
    type and message. Drivers log it: the shared counters may now be off (on the safe side:
    capacity or budget shown as used when it was not), never corrected twice."""

    request_id: str
    doing: str
    error: str
    at: float

    def __init__(self, request_id: str, doing: str, error: str, at: float) -> None:
        object.__setattr__(self, "request_id", request_id)
        object.__setattr__(self, "doing", doing)
        object.__setattr__(self, "error", error)
        object.__setattr__(self, "at", at)


Action = Send | Reject | Defer | Retry | Complete | Alert | StoreFault
