"""The job queue in the fleet's PostgreSQL ledger (see :mod:`keypolicy.jobs.store`).

psycopg is imported only here, and only for a ``postgresql://`` ledger.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from keypolicy.jobs.store import JOBS, SCHEMA, SCHEMA_LOCK, Cursor, JobStore, record_values
from keypolicy.records import FIELDS, UsageRecord

if TYPE_CHECKING:
    from keypolicy.ledger_pg import PostgresURL

__all__ = ["PostgresJobStore"]


class _PgCursor:
    """psycopg's connection speaking the ``?`` placeholders the queries are written with."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), tuple(params))


class PostgresJobStore(JobStore):
    """The queue in the fleet's PostgreSQL ledger: replicas' workers share it, claiming with
    ``FOR UPDATE SKIP LOCKED``. A job's usage record goes into ``usage`` with ``writer``
    ``job/ID`` and ``seq`` 1, so the ledger's unique ``(writer, seq)`` holds it to once."""

    postgres = True

    def __init__(self, url: PostgresURL) -> None:
        super().__init__(str(url), records_in_db=True)
        from keypolicy.ledger_pg import _connect  # noqa: PLC0415 - psycopg only for a URL

        self.url = url
        try:
            self._conn = _connect(url)
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                for statement in SCHEMA:
                    self._conn.execute(statement.replace(" REAL", " DOUBLE PRECISION"))
        except Exception as exc:  # psycopg's errors, worded with the password masked
            raise ValueError(f"{url}: cannot open the job queue ({url.scrub(str(exc))})") from None
        names = ", ".join((*FIELDS, "writer", "seq"))
        marks = ", ".join("?" * (len(FIELDS) + 2))
        self._insert = (
            f"INSERT INTO usage ({names}) VALUES ({marks}) "  # noqa: S608
            "ON CONFLICT (writer, seq) DO NOTHING"
        )

    @contextlib.contextmanager
    def _write(self) -> Iterator[Cursor]:
        with self._lock, self._conn.transaction():
            yield _PgCursor(self._conn)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Cursor]:
        with self._lock:
            yield _PgCursor(self._conn)

    def _claim_sql(self) -> str:
        return (
            f"SELECT id FROM {JOBS} WHERE status = 'waiting' AND mode = ? "  # noqa: S608
            "AND domain IN ({marks}) AND not_before <= ? AND deadline > ? "
            "ORDER BY created, id LIMIT {limit} FOR UPDATE SKIP LOCKED"
        )

    def _insert_record(self, cur: Cursor, job_id: str, record: UsageRecord) -> None:
        cur.execute(self._insert, [*record_values(record), f"job/{job_id}", 1])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
