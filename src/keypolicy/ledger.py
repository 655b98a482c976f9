"""The usage ledger: every live request's :class:`~keypolicy.records.UsageRecord`, kept on disk.

Where it is: the path the runtime is given, else ``$KEYPOLICY_LEDGER``, else
``keypolicy-usage.sqlite`` in the working directory (:func:`default_ledger_path`). The suffix
picks the format: ``.sqlite`` / ``.sqlite3`` / ``.db`` (SQLite, the default), ``.csv`` (the
simulator's ``--records`` columns, so either file reads as the other) or ``.jsonl`` (one JSON
object a line). An existing ledger is appended to, never truncated. A ``postgresql://`` (or
``postgres://``) URL instead of a path: the fleet's ledger, many replicas writing to one
PostgreSQL database (:mod:`keypolicy.ledger_pg`: its schema, migrations and failures).

Why a queue and a thread: a request must not wait for a disk. :meth:`Ledger.write` only puts the
record on a queue; one writer thread takes a record, sleeps ``LINGER_S`` (50 ms), and writes it
with everything queued meanwhile in one transaction (group commit: one wake-up of the writer per
batch rather than per record, which the callers' threads, sharing the interpreter with it, would
feel; a flush or close waits for that sleep at most). SQLite runs in WAL mode with
``synchronous=NORMAL``: a commit is one append to the write-ahead log, readers (``keypolicy
usage``, ``keypolicy report``) never block the writer and open their own connections; the writer's
connection is used by the writer thread alone.

What a crash can lose: a process that dies loses the records still on the queue (written by
``write`` but not yet committed: at most ``LINGER_S`` and one commit's worth; :meth:`Ledger.flush`
waits for them), and the records of requests still in flight, which were never written. Committed
records survive a process crash; a power loss may also take the last commits (the price of
``synchronous=NORMAL``, and of CSV/JSONL written without fsync). A process that forgets
:meth:`Ledger.close` loses nothing: it is registered with :mod:`atexit`. If writing fails (a full
disk), the error is not swallowed: the next ``write``, ``flush`` or ``close`` raises
:class:`LedgerError`. A writer that cannot keep up (a disk or database that stalls) leaves at most
``MAX_QUEUED`` records waiting: ``write`` refuses more (:class:`LedgerError`) rather than filling
the memory.

Records carry key aliases, never a secret, so neither does a ledger.

Reading: :func:`read_ledger` gives a typed ``pandas.DataFrame`` (one row per record, the
columns of :data:`~keypolicy.records.FIELDS`); :func:`iter_records` streams the records back.
"""

from __future__ import annotations

import atexit
import csv
import json
import os
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TextIO

from keypolicy.records import FIELDS, OPTIONAL, OUTCOMES, REQUESTED, UsageRecord

if TYPE_CHECKING:
    import pandas  # type: ignore[import-untyped]  # pandas ships no stubs; pandas-stubs absent

    from keypolicy.ledger_pg import PostgresURL

__all__ = [
    "DEFAULT_LEDGER",
    "LEDGER_ENV",
    "LINGER_S",
    "MAX_QUEUED",
    "RETRY_S",
    "SUFFIXES",
    "Kind",
    "Ledger",
    "LedgerError",
    "default_ledger_path",
    "iter_records",
    "ledger_location",
    "read_ledger",
    "record_from_row",
]

DEFAULT_LEDGER: Final = "keypolicy-usage.sqlite"
LEDGER_ENV: Final = "KEYPOLICY_LEDGER"
SQLITE: Final = (".sqlite", ".sqlite3", ".db")
SUFFIXES: Final = (*SQLITE, ".csv", ".jsonl")
Kind = Literal["sqlite", "csv", "jsonl"]
RETRY_S: Final = (0.05, 0.25, 1.0)
"""Pauses before a failed batch is written again (seconds); then the failure is kept."""
LINGER_S: Final = 0.05
"""How long the writer waits after a record for more to commit with it (seconds)."""
_BATCH: Final = 50_000  # most records one transaction takes (a bound on a flush's latency)
MAX_QUEUED: Final = 100_000
"""Most records that may wait for the writer (besides the batch it is writing)."""


_TYPED: Final = {
    "float | None": ("started",),
    "float": ("submitted", "finished", "wait_s", "cost_usd"),
    "int": (
        "attempts",
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "requested_prompt_tokens",
        "requested_max_tokens",
    ),
    "bool": ("batch", "deferred", "usage_estimated"),
}  # by name: a compiled UsageRecord's dataclass fields do not carry usable types
_KINDS: Final = {
    name: next((kind for kind, names in _TYPED.items() if name in names), "str")
    for name in FIELDS
}
_SQL_TYPES: Final = {"bool": "INTEGER", "int": "INTEGER", "float": "REAL", "float | None": "REAL"}


