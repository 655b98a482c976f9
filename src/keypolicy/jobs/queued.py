"""Live jobs (``defer: queue``): run as calls of the runtime, when the policy allows.

A worker claims a waiting job only while one of its domain's windows is open (in the policy's
time zone) and before its deadline, and hands it to the policy's asyncio transport for its
domain: the very path a live call of ``rt.async_openai(domain)`` takes (the engine queues it by
class, keeps the reserves of the classes above, picks the key, retries). Just before each
attempt goes out, the queue records that the job may have been sent (:class:`MarkingTransport`);
the call's usage record is caught (not written to the ledger by the call) and written with the
job's end, in one transaction.

What a job's call ends in: an answer (``done``, its body kept); the provider's refusal the policy
gave up on (``failed``, with the provider's error); the policy's refusal (``expired`` for a
deadline, ``failed`` for the others); a job whose deadline comes while it still waits, unsent,
is cancelled (``expired``). A job the worker stops before it was sent goes back to waiting.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import httpx2

from keypolicy.core.calendar import minute_of_day, within_windows
from keypolicy.jobs.model import JobRecord, JobStatus
from keypolicy.jobs.usage import as_job_record, ended_record
from keypolicy.jobs.wire import CURRENT, MarkingTransport
from keypolicy.records import UsageRecord
from keypolicy.runtime.errors import PolicyRejected
from keypolicy.runtime.secrets import PLACEHOLDER

if TYPE_CHECKING:
    from keypolicy.jobs.worker import Worker

__all__ = ["LiveJobs"]

log = logging.getLogger("keypolicy.jobs")

_PATHS: Final = {
    "chat.completions": "chat/completions",
    "responses": "responses",
    "embeddings": "embeddings",
}
_DEFAULT_BASE: Final = "https://api.openai.com/v1"


@dataclass(eq=False)
class _Run:
    """One live job's run: whether it may have been sent, its call's record, its task."""

    job: JobRecord
    sent: bool = False
    expired: bool = False
    record: UsageRecord | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class LiveJobs:
    """The live jobs one worker runs (see the module)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._runs: dict[str, _Run] = {}
        self._transports: dict[str, httpx2.AsyncBaseTransport] = {}
        parts = worker.parts
        self._domains = [d.name for d in parts.config.domains.values() if d.defer == "queue"]
        import os  # noqa: PLC0415

        base = parts.base_url or os.environ.get("OPENAI_BASE_URL") or _DEFAULT_BASE
        self._base = base.rstrip("/")

    @property
    def running(self) -> int:
        """Live jobs this worker has with the engine or in flight."""
        return len(self._runs)

    def open_domains(self, now: float) -> list[str]:
        """The queue domains whose windows are open at ``now`` (all day if they have none)."""
        config = self.worker.parts.config
        minute = minute_of_day(config.timezone, now)
        return [
            name
            for name in self._domains
            if not config.domains[name].windows
            or within_windows(config.domains[name].windows, minute)
        ]

    def step(self, now: float) -> None:
        """Cancel unsent runs past their deadline; claim and start the jobs now due."""
        for run in list(self._runs.values()):
            if not run.sent and not run.expired and now >= run.job.deadline and run.task:
                run.expired = True
                run.task.cancel()
        settings = self.worker.settings
        free = settings.concurrency - len(self._runs)
        if free <= 0 or not self._domains:
            return
        worker = self.worker
        jobs = worker.store.claim(
            worker.owner, "queue", self.open_domains(now), now, now + settings.lease_s, free
        )
        for job in jobs:
            run = _Run(job)
            self._runs[job.id] = run
            run.task = asyncio.get_running_loop().create_task(self._run(run))
            run.task.add_done_callback(lambda _: worker.poke())

    async def stop(self) -> None:
        """Stop: unsent runs are cancelled (their jobs wait again); sent ones get ``drain_s``
        (real seconds) to end."""
        for run in self._runs.values():
            if not run.sent and run.task:
                run.task.cancel()
        tasks = [run.task for run in self._runs.values() if run.task]
        if tasks:
            await asyncio.wait(tasks, timeout=self.worker.settings.drain_s)
        for transport in self._transports.values():
            await transport.aclose()

    def catch(self, record: UsageRecord) -> bool:
        """Keep ``record`` if a job's call wrote it (in a job's task); False otherwise."""
        run = CURRENT.get()
        if isinstance(run, _Run):
            run.record = record
            return True
        return False

    def _before_send(self, run: object) -> None:
        assert isinstance(run, _Run)
        worker = self.worker
        if not worker.store.mark_sent(run.job.id, worker.owner):
            raise RuntimeError(f"job {run.job.id} is no longer held by this worker: not sent")
        run.sent = True

    def _transport(self, domain: str) -> httpx2.AsyncBaseTransport:
        transport = self._transports.get(domain)
        if transport is None:
            inner = MarkingTransport(httpx2.AsyncHTTPTransport(), self._before_send)
            transport = self.worker.parts.call_transport(domain, inner, self.worker.write)
            self._transports[domain] = transport
        return transport

    async def _run(self, run: _Run) -> None:
        CURRENT.set(run)
        job = run.job
        request = httpx2.Request(
            "POST",
            f"{self._base}/{_PATHS[job.endpoint]}",
            headers={"authorization": f"Bearer {PLACEHOLDER}"},
            json=job.body,
        )
        try:
            response = await self._transport(job.domain).handle_async_request(request)
            body = await response.aread()
        except PolicyRejected as refused:
            self._refused(run, refused)
        except asyncio.CancelledError:
            self._cancelled(run)
        except Exception as exc:  # the provider could not be reached, and the policy gave up
            self._ended(run, "failed", error={"reason": "gave_up", "message": _text(exc)})
        else:
            self._answered(run, response.status_code, body)
        finally:
            self._runs.pop(job.id, None)

    def _answered(self, run: _Run, status: int, body: bytes) -> None:
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = None
        if status < 300 and isinstance(parsed, dict):
            self._ended(run, "done", result=parsed)
            return
        error = parsed.get("error") if isinstance(parsed, dict) else None
        message = error.get("message", "") if isinstance(error, dict) else body[:200].decode()
        self._ended(
            run,
            "failed",
            error={"reason": "provider", "status": status, "message": message, "error": error},
        )

    def _refused(self, run: _Run, refused: PolicyRejected) -> None:
        if refused.reason in ("closed", "cancelled") and not run.sent:
            self._release(run)  # the runtime is closing: it runs later
            return
        status: JobStatus = "expired" if refused.reason in ("deadline", "max_wait") else "failed"
        self._ended(run, status, error={"reason": refused.reason, "message": refused.detail})

    def _cancelled(self, run: _Run) -> None:
        if run.expired:
            message = "its deadline passed while it waited for capacity; it was not sent"
            self._ended(run, "expired", error={"reason": "deadline", "message": message})
        elif not run.sent:
            self._release(run)
        else:
            message = "the worker stopped while it was in flight; it is not sent again"
            self._ended(run, "failed", error={"reason": "interrupted", "message": message})

    def _release(self, run: _Run) -> None:
        worker = self.worker
        worker.store.release(run.job.id, worker.owner, worker.parts.clock.now())

    def _ended(
        self,
        run: _Run,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        worker = self.worker
        now = worker.parts.clock.now()
        job = worker.store.get(run.job.id) or run.job  # its attempts as counted
        if run.record is not None:
            record = as_job_record(run.record, job)
        else:
            reason = (error or {}).get("reason", "gave_up")
            record = ended_record(
                job,
                priority=worker.priority(job.domain),
                now=now,
                reason=reason if reason in _REASONS else "gave_up",
                message=(error or {}).get("message", ""),
                max_output=_max_output(job.body),
            )
        worker.end(
            job,
            worker.owner,
            status,
            now,
            result=result,
            error=error,
            cost_usd=record.cost_usd,
            record=record,
        )


_REASONS: Final = ("deadline", "max_wait", "budget", "gave_up", "invalid_request", "quota")


def _max_output(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
