"""Data files read row by row: CSV, TSV and JSON lines, plain or gzip-compressed, and Parquet.

Traces (:mod:`keypolicy.sim.traces`) and usage records (:mod:`keypolicy.recordfiles`) are read
through here, so that each way a file can be wrong gives one clear line naming the file, the
line and column where there is one, and what to do:

- the name says what a file is: ``.csv``, ``.tsv``, ``.jsonl`` (``.ndjson``, ``.json``),
  ``.parquet``, each with ``.gz`` after it for gzip (``t.csv.gz``); anything else is CSV;
- the first bytes say what it really is, before any is decoded: gzip, Parquet, ZIP (an Excel
  workbook), bzip2/xz/zstd, SQLite, UTF-16 text or other binary data are named, not met as a
  codec error;
- text is UTF-8 (a byte-order mark is allowed); a byte that is not is placed at its line and
  column by reading the file again (only then: the good path pays nothing for it);
- a gzip stream cut short or damaged is placed after the last whole line;
- CSV rows with more or fewer cells than the header are bad rows (:class:`BadRow`, which the
  reader may skip), and so is a JSON line cut short; a quote never closed, or one that swallows
  lines into a row of the wrong width, is fatal (:class:`DataFileError`), since the rows it ate
  cannot be skipped one by one.

Rows are streamed: nothing here holds more than one row (and the first bytes of the file).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import shlex
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import IO, Any, Final, Literal

__all__ = [
    "BadRow",
    "DataFileError",
    "Layout",
    "cell_column",
    "check_parquet",
    "csv_rows",
    "jsonl_rows",
    "layout_of",
    "open_text",
    "quoted",
]

Form = Literal["csv", "tsv", "jsonl", "parquet"]
JSONL_SUFFIXES: Final = (".jsonl", ".ndjson", ".json")
_HEAD: Final = 4096  # bytes looked at to say what a file is
_EXCERPT: Final = 40  # characters of a value quoted in a message, at most


class DataFileError(ValueError):
    """A file cannot be read at all; the message names it (with line:column where there is
    one), says what is wrong and what to do."""


class BadRow(Exception):  # noqa: N818 - a row's problem, carried as a value more than raised
    """One row cannot be read: ``message`` says why; ``column`` is its 1-based character
    column (``None``: the reader places it by ``field``); ``truncated``: the row is the file's
    last line, cut short."""

    def __init__(
        self, message: str, column: int | None = None, *, field: str = "", truncated: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.field = field
        self.truncated = truncated


@dataclass(frozen=True)
class Layout:
    """What a file's name says it is: its form, and whether it is gzip-compressed."""

    form: Form
    gzip: bool

    @property
    def delimiter(self) -> str:
        """The CSV delimiter: a tab for TSV, else a comma."""
        return "\t" if self.form == "tsv" else ","


def layout_of(path: Path) -> Layout:
    """The layout the name gives: the suffix before ``.gz`` decides the form."""
    name = path.name.lower()
    compressed = name.endswith(".gz")
    suffix = PurePath(name[:-3] if compressed else name).suffix
    form: Form = (
        "parquet"
        if suffix == ".parquet"
        else "jsonl"
        if suffix in JSONL_SUFFIXES
        else "tsv"
        if suffix == ".tsv"
        else "csv"
    )
    return Layout(form, compressed)


def quoted(value: object) -> str:
    """``value`` in quotes for a message: at most a short excerpt, line ends and other control
    characters shown escaped (a value swallowed by a stray quote must not echo the file)."""
    text = str(value)
    cut = len(text) > _EXCERPT
    text = text[: _EXCERPT - 1] if cut else text
    shown = "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )
    return f"'{shown}…'" if cut else f"'{shown}'"


# ---- what a file is ----------------------------------------------------------------------

_MAGIC: Final = (
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"PAR1", "a Parquet file"),
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel (.xls) or Office file"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    (b"SQLite format 3\x00", "a SQLite database (a usage ledger?)"),
)
_TODO: Final = {
    "gzip-compressed data": "name it {name}.gz (.csv.gz, .tsv.gz and .jsonl.gz are read as "
    "they are), or decompress it: gunzip -c {file} > {plain}",
    "a Parquet file": "name it {stem}.parquet (reading Parquet needs pyarrow)",
    "a SQLite database (a usage ledger?)": "export its records as CSV: sqlite3 -header -csv "
    "{file} 'SELECT * FROM usage' > {stem_path}.csv",
}
_OTHER_TODO: Final = (
    "convert it to CSV, JSON lines or Parquet (gzip-compressed CSV and JSON lines are read as "
    ".csv.gz, .jsonl.gz)"
)


