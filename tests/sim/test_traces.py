"""Trace files as traffic: column mapping, time formats, bad rows, merging, formats, streaming."""

from __future__ import annotations

import json
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from keypolicy.sim.traffic import Arrival, TrafficError, trace_arrivals

HINT = "(fix the row, or skip bad rows: --skip-bad-rows, skip_bad_rows: true)"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rows(traffic_paths: list[Path], **options: object) -> list[Arrival]:
    return list(trace_arrivals(traffic_paths, **options).arrivals(0))  # type: ignore[arg-type]


def test_columns_are_mapped_by_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        (
            "When,Fn,Engine,In,Cap,Out,Other\n"
            "2026-03-02 09:00:00,chat,gpt-4o-mini,100,256,40,x\n"
            "2026-03-02 09:00:01.5,xray,,2000,,300,y\n"
        ),
    )
    columns = {
        "timestamp": "When",
        "domain": "Fn",
        "model": "Engine",
        "prompt_tokens": "In",
        "max_tokens": "Cap",
        "completion_tokens": "Out",
    }
    traffic = trace_arrivals([path], columns=columns)
    assert list(traffic.arrivals(0)) == [
        Arrival(0.0, "chat", 100, 256, 40, "gpt-4o-mini"),
        Arrival(1.5, "xray", 2000, 300, 300, None),  # no max_tokens: its completion
    ]
    assert traffic.domains() == {"chat", "xray"}
    assert traffic.start == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert traffic.duration_s == 2
    assert traffic.rows == 2
    assert traffic.skipped == 0


def test_common_column_names_are_found_without_a_map(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "azure.csv",
        (
            "TIMESTAMP,ContextTokens,GeneratedTokens\n"
            "2023-11-16 18:17:03.9799600,4808,10\n"
            "2023-11-16 18:17:04.0319600,3180,8"  # no newline at the end, like the Azure files
        ),
    )
    assert rows([path], domain="coding") == [
        Arrival(0.0, "coding", 4808, 10, 10),
        Arrival(0.052, "coding", 3180, 8, 8),
    ]


def test_max_tokens_setting_and_column_and_cap(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "ts,prompt_tokens,completion_tokens\n0,10,100\n1,10,900\n")
    got = rows([path], domain="d", max_tokens=500)
    assert [(a.max_output_tokens, a.completion_tokens) for a in got] == [(500, 100), (900, 900)]
    capped = write(tmp_path, "c.csv", "ts,prompt_tokens,max_tokens,completion_tokens\n0,1,50,80\n")
    assert [(a.max_output_tokens, a.completion_tokens) for a in rows([capped], domain="d")] == [
        (50, 50)
    ]
    only_max = write(tmp_path, "m.csv", "ts,prompt_tokens,max_tokens\n0,1,50\n")
    assert rows([only_max], domain="d") == [Arrival(0.0, "d", 1, 50, None)]


@pytest.mark.parametrize(
    ("form", "values", "start"),
    [
        (
            "datetime",
            ["2026-01-01T10:00:00+01:00", "2026-01-01T09:00:02Z"],
            datetime(2026, 1, 1, 9, tzinfo=UTC),
        ),
        (
            "auto",
            ["2026-01-01 09:00:00", "2026-01-01 09:00:02"],
            datetime(2026, 1, 1, 9, tzinfo=UTC),
        ),
        ("seconds", ["1767258000", "1767258002.0"], datetime(2026, 1, 1, 9, tzinfo=UTC)),
        ("auto", ["1767258000", "1767258002"], datetime(2026, 1, 1, 9, tzinfo=UTC)),
        ("milliseconds", ["1767258000000", "1767258002000"], datetime(2026, 1, 1, 9, tzinfo=UTC)),
        ("auto", ["1767258000000", "1767258002000"], datetime(2026, 1, 1, 9, tzinfo=UTC)),
    ],
)
def test_time_formats(tmp_path: Path, form: str, values: list[str], start: datetime) -> None:
    text = "time,prompt_tokens,completion_tokens\n" + "".join(f"{v},5,5\n" for v in values)
    traffic = trace_arrivals([write(tmp_path, "t.csv", text)], domain="d", time_format=form)
    assert [a.time for a in traffic.arrivals(0)] == [0.0, 2.0]
    assert traffic.start == start


