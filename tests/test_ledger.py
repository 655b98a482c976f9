"""The usage ledger: written off the caller's thread, appended to, read back exactly.

One contract for every store: the tests that take ``path`` run on each kind of file and on
PostgreSQL (a database of its own per test; skipped without a server, unless required: see
``tests/services.py``). PostgreSQL's own matters are in ``test_ledger_pg.py``.
"""

from __future__ import annotations

import math
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keypolicy.ledger import (
    DEFAULT_LEDGER,
    Ledger,
    LedgerError,
    default_ledger_path,
    iter_records,
    read_ledger,
)
from keypolicy.ledger_pg import PostgresURL
from keypolicy.records import FIELDS, UsageRecord
from tests.services import postgres_database
from tests.usage_records import make_record, varied

STORES = (".sqlite", ".csv", ".jsonl", "postgresql")


@pytest.fixture(params=STORES)
def path(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """A new ledger of each kind: a file's path, or the URL of a database of its own."""
    if request.param == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        yield tmp_path / f"ledger{request.param}"


def test_each_format_gives_back_identical_records(path: Path | str) -> None:
    records = varied(60)
    with Ledger(path) as ledger:
        for r in records:
            ledger.write(r)
    assert list(iter_records(path)) == records
    assert ledger.count == 60


def test_reopening_appends_and_never_truncates(path: Path | str) -> None:
    first, second = varied(10, "a"), varied(5, "b")
    with Ledger(path) as ledger:
        for r in first:
            ledger.write(r)
    with Ledger(path) as ledger:  # opening alone changes nothing
        pass
    with Ledger(path) as ledger:
        for r in second:
            ledger.write(r)
    assert list(iter_records(path)) == first + second
    if isinstance(path, Path) and path.suffix == ".csv":
        assert path.read_text().count("request_id") == 1  # one header


def test_sixteen_threads_lose_and_double_nothing(path: Path | str) -> None:
    with Ledger(path) as ledger:
        start = threading.Barrier(16)

        def writer(thread: int) -> None:
            start.wait()
            for i in range(500):
                ledger.write(make_record(f"t{thread}-{i}"))

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    ids = [r.request_id for r in iter_records(path)]
    assert len(ids) == 8000
    assert set(ids) == {f"t{t}-{i}" for t in range(16) for i in range(500)}
    assert ledger.count == 8000


def test_flush_puts_everything_written_before_it_on_disk(path: Path | str) -> None:
    with Ledger(path) as ledger:
        for r in varied(25):
            ledger.write(r)
        ledger.flush()
        assert ledger.count == 25
        assert len(read_ledger(path)) == 25  # a separate reader sees them, the ledger still open
        ledger.write(make_record("late"))
        ledger.flush()
        assert list(iter_records(path))[-1].request_id == "late"


def _stall(ledger: Ledger) -> tuple[threading.Event, threading.Event]:
    """Make the ledger's writer block inside its next write until released."""
    entered, release = threading.Event(), threading.Event()
    append = ledger._sink.append  # type: ignore[attr-defined]

    def slow(records: list[UsageRecord]) -> None:
        entered.set()
        release.wait()
        append(records)

    ledger._sink.append = slow  # type: ignore[attr-defined]
    return entered, release


def test_write_never_waits_for_the_disk(path: Path | str) -> None:
    with Ledger(path) as ledger:
        entered, release = _stall(ledger)
        ledger.write(make_record("first"))
        assert entered.wait(30)  # the writer is stuck in its I/O ...
        for i in range(1000):  # ... and writers are not
            ledger.write(make_record(f"r{i}"))
        with pytest.raises(TimeoutError, match="not flushed within 0"):
            ledger.flush(timeout=0)
        release.set()
        ledger.flush(timeout=30)
        assert ledger.count == 1001


def test_group_commit_takes_everything_queued_in_one_batch(path: Path | str) -> None:
    with Ledger(path) as ledger:
        batches: list[int] = []
        entered, release = _stall(ledger)  # the first batch blocks until released
        stalled = ledger._sink.append  # type: ignore[attr-defined]

        def counting(records: list[UsageRecord]) -> None:
            batches.append(len(records))
            stalled(records)

        ledger._sink.append = counting  # type: ignore[attr-defined]
        ledger.write(make_record("first"))
        assert entered.wait(30)
        for i in range(300):
            ledger.write(make_record(f"r{i}"))
        release.set()
        ledger.flush(timeout=30)
    assert batches == [1, 300]  # the lone record went alone, the rest queued meanwhile together
    assert len(list(iter_records(path))) == 301


def test_write_refuses_records_past_max_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("keypolicy.ledger.MAX_QUEUED", 10)
    with Ledger(tmp_path / "l.sqlite") as ledger:
        entered, release = _stall(ledger)
        ledger.write(make_record("first"))
        assert entered.wait(30)  # the writer holds "first"; ten more may wait behind it
        for i in range(10):
            ledger.write(make_record(f"r{i}"))
        with pytest.raises(LedgerError, match=r"10 records already wait .* not kept"):
            ledger.write(make_record("one too many"))
        release.set()
        ledger.flush(timeout=30)
        ledger.write(make_record("after"))  # room again
    assert ledger.count == 12


def test_a_writer_error_is_raised_not_swallowed(
    path: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("keypolicy.ledger.RETRY_S", (0.0, 0.01, 0.02))  # tried again, quickly
    ledger = Ledger(path)

    def broken(records: list[UsageRecord]) -> None:
        raise OSError(28, "No space left on device")

    ledger._sink.append = broken  # type: ignore[attr-defined]
    ledger.write(make_record())
    with pytest.raises(LedgerError, match="No space left on device") as caught:
        ledger.flush()
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(LedgerError, match=re.escape(f"{ledger.path}: writing the ledger failed")):
        ledger.write(make_record("r2"))
    with pytest.raises(LedgerError):
        ledger.close()
    ledger.close()  # idempotent: the error was raised once by close


def test_close_is_idempotent_and_a_closed_ledger_refuses_writes(path: Path | str) -> None:
    ledger = Ledger(path)
    ledger.write(make_record())
    ledger.close()
    ledger.close()
    ledger.flush()
    with pytest.raises(ValueError, match="closed"):
        ledger.write(make_record("r2"))
    assert len(list(iter_records(ledger.path))) == 1


def test_a_process_that_forgets_close_loses_nothing(path: Path | str) -> None:
    code = (
        "from keypolicy.ledger import Ledger\n"
        "from tests.usage_records import make_record\n"
        f"ledger = Ledger({str(path)!r})\n"
        "for i in range(2000): ledger.write(make_record(f'r{i}'))\n"
    )
    root = Path(__file__).parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert len(list(iter_records(path))) == 2000


def test_sqlite_is_wal_with_an_index_on_finished(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger(path) as ledger:
        ledger.write(make_record())
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in db.execute("PRAGMA table_info(usage)")]
        indexes = [row[1] for row in db.execute("PRAGMA index_list(usage)")]
        types = {row[1]: row[2] for row in db.execute("PRAGMA table_info(usage)")}
    finally:
        db.close()
    assert columns == list(FIELDS)
    assert "usage_finished" in indexes
    kinds = (types["request_id"], types["finished"], types["attempts"])
    assert kinds == ("TEXT", "REAL", "INTEGER")


def test_an_older_sqlite_ledger_gains_the_new_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = [f for f in FIELDS if f != "usage_estimated"]
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE usage ({', '.join(old)})")
    row = make_record("old")
    db.execute(
        f"INSERT INTO usage VALUES ({', '.join('?' * len(old))})",
        [getattr(row, f) for f in old],
    )
    db.commit()
    db.close()
    with Ledger(path) as ledger:
        ledger.write(make_record("new", usage_estimated=True))
    assert list(iter_records(path)) == [row, make_record("new", usage_estimated=True)]


@pytest.mark.parametrize("name", ["usage.txt", "usage", "usage.parquet"])
def test_an_unknown_suffix_says_which_work(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=r"must end in \.sqlite, \.sqlite3, \.db, \.csv, \.jsonl"):
        Ledger(tmp_path / name)


def test_a_bad_path_fails_at_once(tmp_path: Path) -> None:
    for name in ("l.sqlite", "l.csv", "l.jsonl"):  # PostgreSQL: test_ledger_pg.py
        with pytest.raises(ValueError, match="cannot open"):
            Ledger(tmp_path / "no-such-folder" / name)


def test_a_csv_with_other_columns_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("timestamp,tokens\n1,2\n")
    with pytest.raises(ValueError, match="not a usage ledger's"):
        Ledger(path)
    assert path.read_text() == "timestamp,tokens\n1,2\n"


def test_a_line_cut_short_by_a_crash_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    with Ledger(path) as ledger:
        ledger.write(make_record("whole"))
    with path.open("a") as handle:
        handle.write('{"request_id": "cut sh')
    with Ledger(path) as ledger:
        ledger.write(make_record("after"))
    assert [r.request_id for r in iter_records(path)] == ["whole", "after"]


def test_read_ledger_is_typed(path: Path | str) -> None:
    records = varied(12)
    with Ledger(path) as ledger:
        for r in records:
            ledger.write(r)
    frame = read_ledger(path)
    assert list(frame.columns) == list(FIELDS)
    assert len(frame) == 12
    kinds = {name: str(frame[name].dtype) for name in FIELDS}
    assert kinds["submitted"] == kinds["started"] == kinds["cost_usd"] == "float64"
    assert kinds["attempts"] == kinds["prompt_tokens"] == "int64"
    assert kinds["batch"] == kinds["usage_estimated"] == "bool"
    assert math.isnan(frame["started"][0])  # records[0] was never sent
    assert frame["cost_usd"].sum() == pytest.approx(sum(r.cost_usd for r in records))
    assert frame["request_id"].tolist() == [r.request_id for r in records]


def test_an_empty_ledger_reads_as_no_rows(path: Path | str) -> None:
    Ledger(path).close()
    frame = read_ledger(path)
    assert frame.empty
    assert list(frame.columns) == list(FIELDS)


def test_since_keeps_what_finished_since(path: Path | str) -> None:
    records = varied(12)  # finished 1_795_000_001.125 + i
    with Ledger(path) as ledger:
        for r in records:
            ledger.write(r)
    since = 1_795_000_001.125 + 5
    assert list(iter_records(path, since=since)) == records[5:]
    frame = read_ledger(path, since=since)
    assert frame["request_id"].tolist() == [r.request_id for r in records[5:]]
    assert read_ledger(path, since=2e9).empty


def _write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("missing.sqlite", None, r"missing\.sqlite: no ledger there \(the file does not exist\)"),
        ("text.sqlite", "hello, not a database\n" * 100, r"text\.sqlite: not a SQLite ledger"),
        ("bin.csv", b"\xff\xfe\x00\x01" * 10, r"bin\.csv: not a text file"),
        ("bad.jsonl", '{"request_id": 1}\nnot json\n', r"bad\.jsonl:1: unreadable record"),
        ("bad2.jsonl", "[1, 2]\n", r"bad2\.jsonl:1: not a usage record"),
        ("bad3.jsonl", "{oops\n", r"bad3\.jsonl:1: not JSON"),
        ("other.csv", "a,b\n1,2\n", r"other\.csv: not a usage-records file: missing column"),
        ("ledger.yaml", "a: 1\n", r"ledger\.yaml: a ledger's file name must end in"),
    ],
)
def test_read_ledger_says_what_is_wrong(
    tmp_path: Path, name: str, data: str | bytes | None, message: str
) -> None:
    path = tmp_path / name if data is None else _write(tmp_path / name, data)
    with pytest.raises(ValueError, match=message):
        read_ledger(path)