def default_ledger_path() -> Path | PostgresURL:
    """``$KEYPOLICY_LEDGER`` if set (a path, or a ``postgresql://`` URL), else
    ``keypolicy-usage.sqlite`` in the working directory (made absolute now, so a later
    ``chdir`` does not move it)."""
    where = ledger_location(os.environ.get(LEDGER_ENV) or DEFAULT_LEDGER)
    return where.absolute() if isinstance(where, Path) else where


def ledger_location(where: str | Path | PostgresURL) -> Path | PostgresURL:
    """A ledger's path, or its :class:`~keypolicy.ledger_pg.PostgresURL` for a
    ``postgresql://`` or ``postgres://`` URL (printed with its password masked). A ``Path``
    made of a URL (``Path`` folds ``//`` into ``/``, as a command line's path argument does)
    is read as that URL."""
    from keypolicy.ledger_pg import PostgresURL, is_postgres_url  # noqa: PLC0415

    if isinstance(where, PostgresURL):
        return where
    text = str(where)
    if isinstance(where, Path) and is_postgres_url(text.replace(":/", "://", 1)):
        text = text.replace(":/", "://", 1)
    return PostgresURL(text) if is_postgres_url(text) else Path(where)


class LedgerError(RuntimeError):
    """Writing the ledger failed; records from the failed batch on were not written."""


def _format(path: Path) -> Kind:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(
            f"{path}: a ledger's file name must end in {', '.join(SUFFIXES)} "
            f"(SQLite, CSV or JSON lines), not {suffix or 'nothing'!r}"
        )
    return "sqlite" if suffix in SQLITE else "csv" if suffix == ".csv" else "jsonl"


# ---- writing ------------------------------------------------------------------------------


class _Sink(Protocol):
    def append(self, records: list[UsageRecord]) -> None: ...
    def close(self) -> None: ...


def _row(record: UsageRecord) -> tuple[Any, ...]:
    return tuple(getattr(record, name) for name in FIELDS)


class _SQLiteSink:
    def __init__(self, path: Path) -> None:
        try:
            # Opened here so that a bad path fails now; from here on only the writer thread
            # uses this connection.
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            columns = ", ".join(
                f"{name} {_SQL_TYPES.get(_KINDS[name], 'TEXT')}" for name in FIELDS
            )
            self._db.execute(f"CREATE TABLE IF NOT EXISTS usage ({columns})")
            self._db.execute("CREATE INDEX IF NOT EXISTS usage_finished ON usage (finished)")
            have = {row[1] for row in self._db.execute("PRAGMA table_info(usage)")}
        except sqlite3.Error as exc:
            raise ValueError(f"{path}: cannot open it as a SQLite ledger ({exc})") from None
        missing = [name for name in FIELDS if name not in have]
        if any(name not in OPTIONAL for name in missing):
            self._db.close()
            raise ValueError(
                f"{path}: its usage table lacks column(s) {', '.join(missing)}: "
                "not a keypolicy ledger (give another file)"
            )
        for name in missing:  # a ledger written before these fields existed: add them
            default = "0" if _KINDS[name] in ("bool", "int") else "''"
            self._db.execute(
                f"ALTER TABLE usage ADD COLUMN {name} {_SQL_TYPES.get(_KINDS[name], 'TEXT')} "
                f"NOT NULL DEFAULT {default}"
            )
        marks = ", ".join("?" * len(FIELDS))
        names = ", ".join(FIELDS)  # our own field names, never text from the file
        self._insert = f"INSERT INTO usage ({names}) VALUES ({marks})"  # noqa: S608

    def append(self, records: list[UsageRecord]) -> None:
        with self._db:  # one transaction: all of the batch or none of it
            self._db.execute("BEGIN")
            self._db.executemany(self._insert, [_row(r) for r in records])

    def close(self) -> None:
        self._db.close()


def _open_for_append(path: Path) -> TextIO:
    """Open a text ledger to append; a last line cut short by a crash is dropped first (it was
    never a whole record, and appending after it would spoil the next)."""
    with path.open("ab+") as raw:
        raw.seek(0, os.SEEK_END)
        size = raw.tell()
        if size:
            raw.seek(max(size - 65536, 0))
            tail = raw.read()
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                raw.truncate(size - len(tail) + cut + 1 if cut >= 0 else 0)
    return path.open("a", newline="", encoding="utf-8")


