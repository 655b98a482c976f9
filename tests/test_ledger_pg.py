"""The fleet's ledger in PostgreSQL: schema and migrations, many writers, failures, secrets.

The ledger's contract (what every store does) runs on PostgreSQL in ``test_ledger.py``; here is
what only a shared database has. Each test gets a database of its own (``tests/services.py``),
dropped after; without a server these tests skip, unless
``KEYPOLICY_REQUIRE_POSTGRES=1``. The shared server is never stopped: an outage is a proxy of the
test's own that stops and starts again, or a port nothing listens on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from keypolicy.ledger import Ledger, LedgerError, iter_records, ledger_location, read_ledger
from keypolicy.ledger_pg import SCHEMA_VERSION, PostgresURL, migrate
from keypolicy.records import FIELDS, UsageRecord
from tests.commands import run_keypolicy
from tests.services import free_port, postgres_database, postgres_url, require_module
from tests.usage_records import make_record, varied

ROOT = Path(__file__).parents[1]
CANARY = "pw-canary-7f3a91c4e2"  # trust auth takes any password: this one must never show


@pytest.fixture
def url() -> Iterator[str]:
    """A database of its own, empty."""
    with postgres_database() as made:
        yield made


def _with_password(url: str, password: str = CANARY, port: int | None = None) -> str:
    return postgres_url(urlsplit(url).path.strip("/"), password=password, port=port)


def _sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(query, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def _no_canary(*texts: object) -> None:
    for text in texts:
        assert CANARY not in str(text), f"the password leaked into: {str(text)[:300]}"


def _everything(exc: BaseException) -> str:
    """An exception as a traceback prints it: message, repr, causes and contexts shown."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


# ---- URLs and passwords (no server needed) ----------------------------------------------


def test_a_url_prints_without_its_password() -> None:
    where = PostgresURL(f"postgresql://kp:{CANARY}@db.internal:5433/keypolicy?sslmode=require")
    assert str(where) == "postgresql://kp:***@db.internal:5433/keypolicy?sslmode=require"
    assert repr(where) == "PostgresURL('postgresql://kp:***@db.internal:5433/keypolicy?sslmode=require')"
    assert f"{where}" == str(where)
    assert CANARY in where.url
    assert where.name == "keypolicy"
    in_query = PostgresURL(f"postgres://kp@h/db?password={CANARY}&application_name=x")
    assert str(in_query) == "postgres://kp@h/db?password=***&application_name=x"
    encoded = PostgresURL("postgresql://kp:p%40ss%2Fw0rd-xyz@h/db")
    assert str(encoded) == "postgresql://kp:***@h/db"
    assert encoded.scrub("auth failed for p@ss/w0rd-xyz and p%40ss%2Fw0rd-xyz\n\tretry") == (
        "auth failed for *** and *** retry"
    )


def test_a_path_folded_by_the_command_line_is_read_as_the_url() -> None:
    # typer hands `keypolicy usage postgresql://...` over as a Path, which folds "//" into "/".
    folded = ledger_location(Path("postgresql://kp:pw@127.0.0.1:5432/db?options=-csearch_path%3Dx"))
    assert isinstance(folded, PostgresURL)
    assert folded.url == "postgresql://kp:pw@127.0.0.1:5432/db?options=-csearch_path%3Dx"
    assert ledger_location("postgres://h/db") == PostgresURL("postgres://h/db")
    assert ledger_location("usage.sqlite") == Path("usage.sqlite")


def test_without_psycopg_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    install = r"needs psycopg: pip install 'keypolicy\[postgres\]'"
    with pytest.raises(ValueError, match=install):
        Ledger("postgresql://127.0.0.1/keypolicy")
    with pytest.raises(ValueError, match=install):
        read_ledger("postgresql://127.0.0.1/keypolicy")


def test_an_unreachable_server_is_a_clear_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_module("psycopg", "pip install -e '.[dev]'")
    port = free_port()
    url = f"postgresql://kp:{CANARY}@127.0.0.1:{port}/keypolicy"
    shown = f"postgresql://kp:***@127.0.0.1:{port}/keypolicy"
    caplog.set_level(logging.DEBUG)
    for attempt in (lambda: Ledger(url), lambda: read_ledger(url)):
        with pytest.raises(ValueError, match="cannot open the PostgreSQL ledger") as caught:
            attempt()
        message = str(caught.value)
        assert message.startswith(f"{shown}: cannot open the PostgreSQL ledger (")
        assert "refused" in message
        _no_canary(_everything(caught.value))
    _no_canary(caplog.text)
    usage = run_keypolicy("usage", url)
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr
    assert f"{shown}: cannot open the PostgreSQL ledger" in usage.stderr
    _no_canary(usage.stdout, usage.stderr)


