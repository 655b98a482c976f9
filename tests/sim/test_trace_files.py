"""Bad trace files, each with the exact line it must produce: ragged rows, quotes, encodings,
binary, truncated and compressed files. A few run through the command line as a user would:
exit 2, no traceback, no file left behind."""

from __future__ import annotations

import gzip
import io
import json
import re
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from keypolicy.sim.traffic import Arrival, TrafficError, trace_arrivals
from tests.commands import run_keypolicy

ROOT = Path(__file__).parents[2]
HEAD = "ts,domain,prompt_tokens,completion_tokens\n"
HINT = "(fix the row, or skip bad rows: --skip-bad-rows, skip_bad_rows: true)"
ROWS = "".join(f"{i},diagnosis,10,5\n" for i in range(1, 4))


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def issues(path: Path, **options: object) -> list[str]:
    with pytest.raises(TrafficError) as caught:
        trace_arrivals([path], **options)  # type: ignore[arg-type]
    return caught.value.issues


def zipped(text: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("xl/workbook.xml", text)
    return out.getvalue()


# ---- ragged rows and quotes ----------------------------------------------------------------


def test_a_row_with_more_cells_than_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", HEAD + "1,diagnosis,10,5\n2,diagnosis,1,000,5\n")
    assert issues(path) == [
        f"{path}:3:19: 5 cells, but the header names 4 columns (a comma inside a value must "
        f"be quoted) {HINT}"
    ]


def test_a_row_with_fewer_cells_names_the_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path, "t.tsv", HEAD.replace(",", "\t") + "1\tdiagnosis\t10\n")
    assert issues(path) == [
        f"{path}:2:15: no cell for column 'completion_tokens' (3 cells, the header 4) {HINT}"
    ]


def test_ragged_rows_are_bad_rows_that_can_be_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", HEAD + "1,diagnosis,10,5\n2,diagnosis,10\n3,d,1,1,1\n")
    traffic = trace_arrivals([path], skip_bad_rows=True)
    assert (traffic.rows, traffic.skipped) == (1, 2)


