"""Usage-records files read back, every problem placed at its file, line and column.

A records file is what ``keypolicy simulate --records`` writes (CSV, or Parquet with pyarrow;
a CSV may be gzip-compressed, ``records.csv.gz``), or a usage ledger (SQLite, JSON lines or
CSV: :mod:`keypolicy.ledger`; or the fleet's, a ``postgresql://`` URL). ``keypolicy report``
and :func:`keypolicy.read_records` read them through :func:`iter_usage_records`, one row at a
time.

Every cell is checked against its field's type, and a bad one is a :class:`DataFileError`
naming the file, line, column and field, and what to do. A file cut short (the run that wrote
it was interrupted: its last line stops mid-row and has no line end) says so. Binary files,
other encodings and damaged gzip streams are refused as :mod:`keypolicy.datafiles` says.
Columns that files written by earlier versions lack (:data:`~keypolicy.records.OPTIONAL`) take
the values :func:`keypolicy.ledger.record_from_row` gives them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from keypolicy.datafiles import (
    BadRow,
    DataFileError,
    cell_column,
    check_parquet,
    csv_rows,
    jsonl_rows,
    layout_of,
    open_text,
    quoted,
)
from keypolicy.ledger import _KINDS, SQLITE, _sqlite_rows, ledger_location  # one type table
from keypolicy.ledger_pg import PostgresURL, postgres_rows
from keypolicy.records import FIELDS, OPTIONAL, OUTCOMES, UsageRecord

__all__ = ["iter_usage_records"]

_TRUE: Final = frozenset(("true", "1", "yes"))
_FALSE: Final = frozenset(("false", "0", "no"))


class _BadCell(Exception):  # noqa: N818 - a cell's problem, turned into a DataFileError
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _number(name: str, value: Any) -> float:
    if _missing(value):
        raise _BadCell(name, "no value (a number)")
    if isinstance(value, bool):
        raise _BadCell(name, f"{quoted(value)} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _BadCell(name, f"{quoted(value)} is not a number") from None


def _float(name: str, value: Any) -> float:
    return _number(name, value)


def _float_or_none(name: str, value: Any) -> float | None:
    return None if _missing(value) else _number(name, value)


def _int(name: str, value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass  # "12.0", "1e3" are whole too; "", "abc" are said below
    if _missing(value):
        if name in OPTIONAL:
            return 0
        raise _BadCell(name, "no value (a whole number)")
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not number.is_integer():
        raise _BadCell(name, f"{quoted(value)} is not a whole number")
    return int(number)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if _missing(value) and name in OPTIONAL:
        return False
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise _BadCell(name, f"{quoted('' if value is None else value)} is not True or False")


def _str(name: str, value: Any) -> str:
    return "" if value is None else str(value)


_CONVERT: Final[dict[str, Callable[[str, Any], Any]]] = {
    "float": _float,
    "float | None": _float_or_none,
    "int": _int,
    "bool": _bool,
    "str": _str,
}
_FIELD_CONVERT: Final = tuple((name, _CONVERT[_KINDS[name]]) for name in FIELDS)


def _record(row: dict[str, Any]) -> UsageRecord:
    """The record of one row (field name to cell); :class:`_BadCell` names a bad cell."""
    values = {name: convert(name, row.get(name)) for name, convert in _FIELD_CONVERT}
    if "requested_prompt_tokens" not in row:  # written before records carried what was asked
        values["requested_prompt_tokens"] = values["prompt_tokens"]
    if values["outcome"] not in OUTCOMES:
        raise _BadCell("outcome", f"{quoted(values['outcome'])} is none of {', '.join(OUTCOMES)}")
    return UsageRecord(**values)


def _where(
    display: str, line: int, column: int, problem: str, cut: bool, said: bool = False
) -> str:
    """A bad row's message: where, what, and what to do; ``cut``: the row is the last line and
    has no line end, so the file looks truncated there (``said``: the problem says so)."""
    if cut:
        if not said:  # a bad cell of a row cut short
            problem += ", and the line has no line end: the file looks truncated here"
        todo = (
            "the run that wrote it may have been interrupted: write the records again, or "
            f"delete line {line} to read the rest"
        )
    else:
        todo = f"fix it, or delete line {line}"
    return f"{display}:{line}:{column}: {problem} ({todo})"


def _not_records(display: str, header: list[str]) -> None:
    missing = [f for f in FIELDS if f not in header and f not in OPTIONAL]
    if missing:
        raise DataFileError(
            f"{display}: not a usage-records file: missing column(s) {', '.join(missing)} "
            "(write one with --records)"
        )


def _csv(handle: Any, display: str, delimiter: str) -> Iterator[UsageRecord]:
    header, rows = csv_rows(handle, display, delimiter)
    _not_records(display, header)
    at = {name: header.index(name) for name in FIELDS if name in header}
    for line, cells, raw in rows:
        cut = not raw.endswith("\n")
        if isinstance(cells, BadRow):
            where = (display, line, cells.column or 1, cells.message, cut, cells.truncated)
            raise DataFileError(_where(*where))
        try:
            yield _record({name: cells[i] for name, i in at.items()})
        except _BadCell as bad:
            column = cell_column(raw, at[bad.field], delimiter)
            problem = f"column '{bad.field}': {bad.message}"
            raise DataFileError(_where(display, line, column, problem, cut)) from None


def _keyed(rows: Iterator[tuple[int, Any, str]], display: str) -> Iterator[UsageRecord]:
    """Records of JSON lines or Parquet rows (line or row number, object, raw text)."""
    header: list[str] | None = None
    for line, row, raw in rows:
        cut = bool(raw) and not raw.endswith("\n")
        if isinstance(row, BadRow):
            where = (display, line, row.column or 1, row.message, cut, row.truncated)
            raise DataFileError(_where(*where))
        if header is None:
            header = list(row)
            _not_records(display, header)
        try:
            yield _record(row)
        except _BadCell as bad:
            if raw:
                column = raw.find(json.dumps(bad.field)) + 1 or 1
            else:
                column = header.index(bad.field) + 1 if bad.field in header else 1
            problem = f"column '{bad.field}': {bad.message}"
            raise DataFileError(_where(display, line, column, problem, cut)) from None


def _parquet(path: Path, display: str) -> Iterator[UsageRecord]:
    try:
        import pyarrow as pa  # noqa: PLC0415 - optional: only Parquet needs it
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        raise DataFileError(
            f"{display}: reading Parquet needs pyarrow (pip install pyarrow)"
        ) from None
    check_parquet(path, display)

    def rows() -> Iterator[tuple[int, Any, str]]:
        number = 0
        with pq.ParquetFile(str(path)) as parquet:
            for batch in parquet.iter_batches():
                for row in batch.to_pylist():
                    number += 1
                    yield number, row, ""

    try:
        yield from _keyed(rows(), display)
    except (pa.ArrowException, OSError) as exc:
        raise DataFileError(
            f"{display}: cannot read it as Parquet ({exc}): is the file whole?"
        ) from None


def _table(rows: Iterator[dict[str, Any]], display: str) -> Iterator[UsageRecord]:
    """Records of a database's rows (SQLite or PostgreSQL), a bad cell placed at its row."""
    for number, row in enumerate(rows, start=1):
        try:
            yield _record(row)
        except _BadCell as bad:
            raise DataFileError(
                f"{display}: row {number}: column '{bad.field}': {bad.message} (fix or "
                "delete the row)"
            ) from None


def iter_usage_records(path: str | Path | PostgresURL) -> Iterator[UsageRecord]:
    """The records of a records file or ledger, in file order, one at a time: SQLite
    (``.sqlite``, ``.sqlite3``, ``.db``), JSON lines (``.jsonl``, ``.jsonl.gz``), Parquet (with
    pyarrow), else CSV whatever the suffix (``.csv``, ``.csv.gz``); a ``postgresql://`` URL is
    the fleet's ledger. Raises :class:`~keypolicy.datafiles.DataFileError` (a ValueError)
    naming the file, line, column and what to do."""
    where = ledger_location(path)
    if not isinstance(where, Path):  # named without its password
        yield from _table(postgres_rows(where), str(where))
        return
    path = where
    display = str(path)
    layout = layout_of(path)
    if path.suffix.lower() in SQLITE:
        yield from _table(_sqlite_rows(path), display)
        return
    if layout.form == "parquet":
        yield from _parquet(path, display)
        return
    with open_text(path, display) as handle:
        if layout.form == "jsonl":
            yield from _keyed(jsonl_rows(handle, display), display)
        else:
            yield from _csv(handle, display, layout.delimiter)
