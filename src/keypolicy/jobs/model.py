"""What a deferred job is: its record in the queue, its statuses, and the batch it rides in.

A job is one request to the provider (a chat completion, a response, embeddings) that a
deferrable domain (``defer: queue`` or ``defer: batch``) handed over to be done later. Its
record lives in the job queue's database (:mod:`keypolicy.jobs.store`) from ``defer()`` until
it ends, and stays there after, so that ``rt.jobs()`` and ``keypolicy jobs`` find it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

__all__ = [
    "ENDED",
    "STATUSES",
    "BatchRow",
    "JobRecord",
    "JobStatus",
    "Mode",
]

JobStatus = Literal["waiting", "running", "done", "failed", "expired"]
"""``waiting``: in the queue, not claimed by a worker; ``running``: a worker holds it (waiting
for the engine's turn, in flight, or in a submitted batch); ``done``: the provider answered it,
its result is kept; ``failed``: it will not be done (the provider refused it, the policy did,
or it may have been sent by a worker that died and is not sent again); ``expired``: its
deadline passed before it could run (the reason says why)."""

STATUSES: Final[tuple[str, ...]] = get_args(JobStatus)
ENDED: Final = ("done", "failed", "expired")
"""The statuses a job never leaves."""

Mode = Literal["queue", "batch"]
"""How the job runs: ``queue`` (a live call, when the policy allows) or ``batch`` (the Batch
API, gathered with others into an input file)."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as the queue holds it. Times are epoch seconds; ``cost_usd`` in USD.

    ``key``: the caller's idempotency key (``None`` if none was given); ``model``: the model
    the body names; ``deadline``: when it expires unless done (created + the domain's
    ``defer.deadline``); ``not_before``: it is not tried again before this (a batch retried
    after the queue was full); ``attempts``: how many times it was handed to the provider;
    ``sent``: whether the current attempt may have reached the provider (see the store's
    reconciliation); ``batch_ref``: the batch it rides in (:class:`BatchRow`), if any;
    ``result``: the provider's answer (the response body) once done; ``error``: why it failed
    or expired (``{"reason": ..., "message": ...}``, plus the provider's ``error`` object when
    it refused the request); ``owner``: the worker holding it while it runs."""

    id: str
    key: str | None
    domain: str
    endpoint: str
    mode: Mode
    model: str
    body: dict[str, Any]
    status: JobStatus
    created: float
    deadline: float
    not_before: float
    prompt_tokens: int
    attempts: int = 0
    sent: bool = False
    owner: str | None = None
    lease: float = 0.0
    batch_ref: str | None = None
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    cost_usd: float = 0.0

    @property
    def ended(self) -> bool:
        """Whether the job is done, failed or expired."""
        return self.status in ENDED

    def reason(self) -> str:
        """Why it failed or expired, for people ("" if it did not)."""
        if not self.error:
            return ""
        return f"{self.error.get('reason', '')}: {self.error.get('message', '')}".strip(": ")


def dumps(value: Any) -> str | None:
    """JSON text of ``value`` (``None`` stays ``None``)."""
    return None if value is None else json.dumps(value, separators=(",", ":"))


def loads(text: str | None) -> Any:
    """The value of JSON ``text`` (``None`` stays ``None``)."""
    return None if text is None else json.loads(text)


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One Batch API batch a worker made of gathered jobs.

    ``state``: ``creating`` (its file is being uploaded or the batch created: a worker that
    died here left it unknown whether the provider has it; the next one looks for it by its
    metadata), ``submitted`` (``batch_id`` known: polled until it ends), ``done`` (its results
    mapped back to its jobs). ``key``: the key alias it goes out on (the engine's choice), and
    its ``project``; ``tokens``: the prompt tokens it holds in the provider's batch queue;
    ``next_poll``: when to look at it next, ``interval`` the pause after that (backoff)."""

    id: str
    owner: str | None
    lease: float
    key: str
    project: str
    model: str
    endpoint: str
    state: Literal["creating", "submitted", "done"]
    created: float
    tokens: int
    requests: int
    file_id: str | None = None
    batch_id: str | None = None
    next_poll: float = 0.0
    interval: float = 0.0
