"""``keypolicy.read_records`` (records and ledgers as a typed DataFrame) and ``keypolicy report``
on damaged records: every bad cell, cut or binary file named at its file:line:column."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import keypolicy
from keypolicy.datafiles import DataFileError
from keypolicy.frames import _row_by_row
from keypolicy.ledger import Ledger
from keypolicy.records import FIELDS, OPTIONAL, RecordWriter, UsageRecord
from keypolicy.report import records_summary
from tests.commands import run_keypolicy
from tests.usage_records import varied

ROOT = Path(__file__).parents[2]
TRUNCATED = "the run that wrote it may have been interrupted: write the records again, or delete"


def write_records(path: Path, records: list[UsageRecord]) -> Path:
    with RecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    return path


@pytest.fixture
def records() -> list[UsageRecord]:
    return varied(30)


@pytest.fixture
def csv_file(tmp_path: Path, records: list[UsageRecord]) -> Path:
    return write_records(tmp_path / "records.csv", records)


def expected(records: list[UsageRecord]) -> pd.DataFrame:
    rows = [[getattr(r, name) for name in FIELDS] for r in records]
    return pd.DataFrame(rows, columns=list(FIELDS))


def assert_typed(frame: pd.DataFrame, records: list[UsageRecord]) -> None:
    assert list(frame.columns) == list(FIELDS)
    assert frame["submitted"].dtype == "float64"
    assert frame["started"].dtype == "float64"
    assert frame["attempts"].dtype == "int64"
    assert frame["batch"].dtype == "bool"
    assert pd.api.types.is_string_dtype(frame["outcome"])
    want = expected(records)
    assert frame["request_id"].tolist() == want["request_id"].tolist()
    assert frame["started"].isna().tolist() == [r.started is None for r in records]
    for name in ("submitted", "finished", "wait_s", "cost_usd"):
        assert frame[name].tolist() == want[name].tolist(), name
    for name in ("attempts", "prompt_tokens", "batch", "deferred", "usage_estimated", "reason"):
        assert frame[name].tolist() == want[name].tolist(), name


# ---- read_records ------------------------------------------------------------------------


def test_a_records_csv_reads_typed(csv_file: Path, records: list[UsageRecord]) -> None:
    assert_typed(keypolicy.read_records(csv_file), records)
    assert_typed(keypolicy.read_records(str(csv_file)), records)


@pytest.mark.parametrize("name", ["ledger.sqlite", "ledger.jsonl", "ledger.csv"])
def test_a_ledger_reads_typed(tmp_path: Path, records: list[UsageRecord], name: str) -> None:
    with Ledger(tmp_path / name) as ledger:
        for record in records:
            ledger.write(record)
    assert_typed(keypolicy.read_records(tmp_path / name), records)


def test_gzip_and_parquet_records(tmp_path: Path, csv_file: Path, records: list[Any]) -> None:
    packed = tmp_path / "records.csv.gz"
    packed.write_bytes(gzip.compress(csv_file.read_bytes()))
    assert_typed(keypolicy.read_records(packed), records)
    pytest.importorskip("pyarrow")
    assert_typed(keypolicy.read_records(write_records(tmp_path / "r.parquet", records)), records)


def test_the_fast_path_gives_the_row_by_row_frame(tmp_path: Path, csv_file: Path) -> None:
    fast = keypolicy.read_records(csv_file)
    pd.testing.assert_frame_equal(fast, _row_by_row(csv_file))
    # Counts written as 12.0 are refused by pandas' int64, read by the rows: same frame.
    text = csv_file.read_text().replace(",800,300,", ",800.0,300,")
    (tmp_path / "floats.csv").write_text(text)
    pd.testing.assert_frame_equal(keypolicy.read_records(tmp_path / "floats.csv"), fast)


def test_records_written_before_the_requested_fields(tmp_path: Path, csv_file: Path) -> None:
    old = tmp_path / "old.csv"
    with csv_file.open(newline="") as src, old.open("w", newline="") as dst:
        out = csv.writer(dst)
        keep = [i for i, name in enumerate(FIELDS) if name not in OPTIONAL]
        for row in csv.reader(src):
            out.writerow([row[i] for i in keep])
    frame = keypolicy.read_records(old)
    pd.testing.assert_frame_equal(frame, _row_by_row(old))
    assert (frame["requested_prompt_tokens"] == frame["prompt_tokens"]).all()
    assert set(frame["requested_model"]) == {""}
    assert set(frame["requested_max_tokens"]) == {0}
    assert not frame["usage_estimated"].any()


def test_an_empty_records_file_is_an_empty_typed_frame(tmp_path: Path) -> None:
    frame = keypolicy.read_records(write_records(tmp_path / "none.csv", []))
    assert frame.empty
    assert list(frame.columns) == list(FIELDS)
    assert frame["attempts"].dtype == "int64"


def test_read_records_is_exported() -> None:
    assert "read_records" in keypolicy.__all__
    from keypolicy import read_records  # the lazy export, as a user imports it

    assert read_records.__module__ == "keypolicy.frames"


# ---- damaged files -----------------------------------------------------------------------


def _at(line: str, field: str) -> int:
    """The 1-based column where ``field``'s cell starts in a records CSV line (no quotes)."""
    return len(",".join(line.split(",")[: FIELDS.index(field)])) + 2