def test_report_on_an_unreachable_server_exits_2(tmp_path: Path) -> None:
    require_module("psycopg", "pip install -e '.[dev]'")
    url = f"postgresql://kp@127.0.0.1:{free_port()}/keypolicy"
    report = run_keypolicy("report", url, "--out", tmp_path / "r.html")
    assert report.returncode == 2
    assert "Traceback" not in report.stderr
    assert "cannot open the PostgreSQL ledger" in report.stderr
    assert not (tmp_path / "r.html").exists()


def test_report_never_shows_the_password(tmp_path: Path) -> None:
    require_module("psycopg", "pip install -e '.[dev]'")
    url = f"postgresql://kp:{CANARY}@127.0.0.1:{free_port()}/keypolicy"
    report = run_keypolicy("report", url, "--out", tmp_path / "r.html")
    assert report.returncode == 2
    _no_canary(report.stdout, report.stderr)


def test_usage_of_an_empty_ledger_never_shows_the_password(url: str) -> None:
    with_password = _with_password(url)
    Ledger(with_password).close()
    usage = run_keypolicy("usage", with_password)
    assert usage.returncode == 0, usage.stderr
    assert "no usage records in postgresql://postgres:***@" in usage.stdout
    _no_canary(usage.stdout, usage.stderr)


# ---- schema and migrations ----------------------------------------------------------------


def test_the_schema_is_the_sqlite_ledgers_typed(url: str) -> None:
    with Ledger(url) as ledger:
        ledger.write(make_record())
        writer = ledger._sink.writer  # type: ignore[attr-defined]
    rows = _sql(
        url,
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = 'usage' ORDER BY ordinal_position",
    )
    types = {name: kind for name, kind, _ in rows}
    nullable = {name for name, _, null in rows if null == "YES"}
    assert list(types) == ["id", *FIELDS, "writer", "seq"]
    expected = {"float": "double precision", "int": "bigint", "bool": "boolean", "str": "text"}
    record = make_record()
    for name in FIELDS:
        value = getattr(record, name)
        kind = "float" if name == "started" else type(value).__name__
        assert types[name] == expected[kind], name
    assert nullable == {"started"}
    assert (types["id"], types["writer"], types["seq"]) == ("bigint", "text", "bigint")
    query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'usage'"
    indexes = dict(_sql(url, query))
    assert "(finished)" in indexes["usage_finished"]
    assert "UNIQUE" in indexes["usage_writer_seq"]
    assert _sql(url, "SELECT version FROM keypolicy_schema") == [(SCHEMA_VERSION,)]
    host, pid, tag = writer.split("/")
    assert (host, int(pid), len(tag)) == (socket.gethostname(), os.getpid(), 6)
    assert _sql(url, "SELECT writer, seq FROM usage") == [(writer, 1)]


def test_concurrent_starts_migrate_once(url: str) -> None:
    """Eight writers start at once on a new database: one creates the schema, seven find it."""
    import psycopg

    start = threading.Barrier(8)
    found: list[int] = []
    where = PostgresURL(url)

    def open_one() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            start.wait()
            found.append(migrate(conn, where))

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(found) == [0] + [SCHEMA_VERSION] * 7
    assert _sql(url, "SELECT version FROM keypolicy_schema") == [(SCHEMA_VERSION,)]
    ledgers = [Ledger(url) for _ in range(3)]  # and writers opening it later change nothing
    for ledger in ledgers:
        ledger.write(make_record())
        ledger.close()
    assert _sql(url, "SELECT version FROM keypolicy_schema") == [(SCHEMA_VERSION,)]
    assert _sql(url, "SELECT count(*) FROM usage") == [(3,)]


def test_a_writer_needs_no_create_privilege_once_the_schema_is_there(url: str) -> None:
    Ledger(url).close()  # migrated by a role that may
    role = f"kp_writer_{uuid.uuid4().hex[:10]}"
    database = urlsplit(url).path.strip("/")
    _sql(url, f"CREATE ROLE {role} LOGIN")
    try:
        _sql(url, f"GRANT CONNECT ON DATABASE {database} TO {role}")
        _sql(url, f"GRANT SELECT, INSERT ON usage TO {role}")
        _sql(url, f"GRANT SELECT ON keypolicy_schema TO {role}")
        as_writer = urlsplit(url)._replace(netloc=f"{role}@{urlsplit(url).netloc.split('@')[-1]}")
        with Ledger(as_writer.geturl()) as ledger:
            ledger.write(make_record("least"))
        assert [r.request_id for r in iter_records(url)] == ["least"]
        assert _sql(url, f"SELECT has_schema_privilege('{role}', 'public', 'CREATE')") == [
            (False,)
        ]
    finally:
        _sql(url, f"DROP OWNED BY {role}")
        _sql(url, f"DROP ROLE {role}")


