"""Reading numbers in either shape, and writing them for people."""

from __future__ import annotations

import pytest

from keypolicy.report.charts import nice_max, tick_step
from keypolicy.report.layout import downsample
from keypolicy.report.values import (
    Exhaustion,
    count,
    exhaustion,
    interval,
    mean,
    money,
    percent,
    seconds,
)


def test_mean_reads_both_shapes() -> None:
    assert mean(3) == 3.0
    assert mean({"mean": 2.5, "ci95": 0.4, "min": 2, "max": 3}) == 2.5
    assert mean(None) == 0.0
    assert mean(True) == 0.0
    assert interval({"mean": 2.5, "ci95": 0.4}) == 0.4
    assert interval(7) == 0.0


def test_exhaustion_reads_both_shapes() -> None:
    assert exhaustion(None) is None
    assert exhaustion("2026-11-18T19:51:07-05:00") == Exhaustion("2026-11-18T19:51:07-05:00")
    found = exhaustion({"earliest": "2026-11-18T15:20:00-05:00", "runs": 9, "of": 10})
    assert found == Exhaustion("2026-11-18T15:20:00-05:00", 9, 10)
    assert found is not None
    assert found.clock == "15:20"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0 s"),
        (0.42, "0.42 s"),
        (5.0, "5 s"),
        (4.5, "4.5 s"),
        (15.2, "15 s"),
        (464.3, "7.7 min"),
        (900.0, "15 min"),
        (9000.0, "2.5 h"),
    ],
)
def test_seconds(value: float, text: str) -> None:
    assert seconds(value) == text


def test_counts_money_percent() -> None:
    assert count(106224) == "106,224"
    assert count(2.5) == "2.5"
    assert money(3.876) == "$3.88"
    assert money(11797.4) == "$11,797"
    assert percent(0.0016) == "0.2%"
    assert percent(0.38) == "38%"


@pytest.mark.parametrize(
    ("top", "unit", "axis", "step"),
    [
        (2.48, 1.0, 2.5, 0.5),
        (1.0, 1.0, 1.0, 0.2),
        (0.9, 1.0, 1.0, 0.2),
        (900.0, 60.0, 900.0, 300.0),
        (31.9, 1.0, 40.0, 10.0),
        (0.0, 1.0, 1.0, 0.2),
    ],
)
def test_axis_tops_are_round(top: float, unit: float, axis: float, step: float) -> None:
    assert nice_max(top, unit) == pytest.approx(axis)
    assert tick_step(nice_max(top, unit), unit) == pytest.approx(step)


def test_downsample_keeps_peaks_or_sums() -> None:
    values = [1.0, 5.0, 2.0, 0.0, 3.0, 1.0, 1.0]
    assert downsample(values, 3) == [5.0, 3.0, 1.0]
    assert downsample(values, 3, sum) == [8.0, 4.0, 1.0]
