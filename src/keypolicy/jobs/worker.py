"""The worker: one thread running an event loop that runs a runtime's deferred jobs.

In-process by default (a thread of the :class:`~keypolicy.runtime.Runtime`), or standalone
(``keypolicy worker POLICY``: a runtime that only runs jobs). Each look at the queue:

1. take over what workers that are gone left (:meth:`JobStore.orphans`) and reconcile it:
   a live job never sent waits again; one that may have been sent ends ``failed``
   (``interrupted``: not sent twice); batches are polled, or found by their metadata;
2. end as ``expired`` the waiting jobs whose deadline passed, and those of a queue domain
   whose windows do not open again before their deadline, each with the reason;
3. live jobs (:mod:`keypolicy.jobs.queued`) and batch jobs (:mod:`keypolicy.jobs.batcher`).

Then it sleeps until poked (a job deferred in this process, a call of this worker ended, a
fake clock advanced) or ``idle_s`` passes. Stopping (``stop()``; the runtime's ``close()``;
Ctrl-C or SIGTERM for ``keypolicy worker``) loses nothing: jobs not yet sent wait again,
live jobs in flight get ``drain_s`` to end, batches submitted stay in the database for the
next worker (any worker adopts them at once: this one lets go of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from keypolicy.core.calendar import minute_of_day, next_window_start, within_windows
from keypolicy.jobs.batcher import BatchJobs
from keypolicy.jobs.handle import Board
from keypolicy.jobs.model import JobRecord, JobStatus
from keypolicy.jobs.queued import LiveJobs
from keypolicy.jobs.settings import JobSettings, RuntimeParts
from keypolicy.jobs.store import RUNNING, JobStore, new_owner, owner_alive
from keypolicy.jobs.usage import ended_record
from keypolicy.records import UsageRecord

__all__ = ["Worker"]

log = logging.getLogger("keypolicy.jobs")


class Worker:
    """Runs the deferred jobs of ``parts``' runtime from ``store`` (see the module)."""

    def __init__(
        self,
        parts: RuntimeParts,
        store: JobStore,
        board: Board,
        settings: JobSettings | None = None,
    ) -> None:
        self.parts = parts
        self.store = store
        self.board = board
        self.settings = settings or JobSettings()
        self.owner = new_owner()
        self.errors = 0
        """Looks at the queue that failed (each logged); the worker carries on."""
        self.ended = 0
        """Jobs this worker ended."""
        self.looks = 0
        """Looks at the queue done so far (tests wait for one to pass)."""
        self._live = LiveJobs(self)
        self._batches = BatchJobs(self)
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="keypolicy-jobs", daemon=True)
        self._priorities = {name: d.priority for name, d in parts.policy.domains.items()}
        parts.clock.on_change(self.poke)

    # ---- lifetime

    def start(self) -> None:
        """Start the worker's thread."""
        RUNNING.add(self.owner)
        self._thread.start()
        self._started.wait(10.0)

    def poke(self) -> None:
        """Look at the queue now (thread-safe): a job was deferred, time jumped."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wake.set)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop cleanly (see the module) and wait for the thread (``timeout`` real seconds)."""
        self._stopping.set()
        self.poke()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the worker's thread runs."""
        return self._thread.is_alive()

    # ---- what the parts call

    def priority(self, domain: str) -> str:
        """The priority class of ``domain`` (for records)."""
        return self._priorities.get(domain, "")

    def write(self, record: UsageRecord) -> None:
        """A call's record: kept for its job if a job's call made it, else the runtime's."""
        if not self._live.catch(record):
            self.parts.write(record)

    def end(
        self,
        job: JobRecord,
        owner: str | None,
        status: JobStatus,
        now: float,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        cost_usd: float = 0.0,
        record: UsageRecord | None = None,
    ) -> bool:
        """End ``job`` with its record (one transaction; see :meth:`JobStore.finish`)."""
        done = self.store.finish(
            job.id,
            owner,
            status,
            now,
            result=result,
            error=error,
            cost_usd=cost_usd,
            record=record,
        )
        if done:
            self.ended += 1
            if record is not None and not self.store.records_in_db:
                self.parts.write(record)
            log.info("keypolicy: job %s (%s) %s %s", job.id, job.domain, status, _why(error))
            self.board.ended()
        return done

    # ---- the loop

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._started.set()
        clock, settings = self.parts.clock, self.settings
        next_adopt = next_renew = float("-inf")
        try:
            while not self._stopping.is_set():
                now = clock.now()
                try:
                    if now >= next_adopt:
                        await self._adopt(now)
                        next_adopt = now + settings.lease_s / 2
                    if now >= next_renew:
                        self.store.renew(self.owner, now + settings.lease_s)
                        next_renew = now + settings.lease_s / 3
                    self._expire(now)
                    self._live.step(now)
                    await self._batches.step(now)
                except Exception:  # a database or provider failure: logged, tried again
                    self.errors += 1
                    log.exception("keypolicy: the job worker's look at the queue failed")
                self.looks += 1
                await self._sleep()
        finally:
            await self._live.stop()
            await self._batches.stop()
            try:
                self.store.disown(self.owner)
            except Exception:
                log.exception("keypolicy: the job worker could not let go of its batches")
            RUNNING.discard(self.owner)

    async def _sleep(self) -> None:
        wake = self._wake
        assert wake is not None
        if not wake.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.settings.idle_s)
        wake.clear()

    async def _adopt(self, now: float) -> None:
        jobs, batches = self.store.orphans(
            self.owner, now, now + self.settings.lease_s, owner_alive
        )
        for job in jobs:
            if not job.sent:
                self.store.release(job.id, self.owner, now)
                continue
            message = (
                "its worker stopped while it may have been in flight; it is not sent again "
                "(OpenAI cannot say whether it got it): defer it again if it should run"
            )
            self.end(
                job,
                self.owner,
                "failed",
                now,
                error={"reason": "interrupted", "message": message},
                record=ended_record(
                    job,
                    priority=self.priority(job.domain),
                    now=now,
                    outcome="error",
                    message=f"interrupted: {message}",
                    started=job.started,
                ),
            )
        for batch in batches:
            log.info("keypolicy: took over batch %s (%s) of a worker gone", batch.id, batch.state)
            self.store.update_batch(batch.id, next_poll=now)

    def _expire(self, now: float) -> None:
        for job in self.store.expire_due(now):
            self._expired(job, now, "its deadline passed before it could run")
        config = self.parts.config
        minute = minute_of_day(config.timezone, now)
        for domain in config.domains.values():
            if domain.defer != "queue" or not domain.windows:
                continue
            if within_windows(domain.windows, minute):
                continue
            opens = next_window_start(domain.windows, config.timezone, now)
            for job in self.store.find(["waiting"], domain.name):
                if job.deadline < opens:
                    self._expired(
                        job,
                        now,
                        "its deferral windows do not open again before its deadline "
                        f"(next at {opens:.0f}, deadline {job.deadline:.0f}, epoch seconds)",
                    )

    def _expired(self, job: JobRecord, now: float, why: str) -> None:
        self.end(
            job,
            None,
            "expired",
            now,
            error={"reason": "deadline", "message": why},
            record=ended_record(
                job, priority=self.priority(job.domain), now=now, reason="deadline", message=why
            ),
        )


def _why(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    return f"({error.get('reason', '')}: {error.get('message', '')})"