def test_a_newer_schema_is_refused_by_writers_and_readers(url: str) -> None:
    Ledger(url).close()
    _sql(url, "UPDATE keypolicy_schema SET version = %s", SCHEMA_VERSION + 1)
    newer = rf"schema is version {SCHEMA_VERSION + 1}, newer than this keypolicy knows"
    with pytest.raises(ValueError, match=newer + r" \(1\).*upgrade this one"):
        Ledger(url)
    with pytest.raises(ValueError, match=newer):
        read_ledger(url)
    usage = run_keypolicy("usage", url)
    assert usage.returncode == 2
    assert "newer than this keypolicy knows" in usage.stderr
    assert "Traceback" not in usage.stderr


def test_a_usage_table_keypolicy_did_not_make_is_refused_untouched(url: str) -> None:
    _sql(url, "CREATE TABLE usage (x integer)")
    _sql(url, "INSERT INTO usage VALUES (7)")
    with pytest.raises(ValueError, match="a table named usage is there already"):
        Ledger(url)
    assert _sql(url, "SELECT x FROM usage") == [(7,)]
    assert _sql(url, "SELECT to_regclass('keypolicy_schema')") == [(None,)]  # rolled back
    with pytest.raises(ValueError, match="no keypolicy ledger in this database"):
        read_ledger(url)


def test_a_schema_of_its_own_through_search_path(url: str) -> None:
    _sql(url, "CREATE SCHEMA fleet")
    in_schema = url + "?options=-csearch_path%3Dfleet"
    records = varied(5)
    with Ledger(in_schema) as ledger:
        for r in records:
            ledger.write(r)
    where = "SELECT to_regclass('fleet.usage') IS NOT NULL, to_regclass('public.usage')"
    assert _sql(url, where) == [(True, None)]
    assert list(iter_records(in_schema)) == records
    usage = run_keypolicy("usage", in_schema, "--format", "json")
    assert usage.returncode == 0, usage.stderr
    assert json.loads(usage.stdout)[-1]["requests"] == 5


# ---- many writers -------------------------------------------------------------------------

WRITER = """\
import sys, time
from pathlib import Path
from keypolicy.ledger import Ledger
from tests.usage_records import make_record
url, number, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
ledger = Ledger(url)  # all three migrate at once, before they write
while not go.exists():
    time.sleep(0.005)
for i in range(1000):
    ledger.write(make_record(f"p{number}-{i}", key=f"key-{i % 3}", cost_usd=0.001))
ledger.close()
"""