class _CSVSink:
    def __init__(self, path: Path) -> None:
        try:
            header = ""
            if path.exists() and path.stat().st_size:
                with path.open(newline="", encoding="utf-8") as handle:
                    header = handle.readline()
                if next(csv.reader([header]), []) != list(FIELDS):
                    raise ValueError(
                        f"{path}: a CSV whose columns are not a usage ledger's "
                        f"({header.strip()[:120]!r}); appending would spoil it: give a new "
                        "file (or a .sqlite one)"
                    )
            self._file = _open_for_append(path)
        except OSError as exc:
            raise ValueError(f"{path}: cannot open the ledger ({exc.strerror})") from None
        self._csv = csv.writer(self._file)
        if not header:
            self._csv.writerow(FIELDS)
            self._file.flush()

    def append(self, records: list[UsageRecord]) -> None:
        self._csv.writerows(_row(r) for r in records)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class _JSONLSink:
    def __init__(self, path: Path) -> None:
        try:
            self._file = _open_for_append(path)
        except OSError as exc:
            raise ValueError(f"{path}: cannot open the ledger ({exc.strerror})") from None

    def append(self, records: list[UsageRecord]) -> None:
        lines = (json.dumps(dict(zip(FIELDS, _row(r), strict=True))) for r in records)
        self._file.write("".join(line + "\n" for line in lines))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


_SINKS: Final[dict[str, Callable[[Path], _Sink]]] = {
    "sqlite": _SQLiteSink,
    "csv": _CSVSink,
    "jsonl": _JSONLSink,
}
_STOP: Final = object()


class Ledger:
    """Appends usage records to ``path`` (a file, or a ``postgresql://`` URL) off the caller's
    thread (see the module's docstring).

    ``count`` is the number of records committed so far (after :meth:`flush`, every record
    written before it). A context manager: leaving it closes the ledger."""

    def __init__(self, path: str | Path | PostgresURL) -> None:
        self.path = ledger_location(path)
        if isinstance(self.path, Path):
            self._sink: _Sink = _SINKS[_format(self.path)](self.path)
        else:
            from keypolicy.ledger_pg import PostgresSink  # noqa: PLC0415 - needs psycopg

            self._sink = PostgresSink(self.path)
        self.count = 0
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=f"keypolicy-ledger {self.path.name}", daemon=True
        )
        self._thread.start()
        atexit.register(self._close_at_exit)

    def write(self, record: UsageRecord) -> None:
        """Queue one record for the writer thread; returns at once (thread-safe)."""
        self._raise_error()
        if self._closed:
            raise ValueError(f"{self.path}: the ledger is closed")
        if self._queue.qsize() >= MAX_QUEUED:
            raise LedgerError(
                f"{self.path}: {MAX_QUEUED:,} records already wait for the ledger's writer "
                "(it cannot write them yet); this one is not kept"
            )
        self._queue.put(record)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every record written before this call is committed (at most ``timeout``
        seconds: TimeoutError after that)."""
        self._raise_error()
        if self._closed:
            return
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            raise TimeoutError(f"{self.path}: the ledger was not flushed within {timeout}s")
        self._raise_error()

    def close(self) -> None:
        """Flush, stop the writer thread and close the file. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._close_at_exit)
        self._queue.put(_STOP)
        self._thread.join()
        self._raise_error()

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except LedgerError as exc:  # at exit there is nobody left to raise it to
            print(f"keypolicy: {exc}", file=sys.stderr)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise LedgerError(
                f"{self.path}: writing the ledger failed ({self._error}); records written "
                "since were not kept"
            ) from self._error

    def _append(self, records: list[UsageRecord]) -> None:
        """Write one batch; a failure is tried again after RETRY_S (a busy database, a full
        disk freed meanwhile) before it is kept, and raised to the next caller."""
        for pause in (*RETRY_S, None):
            try:
                self._sink.append(records)
            except Exception as exc:
                if pause is None:
                    self._error = exc
                    return
                time.sleep(pause)
            else:
                self.count += len(records)
                return

    def _run(self) -> None:
        stop = False
        while not stop:
            items = [self._queue.get()]
            if isinstance(items[0], UsageRecord):
                # Group commit: sleep through LINGER_S, then take everything queued meanwhile
                # in the same batch. One wake-up of this thread per batch, not per record (a
                # thread woken per record takes the interpreter from the callers each time).
                time.sleep(LINGER_S)
            while len(items) < _BATCH and isinstance(items[-1], UsageRecord):
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [item for item in items if isinstance(item, UsageRecord)]
            if records and self._error is None:
                self._append(records)
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
                stop = stop or item is _STOP
        try:
            self._sink.close()
        except Exception as exc:  # kept, raised by close()
            self._error = self._error or exc

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---- reading ------------------------------------------------------------------------------