def test_date_times_without_a_zone_are_read_in_the_timezone_given(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "time,prompt_tokens,completion_tokens\n2026-07-01 08:00,1,1\n")
    traffic = trace_arrivals([path], domain="d", timezone="America/New_York")
    assert traffic.start == datetime(2026, 7, 1, 8, tzinfo=ZoneInfo("America/New_York"))
    assert traffic.start.utcoffset() == timedelta(hours=-4)
    replayed = trace_arrivals([path], domain="d", start=datetime(2026, 11, 18, tzinfo=UTC))
    assert replayed.start == datetime(2026, 11, 18, tzinfo=UTC)


BAD = (
    "ts,prompt,out\n"
    "2026-01-01 00:00:00,100,10\n"
    "2026-01-01 00:00:01,abc,10\n"
    '2026-01-01 00:00:02,100,"1,5"\n'
    "not-a-time,100,10\n"
    "\n"
    "2026-01-01 00:00:03,-4,10\n"
)
BAD_COLUMNS = {"timestamp": "ts", "prompt_tokens": "prompt", "completion_tokens": "out"}


def test_bad_rows_are_errors_at_their_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", BAD)
    with pytest.raises(TrafficError) as caught:
        trace_arrivals([path], domain="d", columns=BAD_COLUMNS)
    assert caught.value.issues == [
        f"{path}:3:21: column 'prompt': 'abc' is not a whole number of tokens {HINT}",
        f"{path}:4:25: column 'out': '1,5' is not a whole number of tokens {HINT}",
        f"{path}:5:1: column 'ts': 'not-a-time' is not a date-time such as "
        f"2023-11-16 18:17:03.97 {HINT}",
        f"{path}:7:21: column 'prompt': '-4' is not a whole number of tokens {HINT}",
    ]


def test_bad_rows_can_be_skipped_and_counted(tmp_path: Path) -> None:
    traffic = trace_arrivals(
        [write(tmp_path, "bad.csv", BAD)], domain="d", columns=BAD_COLUMNS, skip_bad_rows=True
    )
    assert traffic.skipped == 4
    assert traffic.rows == 1
    assert list(traffic.arrivals(0)) == [Arrival(0.0, "d", 100, 10, 10)]


def test_many_bad_rows_are_summarized(tmp_path: Path) -> None:
    text = "ts,prompt_tokens,completion_tokens\n" + "".join(f"{i},x,1\n" for i in range(30))
    with pytest.raises(TrafficError) as caught:
        trace_arrivals([write(tmp_path, "t.csv", text)], domain="d")
    assert len(caught.value.issues) == 21
    assert caught.value.issues[-1].endswith("t.csv: 10 more rows cannot be read")


def test_header_problems_name_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "When,Tokens,Out\n1,2,3\n")
    with pytest.raises(TrafficError) as caught:
        trace_arrivals([path], columns={"timestamp": "when", "prompt_tokn": "Tokens"})
    assert caught.value.issues == [
        f"{path}: columns: unknown field 'prompt_tokn' (did you mean 'prompt_tokens'?)"
    ]
    with pytest.raises(TrafficError) as caught:
        trace_arrivals([path], columns={"timestamp": "when"})
    assert caught.value.issues == [
        f"{path}:1:1: no column 'when' for timestamp (did you mean 'When'?)",
        f"{path}:1:1: no column for domain (map it: --column domain=COLUMN, or columns: "
        "{domain: COLUMN} in a trace profile, or give one for every row: --domain D; the "
        "columns are When, Tokens, Out)",
        f"{path}:1:1: no column for prompt_tokens (map it: --column prompt_tokens=COLUMN, or "
        "columns: {prompt_tokens: COLUMN} in a trace profile; the columns are When, Tokens, Out)",
        f"{path}:1:1: no column for max_tokens or completion_tokens (map one, or give max_tokens "
        "for every row: --max-tokens N, or max_tokens: N in a trace profile)",
    ]
    with pytest.raises(TrafficError, match="both for the whole file and as a column"):
        trace_arrivals([path], domain="d", columns={"domain": "Out"})
    with pytest.raises(TrafficError, match="unknown time format 'iso'"):
        trace_arrivals([path], domain="d", time_format="iso")


def test_empty_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TrafficError, match="the file is empty"):
        trace_arrivals([write(tmp_path, "e.csv", "")], domain="d")
    with pytest.raises(TrafficError, match="no rows to replay"):
        trace_arrivals(
            [write(tmp_path, "h.csv", "ts,prompt_tokens,completion_tokens\n")], domain="d"
        )
    with pytest.raises(TrafficError, match="no such file"):
        trace_arrivals([tmp_path / "nowhere.csv"], domain="d")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"ts,prompt_tokens\n\xff\xfe,1\n")
    with pytest.raises(TrafficError, match="not UTF-8"):
        trace_arrivals([binary], domain="d")
    with pytest.raises(TrafficError, match="unknown time zone"):
        trace_arrivals([binary], domain="d", timezone="Mars/Olympus")


