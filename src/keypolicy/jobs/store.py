"""The durable job queue: jobs and their batches in the ledger's database.

Where: in the ledger's own database, so that a job's end and its usage record are written in
one transaction (a job is in the ledger exactly once, whatever crashes when). A SQLite ledger
(``usage.sqlite``) holds the tables ``keypolicy_jobs`` and ``keypolicy_job_batches`` beside
``usage``; a PostgreSQL ledger (``postgresql://``) holds them in the same schema, and several
replicas' workers share them: a worker claims jobs with ``FOR UPDATE SKIP LOCKED``, so two never
take the same one and none waits for another. A CSV or JSON-lines ledger cannot hold tables: its
jobs go to a SQLite file beside it (``usage.csv.jobs.sqlite``), and a job's record is appended
to the ledger after its end is committed (a crash between the two loses that record: use a
SQLite or PostgreSQL ledger where that matters).

Ownership: a worker holds the jobs it claimed (``owner``: ``host/pid/random``) under a lease it
renews while it runs. Jobs whose worker is gone (its lease ended, or, on this host, its process
is dead) are taken over by the next worker that looks (:meth:`JobStore.orphans`), and
reconciled: a job never sent goes back to waiting; a live call that may have been sent is not
sent again (OpenAI has no way to ask whether it got a request): it ends ``failed`` with reason
``interrupted``; a job in a batch follows its batch, which the new worker polls (or, if the
worker died while creating it, looks for by its metadata).

Every method takes the time it acts at (``now``, epoch seconds): nothing here reads a clock.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from keypolicy.jobs.model import BatchRow, JobRecord, JobStatus, dumps, loads
from keypolicy.records import FIELDS, UsageRecord

if TYPE_CHECKING:
    from keypolicy.ledger_pg import PostgresURL

__all__ = [
    "JobStore",
    "jobs_location",
    "new_owner",
    "open_job_store",
    "owner_alive",
    "unfinished_jobs",
]

JOBS: Final = "keypolicy_jobs"
BATCHES: Final = "keypolicy_job_batches"
SCHEMA_LOCK: Final = 0x6B70_6A6F_6273  # "kpjobs": the advisory lock creating the tables takes

_JOB_COLUMNS: Final = (
    "id",
    "idem_key",
    "domain",
    "endpoint",
    "mode",
    "model",
    "body",
    "status",
    "created",
    "deadline",
    "not_before",
    "prompt_tokens",
    "attempts",
    "sent",
    "owner",
    "lease",
    "batch_ref",
    "started",
    "finished",
    "result",
    "error",
    "cost_usd",
)
_BATCH_COLUMNS: Final = (
    "id",
    "owner",
    "lease",
    "key_alias",
    "project",
    "model",
    "endpoint",
    "state",
    "created",
    "tokens",
    "requests",
    "file_id",
    "batch_id",
    "next_poll",
    "interval_s",
)
SCHEMA: Final = (
    f"""CREATE TABLE IF NOT EXISTS {JOBS} (
        id TEXT PRIMARY KEY,
        idem_key TEXT UNIQUE,
        domain TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        mode TEXT NOT NULL,
        model TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        created REAL NOT NULL,
        deadline REAL NOT NULL,
        not_before REAL NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        sent INTEGER NOT NULL,
        owner TEXT,
        lease REAL NOT NULL,
        batch_ref TEXT,
        started REAL,
        finished REAL,
        result TEXT,
        error TEXT,
        cost_usd REAL NOT NULL
    )""",
    f"CREATE INDEX IF NOT EXISTS {JOBS}_due ON {JOBS} (status, mode, not_before)",
    f"CREATE INDEX IF NOT EXISTS {JOBS}_batch ON {JOBS} (batch_ref)",
    f"""CREATE TABLE IF NOT EXISTS {BATCHES} (
        id TEXT PRIMARY KEY,
        owner TEXT,
        lease REAL NOT NULL,
        key_alias TEXT NOT NULL,
        project TEXT NOT NULL,
        model TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        state TEXT NOT NULL,
        created REAL NOT NULL,
        tokens INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        file_id TEXT,
        batch_id TEXT,
        next_poll REAL NOT NULL,
        interval_s REAL NOT NULL
    )""",
)


def new_owner() -> str:
    """A worker's name: ``host/pid/random`` (which machine and process hold a job)."""
    return f"{socket.gethostname()}/{os.getpid()}/{os.urandom(3).hex()}"


