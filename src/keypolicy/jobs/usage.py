"""A job's one usage record: the ledger's schema, whichever way the job ended.

A job is in the ledger exactly once, under its job id (``request_id``): when it ends (done,
failed, expired), in the same transaction as its end (:meth:`keypolicy.jobs.store.JobStore.
finish`). A live job's record is the one its call made (the runtime's own), with the job's id
and times; a batch job's and an expired job's are made here.
"""

from __future__ import annotations

import dataclasses

from keypolicy.core.actions import RejectReason
from keypolicy.jobs.model import JobRecord
from keypolicy.records import Outcome, UsageRecord, outcome_of
from keypolicy.runtime.answers import Usage

__all__ = ["as_job_record", "ended_record"]


def as_job_record(record: UsageRecord, job: JobRecord) -> UsageRecord:
    """A live call's record, as the job's: its id, submitted when the job was deferred, its
    wait counted from then, marked deferred, its attempts those of the job."""
    started = record.started if record.started is not None else record.finished
    return dataclasses.replace(
        record,
        request_id=job.id,
        submitted=job.created,
        wait_s=max(started - job.created, 0.0),
        deferred=True,
        attempts=max(record.attempts, job.attempts),
    )


def ended_record(
    job: JobRecord,
    *,
    priority: str,
    now: float,
    outcome: Outcome | None = None,
    reason: RejectReason | None = None,
    message: str = "",
    status: int | None = None,
    model: str | None = None,
    key: str = "",
    project: str = "",
    started: float | None = None,
    usage: Usage | None = None,
    cost_usd: float = 0.0,
    batch: bool = False,
    max_output: int | None = None,
) -> UsageRecord:
    """The record of a job that ends here: ``ok`` with its ``usage`` and cost, or refused for
    ``reason`` (its outcome as a live call's would be, :func:`keypolicy.records.outcome_of`)."""
    if outcome is None:
        outcome = "ok" if reason is None else outcome_of(reason, status)
    used = usage if outcome == "ok" and usage is not None else Usage(0, 0, 0)
    waited_until = started if started is not None else now
    return UsageRecord(
        request_id=job.id,
        domain=job.domain,
        model=model or job.model,
        key=key,
        project=project,
        priority=priority,
        submitted=job.created,
        started=started,
        finished=now,
        wait_s=max(waited_until - job.created, 0.0),
        attempts=job.attempts,
        outcome=outcome,
        reason=f"{reason}: {message}" if reason else message,
        prompt_tokens=used.prompt,
        cached_tokens=used.cached,
        completion_tokens=used.completion,
        cost_usd=cost_usd,
        batch=batch,
        deferred=True,
        requested_model=job.model,
        requested_prompt_tokens=job.prompt_tokens,
        requested_max_tokens=max(max_output or 0, 0),
        usage_estimated=False,
    )