def test_files_merge_into_one_stream_from_the_earliest_time(tmp_path: Path) -> None:
    head = "ts,prompt_tokens,completion_tokens\n"
    a = write(tmp_path, "a.csv", head + "1000,1,1\n1002,2,2\n1004,3,3\n")
    b = write(tmp_path, "b.csv", head + "999,4,4\n1003,5,5\n")
    traffic = trace_arrivals([a, b], domain="d")
    assert [(x.time, x.prompt_tokens) for x in traffic.arrivals(0)] == [
        (0.0, 4),
        (1.0, 1),
        (3.0, 2),
        (4.0, 5),
        (5.0, 3),
    ]
    assert traffic.duration_s == 6
    assert traffic.unsorted_files == []
    assert traffic.name == "a+b"


def test_an_unsorted_file_is_sorted_in_memory_and_named(tmp_path: Path) -> None:
    path = write(
        tmp_path, "u.csv", "ts,prompt_tokens,completion_tokens\n5,1,1\n2,2,2\n9,3,3\n2,4,4"
    )
    traffic = trace_arrivals([path], domain="d")
    assert [(x.time, x.prompt_tokens) for x in traffic.arrivals(0)] == [
        (0.0, 2),
        (0.0, 4),
        (3.0, 1),
        (7.0, 3),
    ]
    assert traffic.unsorted_files == [str(path)]


def test_jsonl_rows_and_their_errors(tmp_path: Path) -> None:
    good = [{"t": 0.5, "d": "chat", "p": 10, "c": 3}, {"t": 1, "d": "xray", "p": 20, "c": 4}]
    path = write(tmp_path, "t.jsonl", "".join(json.dumps(r) + "\n" for r in good))
    columns = {"timestamp": "t", "domain": "d", "prompt_tokens": "p", "completion_tokens": "c"}
    assert rows([path], columns=columns) == [
        Arrival(0.0, "chat", 10, 3, 3),
        Arrival(0.5, "xray", 20, 4, 4),
    ]
    bad = write(
        tmp_path,
        "b.jsonl",
        (
            '{"t": 0, "d": "chat", "p": 10, "c": 3}\n'
            "{not json\n"
            '{"t": 1, "d": "chat", "p": "many", "c": 3}\n'
            "[1, 2]\n"
            '{"t": 2, "d": "chat", "p": 12.5, "c": 3.0}\n'
        ),
    )
    with pytest.raises(TrafficError) as caught:
        trace_arrivals([bad], columns=columns)
    assert caught.value.issues == [
        f"{bad}:2:2: not JSON: Expecting property name enclosed in double quotes {HINT}",
        f"{bad}:3:23: column 'p': 'many' is not a whole number of tokens {HINT}",
        f"{bad}:4:1: a row is not an object {HINT}",
        f"{bad}:5:23: column 'p': '12.5' is not a whole number of tokens {HINT}",
    ]


def test_parquet_needs_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "t.parquet", "not really parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(TrafficError, match=r"pip install pyarrow"):
        trace_arrivals([path], domain="d")


def test_parquet_rows_stream_in_batches(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "ts": pa.array(
                [datetime(2026, 1, 1, 9), datetime(2026, 1, 1, 9, 0, 3)], pa.timestamp("us")
            ),
            "domain": ["chat", "xray"],
            "prompt_tokens": pa.array([10, None], pa.int64()),
            "completion_tokens": [1, 2],
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    with pytest.raises(TrafficError) as caught:
        trace_arrivals([path])
    assert caught.value.issues == [
        f"{path}:2:3: column 'prompt_tokens': no value for prompt_tokens {HINT}"
    ]
    traffic = trace_arrivals([path], skip_bad_rows=True)
    assert list(traffic.arrivals(0)) == [Arrival(0.0, "chat", 10, 1, 1)]
    assert traffic.start == datetime(2026, 1, 1, 9, tzinfo=UTC)


def test_rows_stream_without_being_held(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as handle:
        handle.write("ts,prompt_tokens,completion_tokens\n")
        handle.writelines(f"{i / 10},{1000 + i % 500},{300 + i % 200}\n" for i in range(30_000))
    traffic = trace_arrivals([path], domain="d")
    tracemalloc.start()
    try:
        count = sum(1 for _ in traffic.arrivals(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 30_000
    assert peak < 1_500_000, peak  # the 30,000 arrivals held would take several MB
