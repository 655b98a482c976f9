"""Trace files replayed as traffic: CSV, JSONL or Parquet, with any column names.

Each file is read with a map from the fields keypolicy needs to the file's columns (fields not
mapped are looked for under common names, such as the Azure traces' ``TIMESTAMP``,
``ContextTokens`` and ``GeneratedTokens``), a timestamp form, and optionally one domain, model or
max_tokens for all its rows. Several files merge into one stream; times count from the earliest
timestamp across the files.

Files are opened through :mod:`keypolicy.datafiles`: CSV, TSV and JSONL may be gzip-compressed
(``t.csv.gz``), and each way a file can be wrong (ragged rows, a quote never closed, another
encoding, a binary or truncated file) is one issue naming the file, line and column.

Memory: every file is read twice, row by row, and never held whole. The first pass (when the
traffic is built) checks every row, so that problems are reported before a simulation starts,
and finds the earliest time, the domains and whether the file is sorted by time. The second pass
(each ``arrivals()``) streams the rows again. A file that is not sorted by time is the one
exception: its rows are sorted in memory during the second pass (``unsorted_files`` names them).
Parquet is read in record batches and needs pyarrow.
"""

from __future__ import annotations

import heapq
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

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
from keypolicy.policy.errors import Issue
from keypolicy.policy.model import Name, TimeZone
from keypolicy.policy.references import did_you_mean
from keypolicy.policy.source import SourceDoc
from keypolicy.records import FIELDS as RECORD_FIELDS
from keypolicy.records import OPTIONAL, REQUESTED
from keypolicy.sim.profile import Count, Start
from keypolicy.sim.time_units import PLAUSIBLE_SPAN_S, TimeUnitError, decide_unit
from keypolicy.sim.traffic import Arrival, TrafficError, validate_doc

__all__ = ["FIELDS", "TIME_FORMATS", "TraceProfile", "TraceSource", "TraceTraffic"]

FIELDS = ("timestamp", "domain", "model", "prompt_tokens", "max_tokens", "completion_tokens")
TIME_FORMATS = ("auto", "datetime", "seconds", "milliseconds")
_COMMON_NAMES = {  # compared without case, '_', '-' or spaces
    "timestamp": ("timestamp", "time", "ts", "arrivaltime", "submitted", "createdat"),
    "domain": ("domain",),
    "model": ("model",),
    "prompt_tokens": ("prompttokens", "contexttokens", "inputtokens"),
    "max_tokens": ("maxtokens", "maxoutputtokens", "maxcompletiontokens"),
    "completion_tokens": ("completiontokens", "generatedtokens", "outputtokens"),
}
_MAX_ISSUES = 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_Row = tuple[int, str, str | None, int, int, int | None]  # times in epoch microseconds
_Records = Iterator[tuple[int, Any, str]]  # (line, record, raw line)


def _norm(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "").replace(" ", "")


class _RowError(BadRow):
    """A row's value cannot be used: which field, and why."""

    def __init__(self, fieldname: str, message: str) -> None:
        super().__init__(message, field=fieldname)


@dataclass(frozen=True)
class TraceSource:
    """One trace file and how to read it; ``display`` is its name in messages."""

    path: Path
    display: str
    domain: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    time_format: str = "auto"
    model: str | None = None
    max_tokens: int | None = None

    @classmethod
    def make(cls, path: Path, *, display: str | None = None, **settings: Any) -> TraceSource:
        """Check the settings; raise :class:`TrafficError` naming what is wrong."""
        source = cls(path, display or str(path), **settings)
        problems = [
            f"{source.display}: columns: unknown field '{k}' ({did_you_mean(k, FIELDS)})"
            for k in source.columns
            if k not in FIELDS
        ]
        if source.time_format not in TIME_FORMATS:
            hint = "use " + ", ".join(TIME_FORMATS)
            problems.append(
                f"{source.display}: unknown time format '{source.time_format}' ({hint})"
            )
        if source.domain is not None and "domain" in source.columns:
            problems.append(
                f"{source.display}: a domain is given both for the whole file and "
                "as a column (keep one)"
            )
        if problems:
            raise TrafficError(problems)
        return source


@dataclass
class _Scan:
    """What the first pass learnt of one file."""

    rows: int = 0
    bad: int = 0
    first: float = math.inf  # epoch microseconds
    last: float = -math.inf
    ordered: bool = True
    domains: set[str] = field(default_factory=set)
    models: set[tuple[str, str]] = field(default_factory=set)  # (domain, model) named in rows
    issues: list[str] = field(default_factory=list)