def _what(head: bytes) -> str | None:
    """What the first bytes say a file is, if not text; ``None`` for (possibly) text."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head.startswith(b"BZh") and head[4:10] == b"1AY&SY":  # BZh, a level 1-9, a block
        return "bzip2-compressed data"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text"
    if b"\x00" in head:
        # UTF-16 without a byte-order mark: ASCII with every other byte NUL
        pairs = head[: len(head) // 2 * 2]
        odd, even = pairs[1::2].count(0), pairs[0::2].count(0)
        if len(pairs) >= 4 and max(odd, even) >= 0.9 * len(pairs) / 2 and min(odd, even) == 0:
            return "UTF-16 text"
        return "binary data"
    return None


def _not_text(head: bytes, path: Path, display: str, inside: str = "") -> DataFileError | None:
    """The error for a file whose first bytes are not text, else ``None``."""
    what = _what(head)
    if what is None:
        return None
    file, stem = shlex.quote(display), path.name.split(".")[0]
    if what == "UTF-16 text":
        target = shlex.quote(str(path.with_name(f"{stem}-utf8{''.join(path.suffixes)}")))
        return DataFileError(
            f"{display}: UTF-16 text{inside}, not UTF-8: convert it: "
            f"iconv -f utf-16 -t utf-8 {file} > {target}"
        )
    if what == "binary data":
        at = head.index(b"\x00")
        line, column = head.count(b"\n", 0, at) + 1, at - (head.rfind(b"\n", 0, at) + 1) + 1
        return DataFileError(
            f"{display}:{line}:{column}: a NUL byte: binary data{inside}, not text: {_OTHER_TODO}"
        )
    todo = _OTHER_TODO if inside else _TODO.get(what, _OTHER_TODO)
    todo = todo.format(
        name=path.name,
        file=file,
        plain=shlex.quote(str(path.with_name(f"{stem}-plain{''.join(path.suffixes)}"))),
        stem=stem,
        stem_path=shlex.quote(str(path.with_name(stem))),
    )
    return DataFileError(f"{display}: {what}{inside}, not text: {todo}")


def check_parquet(path: Path, display: str) -> None:
    """Raise :class:`DataFileError` unless ``path`` starts and ends as a Parquet file does (a
    file cut short has no footer)."""
    head, tail = _ends(path, display)
    if not head.startswith(b"PAR1"):
        what = _what(head) or "text"
        raise DataFileError(
            f"{display}: named .parquet, but it is {what}, not Parquet (rename it: .csv, "
            ".jsonl, .csv.gz...)"
        )
    if not tail.endswith(b"PAR1"):
        raise DataFileError(
            f"{display}: a Parquet file without its footer: the file is truncated (the "
            "program that wrote it may have been interrupted, or the copy is partial; "
            "write or copy it again)"
        )


def _ends(path: Path, display: str) -> tuple[bytes, bytes]:
    try:
        with path.open("rb") as raw:
            head = raw.read(_HEAD)
            raw.seek(max(raw.seek(0, io.SEEK_END) - 4, 0))
            return head, raw.read()
    except OSError as exc:
        raise _os_error(exc, display) from None


def _os_error(exc: OSError, display: str) -> DataFileError:
    if isinstance(exc, FileNotFoundError):
        return DataFileError(f"{display}: no such file (check the path)")
    if isinstance(exc, IsADirectoryError):
        return DataFileError(f"{display}: a folder, not a file (give a file)")
    return DataFileError(f"{display}: cannot read: {exc.strerror or exc}")


# ---- text --------------------------------------------------------------------------------


@contextmanager
def open_text(path: Path, display: str) -> Iterator[IO[str]]:
    """The file as UTF-8 text (``newline=""``, as csv wants), decompressed if its name ends in
    ``.gz``. Errors met while it is read, here or by the caller, come out as one
    :class:`DataFileError` placed at their line: a byte that is not UTF-8, a gzip stream cut
    short or damaged; and before anything is read, a file that is not text at all."""
    layout = layout_of(path)
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise _os_error(exc, display) from None
    with raw:
        head = raw.read(_HEAD)
        raw.seek(0)
        if layout.gzip and not head.startswith(b"\x1f\x8b"):
            what = _what(head) or "text"
            raise DataFileError(
                f"{display}: named .gz, but it is {what}, not gzip-compressed (rename it "
                "without .gz)"
            )
        problem = None if layout.gzip else _not_text(head, path, display)
        if problem is not None:
            raise problem
        try:
            stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if layout.gzip else raw
            if layout.gzip:
                inside = " (inside the gzip)"
                problem = _not_text(stream.peek(_HEAD)[:_HEAD], path, display, inside)
                if problem is not None:
                    raise problem
            yield io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        except UnicodeDecodeError:
            raise DataFileError(_bad_byte(path, display, layout.gzip)) from None
        except EOFError:
            whole = _whole_lines(path)
            raise DataFileError(
                f"{display}:{whole + 1}: the gzip stream ends early, after line {whole}: the "
                "file is truncated (was it written or copied whole? write or copy it again)"
            ) from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            whole = _whole_lines(path)
            raise DataFileError(
                f"{display}:{whole + 1}: the gzip data is damaged after line {whole} ({exc}): "
                "get a good copy of the file"
            ) from None
        except OSError as exc:
            raise _os_error(exc, display) from None


def _whole_lines(path: Path) -> int:
    """How many whole lines a damaged gzip file gives before its error (read again: only an
    error's path pays this)."""
    count = 0
    inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:  # in small pieces: what the piece that fails would give is lost
        with path.open("rb") as raw:
            for read in iter(lambda: raw.read(1024), b""):
                piece = read
                while piece:
                    count += inflate.decompress(piece).count(b"\n")
                    piece = inflate.unused_data  # a file of several gzip members
                    if inflate.eof:
                        inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
    except (OSError, zlib.error):
        pass
    return count


def _bad_byte(path: Path, display: str, compressed: bool) -> str:
    """Where the first byte that is not UTF-8 is, and how to convert the file (read again,
    line by line: only an error's path pays this)."""
    opener: Any = gzip.open if compressed else open
    with opener(path, "rb") as stream, contextlib.suppress(EOFError, OSError, zlib.error):
        for number, line in enumerate(stream, start=1):
            text = line[3:] if number == 1 and line.startswith(b"\xef\xbb\xbf") else line
            try:
                text.decode("utf-8")
            except UnicodeDecodeError as exc:
                column = len(text[: exc.start].decode("utf-8")) + 1
                stem = path.name.split(".")[0]
                target = shlex.quote(str(path.with_name(f"{stem}-utf8{''.join(path.suffixes)}")))
                file = shlex.quote(display)
                convert = (
                    f"gunzip -c {file} | iconv -f latin1 -t utf-8 | gzip > {target}"
                    if compressed
                    else f"iconv -f latin1 -t utf-8 {file} > {target}"
                )
                return (
                    f"{display}:{number}:{column}: byte 0x{text[exc.start]:02x} is not UTF-8: the "
                    f"file is in another encoding (Latin-1 or Windows-1252?); convert it: "
                    f"{convert}"
                )
    return f"{display}: not UTF-8 text (convert it to UTF-8)"


# ---- CSV -----------------------------------------------------------------------------------


class _Lines:
    """A text file's lines, remembering the last: the raw text of a row of one line, for the
    column of a bad cell. (Keeping every line of a row costs a third more per row; the rare
    rows over several lines are rebuilt, or read again when they are an error.)"""

    def __init__(self, handle: IO[str]) -> None:
        self._next = handle.__next__
        self.last = ""

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        self.last = self._next()
        return self.last


_Rows = Iterator[tuple[int, Any, str]]  # (line, cells or BadRow, raw text)


def csv_rows(handle: IO[str], display: str, delimiter: str) -> tuple[list[str], _Rows]:
    """The header and the rows of a CSV: (line, cells, raw text) for each row; (line,
    :class:`BadRow`, raw text) for a row whose width is not the header's. Blank lines are no
    rows. A quote never closed, or closed lines later in a row of the wrong width, raises
    :class:`DataFileError`."""
    lines = _Lines(handle)
    reader = csv.reader(lines, delimiter=delimiter)
    quotes = _QuoteErrors(handle, display, delimiter)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DataFileError(quotes.too_long(1, exc)) from None
    if not header:
        raise DataFileError(
            f"{display}:1:1: the file is empty (a CSV file starts with a header line naming "
            "its columns)"
        )
    if reader.line_num > 1 and _quotes(lines.last, delimiter, inside=True)[2]:
        raise DataFileError(quotes.around(1, reader.line_num, len(header), len(header)))

    def rows() -> _Rows:
        width, line, multi = len(header), reader.line_num, 0
        try:
            for row in reader:
                line += 1
                if len(row) == width and reader.line_num == line:  # one line, every cell
                    yield line, row, lines.last
                    continue
                first, line = line, reader.line_num
                raw = lines.last
                if first != line:  # a quoted value over several lines (or a stray quote)
                    multi = line
                    if len(row) != width or _quotes(raw, delimiter, inside=True)[2]:
                        raise DataFileError(quotes.around(first, line, len(row), width))
                    raw = _rebuilt(row, delimiter)
                if row:  # [] is a blank line
                    yield first, _ragged(row, header, raw, delimiter), raw
        except csv.Error as exc:
            raise DataFileError(quotes.too_long(line + 1, exc)) from None
        # The last row, of one line, ends inside a quote: it was opened and never closed.
        if multi != line and _quotes(lines.last, delimiter)[2]:
            raise DataFileError(quotes.around(line, line, 0, 0))

    return header, rows()


def _rebuilt(cells: list[str], delimiter: str) -> str:
    """The text of a row over several lines, as csv writes it (the same as the file's unless
    the file quoted cells that need no quotes)."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerow(cells)
    return out.getvalue()


def _ragged(row: list[str], header: list[str], raw: str, delimiter: str) -> Any:
    """``row`` if it has the header's width, else its :class:`BadRow`."""
    width = len(header)
    if len(row) == width:
        return row
    if len(row) > width:
        inside = "a comma" if delimiter == "," else "a tab" if delimiter == "\t" else delimiter
        return BadRow(
            f"{len(row)} cells, but the header names {width} columns ({inside} inside a value "
            "must be quoted)",
            cell_column(raw, width, delimiter),
        )
    missing, end = header[len(row)], len(raw.rstrip("\r\n")) + 1
    if not raw.endswith("\n"):
        return BadRow(
            f"the row stops before column '{missing}' ({len(row)} of {width} cells) and has "
            "no line end: the file looks truncated here",
            end,
            truncated=True,
        )
    return BadRow(f"no cell for column '{missing}' ({len(row)} cells, the header {width})", end)


def _quotes(
    raw: str, delimiter: str, *, inside: bool = False
) -> tuple[int | None, int | None, bool]:
    """Read as :mod:`csv` reads quotes (a quote opens a value only at its start; ``""`` inside
    one is a quote), the offsets in a row's text of the first quoted value that runs over a
    line end and of the last quote opened, and whether the text ends inside a quoted value.
    ``inside``: the text starts inside one (a row's second or later line)."""
    spanning = opened = None
    at_start, i, n = not inside, 0, len(raw)
    while i < n:
        ch = raw[i]
        if inside:
            if ch == '"':
                if raw.startswith('"', i + 1):
                    i += 1
                else:
                    inside = False
            elif ch in "\r\n" and spanning is None:
                spanning = opened
            at_start = False
        elif ch == '"' and at_start:
            inside, opened, at_start = True, i, False
        else:
            at_start = ch in (delimiter, "\n", "\r")
        i += 1
    return spanning, opened, inside


def _place(raw: str, offset: int, first_line: int) -> tuple[int, int]:
    """(line, 1-based column) of ``offset`` in a row's text that starts on ``first_line``."""
    return first_line + raw.count("\n", 0, offset), offset - (raw.rfind("\n", 0, offset) + 1) + 1


class _QuoteErrors:
    """The messages of a quote left open, from the row's exact text, read again (a fatal
    error's path: the reading that met it stops here)."""

    def __init__(self, handle: IO[str], display: str, delimiter: str) -> None:
        self.handle, self.display, self.delimiter = handle, display, delimiter

    def _text(self, first: int, last: int | None) -> tuple[str, bool]:
        """Lines ``first`` to ``last`` (or as many as csv's size limit and a line more), and
        whether the file ended there."""
        limit = csv.field_size_limit() * 2
        parts: list[str] = []
        size = 0
        with contextlib.suppress(OSError, ValueError):  # not seekable: no text
            self.handle.seek(0)
            for number, text in enumerate(self.handle, start=1):
                if number >= first:
                    parts.append(text)
                    size += len(text)
                    if (last is not None and number >= last) or size > limit:
                        return "".join(parts), next(self.handle, None) is None
        return "".join(parts), True

    def around(self, first: int, last: int, cells: int, width: int) -> str:
        """A row over lines ``first`` to ``last`` whose quote never closes, or which closes
        it into a row of ``cells`` cells where the header has ``width``."""
        raw, ended = self._text(first, last)
        spanning, opened, inside = _quotes(raw, self.delimiter)
        if inside and ended:
            cut = (
                ""
                if raw.endswith("\n")
                else "; the file ends without a line end: it looks truncated"
            )
            return self._unclosed(
                raw, first, opened, f"is never closed: the rest of the file reads as one value{cut}"
            )
        line, column = _place(raw, spanning or 0, first)
        end = first + raw.rstrip("\r\n").count("\n")
        return (
            f"{self.display}:{line}:{column}: a quote opened here closes only on line {end}, "
            f"making lines {line}-{end} one row of {cells} cells where the header has {width} "
            "(close the quote on its own line)"
        )

    def too_long(self, first: int, exc: csv.Error) -> str:
        """csv's own error: in practice a value over its size limit, which an unclosed quote
        makes of the rest of a big file."""
        raw, _ = self._text(first, None)
        _, opened, inside = _quotes(raw, self.delimiter)
        if not inside:
            return f"{self.display}:{first}:1: {exc} (is it a CSV file?)"
        within = f"{csv.field_size_limit():,}"
        return self._unclosed(
            raw,
            first,
            opened,
            f"is not closed within {within} characters: the lines after it read as one value",
        )

    def _unclosed(self, raw: str, first: int, opened: int | None, what: str) -> str:
        line, column = _place(raw, opened or 0, first)
        return (
            f"{self.display}:{line}:{column}: a quote opened here {what} (close the quote; a "
            'quote inside a quoted value is written twice: "")'
        )


def cell_column(raw: str, index: int, delimiter: str) -> int:
    """The 1-based character column where cell ``index`` starts in a CSV row's text (the
    end of the line if the row has fewer cells)."""
    cell, at_start, inside, i = 0, True, False, 0
    while i < len(raw):
        ch = raw[i]
        if cell == index and at_start:
            return i - (raw.rfind("\n", 0, i) + 1) + 1
        if inside:
            if ch == '"' and not raw.startswith('"', i + 1):
                inside = False
            elif ch == '"':
                i += 1
            at_start = False
        elif ch == '"' and at_start:
            inside, at_start = True, False
        elif ch == delimiter:
            cell, at_start = cell + 1, True
        else:
            at_start = False
        i += 1
    return len(raw.rstrip("\r\n")) - (raw.rstrip("\r\n").rfind("\n") + 1) + 1


# ---- JSON lines ----------------------------------------------------------------------------


def jsonl_rows(handle: IO[str], display: str) -> _Rows:
    """(line, object, raw text) for each non-blank line; (line, :class:`BadRow`, raw text) for
    a line that is not a JSON object. A file that is one JSON array raises
    :class:`DataFileError`."""
    loads = json.loads
    for number, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            record = loads(text)
        except json.JSONDecodeError as exc:
            if number == 1 and text.strip() == "[":
                raise DataFileError(_array(display)) from None
            yield number, _not_json(exc, text), text
            continue
        if isinstance(record, dict):
            yield number, record, text
        elif number == 1 and isinstance(record, list) and record and isinstance(record[0], dict):
            raise DataFileError(_array(display))
        else:
            yield number, BadRow("a row is not an object"), text


def _array(display: str) -> str:
    path = Path(display)
    target = shlex.quote(str(path.with_name(f"{path.name.split('.')[0]}-lines.jsonl")))
    return (
        f"{display}:1:1: one JSON array, not JSON lines (one object a line): convert it: "
        f"jq -c '.[]' {shlex.quote(display)} > {target}"
    )


def _not_json(exc: json.JSONDecodeError, text: str) -> BadRow:
    """The row error of a line that is not JSON, placed where the parser stopped; a line cut
    short (the parser ran out of text) says so."""
    end = len(text.rstrip("\r\n"))
    column = min(exc.pos, end) + 1
    what = exc.msg.removesuffix(" starting at").removesuffix(" at")  # the column is given
    cut = exc.pos >= len(text.rstrip()) or what.startswith("Unterminated string")
    if cut and not text.endswith("\n"):
        return BadRow(
            f"the object is cut short (not JSON: {what}) and the line has no line end: the file "
            "looks truncated here",
            end + 1,
            truncated=True,
        )
    if cut:
        return BadRow(
            f"the object is not closed by the end of the line (one object a line; not JSON: "
            f"{what})",
            end + 1,
        )
    return BadRow(f"not JSON: {what}", column)