def test_three_processes_write_1000_records_each_exactly_once(url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(n), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    go.touch()
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    ids = [r.request_id for r in iter_records(url)]
    assert len(ids) == 3000
    assert set(ids) == {f"p{n}-{i}" for n in range(3) for i in range(1000)}
    per_writer = _sql(url, "SELECT count(*), min(seq), max(seq) FROM usage GROUP BY writer")
    assert per_writer == [(1000, 1, 1000)] * 3
    usage = run_keypolicy("usage", url, "--by", "key", "--format", "json")
    assert usage.returncode == 0, usage.stderr
    table = json.loads(usage.stdout)
    assert [row["key"] for row in table] == ["key-0", "key-1", "key-2", "total"]
    assert [row["requests"] for row in table] == [1002, 999, 999, 3000]
    assert table[-1]["cost_usd"] == pytest.approx(3.0)
    report = run_keypolicy("report", url, "--out", tmp_path / "fleet.html")
    assert report.returncode == 0, report.stderr
    assert "3,000 usage records" in (tmp_path / "fleet.html").read_text()


# ---- failures while running ---------------------------------------------------------------


class _Proxy:
    """A TCP proxy to the test's PostgreSQL that a test can stop (every connection cut, the
    port refusing) and start again on the same port: an outage of the server as the ledger
    sees it, while the shared server itself keeps running."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            if self._listener is not None:
                with contextlib.suppress(OSError):  # wakes the accept() blocked on it
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy(url: str) -> Iterator[_Proxy]:
    parts = urlsplit(url)
    made = _Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    made.start()
    yield made
    made.stop()


def test_an_outage_is_ridden_out_and_nothing_is_lost_or_doubled(
    url: str, proxy: _Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    through = _with_password(url, port=proxy.port)
    first, during = varied(40, "a"), varied(40, "b")
    with Ledger(through) as ledger:
        sink, refused = ledger._sink, threading.Semaphore(0)  # type: ignore[attr-defined]
        failed = sink._failed

        def counted(exc: Exception) -> None:
            failed(exc)  # says why, pauses before the next attempt
            refused.release()

        sink._failed = counted
        for r in first:
            ledger.write(r)
        ledger.flush(timeout=30)
        proxy.stop()  # the server is gone: connections cut, new ones refused
        for r in during:
            ledger.write(r)  # never waits: the records wait on the queue
        for _ in range(3):  # the batch failed, then two reconnections were refused
            assert refused.acquire(timeout=30)
        assert ledger.count == 40
        proxy.start()
        ledger.flush(timeout=30)
        assert ledger.count == 80
        _no_canary(repr(ledger.path), str(ledger.path), ledger._thread.name)  # type: ignore[attr-defined]
    assert list(iter_records(url)) == first + during
    messages = [r.getMessage() for r in caplog.records if r.name == "keypolicy.ledger"]
    assert any("lost its connection" in m and "records stay queued" in m for m in messages)
    assert any(" is back after " in m for m in messages)
    _no_canary(caplog.text, *messages)


def test_a_commit_whose_answer_was_lost_is_not_written_again(url: str) -> None:
    import psycopg

    with Ledger(url) as ledger:
        sink = ledger._sink  # type: ignore[attr-defined]
        copy, lost = sink._copy, []

        def commit_then_lose_the_answer(conn: Any, rows: list[tuple[Any, ...]]) -> None:
            copy(conn, rows)  # committed ...
            if not lost:  # ... but the connection drops before the writer hears so
                lost.append(len(rows))
                conn.close()
                raise psycopg.OperationalError("server closed the connection unexpectedly")

        sink._copy = commit_then_lose_the_answer
        records = varied(30)
        for r in records:
            ledger.write(r)
        ledger.flush(timeout=30)
        more = make_record("after")
        ledger.write(more)
    assert lost == [30]
    assert list(iter_records(url)) == [*records, more]
    assert ledger.count == 31


def test_an_outage_past_the_window_fails_flush_keeping_what_was_flushed(url: str) -> None:
    through = _with_password(url)
    ledger = Ledger(through)
    flushed = varied(10)
    for r in flushed:
        ledger.write(r)
    ledger.flush(timeout=30)
    sink = ledger._sink  # type: ignore[attr-defined]
    sink.reconnect_s = 0.5
    sink.url = PostgresURL(_with_password(url, port=free_port()))  # the server is gone for good
    sink._conn.close()
    ledger.write(make_record("lost"))
    began = time.monotonic()
    with pytest.raises(LedgerError, match=r"PostgreSQL unreachable for 0\.5 s") as caught:
        ledger.flush(timeout=60)
    assert time.monotonic() - began < 15  # the window, the ledger's three retries, no more
    assert "postgresql://postgres:***@" in str(caught.value)
    _no_canary(_everything(caught.value))
    with pytest.raises(LedgerError):
        ledger.write(make_record("refused"))
    with pytest.raises(LedgerError):
        ledger.close()
    assert list(iter_records(url)) == flushed  # everything a flush acknowledged is there


# ---- the runtime --------------------------------------------------------------------------


def test_a_runtime_pointed_at_the_fleet_ledger(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from keypolicy.mock import MockOptions, MockServer, create_app
    from keypolicy.runtime import Runtime
    from tests.runtime.conftest import KEYS, POLICY

    caplog.set_level(logging.DEBUG)
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KEYPOLICY_LEDGER", _with_password(url))  # as a deployment would
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    server = MockServer(create_app(policy, options=MockOptions(latency=False)))
    server.start()
    try:
        with Runtime.from_file(policy, base_url=server.url + "/v1") as runtime:
            client = runtime.openai("chat")
            for _ in range(5):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
                )
            assert isinstance(runtime.ledger.path, PostgresURL)
            _no_canary(repr(runtime), repr(runtime.ledger.path))
            assert "postgres:***@" in repr(runtime)
    finally:
        server.stop()
    rows: list[UsageRecord] = list(iter_records(url))
    assert [(r.domain, r.outcome) for r in rows] == [("chat", "ok")] * 5
    assert read_ledger(url)["completion_tokens"].sum() == sum(r.completion_tokens for r in rows)
    _no_canary(caplog.text)