def test_a_sqlite_file_without_the_table_is_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE things (x)")
    db.commit()
    db.close()
    with pytest.raises(ValueError, match=r"other\.sqlite: a SQLite file without a usage table"):
        read_ledger(path)


def test_an_unknown_outcome_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    with Ledger(path) as ledger:
        ledger.write(make_record())
    path.write_text(path.read_text().replace('"ok"', '"maybe"'))
    with pytest.raises(ValueError, match="outcome 'maybe' is none of ok, upstream_429"):
        read_ledger(path)


def test_simulation_records_read_as_a_ledger(tmp_path: Path) -> None:
    from keypolicy.records import RecordWriter

    records = varied(20)
    with RecordWriter(tmp_path / "sim.csv") as writer:
        for r in records:
            writer.write(r)
    assert list(iter_records(tmp_path / "sim.csv")) == records
    with Ledger(tmp_path / "sim.csv") as ledger:  # and the ledger appends to them
        ledger.write(make_record("more"))
    assert len(read_ledger(tmp_path / "sim.csv")) == 21


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KEYPOLICY_LEDGER", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_ledger_path() == tmp_path / DEFAULT_LEDGER
    monkeypatch.setenv("KEYPOLICY_LEDGER", "elsewhere/usage.jsonl")
    assert default_ledger_path() == tmp_path / "elsewhere" / "usage.jsonl"
    monkeypatch.setenv("KEYPOLICY_LEDGER", "postgresql://kp:pw-8c1e@db.internal/keypolicy")
    where = default_ledger_path()
    assert isinstance(where, PostgresURL)
    assert where.url == "postgresql://kp:pw-8c1e@db.internal/keypolicy"
    assert str(where) == "postgresql://kp:***@db.internal/keypolicy"


def test_no_secret_column() -> None:
    fields: dict[str, Any] = dict.fromkeys(FIELDS)
    assert not any("secret" in f or f in ("api_key", "token") for f in fields)


def test_every_typed_field_is_a_field() -> None:
    from keypolicy.ledger import _TYPED

    named = [name for names in _TYPED.values() for name in names]
    assert set(named) <= set(FIELDS)
    strings = set(FIELDS) - set(named)
    assert all(isinstance(getattr(make_record(), f), str) for f in strings)