RUNNING: Final[set[str]] = set()
"""The workers running in this process (their owner names), for :func:`owner_alive`."""


def owner_alive(owner: str, me: str) -> bool | None:
    """Whether the worker ``owner`` still runs, as far as this process can tell: ``True`` for
    ``me`` and the workers running in this process (:data:`RUNNING`); ``False`` for another
    worker of this process (a closed runtime's) or one of a process of this host that is
    gone; ``None`` for another host's (only its lease can tell)."""
    if owner == me or owner in RUNNING:
        return True
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process of that id: running
        return True
    return True


def jobs_location(ledger: Path | PostgresURL) -> Path | PostgresURL:
    """Where the jobs of ``ledger`` live: the ledger itself (SQLite, PostgreSQL), or a SQLite
    file beside a CSV or JSON-lines ledger (``NAME.jobs.sqlite``)."""
    if not isinstance(ledger, Path):
        return ledger
    if ledger.suffix.lower() in (".csv", ".jsonl"):
        return ledger.with_name(ledger.name + ".jobs.sqlite")
    return ledger


class Cursor(Protocol):
    """What the queries run on: a SQLite connection, or psycopg's behind ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...


def _job(row: Sequence[Any]) -> JobRecord:
    v = dict(zip(_JOB_COLUMNS, row, strict=True))
    return JobRecord(
        id=v["id"],
        key=v["idem_key"],
        domain=v["domain"],
        endpoint=v["endpoint"],
        mode=v["mode"],
        model=v["model"],
        body=loads(v["body"]),
        status=v["status"],
        created=float(v["created"]),
        deadline=float(v["deadline"]),
        not_before=float(v["not_before"]),
        prompt_tokens=int(v["prompt_tokens"]),
        attempts=int(v["attempts"]),
        sent=bool(v["sent"]),
        owner=v["owner"],
        lease=float(v["lease"]),
        batch_ref=v["batch_ref"],
        started=None if v["started"] is None else float(v["started"]),
        finished=None if v["finished"] is None else float(v["finished"]),
        result=loads(v["result"]),
        error=loads(v["error"]),
        cost_usd=float(v["cost_usd"]),
    )


def _batch(row: Sequence[Any]) -> BatchRow:
    v = dict(zip(_BATCH_COLUMNS, row, strict=True))
    return BatchRow(
        id=v["id"],
        owner=v["owner"],
        lease=float(v["lease"]),
        key=v["key_alias"],
        project=v["project"],
        model=v["model"],
        endpoint=v["endpoint"],
        state=v["state"],
        created=float(v["created"]),
        tokens=int(v["tokens"]),
        requests=int(v["requests"]),
        file_id=v["file_id"],
        batch_id=v["batch_id"],
        next_poll=float(v["next_poll"]),
        interval=float(v["interval_s"]),
    )


_JOBS_SELECT: Final = f"SELECT {', '.join(_JOB_COLUMNS)} FROM {JOBS}"  # noqa: S608 - our names
_BATCH_SELECT: Final = f"SELECT {', '.join(_BATCH_COLUMNS)} FROM {BATCHES}"  # noqa: S608


class JobStore:
    """The job queue in one database (see the module). Thread-safe: one connection behind a
    lock (a decision of the queue takes a few milliseconds; the worker makes a handful a
    second). :func:`open_job_store` picks the backend."""

    postgres: bool = False

    def __init__(self, where: str, records_in_db: bool) -> None:
        self.where = where
        self.records_in_db = records_in_db
        """Whether a job's usage record is written with its end, in one transaction (SQLite
        and PostgreSQL ledgers); else the caller appends it to the ledger afterwards."""
        self._lock = threading.Lock()

    # ---- the backend's part

    @contextlib.contextmanager
    def _write(self) -> Iterator[Cursor]:
        """A transaction that may write (all of it or none)."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextlib.contextmanager
    def _read(self) -> Iterator[Cursor]:
        raise NotImplementedError
        yield  # pragma: no cover

    def _claim_sql(self) -> str:
        """Ids of due waiting jobs, locked for this transaction."""
        raise NotImplementedError

    def _insert_record(self, cur: Cursor, job_id: str, record: UsageRecord) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError

    # ---- jobs

    def add(self, job: JobRecord) -> tuple[JobRecord, bool]:
        """Queue ``job``; if its idempotency key is in the queue already, the job queued with
        it instead. Returns the job and whether it is new."""
        values = _job_values(job)
        marks = ", ".join("?" * len(_JOB_COLUMNS))
        with self._write() as cur:
            # ON CONFLICT: two processes deferring with one key at once both end with one job.
            done = cur.execute(
                f"INSERT INTO {JOBS} ({', '.join(_JOB_COLUMNS)}) VALUES ({marks}) "  # noqa: S608
                "ON CONFLICT (idem_key) DO NOTHING",
                values,
            )
            if not done.rowcount:
                found = cur.execute(f"{_JOBS_SELECT} WHERE idem_key = ?", (job.key,)).fetchone()
                return _job(found), False
        return job, True

    def get(self, job_id: str) -> JobRecord | None:
        """The job ``job_id``, if the queue has it."""
        with self._read() as cur:
            row = cur.execute(f"{_JOBS_SELECT} WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def find(
        self,
        status: Sequence[str] | None = None,
        domain: str | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """Jobs of these statuses (all if ``None``) and ``domain``, oldest first."""
        where, params = _filters(status, domain)
        sql = f"{_JOBS_SELECT}{where} ORDER BY created, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._read() as cur:
            rows = cur.execute(sql, params).fetchall()
        return [_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many jobs there are of each status."""
        with self._read() as cur:
            sql = f"SELECT status, count(*) FROM {JOBS} GROUP BY status"  # noqa: S608
            rows = cur.execute(sql).fetchall()
        return {str(s): int(n) for s, n in rows}

    def claim(
        self,
        owner: str,
        mode: str,
        domains: Sequence[str],
        now: float,
        lease_until: float,
        limit: int,
    ) -> list[JobRecord]:
        """Take up to ``limit`` waiting jobs of ``mode`` and ``domains`` that are due
        (``not_before`` passed, deadline not) for ``owner``, oldest first: they are
        ``running`` and held by it until ``lease_until``."""
        if not domains or limit <= 0:
            return []
        marks = ", ".join("?" * len(domains))
        sql = self._claim_sql().format(marks=marks, limit=int(limit))
        with self._write() as cur:
            ids = [r[0] for r in cur.execute(sql, (mode, *domains, now, now)).fetchall()]
            for job_id in ids:
                cur.execute(
                    f"UPDATE {JOBS} SET status = 'running', owner = ?, lease = ?, "  # noqa: S608
                    "started = COALESCE(started, ?) WHERE id = ?",
                    (owner, lease_until, now, job_id),
                )
            rows = [
                cur.execute(f"{_JOBS_SELECT} WHERE id = ?", (job_id,)).fetchone() for job_id in ids
            ]
        return [_job(r) for r in rows if r is not None]

    def mark_sent(self, job_id: str, owner: str) -> bool:
        """The job's request is about to go out (committed before it does): if the worker dies
        now, the job is known to have maybe been sent. One attempt more. False if ``owner`` no
        longer holds it."""
        with self._write() as cur:
            done = cur.execute(
                f"UPDATE {JOBS} SET sent = 1, attempts = attempts + 1 "  # noqa: S608
                "WHERE id = ? AND owner = ? AND status = 'running'",
                (job_id, owner),
            )
            return bool(done.rowcount)

    def release(self, job_id: str, owner: str, not_before: float) -> bool:
        """The job goes back to waiting, not tried before ``not_before`` (it was not sent, or
        its batch refused it before running it)."""
        with self._write() as cur:
            done = cur.execute(
                f"UPDATE {JOBS} SET status = 'waiting', owner = NULL, lease = 0, "  # noqa: S608
                "sent = 0, batch_ref = NULL, not_before = ? "
                "WHERE id = ? AND owner = ? AND status = 'running'",
                (not_before, job_id, owner),
            )
            return bool(done.rowcount)

    def finish(
        self,
        job_id: str,
        owner: str | None,
        status: JobStatus,
        now: float,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        cost_usd: float = 0.0,
        record: UsageRecord | None = None,
    ) -> bool:
        """End the job (``done``, ``failed``, ``expired``) with its result or error, and (a
        SQLite or PostgreSQL ledger) write its usage ``record`` in the same transaction: both
        or neither. Only if ``owner`` holds it (``None``: only if it is waiting). False if the
        job had ended already or another worker holds it: nothing is written then."""
        held = "owner = ? AND status = 'running'" if owner is not None else "status = 'waiting'"
        params: tuple[Any, ...] = (status, now, dumps(result), dumps(error), cost_usd, job_id)
        with self._write() as cur:
            done = cur.execute(
                f"UPDATE {JOBS} SET status = ?, finished = ?, result = ?, error = ?, "  # noqa: S608
                f"cost_usd = ?, owner = NULL, lease = 0 WHERE id = ? AND {held}",
                params + ((owner,) if owner is not None else ()),
            )
            if not done.rowcount:
                return False
            if record is not None and self.records_in_db:
                self._insert_record(cur, job_id, record)
        return True

    def renew(self, owner: str, lease_until: float) -> None:
        """Extend the lease of everything ``owner`` holds."""
        with self._write() as cur:
            cur.execute(
                f"UPDATE {JOBS} SET lease = ? WHERE owner = ? AND status = 'running'",  # noqa: S608
                (lease_until, owner),
            )
            cur.execute(
                f"UPDATE {BATCHES} SET lease = ? WHERE owner = ? AND state <> 'done'",  # noqa: S608
                (lease_until, owner),
            )

    def orphans(
        self, me: str, now: float, lease_until: float, alive: Callable[[str, str], bool | None]
    ) -> tuple[list[JobRecord], list[BatchRow]]:
        """Take over what workers that are gone held (``alive(owner, me)`` False, or its
        lease ended): their running jobs outside batches, and their unfinished batches (whose
        jobs come with them). Returns them, now held by ``me``, for the caller to reconcile."""
        with self._write() as cur:
            jobs = [
                _job(r)
                for r in cur.execute(
                    f"{_JOBS_SELECT} WHERE status = 'running' AND (owner IS NULL OR owner <> ?)",
                    (me,),
                ).fetchall()
            ]
            batches = [
                _batch(r)
                for r in cur.execute(
                    f"{_BATCH_SELECT} WHERE state <> 'done' AND (owner IS NULL OR owner <> ?)",
                    (me,),
                ).fetchall()
            ]

            def gone(owner: str | None, lease: float) -> bool:
                if owner is None:
                    return True
                state = alive(owner, me)
                return state is False or (state is None and lease < now)

            jobs = [j for j in jobs if gone(j.owner, j.lease)]
            batches = [b for b in batches if gone(b.owner, b.lease)]
            for job in jobs:
                cur.execute(
                    f"UPDATE {JOBS} SET owner = ?, lease = ? WHERE id = ?",  # noqa: S608
                    (me, lease_until, job.id),
                )
            for batch in batches:
                cur.execute(
                    f"UPDATE {BATCHES} SET owner = ?, lease = ? WHERE id = ?",  # noqa: S608
                    (me, lease_until, batch.id),
                )
        taken = [_replace_owner(j, me, lease_until) for j in jobs if j.batch_ref is None]
        return taken, [_batch_owner(b, me, lease_until) for b in batches]

    def disown(self, owner: str) -> None:
        """``owner`` stops: what it still holds (batches submitted, calls that outlived its
        drain) is anyone's to take over at once."""
        with self._write() as cur:
            cur.execute(
                f"UPDATE {JOBS} SET owner = NULL WHERE owner = ? AND status = 'running'",  # noqa: S608
                (owner,),
            )
            cur.execute(
                f"UPDATE {BATCHES} SET owner = NULL WHERE owner = ? AND state <> 'done'",  # noqa: S608
                (owner,),
            )

    def expire_due(self, now: float) -> list[JobRecord]:
        """Waiting jobs whose deadline has passed by ``now`` (to end as expired)."""
        with self._read() as cur:
            rows = cur.execute(
                f"{_JOBS_SELECT} WHERE status = 'waiting' AND deadline <= ?", (now,)
            ).fetchall()
        return [_job(r) for r in rows]

    # ---- batches

    def add_batch(self, batch: BatchRow, job_ids: Sequence[str]) -> None:
        """Record a batch about to be created, and its jobs in it (each one attempt more, and
        maybe sent from now on: see the module)."""
        values = [getattr(batch, _BATCH_FIELD.get(c, c)) for c in _BATCH_COLUMNS]
        marks = ", ".join("?" * len(_BATCH_COLUMNS))
        with self._write() as cur:
            cur.execute(
                f"INSERT INTO {BATCHES} ({', '.join(_BATCH_COLUMNS)}) VALUES ({marks})",  # noqa: S608
                values,
            )
            for job_id in job_ids:
                cur.execute(
                    f"UPDATE {JOBS} SET batch_ref = ?, sent = 1, "  # noqa: S608
                    "attempts = attempts + 1 WHERE id = ?",
                    (batch.id, job_id),
                )

    def update_batch(self, ref: str, **fields: Any) -> None:
        """Set fields of batch ``ref`` (``state``, ``file_id``, ``batch_id``,
        ``next_poll``, ``interval``)."""
        names = [_BATCH_COLUMN.get(name, name) for name in fields]
        for name in names:
            if name not in _BATCH_COLUMNS:
                raise ValueError(f"no batch field {name!r}")
        sets = ", ".join(f"{name} = ?" for name in names)
        with self._write() as cur:
            cur.execute(
                f"UPDATE {BATCHES} SET {sets} WHERE id = ?",  # noqa: S608 - names checked
                (*fields.values(), ref),
            )

    def batches(self, owner: str | None = None, open_only: bool = True) -> list[BatchRow]:
        """Batches not done (``open_only``), of ``owner`` if given, oldest first."""
        clauses, params = [], []
        if open_only:
            clauses.append("state <> 'done'")
        if owner is not None:
            clauses.append("owner = ?")
            params.append(owner)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read() as cur:
            rows = cur.execute(f"{_BATCH_SELECT}{where} ORDER BY created, id", params).fetchall()
        return [_batch(r) for r in rows]

    def batch_jobs(self, batch_ref: str) -> list[JobRecord]:
        """The running jobs of batch ``batch_ref``."""
        with self._read() as cur:
            rows = cur.execute(
                f"{_JOBS_SELECT} WHERE batch_ref = ? AND status = 'running' ORDER BY id",
                (batch_ref,),
            ).fetchall()
        return [_job(r) for r in rows]


_BATCH_FIELD: Final = {"key_alias": "key", "interval_s": "interval"}  # column -> field
_BATCH_COLUMN: Final = {v: k for k, v in _BATCH_FIELD.items()}  # field -> column


def _replace_owner(job: JobRecord, owner: str, lease: float) -> JobRecord:
    from dataclasses import replace  # noqa: PLC0415

    return replace(job, owner=owner, lease=lease)


def _batch_owner(batch: BatchRow, owner: str, lease: float) -> BatchRow:
    from dataclasses import replace  # noqa: PLC0415

    return replace(batch, owner=owner, lease=lease)


def _job_values(job: JobRecord) -> list[Any]:
    return [
        job.id,
        job.key,
        job.domain,
        job.endpoint,
        job.mode,
        job.model,
        dumps(job.body),
        job.status,
        job.created,
        job.deadline,
        job.not_before,
        job.prompt_tokens,
        job.attempts,
        int(job.sent),
        job.owner,
        job.lease,
        job.batch_ref,
        job.started,
        job.finished,
        dumps(job.result),
        dumps(job.error),
        job.cost_usd,
    ]


def _filters(status: Sequence[str] | None, domain: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if status:
        clauses.append(f"status IN ({', '.join('?' * len(status))})")
        params.extend(status)
    if domain is not None:
        clauses.append("domain = ?")
        params.append(domain)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def record_values(record: UsageRecord) -> list[Any]:
    """A usage record's values in the ledger's column order."""
    return [getattr(record, name) for name in FIELDS]


# ---- SQLite ---------------------------------------------------------------------------------


class SQLiteJobStore(JobStore):
    """The queue in a SQLite file (WAL: the ledger's writer and readers share it). Writes take
    the database's write lock at once (``BEGIN IMMEDIATE``), so two workers (two processes on
    one file) never claim the same job."""

    def __init__(self, path: Path, records_in_db: bool) -> None:
        super().__init__(str(path), records_in_db)
        try:
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for statement in SCHEMA:
                self._db.execute(statement)
        except sqlite3.Error as exc:
            raise ValueError(f"{path}: cannot open it for the job queue ({exc})") from None
        names = ", ".join(FIELDS)
        self._insert = f"INSERT INTO usage ({names}) VALUES ({', '.join('?' * len(FIELDS))})"  # noqa: S608

    @contextlib.contextmanager
    def _write(self) -> Iterator[Cursor]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[Cursor]:
        with self._lock:
            yield self._db

    def _claim_sql(self) -> str:
        return (
            f"SELECT id FROM {JOBS} WHERE status = 'waiting' AND mode = ? "  # noqa: S608
            "AND domain IN ({marks}) AND not_before <= ? AND deadline > ? "
            "ORDER BY created, id LIMIT {limit}"
        )

    def _insert_record(self, cur: Cursor, job_id: str, record: UsageRecord) -> None:
        cur.execute(self._insert, record_values(record))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_job_store(ledger: Path | PostgresURL) -> JobStore:
    """The job queue of ``ledger`` (a ledger's path or URL: see the module)."""
    where = jobs_location(ledger)
    if isinstance(where, Path):
        return SQLiteJobStore(where, records_in_db=where == ledger)
    from keypolicy.jobs.store_pg import PostgresJobStore  # noqa: PLC0415 - psycopg only for a URL

    return PostgresJobStore(where)


def unfinished_jobs(ledger: Path | PostgresURL) -> int:
    """How many jobs wait or run in ``ledger``'s queue, read without creating anything (0 if
    it has no queue, or cannot be read)."""
    where = jobs_location(ledger)
    sql = f"SELECT count(*) FROM {JOBS} WHERE status IN ('waiting', 'running')"  # noqa: S608
    try:
        if isinstance(where, Path):
            if not where.exists():
                return 0
            db = sqlite3.connect(f"file:{where}?mode=ro", uri=True, timeout=5.0)
            try:
                found = db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (JOBS,)
                ).fetchone()
                return int(db.execute(sql).fetchone()[0]) if found else 0
            finally:
                db.close()
        from keypolicy.ledger_pg import _connect  # noqa: PLC0415

        with _connect(where) as conn:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (JOBS,)).fetchone()
            if not row or not row[0]:
                return 0
            counted = conn.execute(sql).fetchone()
            return int(counted[0]) if counted else 0
    except Exception as exc:  # the worker starts at the first defer() then
        import logging  # noqa: PLC0415

        logging.getLogger("keypolicy.jobs").warning(
            "keypolicy: could not look for unfinished jobs in %s (%s)", where, type(exc).__name__
        )
        return 0
