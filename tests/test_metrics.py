"""The simulator's aggregates (percentiles over compactly kept waits, per-minute series) and
its records on disk."""

from __future__ import annotations

import csv
import dataclasses
import math
from array import array
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from keypolicy.metrics import Metrics, percentile
from keypolicy.records import FIELDS, RecordWriter, UsageRecord


def _reference(values: list[float], q: float) -> float:
    """Linear interpolation over the sorted values, as a textbook writes it."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@given(
    st.lists(st.floats(min_value=1e-9, max_value=1e6), max_size=60),
    st.integers(min_value=0, max_value=60),
    st.sampled_from([0.0, 0.5, 0.95, 0.99, 1.0]),
)
def test_zero_waits_kept_as_a_count_give_the_same_percentiles(
    nonzero: list[float], zeros: int, q: float
) -> None:
    expected = _reference(nonzero + [0.0] * zeros, q)
    assert percentile(array("d", nonzero), q, zeros) == expected


def test_no_values_at_all() -> None:
    assert percentile(array("d"), 0.99) == 0.0
    assert percentile(array("d"), 0.99, zeros=3) == 0.0


def test_per_minute_series_are_dense_lists_over_the_run() -> None:
    metrics = Metrics(0.0, "UTC", {"chat": "front"}, {"chat": "standard"})
    metrics.arrival("chat", 30.0)
    metrics.arrival("chat", 150.0)
    metrics.arrival("chat", 170.0)
    metrics.arrival("chat", -5.0)  # before the start: not drawn
    metrics.queue_depth({"standard": 4}, 60.0)
    series = metrics.series()
    assert series["minutes"] == 3
    assert series["arrivals"] == {"chat": [1, 0, 2]}
    assert series["queued"] == {"standard": [0, 4, 0]}


def test_records_are_written_as_their_fields_in_order(tmp_path: Path) -> None:
    record = UsageRecord(
        "r1",
        "chat",
        "gpt-4o",
        "k",
        "p",
        "standard",
        1.0,
        None,
        2.5,
        1.5,
        1,
        "ok",
        "",
        10,
        0,
        5,
        0.001,
        False,
        True,
        "",
        10,
        50,
    )
    with RecordWriter(tmp_path / "r.csv") as writer:
        writer.write(record)
    rows = list(csv.reader((tmp_path / "r.csv").read_text(encoding="utf-8").splitlines()))
    assert rows[0] == list(FIELDS)
    assert rows[1] == [str(v) if v is not None else "" for v in dataclasses.astuple(record)]