def record_from_row(row: dict[str, Any], where: str) -> UsageRecord:
    """The record of one row (text from a CSV, or typed values from SQLite or JSON); fields in
    :data:`~keypolicy.records.OPTIONAL` may be missing. ValueError naming ``where`` if the
    row is unreadable."""
    try:
        values: dict[str, Any] = {}
        for name in FIELDS:
            raw: Any = row.get(name) if name in OPTIONAL else row[name]
            if raw is None and name in REQUESTED:  # written before records carried them
                raw = row.get("prompt_tokens") if name == "requested_prompt_tokens" else ""
            kind = _KINDS[name]
            if kind == "int":
                values[name] = int(float(raw or 0))
            elif kind == "float":
                values[name] = float(raw)
            elif kind == "bool":
                values[name] = raw is True or str(raw).strip().lower() in ("true", "1", "yes")
            elif kind == "float | None":
                values[name] = float(raw) if raw not in (None, "") else None
            else:
                values[name] = "" if raw is None else str(raw)
        if values["outcome"] not in OUTCOMES:
            raise ValueError(f"outcome {values['outcome']!r} is none of {', '.join(OUTCOMES)}")
        return UsageRecord(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: unreadable record ({exc!r})") from None


def _exists(path: Path) -> None:
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ValueError(f"{path}: no ledger there (the file {what})")


def _sqlite_rows(path: Path, since: float | None = None) -> Iterator[dict[str, Any]]:
    _exists(path)
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ValueError(f"{path}: cannot open it as SQLite ({exc})") from None
    try:
        try:
            columns = {row[1] for row in db.execute("PRAGMA table_info(usage)")}
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{path}: not a SQLite ledger ({exc})") from None
        if not columns:
            raise ValueError(f"{path}: a SQLite file without a usage table: not a ledger")
        have = [name for name in FIELDS if name in columns]  # our names, not the file's text
        where = "" if since is None else " WHERE finished >= ?"
        query = f"SELECT {', '.join(have)} FROM usage{where} ORDER BY rowid"  # noqa: S608
        cursor = db.execute(query, () if since is None else (since,))
        for values in cursor:
            yield dict(zip(have, values, strict=True))
    finally:
        db.close()


def _csv_rows(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [f for f in FIELDS if f not in (reader.fieldnames or []) and f not in OPTIONAL]
        if missing:
            raise ValueError(
                f"{path}: not a usage-records file: missing column(s) {', '.join(missing)} "
                "(write one with --records)"
            )
        for number, row in enumerate(reader, start=2):
            yield row, f"{path}:{number}"


def _jsonl_rows(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: not a usage record (a JSON object)")
            yield row, f"{path}:{number}"


def iter_records(
    path: str | Path | PostgresURL, kind: Kind | None = None, since: float | None = None
) -> Iterator[UsageRecord]:
    """The records of a ledger (``.sqlite``/``.sqlite3``/``.db``, ``.csv``, ``.jsonl``, a
    ``postgresql://`` URL; or a file read as ``kind`` whatever the suffix), in the order they
    were written, one at a time; only those that finished at or after ``since`` (epoch
    seconds) if given (SQLite and PostgreSQL ask their index). ValueError saying what is wrong
    otherwise."""
    where = ledger_location(path)
    if not isinstance(where, Path):
        from keypolicy.ledger_pg import postgres_rows  # noqa: PLC0415 - needs psycopg

        for number, row in enumerate(postgres_rows(where, since), start=1):
            yield record_from_row(row, f"{where}: row {number}")
        return
    path = where
    kind = kind or _format(path)
    if kind == "sqlite":
        for number, row in enumerate(_sqlite_rows(path, since), start=1):
            yield record_from_row(row, f"{path}: row {number}")
        return
    _exists(path)
    try:
        rows = _csv_rows(path) if kind == "csv" else _jsonl_rows(path)
        for row, place in rows:
            record = record_from_row(row, place)
            if since is None or record.finished >= since:
                yield record
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (is it a {kind.upper()} ledger?)") from None


def read_ledger(path: str | Path | PostgresURL, since: float | None = None) -> pandas.DataFrame:
    """One row per record of the ledger at ``path`` (a file or a ``postgresql://`` URL), the
    columns of :data:`~keypolicy.records.FIELDS`, typed: times (epoch seconds), ``wait_s`` and
    ``cost_usd`` as floats (``started`` NaN for a request never sent), counts as ints, flags
    as bools; only records that finished at or after ``since`` (epoch seconds) if given.
    ValueError (with the path, or the URL without its password, and what is wrong) for a
    missing file, another kind of file, a missing table or column, an unreadable row, a
    database it cannot reach."""
    import pandas as pd  # noqa: PLC0415 - the writer path does not need pandas

    frame = pd.DataFrame.from_records(
        [_row(r) for r in iter_records(path, since=since)], columns=list(FIELDS)
    )
    types = {"bool": "bool", "int": "int64", "float": "float64", "float | None": "float64"}
    return frame.astype({name: types[kind] for name, kind in _KINDS.items() if kind in types})
