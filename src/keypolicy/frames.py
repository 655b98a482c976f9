"""Usage records as a ``pandas.DataFrame``, for notebooks: :func:`read_records`.

Two ways to one answer. A records CSV (plain or gzip) or Parquet file is read first by pandas
(its C parser, or pyarrow), which is many times faster than a row at a time; the frame is then
checked (every column there, no empty cell where a value is needed, every outcome known). If
pandas refuses the file, or the check fails, the file is read again row by row by
:func:`keypolicy.recordfiles.iter_usage_records`, which either reads it (pandas was stricter:
``12.0`` as a count, say) or raises the error that names the file, line, column and what to
do. Ledgers in SQLite or JSON lines are read row by row only. Either way, the same frame.
"""

from __future__ import annotations

from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from keypolicy.datafiles import layout_of
from keypolicy.ledger import _KINDS
from keypolicy.recordfiles import iter_usage_records
from keypolicy.records import FIELDS, OPTIONAL, OUTCOMES

if TYPE_CHECKING:
    import pandas  # type: ignore[import-untyped]  # pandas ships no stubs; pandas-stubs absent

__all__ = ["read_records"]

_DTYPES: Final = {
    "float": "float64",
    "float | None": "float64",
    "int": "int64",
    "bool": "bool",
    "str": "str",
}
_TYPES: Final = {name: _DTYPES[_KINDS[name]] for name in FIELDS}
_ROW: Final = attrgetter(*FIELDS)


def read_records(path: str | Path) -> pandas.DataFrame:
    """One row per usage record in ``path``, in file order, with the columns of
    :data:`keypolicy.records.FIELDS`, typed: the times ``submitted``, ``started`` and
    ``finished`` as float epoch seconds (``started`` NaN for a request never sent; convert
    with ``pandas.to_datetime(frame.submitted, unit="s", utc=True)``), ``wait_s`` (seconds)
    and ``cost_usd`` (USD) as float64, counts as int64, flags as bool, the rest as strings.

    Reads what ``keypolicy simulate --records`` writes (CSV, ``.csv.gz``, or Parquet with
    pyarrow) and usage ledgers (``.sqlite``, ``.jsonl``, ``.csv``). Raises ValueError naming
    the file, line, column and what to do for a bad cell, a truncated, binary or compressed
    file, or one that is not usage records."""
    path = Path(path)
    layout = layout_of(path)
    fast = None
    if layout.form == "csv" and path.suffix.lower() not in (".sqlite", ".sqlite3", ".db"):
        fast = _pandas_csv(path, layout.gzip)
    elif layout.form == "parquet" and not layout.gzip:
        fast = _pandas_parquet(path)
    return fast if fast is not None else _row_by_row(path)


def _row_by_row(path: Path) -> pandas.DataFrame:
    """The frame read row by row (the reference the fast path is held to)."""
    import pandas as pd  # noqa: PLC0415 - the library does not need pandas until asked

    rows = [_ROW(record) for record in iter_usage_records(path)]
    return pd.DataFrame.from_records(rows, columns=list(FIELDS)).astype(_TYPES)


def _pandas_csv(path: Path, compressed: bool) -> pandas.DataFrame | None:
    """The frame as pandas reads the CSV, if it reads it and it passes :func:`_checked`."""
    import pandas as pd  # noqa: PLC0415

    try:
        frame = pd.read_csv(
            path,
            dtype=_TYPES,
            keep_default_na=False,
            na_values={"started": [""]},
            compression="gzip" if compressed else None,
            encoding="utf-8",
        )
    except Exception:  # any refusal: the row reader says what and where
        return None
    return _checked(frame)


def _pandas_parquet(path: Path) -> pandas.DataFrame | None:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - optional: only Parquet needs it

        frame = pq.read_table(str(path)).to_pandas()
        return _checked(frame.astype({k: v for k, v in _TYPES.items() if k in frame}))
    except Exception:  # any refusal (no pyarrow too): the row reader says why
        return None


def _checked(frame: Any) -> pandas.DataFrame | None:
    """``frame`` with the fields files of earlier versions lack filled in as the row reader
    fills them, in FIELDS order; ``None`` if a column is missing, a needed value is empty or
    an outcome unknown."""
    missing = [name for name in FIELDS if name not in frame.columns]
    if any(name not in OPTIONAL for name in missing):
        return None
    defaults = {
        "requested_model": "",
        "requested_max_tokens": 0,
        "usage_estimated": False,
    }
    for name in missing:
        if name == "requested_prompt_tokens":
            frame[name] = frame["prompt_tokens"]
        else:
            frame[name] = defaults[name]
    frame = frame[list(FIELDS)]
    needed = [name for name in FIELDS if name != "started"]
    if frame[needed].isna().any().any() or not frame["outcome"].isin(OUTCOMES).all():
        return None
    return frame.astype(_TYPES)
