"""What ``rt.defer()`` returns: a handle on a job in the queue.

A :class:`Job` reads its job's record from the queue: ``status`` is current whenever it is
read. ``wait()`` blocks until the job ends (or a timeout); ``await job`` does the same on an
event loop without blocking it. A job ended by this process's worker wakes its waiters at once;
one ended by another process (a standalone worker, another replica) is seen within
``POLL_S``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Generator
from typing import Any, Final

from keypolicy.jobs.model import JobRecord, JobStatus
from keypolicy.jobs.store import JobStore

__all__ = ["POLL_S", "Board", "Job", "JobError"]

POLL_S: Final = 0.5
"""How often a waiter looks at the queue for a job another process may end (seconds)."""


class JobError(RuntimeError):
    """A job ended ``failed`` or ``expired``: ``job`` is it, its ``error`` says why."""

    def __init__(self, job: Job) -> None:
        self.job = job
        super().__init__(f"job {job.id} of domain {job.domain!r} {job.status}: {job.reason}")


class Board:
    """Where this process's worker announces the jobs it ended, for their waiters."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    def ended(self) -> None:
        """A job ended: waiters look again."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, seconds: float) -> None:
        """Wait until a job ends or ``seconds`` pass (real time)."""
        with self._cond:
            seen = self._generation
            self._cond.wait_for(lambda: self._generation != seen, seconds)


class Job:
    """A deferred job (see the module). ``id`` is stable: ``rt.jobs()`` finds it again after a
    restart; its record (:class:`~keypolicy.jobs.model.JobRecord`) is ``record``."""

    def __init__(self, record: JobRecord, store: JobStore, board: Board) -> None:
        self.record = record
        self._store = store
        self._board = board

    @property
    def id(self) -> str:
        """The job's id (``job_...``), also its usage record's ``request_id``."""
        return self.record.id

    @property
    def domain(self) -> str:
        """The domain it runs as."""
        return self.record.domain

    @property
    def status(self) -> JobStatus:
        """``waiting``, ``running``, ``done``, ``failed`` or ``expired`` (read now)."""
        return self.refresh().record.status

    @property
    def result(self) -> dict[str, Any] | None:
        """The provider's answer (the response body as JSON) once done, else ``None``."""
        return self.refresh().record.result

    @property
    def error(self) -> dict[str, Any] | None:
        """Why it failed or expired: ``reason``, ``message`` (and the provider's ``error``)."""
        return self.refresh().record.error

    @property
    def reason(self) -> str:
        """Why it failed or expired, for people ("" otherwise)."""
        return self.record.reason()

    @property
    def cost_usd(self) -> float:
        """What it cost (USD; at batch prices for a batch job)."""
        return self.refresh().record.cost_usd

    def refresh(self) -> Job:
        """Read the job's record again (unless it had ended: it never changes then)."""
        if not self.record.ended:
            found = self._store.get(self.record.id)
            if found is not None:
                self.record = found
        return self

    def wait(self, timeout: float | None = None) -> Job:
        """Block until the job ends; ``self``. ``TimeoutError`` after ``timeout`` seconds (real
        time). Does not raise for a failed or expired job: see :meth:`raise_for_status`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().record.ended:
            left = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"job {self.id} did not end within {timeout}s ({self.status})")
            self._board.wait(left)
        return self

    async def wait_async(self, timeout: float | None = None) -> Job:
        """:meth:`wait` for asyncio: the event loop is not blocked."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (await asyncio.to_thread(self.refresh)).record.ended:
            left = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"job {self.id} did not end within {timeout}s ({self.status})")
            await asyncio.to_thread(self._board.wait, left)
        return self

    def __await__(self) -> Generator[Any, None, Job]:
        return self.wait_async().__await__()

    def raise_for_status(self) -> Job:
        """``self`` if done; :class:`JobError` if it failed or expired."""
        if self.refresh().record.status in ("failed", "expired"):
            raise JobError(self)
        return self

    def __repr__(self) -> str:
        r = self.record
        return f"Job(id={r.id!r}, domain={r.domain!r}, mode={r.mode!r}, status={r.status!r})"