class TraceTraffic:
    """Traffic replayed from trace files; build it with
    :func:`keypolicy.sim.traffic.trace_arrivals` or a ``kind: trace`` profile.

    ``skipped`` counts the rows that could not be read (with ``skip_bad_rows``); ``rows`` the
    rows replayed. The seed given to ``arrivals`` is not used: a trace is what it is (rows
    without completion tokens leave those to the provider model, which has its own seed).
    """

    def __init__(
        self,
        sources: list[TraceSource],
        *,
        skip_bad_rows: bool = False,
        timezone: str = "UTC",
        start: datetime | None = None,
        name: str | None = None,
        description: str = "",
    ) -> None:
        if not sources:
            raise TrafficError(["no trace files given"])
        self._zone = _zone(timezone)
        self.notes: list[str] = []  # how the files were read, where it could be wrong
        self.sources = sources = [_resolve_unit(s, self._zone, self.notes) for s in sources]
        self._scans = [self._scan(s, skip_bad_rows) for s in sources]
        _check_clocks(sources, self._scans)
        self.rows = sum(scan.rows for scan in self._scans)
        self.skipped = sum(scan.bad for scan in self._scans)
        if self.rows == 0:
            raise TrafficError([f"{s.display}: no rows to replay" for s in sources])
        self._t0 = int(min(scan.first for scan in self._scans))
        last = max(scan.last for scan in self._scans)
        self.name = name or "+".join(s.path.stem for s in sources)
        self.description = description or f"replay of {', '.join(s.display for s in sources)}"
        self.start = start or (_EPOCH + self._t0 * _MICROSECOND).astimezone(self._zone)
        self.duration_s = float((last - self._t0) // 1_000_000 + 1)
        scans = zip(sources, self._scans, strict=True)
        self.unsorted_files = [s.display for s, scan in scans if not scan.ordered]

    def domains(self) -> set[str]:
        """Every domain the rows name."""
        return set().union(*(scan.domains for scan in self._scans))

    def models(self) -> dict[str, set[str]]:
        """The models the rows name, by domain (rows naming none ask their domain's own)."""
        named: dict[str, set[str]] = {}
        for scan in self._scans:
            for domain, model in scan.models:
                named.setdefault(domain, set()).add(model)
        return named

    def arrivals(self, seed: int = 0) -> Iterator[Arrival]:
        """The rows as arrivals, merged across files, sorted by time (``seed`` is unused)."""
        streams = [self._replay(s, sc) for s, sc in zip(self.sources, self._scans, strict=True)]
        return heapq.merge(*streams, key=attrgetter("time"))

    def _scan(self, source: TraceSource, skip_bad_rows: bool) -> _Scan:
        scan = _Scan()
        try:
            for line, row, where in _parsed(source, self._zone):
                if row is None:
                    scan.bad += 1
                    if not skip_bad_rows and len(scan.issues) < _MAX_ISSUES:
                        scan.issues.append(f"{source.display}:{line}:{where}")
                    continue
                scan.rows += 1
                scan.ordered = scan.ordered and row[0] >= scan.last
                scan.first, scan.last = min(scan.first, row[0]), max(scan.last, row[0])
                scan.domains.add(row[1])
                if row[2] is not None:
                    scan.models.add((row[1], row[2]))
        except TrafficError as exc:  # the file cannot be read on: the rows' issues before it too
            raise TrafficError([*scan.issues, *exc.issues]) from None
        if scan.bad and not skip_bad_rows:
            more = scan.bad - len(scan.issues)
            tail = [f"{source.display}: {more} more rows cannot be read"] if more > 0 else []
            raise TrafficError([*scan.issues, *tail])
        return scan

    def _replay(self, source: TraceSource, scan: _Scan) -> Iterator[Arrival]:
        rows: Iterator[_Row] = (r for _, r, _ in _parsed(source, self._zone) if r is not None)
        if not scan.ordered:
            rows = iter(sorted(rows, key=lambda r: r[0]))  # stable: ties keep the file's order
        t0 = self._t0
        for t, domain, model, prompt, maximum, completion in rows:
            yield Arrival((t - t0) / 1e6, domain, prompt, maximum, completion, model)


def _resolve_unit(source: TraceSource, zone: tzinfo, notes: list[str]) -> TraceSource:
    """``source`` with the unit of its timestamps decided from the whole column (``auto``), or
    as given; see :mod:`keypolicy.sim.time_units`. A file of usage records is in seconds. A
    decision that could be wrong, or a unit given that the column does not look like, is
    appended to ``notes``."""
    if source.time_format == "datetime":
        return source
    with _open(source) as (header, keyed, records):
        parse = _Parser(source, header, keyed, zone)
        if parse.form not in ("auto", "seconds", "milliseconds") or parse.outcome is not None:
            return source  # usage records: epoch seconds
        at = parse.at["timestamp"]
        name = header[at] if isinstance(at, int) and at < len(header) else str(at)
        values = (
            _cell(record, at, "timestamp")
            for _, record, _ in records
            if not isinstance(record, BadRow)
        )
        where = f"{source.display}: column {name}"
        if source.time_format != "auto":  # as given; but say so if it looks like another
            try:
                unit = decide_unit(values, where)
            except (TimeUnitError, TrafficError, DataFileError):  # the column cannot tell, or
                return source  # the file is damaged (the scan reports it, row problems first)
            if unit != source.time_format:
                notes.append(
                    f"{where} read as {source.time_format}, as asked, though it looks like "
                    f"{unit} (--time-unit auto decides from the whole column)"
                )
            return source
        try:
            unit = decide_unit(values, where, notes)
        except TimeUnitError as exc:
            raise TrafficError([str(exc)]) from None
    return replace(source, time_format=unit)


_FROM_START_US = 1e15  # 2001-09-09 in epoch microseconds: earlier times count from a start


def _check_clocks(sources: list[TraceSource], scans: list[_Scan]) -> None:
    """Refuse files that cannot share one clock: some counted from their start and others in
    epoch time, or files each of plausible length that together span more than a year (one of
    them in another unit, or from another year)."""
    if len(sources) < 2:
        return
    spans = [
        (s.display, scan.first, scan.last)
        for s, scan in zip(sources, scans, strict=True)
        if scan.rows
    ]
    relative = [d for d, first, _ in spans if first < _FROM_START_US]
    epoch = [d for d, first, _ in spans if first >= _FROM_START_US]
    if relative and epoch:
        raise TrafficError(
            [
                f"{', '.join(relative)} count time from their start and {', '.join(epoch)} in "
                "epoch time: they cannot be replayed on one clock (give every file the same "
                "kind of timestamps)"
            ]
        )
    year_us = PLAUSIBLE_SPAN_S * 1e6
    merged = max(last for _, _, last in spans) - min(first for _, first, _ in spans)
    if merged > year_us and all(last - first <= year_us for _, first, last in spans):
        when = ", ".join(
            f"{d} from {(_EPOCH + int(first) * _MICROSECOND).date()}" for d, first, _ in spans
        )
        raise TrafficError(
            [
                f"the trace files together span {merged / 86400e6:,.0f} days, though none spans "
                f"more than a year ({when}): is one in another unit or from another year? "
                "Replay them separately, or give each its --time-unit / time_format"
            ]
        )


def _zone(name: str) -> tzinfo:
    try:
        return UTC if name == "UTC" else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder: OSError
        raise TrafficError(
            [f"unknown time zone '{name}' (use an IANA name such as UTC or America/New_York)"]
        ) from None


# ---------------------------------------------------------------------------------------------
# Reading rows


def _parsed(source: TraceSource, zone: tzinfo) -> Iterator[tuple[int, _Row | None, str]]:
    """(line, row, "") for each readable row; (line, None, "COL: what (hint)") for the others."""
    with _open(source) as (header, keyed, records):
        parse = _Parser(source, header, keyed, zone)
        for line, record, raw in records:
            try:
                yield line, parse(record), ""
            except BadRow as bad:
                column = parse.column(bad.field, raw) if bad.column is None else bad.column
                hint = "fix the row, or skip bad rows: --skip-bad-rows, skip_bad_rows: true"
                lines = raw.rstrip("\r\n").count("\n")
                if lines:  # a quoted value over several lines, most likely a stray quote
                    over = f"the row runs over lines {line}-{line + lines}"
                    hint = f"{over}: is a quote left unclosed? {hint}"
                yield line, None, f"{column}: {bad.message} ({hint})"


@contextmanager
def _open(source: TraceSource) -> Iterator[tuple[list[str], bool, _Records]]:
    """The header, whether records are keyed by column name, and (line, record, raw line);
    see :mod:`keypolicy.datafiles` for the errors."""
    layout = layout_of(source.path)
    try:
        if layout.form == "parquet":
            if layout.gzip:
                raise DataFileError(
                    f"{source.display}: a gzip-compressed Parquet file: decompress it (gunzip "
                    "-k FILE); Parquet is compressed inside already"
                )
            with _parquet(source) as opened:
                yield opened
            return
        with open_text(source.path, source.display) as handle:
            if layout.form == "jsonl":
                yield _jsonl(source, handle)
            else:
                header, records = csv_rows(handle, source.display, layout.delimiter)
                yield header, False, records
    except DataFileError as exc:
        raise TrafficError([str(exc)]) from None


def _jsonl(source: TraceSource, handle: Any) -> tuple[list[str], bool, _Records]:
    rows = jsonl_rows(handle, source.display)
    first = next(rows, None)
    if first is None:
        raise TrafficError([f"{source.display}:1:1: the file is empty"])
    line, head, _ = first
    if isinstance(head, BadRow):  # its keys would name the columns
        where = f"{source.display}:{line}:{head.column or 1}"
        raise TrafficError([f"{where}: {head.message} (the first row names the columns: fix it)"])
    header = list(head)

    def records() -> _Records:
        yield first
        yield from rows

    return header, True, records()


@contextmanager
def _parquet(source: TraceSource) -> Iterator[tuple[list[str], bool, _Records]]:
    try:
        import pyarrow as pa  # noqa: PLC0415 - optional: only Parquet traces need it
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        raise TrafficError(
            [
                f"{source.display}: reading Parquet needs pyarrow "
                "(pip install pyarrow), or convert the trace to CSV"
            ]
        ) from None
    check_parquet(source.path, source.display)
    try:
        with pq.ParquetFile(source.path) as parquet:
            header = list(parquet.schema_arrow.names)

            def records() -> _Records:
                line = 0
                for batch in parquet.iter_batches(batch_size=65_536):
                    for record in batch.to_pylist():
                        line += 1
                        yield line, record, ""

            yield header, True, records()
    except (pa.ArrowException, OSError) as exc:
        raise DataFileError(
            f"{source.display}: cannot read it as Parquet ({exc}): is the file whole?"
        ) from None


class _Parser:
    """Turns one file's records into rows: (epoch µs, domain, model, prompt, max, completion)."""

    def __init__(self, source: TraceSource, header: list[str], keyed: bool, zone: tzinfo) -> None:
        self.source, self.header, self.zone, self.form = source, header, zone, source.time_format
        self.outcome: int | str | None = None  # where a usage record's outcome is
        records = _record_positions(source, header, keyed)
        if records is None:
            self.at = _positions(source, header, keyed)
        else:
            self.at, self.outcome = records
            self.form = "seconds"
        self.delimiter = layout_of(source.path).delimiter

    def __call__(self, record: Any) -> _Row:
        if isinstance(record, BadRow):
            raise record
        at, source = self.at, self.source
        when = self._time(_cell(record, at["timestamp"], "timestamp", required=True))
        domain = source.domain or _cell(record, at.get("domain"), "domain", required=True)
        model = source.model or _cell(record, at.get("model"), "model")
        prompt = _tokens(record, at["prompt_tokens"], "prompt_tokens", required=True)
        completion = _tokens(record, at.get("completion_tokens"), "completion_tokens")
        maximum = _tokens(record, at.get("max_tokens"), "max_tokens")
        if self.outcome is not None:  # a usage record
            if _cell(record, self.outcome, "outcome") != "ok":
                completion = None  # no answer: how long it would have been, the provider draws
            if maximum == 0:  # the request named no max_tokens: the file's, if given
                maximum = source.max_tokens
                if maximum is None and completion is None:
                    raise _RowError(
                        "max_tokens",
                        "the request named no max_tokens and got no answer: nothing says how "
                        "long its answer would be (give max_tokens for the file in a trace "
                        "profile)",
                    )
        if maximum is None:
            if completion is None and source.max_tokens is None:
                raise _RowError("completion_tokens", "no completion tokens (nor max_tokens)")
            maximum = max(completion or 0, source.max_tokens or 0)
        if completion is not None:
            completion = min(completion, maximum)
        model = None if model is None else str(model)
        domain = str(domain)
        if "\n" in domain or (model is not None and "\n" in model):  # a stray quote's work
            name, value = ("domain", domain) if "\n" in domain else ("model", model)
            raise _RowError(name, f"{quoted(value)} holds a line end")
        return when, domain, model, prompt or 0, max(maximum, 1), completion

    def _time(self, value: Any) -> int:
        if self.form == "auto":  # decided from the whole column before (_resolve_unit)
            raise AssertionError("the time unit is decided before the rows are read")
        if self.form == "datetime":
            moment = value
            if not isinstance(value, datetime):
                try:
                    moment = datetime.fromisoformat(str(value).strip())
                except ValueError:
                    raise _RowError(
                        "timestamp",
                        f"{quoted(value)} is not a date-time such as 2023-11-16 18:17:03.97",
                    ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=self.zone)
            return int((moment - _EPOCH) // _MICROSECOND)  # exact, unlike float epoch seconds
        try:
            number = float(value) / (1000 if self.form == "milliseconds" else 1)
        except (TypeError, ValueError):
            raise _RowError(
                "timestamp", f"{quoted(value)} is not a number of {self.form}"
            ) from None
        if not math.isfinite(number):
            raise _RowError("timestamp", f"{quoted(value)} is not a time")
        return round(number * 1e6)

    def column(self, fieldname: str, raw: str) -> str:
        """Where a field's value sits: its 1-based character column in the line (CSV, JSONL),
        or its column number (Parquet); and the column's name."""
        position = self.at.get(fieldname)
        if position is None:
            return "1"
        if isinstance(position, int):
            return f"{cell_column(raw, position, self.delimiter)}: column '{self.header[position]}'"
        if raw:
            return f"{raw.find(json.dumps(position)) + 1 or 1}: column '{position}'"
        return f"{self.header.index(position) + 1}: column '{position}'"


def _record_positions(
    source: TraceSource, header: list[str], keyed: bool
) -> tuple[dict[str, int | str], int | str] | None:
    """For a file of keypolicy's usage records (every record field in its header, no columns
    mapped): where each field is, and where the outcome is. A request replays as it was asked:
    submitted at ``submitted``, with its requested model, prompt and max tokens; its completion
    tokens only if it was answered. ``None`` for any other file."""
    if source.columns or not set(RECORD_FIELDS) - set(OPTIONAL) <= set(header):
        return None
    if source.time_format not in ("auto", "seconds"):
        raise TrafficError(
            [
                f"{source.display}: usage records are timed in epoch seconds, not "
                f"{source.time_format} (leave the time format out)"
            ]
        )
    missing = [name for name in REQUESTED if name not in header]
    if missing:
        raise TrafficError(
            [
                f"{source.display}:1:1: usage records without {', '.join(missing)} (written "
                "before records carried what each request asked for) cannot replay as asked: "
                "write them again, or map the columns to replay what was used (--column "
                "timestamp=submitted --column completion_tokens=completion_tokens; in a trace "
                "profile, columns: {timestamp: submitted, completion_tokens: completion_tokens})"
            ]
        )
    names = {
        "timestamp": "submitted",
        "domain": "domain",
        "model": "requested_model",
        "prompt_tokens": "requested_prompt_tokens",
        "max_tokens": "requested_max_tokens",
        "completion_tokens": "completion_tokens",
        "outcome": "outcome",
    }
    found: dict[str, int | str] = {
        name: column if keyed else header.index(column) for name, column in names.items()
    }
    outcome = found.pop("outcome")
    return found, outcome


def _positions(source: TraceSource, header: list[str], keyed: bool) -> dict[str, int | str]:
    """Where each field is: a column index (CSV) or key (JSONL, Parquet); header errors raise."""
    found: dict[str, int | str] = {}
    problems = []
    normal = {_norm(h): i for i, h in reversed(list(enumerate(header)))}
    for name in FIELDS:
        wanted = source.columns.get(name)
        if wanted is not None:
            if wanted not in header:
                hint = did_you_mean(wanted, header)
                problems.append(f"{source.display}:1:1: no column '{wanted}' for {name} ({hint})")
                continue
            index = header.index(wanted)
        else:
            index = next((normal[n] for n in _COMMON_NAMES[name] if n in normal), -1)
            if index < 0:
                continue
        if header.count(header[index]) > 1:
            places = [str(i + 1) for i, h in enumerate(header) if h == header[index]]
            problems.append(
                f"{source.display}:1:1: the column '{header[index]}' for {name} appears "
                f"{len(places)} times in the header (columns {', '.join(places)}): rename the "
                "others so that it is clear which one holds it"
            )
            continue
        found[name] = header[index] if keyed else index
    optional = ("model", "max_tokens", "completion_tokens") + (("domain",) if source.domain else ())
    needed = [name for name in FIELDS if name not in optional]
    for name in needed:
        if name not in found and name not in source.columns:
            problems.append(
                f"{source.display}:1:1: no column for {name} (map it: --column "
                f"{name}=COLUMN, or columns: {{{name}: COLUMN}} in a trace profile"
                + (", or give one for every row: --domain D" if name == "domain" else "")
                + f"; the columns are {', '.join(header)})"
            )
    if not ({"max_tokens", "completion_tokens"} & set(found)) and source.max_tokens is None:
        problems.append(
            f"{source.display}:1:1: no column for max_tokens or completion_tokens "
            "(map one, or give max_tokens for every row: --max-tokens N, or max_tokens: N in "
            "a trace profile)"
        )
    if problems:
        raise TrafficError(problems)
    return found


def _cell(record: Any, position: int | str | None, name: str, required: bool = False) -> Any:
    value = None
    if position is not None:
        try:
            value = record[position]
        except (IndexError, KeyError):
            value = None
    if value is None or value == "":
        if required:
            raise _RowError(name, f"no value for {name}")
        return None
    return value


def _tokens(
    record: Any, position: int | str | None, name: str, required: bool = False
) -> int | None:
    value = _cell(record, position, name, required)
    if value is None:
        return None
    number: float
    try:  # 12 and "12" are whole; 12.5 and "12.5" are not; "12.0" and 1e3 are
        number = value if isinstance(value, float) else int(value)
    except (TypeError, ValueError):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1
    if isinstance(value, bool) or not 0 <= number < math.inf or number != int(number):
        raise _RowError(name, f"{quoted(value)} is not a whole number of tokens")
    return int(number)


# ---------------------------------------------------------------------------------------------
# The trace profile (kind: trace)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Columns(_Model):
    """Which column of a file holds each field keypolicy needs."""

    timestamp: str | None = None
    domain: str | None = None
    model: str | None = None
    prompt_tokens: str | None = None
    max_tokens: str | None = None
    completion_tokens: str | None = None


class TraceFile(_Model):
    """One file of a trace profile; a relative path is read from the profile's folder."""

    path: str
    domain: Name | None = None
    columns: Columns = Field(default_factory=Columns)
    time_format: Literal["auto", "datetime", "seconds", "milliseconds"] = "auto"
    model: str | None = None
    max_tokens: Count | None = Field(None, ge=1)


class TraceProfile(_Model):
    """A YAML profile that replays trace files (``kind: trace``)."""

    version: Literal[1]
    kind: Literal["trace"]
    name: Name
    description: str = ""
    timezone: TimeZone = Field("UTC", description="For date-times written without a zone.")
    start: Start | None = Field(None, description="Replay at this wall clock instead.")
    skip_bad_rows: bool = False
    files: list[TraceFile] = Field(min_length=1)


def load_trace_profile(doc: SourceDoc, path: Path) -> TraceTraffic:
    """The traffic a ``kind: trace`` profile describes; see :func:`load_traffic`."""
    profile = validate_doc(doc, TraceProfile)
    sources, missing = [], []
    for i, spec in enumerate(profile.files):
        file = path.parent / spec.path
        if not file.is_file():
            hint = f"relative paths are read from {path.parent}: looked for {file}"
            where = doc.locate(("files", i, "path"))
            missing.append(
                str(Issue(where, f"files[{i}].path", f"no such file: {spec.path}", hint))
            )
            continue
        settings = spec.model_dump(include={"domain", "time_format", "model", "max_tokens"})
        columns = {k: v for k, v in spec.columns.model_dump().items() if v}
        display = os.path.normpath(file)
        sources.append(TraceSource.make(file, display=display, columns=columns, **settings))
    if missing:
        raise TrafficError(missing)
    return TraceTraffic(
        sources,
        skip_bad_rows=profile.skip_bad_rows,
        timezone=profile.timezone,
        start=profile.start,
        name=profile.name,
        description=profile.description,
    )