def test_a_last_row_cut_short_says_the_file_looks_truncated(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", HEAD + "1,diagnosis,10,5\n2,diagn")
    assert issues(path) == [
        f"{path}:3:8: the row stops before column 'prompt_tokens' (2 of 4 cells) and has no "
        f"line end: the file looks truncated here {HINT}"
    ]


def test_an_unclosed_quote_is_placed_where_it_opened_and_nothing_is_echoed(
    tmp_path: Path,
) -> None:
    rest = "".join(f"{i},diagnosis,10,5\n" for i in range(3, 2000))
    path = write(tmp_path, "t.csv", HEAD + '1,diagnosis,10,5\n2,"diagnosis,10,5\n' + rest)
    (issue,) = issues(path)
    assert issue == (
        f"{path}:3:3: a quote opened here is never closed: the rest of the file reads as one "
        'value (close the quote; a quote inside a quoted value is written twice: "")'
    )


def test_an_unclosed_quote_in_a_big_file_stops_at_csvs_size_limit(tmp_path: Path) -> None:
    rest = "".join(f"{i},diagnosis,10,5\n" for i in range(3, 20_000))  # past 131,072 characters
    path = write(tmp_path, "t.csv", HEAD + '1,diagnosis,10,5\n2,"diagnosis,10,5\n' + rest)
    (issue,) = issues(path)
    within = re.fullmatch(
        rf"{re.escape(str(path))}:3:3: a quote opened here is not closed within ([\d,]+) "
        r"characters: the lines after it read as one value \(close the quote; a quote inside a "
        r'quoted value is written twice: ""\)',
        issue,
    )
    assert within is not None, issue
    assert 131_072 <= int(within[1].replace(",", "")) < 132_000


def test_an_unclosed_quote_on_the_last_line(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", HEAD + '1,diagnosis,10,"5\n')
    assert issues(path) == [
        f"{path}:2:16: a quote opened here is never closed: the rest of the file reads as one "
        'value (close the quote; a quote inside a quoted value is written twice: "")'
    ]


def test_a_quote_that_closes_lines_later_in_a_row_of_the_wrong_width(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", HEAD + '1,d,10,5\n2,"d,10,5\n3,d,10,5\n4,d",10\n5,d,1,1\n')
    assert issues(path) == [
        f"{path}:3:3: a quote opened here closes only on line 5, making lines 3-5 one row of 3 "
        "cells where the header has 4 (close the quote on its own line)"
    ]


def test_a_quote_that_swallows_a_line_into_a_value(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", HEAD + '1,d,10,5\n2,"d,10,5\n3,d",10,5\n4,d,10,5\n')
    assert issues(path) == [
        f"{path}:3:3: column 'domain': 'd,10,5\\n3,d' holds a line end (the row runs over lines "
        "3-4: is a quote left unclosed? fix the row, or skip bad rows: --skip-bad-rows, "
        "skip_bad_rows: true)"
    ]


def test_a_quoted_value_over_two_lines_in_a_column_not_used_is_fine(tmp_path: Path) -> None:
    text = HEAD.replace("\n", ",note\n") + '1,d,10,5,"two\nlines"\n2,d,10,5,""""\n'
    traffic = trace_arrivals([write(tmp_path, "t.csv", text)])
    assert list(traffic.arrivals(0)) == [Arrival(0.0, "d", 10, 5, 5), Arrival(1.0, "d", 10, 5, 5)]


def test_a_long_value_is_cut_to_an_excerpt(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", HEAD + "1,d," + "9" * 30 + "x" * 5000 + ",5\n")
    assert issues(path) == [
        f"{path}:2:5: column 'prompt_tokens': '{'9' * 30}xxxxxxxxx…' is not a whole number of "
        f"tokens {HINT}"
    ]


# ---- encodings and binary files ------------------------------------------------------------


def test_a_latin1_file_names_the_byte_and_how_to_convert(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", (HEAD + "1,diagnosis,10,5\n2,caf\xe9,10,5\n").encode("latin1"))
    converted = tmp_path / "t-utf8.csv"
    assert issues(path) == [
        f"{path}:3:6: byte 0xe9 is not UTF-8: the file is in another encoding (Latin-1 or "
        f"Windows-1252?); convert it: iconv -f latin1 -t utf-8 {path} > {converted}"
    ]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le"])
def test_a_utf16_file_is_named(tmp_path: Path, codec: str) -> None:
    path = write(tmp_path, "t.csv", (HEAD + ROWS).encode(codec))
    assert issues(path) == [
        f"{path}: UTF-16 text, not UTF-8: convert it: iconv -f utf-16 -t utf-8 {path} > "
        f"{tmp_path / 't-utf8.csv'}"
    ]


def test_a_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "\ufeff" + HEAD + ROWS)
    assert trace_arrivals([path]).rows == 3


def test_nul_bytes_are_binary_data(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", b"ts,domain\n1,\x00\x01\x02\x03")
    assert issues(path) == [
        f"{path}:2:3: a NUL byte: binary data, not text: convert it to CSV, JSON lines or "
        "Parquet (gzip-compressed CSV and JSON lines are read as .csv.gz, .jsonl.gz)"
    ]


def test_a_gzip_file_without_gz_in_its_name(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", gzip.compress((HEAD + ROWS).encode()))
    assert issues(path) == [
        f"{path}: gzip-compressed data, not text: name it t.csv.gz (.csv.gz, .tsv.gz and "
        f".jsonl.gz are read as they are), or decompress it: gunzip -c {path} > "
        f"{tmp_path / 't-plain.csv'}"
    ]


def test_a_parquet_file_named_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", b"PAR1\x15\x04" + bytes(64) + b"PAR1")
    assert issues(path) == [
        f"{path}: a Parquet file, not text: name it t.parquet (reading Parquet needs pyarrow)"
    ]


def test_an_excel_workbook_named_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", zipped(HEAD))
    assert issues(path) == [
        f"{path}: a ZIP archive (an Excel .xlsx workbook?), not text: convert it to CSV, JSON "
        "lines or Parquet (gzip-compressed CSV and JSON lines are read as .csv.gz, .jsonl.gz)"
    ]


def test_a_text_file_named_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = write(tmp_path, "t.parquet", HEAD + ROWS)
    assert issues(path) == [
        f"{path}: named .parquet, but it is text, not Parquet (rename it: .csv, .jsonl, .csv.gz...)"
    ]


def test_a_parquet_file_cut_short(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    whole = tmp_path / "whole.parquet"
    pq.write_table(
        pa.table(
            {
                "ts": [1.0, 2.0],
                "domain": ["d", "d"],
                "prompt_tokens": [1, 2],
                "completion_tokens": [1, 2],
            }
        ),
        whole,
    )
    path = write(tmp_path, "t.parquet", whole.read_bytes()[:-20])
    assert issues(path) == [
        f"{path}: a Parquet file without its footer: the file is truncated (the program that "
        "wrote it may have been interrupted, or the copy is partial; write or copy it again)"
    ]


# ---- JSON lines ----------------------------------------------------------------------------


def _json(i: int) -> str:
    return json.dumps({"ts": i, "domain": "d", "prompt_tokens": 10, "completion_tokens": 5})


def test_a_jsonl_file_cut_mid_object(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", _json(1) + "\n" + _json(2)[:30])
    assert issues(path) == [
        f"{path}:2:31: the object is cut short (not JSON: Unterminated string) and the line has "
        f"no line end: the file looks truncated here {HINT}"
    ]


def test_a_jsonl_object_not_closed_by_its_line_end(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", _json(1) + "\n" + _json(2)[:-1] + "\n" + _json(3) + "\n")
    assert issues(path) == [
        f"{path}:2:69: the object is not closed by the end of the line (one object a line; not "
        f"JSON: Expecting ',' delimiter) {HINT}"
    ]


def test_a_bad_first_jsonl_line_is_said_as_such(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", "{ts: 1}\n" + _json(2) + "\n")
    assert issues(path) == [
        f"{path}:1:2: not JSON: Expecting property name enclosed in double quotes (the first "
        "row names the columns: fix it)"
    ]


def test_one_json_array_is_not_json_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "t.json", "[\n" + _json(1) + "\n]\n")
    assert issues(path) == [
        f"{path}:1:1: one JSON array, not JSON lines (one object a line): convert it: "
        f"jq -c '.[]' {path} > {tmp_path / 't-lines.jsonl'}"
    ]


# ---- gzip ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["t.csv.gz", "t.tsv.gz", "t.jsonl.gz", "T.CSV.GZ"])
def test_gzip_files_are_read_by_the_suffix_before_gz(tmp_path: Path, name: str) -> None:
    if "jsonl" in name:
        text = "".join(_json(i) + "\n" for i in range(1, 4))
    else:
        text = HEAD + ROWS
        text = text.replace(",", "\t") if "tsv" in name else text
    path = write(tmp_path, name, gzip.compress(text.encode()))
    traffic = trace_arrivals([path])
    assert [a.time for a in traffic.arrivals(0)] == [0.0, 1.0, 2.0]


def test_gzip_rows_stream_without_being_held(tmp_path: Path) -> None:
    rows = "".join(f"{i / 10},diagnosis,{1000 + i % 500},{300 + i % 200}\n" for i in range(30_000))
    path = write(tmp_path, "big.csv.gz", gzip.compress((HEAD + rows).encode()))
    traffic = trace_arrivals([path])
    tracemalloc.start()
    try:
        count = sum(1 for _ in traffic.arrivals(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 30_000
    assert peak < 1_500_000, peak  # the 30,000 arrivals held would take several MB


def test_a_gzip_stream_cut_short(tmp_path: Path) -> None:
    rows = "".join(f"{i},diagnosis,{i % 977},5\n" for i in range(1, 20_000))
    data = gzip.compress((HEAD + rows).encode())
    path = write(tmp_path, "t.csv.gz", data[: len(data) // 2])
    (issue,) = issues(path)
    line = int(issue.removeprefix(f"{path}:").split(":")[0])
    assert 2 < line < 20_000
    assert issue == (
        f"{path}:{line}: the gzip stream ends early, after line {line - 1}: the file is "
        "truncated (was it written or copied whole? write or copy it again)"
    )


def test_a_damaged_gzip_stream(tmp_path: Path) -> None:
    data = gzip.compress((HEAD + ROWS).encode())
    path = write(tmp_path, "t.csv.gz", data[:-8] + bytes(4) + data[-4:])  # a wrong CRC
    (issue,) = issues(path)
    assert issue.startswith(f"{path}:1: the gzip data is damaged after line 0 (CRC check failed")
    assert issue.endswith("): get a good copy of the file")


def test_a_gz_name_on_a_plain_file(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv.gz", HEAD + ROWS)
    assert issues(path) == [
        f"{path}: named .gz, but it is text, not gzip-compressed (rename it without .gz)"
    ]


def test_a_latin1_byte_inside_gzip(tmp_path: Path) -> None:
    data = gzip.compress((HEAD + "1,caf\xe9,10,5\n").encode("latin1"))
    path = write(tmp_path, "t.csv.gz", data)
    assert issues(path) == [
        f"{path}:2:6: byte 0xe9 is not UTF-8: the file is in another encoding (Latin-1 or "
        f"Windows-1252?); convert it: gunzip -c {path} | iconv -f latin1 -t utf-8 | gzip > "
        f"{tmp_path / 't-utf8.csv.gz'}"
    ]


def test_row_problems_before_a_fatal_one_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", HEAD + '1,diagnosis,x,5\n2,"diagnosis,10,5\n3,d,1,1\n')
    assert issues(path, time_format="seconds") == [
        f"{path}:2:13: column 'prompt_tokens': 'x' is not a whole number of tokens {HINT}",
        f"{path}:3:3: a quote opened here is never closed: the rest of the file reads as one "
        'value (close the quote; a quote inside a quoted value is written twice: "")',
    ]


# ---- as a user runs them -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "ragged.csv",
            HEAD + "1,diagnosis,10,5\n2,diagnosis,1,000,5\n",
            ":3:19: 5 cells, but the header names 4 columns",
        ),
        ("quote.csv", HEAD + '1,"diagnosis,10,5\n' + ROWS, ":2:3: a quote opened here is never"),
        ("latin.csv", (HEAD + "1,caf\xe9,10,5\n").encode("latin1"), ":2:6: byte 0xe9 is not"),
        ("gz.csv", gzip.compress((HEAD + ROWS).encode()), ": gzip-compressed data, not text"),
        ("cut.jsonl", _json(1) + "\n" + _json(2)[:30], ":2:31: the object is cut short"),
    ],
)
def test_the_command_line_says_it_in_one_line(
    tmp_path: Path, name: str, data: str | bytes, message: str
) -> None:
    path = write(tmp_path, name, data)
    summary, records = tmp_path / "summary.json", tmp_path / "records.csv"
    result = run_keypolicy(
        "simulate",
        ROOT / "policies" / "clinic-separate.yaml",
        "--trace",
        path,
        "--domain",
        "diagnosis",
        "--json",
        summary,
        "--records",
        records,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{path}{message}" in result.stderr
    assert not summary.exists()
    assert not records.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