def _damaged(csv_file: Path, case: str) -> tuple[Path, str]:
    """A damaged copy of a records CSV, and the message it must give (after its path)."""
    lines = csv_file.read_text().splitlines(keepends=True)
    path = csv_file.with_name(f"{case}.csv")
    last, n, said = lines[-1], len(lines), ""
    if case == "cut":  # a run killed mid-write: the last line stops after ten cells
        cut = ",".join(last.split(",")[:10])
        path.write_text("".join(lines[:-1]) + cut)
        said = (
            f":{n}:{len(cut) + 1}: the row stops before column 'attempts' (10 of 23 cells) and "
            f"has no line end: the file looks truncated here ({TRUNCATED} line {n} to read the "
            "rest)"
        )
    elif case == "cut_cell":  # ... or in its last cell, False
        path.write_text("".join(lines)[:-5])
        said = (
            f":{n}:{_at(last, 'usage_estimated')}: column 'usage_estimated': 'F' is not True or "
            f"False, and the line has no line end: the file looks truncated here ({TRUNCATED} "
            f"line {n} to read the rest)"
        )
    elif case == "cell":
        cells = lines[3].split(",")
        cells[FIELDS.index("attempts")] = "three"
        path.write_text("".join([*lines[:3], ",".join(cells), *lines[4:]]))
        said = (
            f":4:{_at(lines[3], 'attempts')}: column 'attempts': 'three' is not a whole number "
            "(fix it, or delete line 4)"
        )
    elif case == "outcome":
        path.write_text("".join([lines[0], lines[1].replace(",ok,", ",fine,"), *lines[2:]]))
        said = (
            f":2:{_at(lines[1], 'outcome')}: column 'outcome': 'fine' is none of ok, "
            "upstream_429, rejected, deferred, budget_exhausted, error (fix it, or delete line 2)"
        )
    elif case == "ragged":
        path.write_text("".join([*lines[:5], lines[5].rstrip("\n") + ",extra\n", *lines[6:]]))
        said = (
            f":6:{len(lines[5]) + 1}: 24 cells, but the header names 23 columns (a comma inside a "
            "value must be quoted) (fix it, or delete line 6)"
        )
    elif case == "binary":  # a picture named .csv: its first NUL starts line 3
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
        said = (
            ":3:1: a NUL byte: binary data, not text: convert it to CSV, JSON lines or Parquet "
            "(gzip-compressed CSV and JSON lines are read as .csv.gz, .jsonl.gz)"
        )
    elif case == "parquet":
        path.write_bytes(b"PAR1" + bytes(40) + b"PAR1")
        said = ": a Parquet file, not text: name it parquet.parquet (reading Parquet needs pyarrow)"
    return path, said


CASES = ["cut", "cut_cell", "cell", "outcome", "ragged", "binary", "parquet"]


@pytest.mark.parametrize("case", CASES)
def test_every_damage_is_named_where_it_is(csv_file: Path, case: str) -> None:
    path, said = _damaged(csv_file, case)
    message = f"{path}{said}"
    with pytest.raises(DataFileError) as caught:
        keypolicy.read_records(path)
    assert str(caught.value) == message
    with pytest.raises(DataFileError) as caught:
        records_summary(path)
    assert str(caught.value) == message


def test_a_ledger_cut_mid_object(tmp_path: Path, records: list[UsageRecord]) -> None:
    path = tmp_path / "ledger.jsonl"
    with Ledger(path) as ledger:
        for record in records[:3]:
            ledger.write(record)
    path.write_text(path.read_text()[:-40])
    with pytest.raises(DataFileError) as caught:
        keypolicy.read_records(path)
    assert re.fullmatch(
        rf"{re.escape(str(path))}:3:\d+: the object is cut short \(not JSON: .*\) and the line "
        rf"has no line end: the file looks truncated here \({TRUNCATED} line 3 to read the rest\)",
        str(caught.value),
    )
    bad = tmp_path / "bad.jsonl"
    row = json.loads(path.read_text().splitlines()[0])
    bad.write_text(json.dumps({**row, "cost_usd": "cheap"}) + "\n")
    with pytest.raises(DataFileError) as caught:
        keypolicy.read_records(bad)
    column = bad.read_text().index('"cost_usd"') + 1
    assert str(caught.value) == (
        f"{bad}:1:{column}: column 'cost_usd': 'cheap' is not a number (fix it, or delete line 1)"
    )


def test_a_truncated_gzip_records_file(tmp_path: Path, csv_file: Path) -> None:
    data = gzip.compress(csv_file.read_bytes())
    path = tmp_path / "records.csv.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match=r"records\.csv\.gz:\d+: the gzip stream ends early"):
        keypolicy.read_records(path)


def test_a_parquet_records_file_cut_short(tmp_path: Path, records: list[UsageRecord]) -> None:
    pytest.importorskip("pyarrow")
    whole = write_records(tmp_path / "whole.parquet", records)
    path = tmp_path / "cut.parquet"
    path.write_bytes(whole.read_bytes()[:-30])
    with pytest.raises(DataFileError) as caught:
        keypolicy.read_records(path)
    assert str(caught.value) == (
        f"{path}: a Parquet file without its footer: the file is truncated (the program that "
        "wrote it may have been interrupted, or the copy is partial; write or copy it again)"
    )


def test_report_on_a_truncated_file_says_where_without_a_traceback(
    tmp_path: Path, csv_file: Path
) -> None:
    path, said = _damaged(csv_file, "cut")
    out = tmp_path / "report.html"
    result = run_keypolicy("report", path, "--out", out, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{path}{said}" in result.stderr
    assert "NoneType" not in result.stderr
    assert not out.exists()


# ---- the README's example ------------------------------------------------------------------


def test_the_readme_example_runs(tmp_path: Path, csv_file: Path) -> None:
    text = (ROOT / "README.md").read_text()
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "read_records(" in b
    ]
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(csv_file.parent)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    printed = out.getvalue()
    assert re.search(r"chat\s+\d+\s+\d+\s+[\d.]+", printed), printed
    assert "upstream_429" in printed
