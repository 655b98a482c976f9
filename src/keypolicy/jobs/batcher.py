"""Batch jobs (``defer: batch``): gathered into Batch API input files, submitted, polled, and
their results mapped back by ``custom_id``.

1. A worker claims waiting batch jobs and submits each to the engine, as the simulator does:
   the engine holds its budget at batch prices and names the key (and so the project) and the
   model it goes out on (``Defer(batch)``), or refuses it (a budget, the model), or parks it
   until a budget refills.
2. Jobs the engine handed over are gathered by (key, endpoint, model): one model per file, as
   the Batch API requires. A file goes once it has waited ``gather_s`` for more, or is full
   (``max_batch_requests``, ``max_batch_bytes``), and only as much of it as the provider's
   batch queue has room for: the organization's enqueued prompt tokens for the model family
   (its tier's limit, :func:`keypolicy.catalog.batch_queue_limit`) counted over every open
   batch in the queue's database (every replica's). A job larger than the whole limit fails.
3. The batch is recorded (``creating``, its jobs marked maybe sent) before the file is
   uploaded and the batch created, with ``metadata.keypolicy_batch`` naming it: a worker that
   dies in between leaves it for the next one to find by that metadata, never to create twice.
4. Polled with backoff (``poll_s`` doubling to ``poll_max_s``); once it ends, each job gets
   the line of the output or error file with its ``custom_id``: an answer (``done``, its cost at
   batch prices from the engine, or from the same price table after a restart, when this
   engine did not submit it), a failed request (retried on 429/5xx up to the policy's
   ``retry.max_attempts``, else ``failed`` with the API's error), a request the batch expired
   before running (``batch_expired``: tried again in another batch before its deadline, else
   ``expired``). A batch refused whole for the queue limit (``token_limit_exceeded``) sends its
   jobs back to wait ``retry_s``.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from openai import AsyncOpenAI

from keypolicy.catalog import batch_queue_limit, family
from keypolicy.core import Cancel, Complete, Defer, Failed, Reject, Settled, Submit
from keypolicy.core.actions import Action
from keypolicy.core.pricing import actual_cost
from keypolicy.estimate import estimate_request
from keypolicy.jobs.model import BatchRow, JobRecord, JobStatus
from keypolicy.jobs.usage import ended_record
from keypolicy.jobs.validate import ENDPOINT_URLS
from keypolicy.jobs.wire import batch_client
from keypolicy.runtime.answers import Usage, usage_of
from keypolicy.runtime.conductor import Waiter

if TYPE_CHECKING:
    from keypolicy.jobs.worker import Worker

__all__ = ["BatchJobs"]

log = logging.getLogger("keypolicy.jobs")

CLAIM_MOST: Final = 10_000
"""The most batch jobs a worker holds before they are in a batch (with the engine or gathered):
a bound on its memory (a line of a file each) and on the requests of one file per gather."""
_OPEN: Final = ("validating", "in_progress", "finalizing", "cancelling")


@dataclass(eq=False)
class _Entry:
    """A batch job this worker submitted to the engine (request ``rid``)."""

    job: JobRecord
    rid: str
    waiter: Waiter
    tokens: int
    max_output: int | None
    key: str = ""
    model: str = ""
    line: bytes = b""


@dataclass(eq=False)
class _Group:
    """Jobs gathered for one input file: one key, one endpoint, one model."""

    key: str
    endpoint: str
    model: str
    first: float
    entries: list[_Entry] = field(default_factory=list)
    size: int = 0


class BatchJobs:
    """The batch jobs one worker runs (see the module)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        parts = worker.parts
        self._domains = [d.name for d in parts.config.domains.values() if d.defer == "batch"]
        self._projects = {k.alias: k.project for k in parts.config.keys}
        org = parts.policy.organization
        self._tier = org.tier if org is not None else None
        self._pending: dict[str, _Entry] = {}  # with the engine, not yet handed over
        self._groups: dict[tuple[str, str, str], _Group] = {}
        self._submitted: dict[str, _Entry] = {}  # in a batch, known to this engine
        self._clients: dict[str, AsyncOpenAI] = {}
        self._seq = itertools.count(1)

    @property
    def held(self) -> int:
        """Batch jobs with the engine or gathered, not yet in a batch."""
        return len(self._pending) + sum(len(g.entries) for g in self._groups.values())

    async def step(self, now: float) -> None:
        """Claim, hear the engine, send the files that are due, poll the batches due."""
        if not self._domains:
            return
        self._claim(now)
        self._hear_engine(now)
        await self._send_due(now)
        await self._poll_due(now)

    async def stop(self) -> None:
        """Stop: jobs not yet in a batch go back to waiting (the engine lets go of them);
        batches submitted stay in the queue's database for the next worker to poll."""
        now = self.worker.parts.clock.now()
        entries = list(self._pending.values())
        for group in self._groups.values():
            entries.extend(group.entries)
        for entry in entries:
            self._engine_end(entry, Cancel(entry.rid, now))
            self.worker.store.release(entry.job.id, self.worker.owner, now)
        self._pending.clear()
        self._groups.clear()
        for client in self._clients.values():
            await client.close()

    # ---- with the engine

    def _claim(self, now: float) -> None:
        worker = self.worker
        room = CLAIM_MOST - self.held
        jobs = worker.store.claim(
            worker.owner, "batch", self._domains, now, now + worker.settings.lease_s, room
        )
        conductor = worker.parts.conductor
        for job in jobs:
            estimate = estimate_request(job.endpoint, job.body)
            rid = f"{job.id}#{next(self._seq)}"
            # What it holds in the provider's batch queue: its prompt as the provider counts it
            # (from characters, as for its per-minute limits), or the exact count if larger.
            held = max(estimate.prompt_tokens, estimate.rate_prompt_tokens)
            entry = _Entry(job, rid, conductor.open(rid), held, estimate.max_output_tokens)
            self._pending[job.id] = entry
            conductor.handle(
                Submit(
                    rid,
                    job.domain,
                    now,
                    estimate.prompt_tokens,
                    estimate.max_output_tokens,
                    estimate.n,
                    str(job.body.get("model") or "") or None,
                    estimate.rate_prompt_tokens,
                )
            )

    def _hear_engine(self, now: float) -> None:
        for job_id, entry in list(self._pending.items()):
            while (action := entry.waiter.poll()) is not None:
                if isinstance(action, Defer) and action.mode == "batch":
                    del self._pending[job_id]
                    self._gather(entry, action, now)
                    break
                if isinstance(action, Reject):
                    del self._pending[job_id]
                    self._refused(entry, action, now)
                    break
            else:
                if job_id in self._pending and now >= entry.job.deadline:
                    del self._pending[job_id]
                    self._engine_end(entry, Cancel(entry.rid, now))
                    self._expire(entry, now, "its deadline passed while the engine held it back")

    def _engine_end(self, entry: _Entry, event: Cancel | Failed | Settled) -> Action | None:
        """Tell the engine how the request ended; its final action (if it knew it)."""
        conductor = self.worker.parts.conductor
        conductor.handle(event)
        final = None
        while (action := entry.waiter.poll()) is not None:
            if isinstance(action, Complete | Reject):
                final = action
        conductor.forget(entry.rid)
        return final

    def _refused(self, entry: _Entry, reject: Reject, now: float) -> None:
        status: JobStatus = "expired" if reject.reason in ("deadline", "max_wait") else "failed"
        error = {"reason": reject.reason, "message": reject.message}
        record = ended_record(
            entry.job,
            priority=self.worker.priority(entry.job.domain),
            now=now,
            reason=reject.reason,
            message=reject.message,
            max_output=entry.max_output,
        )
        self.worker.end(entry.job, self.worker.owner, status, now, error=error, record=record)

    def _expire(self, entry: _Entry, now: float, why: str) -> None:
        self.worker.end(
            entry.job,
            self.worker.owner,
            "expired",
            now,
            error={"reason": "deadline", "message": why},
            record=ended_record(
                entry.job,
                priority=self.worker.priority(entry.job.domain),
                now=now,
                reason="deadline",
                message=why,
                max_output=entry.max_output,
            ),
        )

    # ---- gathering and sending

    def _gather(self, entry: _Entry, defer: Defer, now: float) -> None:
        entry.key, entry.model = defer.key or "", defer.model
        body = {**entry.job.body, "model": defer.model}
        line = {
            "custom_id": entry.job.id,
            "method": "POST",
            "url": ENDPOINT_URLS[entry.job.endpoint],
            "body": body,
        }
        entry.line = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        where = (entry.key, entry.job.endpoint, entry.model)
        group = self._groups.get(where)
        if group is None:
            group = self._groups[where] = _Group(entry.key, entry.job.endpoint, entry.model, now)
        group.entries.append(entry)
        group.size += len(entry.line)

    async def _send_due(self, now: float) -> None:
        settings = self.worker.settings
        for where, group in list(self._groups.items()):
            for entry in [e for e in group.entries if now >= e.job.deadline]:
                group.entries.remove(entry)
                group.size -= len(entry.line)
                self._engine_end(entry, Cancel(entry.rid, now))
                self._expire(entry, now, "its deadline passed before a batch had room for it")
            full = (
                len(group.entries) >= settings.max_batch_requests
                or group.size >= settings.max_batch_bytes
            )
            if group.entries and (full or now - group.first >= settings.gather_s):
                chosen = self._fitting(group, now)
                if chosen:
                    for entry in chosen:
                        group.entries.remove(entry)
                        group.size -= len(entry.line)
                    await self._submit(group, chosen, now)
            if not group.entries:
                del self._groups[where]
            elif group.first < now - settings.gather_s:
                group.first = now - settings.gather_s  # what is left goes at the next look

    def _fitting(self, group: _Group, now: float) -> list[_Entry]:
        """The first entries of ``group`` that fit one file and the provider's batch queue."""
        settings = self.worker.settings
        limit = batch_queue_limit(self._tier, group.model)
        room = None
        if limit is not None:
            name = family(group.model)
            held = sum(b.tokens for b in self.worker.store.batches() if family(b.model) == name)
            room = limit - held
        for entry in list(group.entries):
            if limit is not None and entry.tokens > limit:
                group.entries.remove(entry)
                group.size -= len(entry.line)
                self._never_fits(entry, limit, now)
        chosen: list[_Entry] = []
        tokens = size = 0
        for entry in group.entries:
            if (
                len(chosen) >= settings.max_batch_requests
                or size + len(entry.line) > settings.max_batch_bytes
                or (room is not None and tokens + entry.tokens > room)
            ):
                break
            chosen.append(entry)
            tokens += entry.tokens
            size += len(entry.line)
        return chosen

    def _never_fits(self, entry: _Entry, limit: int, now: float) -> None:
        message = (
            f"its {entry.tokens:,} prompt tokens (as the provider estimates them) are more "
            "than the Batch API's queue holds for "
            f"{family(entry.model)} at tier {self._tier} ({limit:,} enqueued tokens)"
        )
        body = json.dumps({"error": {"code": "token_limit_exceeded", "message": message}})
        final = self._engine_end(entry, Failed(entry.rid, now, None, None, body))
        reason = final.reason if isinstance(final, Reject) else "batch_queue_full"
        self.worker.end(
            entry.job,
            self.worker.owner,
            "failed",
            now,
            error={"reason": reason, "message": message},
            record=ended_record(
                entry.job,
                priority=self.worker.priority(entry.job.domain),
                now=now,
                reason=reason,
                message=message,
                model=entry.model,
                key=entry.key,
                project=self._projects.get(entry.key, ""),
                batch=True,
                max_output=entry.max_output,
            ),
        )

    async def _submit(self, group: _Group, chosen: list[_Entry], now: float) -> None:
        worker = self.worker
        settings = worker.settings
        row = BatchRow(
            id=f"kpb_{secrets.token_hex(8)}",
            owner=worker.owner,
            lease=now + settings.lease_s,
            key=group.key,
            project=self._projects.get(group.key, ""),
            model=group.model,
            endpoint=group.endpoint,
            state="creating",
            created=now,
            tokens=sum(e.tokens for e in chosen),
            requests=len(chosen),
            next_poll=now + settings.poll_s,
            interval=settings.poll_s,
        )
        worker.store.add_batch(row, [e.job.id for e in chosen])
        for entry in chosen:
            self._submitted[entry.job.id] = entry
        client = self._client(group.key)
        try:
            upload = await client.files.create(
                file=(f"{row.id}.jsonl", b"".join(e.line for e in chosen)), purpose="batch"
            )
        except Exception as exc:
            log.warning("keypolicy: uploading batch %s failed (%s)", row.id, _text(exc))
            self._unsent(row, now, f"uploading its batch file failed ({_text(exc)})")
            return
        worker.store.update_batch(row.id, file_id=upload.id)
        try:
            batch = await client.with_options(max_retries=0).batches.create(
                input_file_id=upload.id,
                endpoint=ENDPOINT_URLS[group.endpoint],  # type: ignore[arg-type]
                completion_window="24h",
                metadata={"keypolicy_batch": row.id},
            )
            batch_id = batch.id
        except Exception as exc:  # it may have been created all the same: look for it
            log.warning("keypolicy: creating batch %s failed (%s)", row.id, _text(exc))
            found = await self._find(client, row)
            if found is None:
                self._unsent(row, now, f"creating its batch failed ({_text(exc)})")
                return
            batch_id = found
        worker.store.update_batch(row.id, batch_id=batch_id, state="submitted")
        log.info(
            "keypolicy: batch %s (%s) of %d %s requests on key %s submitted",
            row.id,
            batch_id,
            len(chosen),
            group.model,
            group.key,
        )

    def _unsent(self, row: BatchRow, now: float, why: str, pause: float | None = None) -> None:
        """The batch was never created: its jobs wait again, ``pause`` (``retry_s`` unless
        given) before they are tried again."""
        worker = self.worker
        body = json.dumps({"error": {"code": "not_created", "message": why}})
        for job in worker.store.batch_jobs(row.id):
            entry = self._submitted.pop(job.id, None)
            if entry is not None:
                self._engine_end(entry, Failed(entry.rid, now, None, None, body))
            wait = worker.settings.retry_s if pause is None else pause
            worker.store.release(job.id, worker.owner, now + wait)
        worker.store.update_batch(row.id, state="done")

    async def _find(self, client: AsyncOpenAI, row: BatchRow) -> str | None:
        """The id of the batch created for ``row`` (by its metadata), if the provider has it."""
        try:
            async for batch in client.batches.list(limit=100):
                if (batch.metadata or {}).get("keypolicy_batch") == row.id:
                    return batch.id
                if batch.created_at < row.created - 3600:  # newest first: past it
                    return None
        except Exception as exc:
            log.warning("keypolicy: listing batches to find %s failed (%s)", row.id, _text(exc))
            raise
        return None

    def _client(self, alias: str) -> AsyncOpenAI:
        client = self._clients.get(alias)
        if client is None:
            import httpx2  # noqa: PLC0415

            parts = self.worker.parts
            client = batch_client(parts.keys, alias, parts.base_url, httpx2.AsyncHTTPTransport())
            self._clients[alias] = client
        return client

    # ---- polling and results

    async def _poll_due(self, now: float) -> None:
        worker = self.worker
        for row in worker.store.batches(owner=worker.owner):
            if row.state == "creating" and row.batch_id is None:
                if row.next_poll <= now:  # a worker died creating it (not this one: see step)
                    await self._reconcile(row, now)
                continue
            if row.state != "submitted" or row.next_poll > now or row.batch_id is None:
                continue
            try:
                batch = await self._client(row.key).batches.retrieve(row.batch_id)
            except Exception as exc:
                log.warning("keypolicy: polling batch %s failed (%s)", row.batch_id, _text(exc))
                self._later(row, now)
                continue
            if batch.status in _OPEN:
                self._later(row, now)
            else:
                await self._collect(row, batch, now)

    def _later(self, row: BatchRow, now: float) -> None:
        interval = min(row.interval * 2, self.worker.settings.poll_max_s)
        self.worker.store.update_batch(row.id, next_poll=now + row.interval, interval=interval)

    async def _reconcile(self, row: BatchRow, now: float) -> None:
        """A batch a worker died creating: found by its metadata, or its jobs wait again."""
        try:
            found = await self._find(self._client(row.key), row)
        except Exception:
            self._later(row, now)
            return
        if found is None:
            self._unsent(row, now, "its worker stopped before the batch was created", 0.0)
            return
        log.info("keypolicy: batch %s found by its metadata (%s): polling it", row.id, found)
        self.worker.store.update_batch(row.id, batch_id=found, state="submitted", next_poll=now)

    async def _collect(self, row: BatchRow, batch: Any, now: float) -> None:
        client = self._client(row.key)
        lines: dict[str, dict[str, Any]] = {}
        try:
            for file_id in (batch.error_file_id, batch.output_file_id):  # answers win
                if file_id:
                    content = await client.files.content(file_id)
                    lines.update(_by_custom_id(content.content))
        except Exception as exc:
            log.warning("keypolicy: reading batch %s's results failed (%s)", row.id, _text(exc))
            self._later(row, now)
            return
        failure = None
        if batch.status == "failed" and batch.errors is not None and batch.errors.data:
            first = batch.errors.data[0]
            failure = {"code": first.code, "message": first.message}
        for job in self.worker.store.batch_jobs(row.id):
            self._result(job, row, batch.status, lines.get(job.id), failure, now)
        self.worker.store.update_batch(row.id, state="done")
        log.info("keypolicy: batch %s (%s) ended %s", row.id, row.batch_id, batch.status)

    def _result(
        self,
        job: JobRecord,
        row: BatchRow,
        status: str,
        line: dict[str, Any] | None,
        failure: dict[str, Any] | None,
        now: float,
    ) -> None:
        response = line.get("response") if line else None
        if isinstance(response, dict) and response.get("status_code") == 200:
            self._answered(job, row, response.get("body") or {}, now)
            return
        if isinstance(response, dict):
            body = response.get("body") or {}
            error = body.get("error") if isinstance(body, dict) else None
            code = int(response.get("status_code") or 0)
            retry = code == 429 or code >= 500
            self._failed(job, row, error or {"message": f"HTTP {code}"}, code, retry, now)
            return
        error = line.get("error") if line else None
        if isinstance(error, dict):
            retry = error.get("code") == "batch_expired"
            self._failed(job, row, error, None, retry, now)
        elif failure is not None:
            queue_full = failure.get("code") == "token_limit_exceeded"
            self._failed(job, row, failure, None, queue_full, now, later=queue_full)
        else:
            message = f"the batch ended {status} without a result for it"
            self._failed(job, row, {"code": status, "message": message}, None, False, now)

    def _answered(self, job: JobRecord, row: BatchRow, body: dict[str, Any], now: float) -> None:
        parts = self.worker.parts
        usage = usage_of(body) or Usage(0, 0, 0)
        entry = self._submitted.pop(job.id, None)
        final = None
        if entry is not None:
            event = Settled(entry.rid, now, usage.prompt, usage.completion, usage.cached)
            final = self._engine_end(entry, event)
        if isinstance(final, Complete):
            cost = final.cost_usd
        else:  # submitted by a worker that is gone: priced as the engine prices a batch
            config = parts.config
            price = config.prices.get(config.families.get(row.model, row.model))
            cost = 0.0
            if price is not None:
                cost = actual_cost(
                    price, usage.prompt, usage.cached, usage.completion, True, config.batch_discount
                )
        record = ended_record(
            job,
            priority=self.worker.priority(job.domain),
            now=now,
            model=row.model,
            key=row.key,
            project=row.project,
            started=row.created,
            usage=usage,
            cost_usd=cost,
            batch=True,
            max_output=entry.max_output if entry else _max_output(job),
        )
        self.worker.end(
            job, self.worker.owner, "done", now, result=body, cost_usd=cost, record=record
        )

    def _failed(
        self,
        job: JobRecord,
        row: BatchRow,
        error: dict[str, Any],
        status: int | None,
        retry: bool,
        now: float,
        later: bool = False,
    ) -> None:
        worker = self.worker
        entry = self._submitted.pop(job.id, None)
        final = None
        if entry is not None:
            body = json.dumps({"error": error})
            final = self._engine_end(entry, Failed(entry.rid, now, status, None, body))
        tries = worker.parts.config.retry.max_attempts
        if retry and now < job.deadline and (later or job.attempts < tries):
            worker.store.release(
                job.id, worker.owner, now + (worker.settings.retry_s if later else 0.0)
            )
            return
        code = str(error.get("code") or "")
        reason = _reason(code, status)
        if status is None and isinstance(final, Reject):
            reason = final.reason  # the engine's name for the Batch API's error code
        expired = code == "batch_expired" or (retry and now >= job.deadline)
        message = str(error.get("message") or code)
        worker.end(
            job,
            worker.owner,
            "expired" if expired else "failed",
            now,
            error={"reason": reason, "message": message, "status": status, "error": error},
            record=ended_record(
                job,
                priority=worker.priority(job.domain),
                now=now,
                reason=reason,  # type: ignore[arg-type]
                message=message,
                status=status,
                model=row.model,
                key=row.key,
                project=row.project,
                started=row.created,
                batch=True,
                max_output=_max_output(job),
            ),
        )


def _reason(code: str, status: int | None) -> str:
    if code == "batch_expired":
        return "batch_expired"
    if code == "token_limit_exceeded":
        return "batch_queue_full"
    if status is not None and 400 <= status < 500 and status != 429:
        return "client_error"
    return "gave_up"


def _by_custom_id(data: bytes) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for text in data.decode("utf-8", "replace").splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
            found[line["custom_id"]] = line
    return found


def _max_output(job: JobRecord) -> int | None:
    return estimate_request(job.endpoint, job.body).max_output_tokens


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
