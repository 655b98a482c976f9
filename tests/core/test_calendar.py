"""Budget periods and deferral windows in a time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from keypolicy.core.calendar import next_window_start, period_of, within_windows

NY = "America/New_York"


def _ts(text: str, zone: str = NY) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_day_week_month_in_a_zone() -> None:
    now = _ts("2026-11-27T23:30:00")  # Friday evening in New York, Saturday in UTC
    assert period_of("day", NY, now) == (
        "2026-11-27",
        _ts("2026-11-27T00:00:00"),
        _ts("2026-11-28T00:00:00"),
    )
    assert period_of("day", "UTC", now)[0] == "2026-11-28"
    ident, start, end = period_of("week", NY, now)
    assert ident == "2026-W48"
    assert (start, end) == (_ts("2026-11-23T00:00:00"), _ts("2026-11-30T00:00:00"))
    assert period_of("month", NY, now) == (
        "2026-11",
        _ts("2026-11-01T00:00:00"),
        _ts("2026-12-01T00:00:00"),
    )


def test_day_with_a_dst_change_is_23_hours_long() -> None:
    _, start, end = period_of("day", NY, _ts("2026-03-08T12:00:00"))
    assert end - start == 23 * 3600


def test_unknown_period_is_refused() -> None:
    with pytest.raises(ValueError, match="fortnight"):
        period_of("fortnight", NY, 0.0)


@pytest.mark.parametrize(
    ("minute", "inside"),
    [
        (0, True),
        (6 * 60 + 59, True),
        (7 * 60, False),
        (18 * 60 + 59, False),
        (19 * 60, True),
        (23 * 60, True),
    ],
)
def test_windows_wrap_past_midnight(minute: int, inside: bool) -> None:
    assert within_windows(((19 * 60, 7 * 60),), minute) is inside


def test_next_window_start() -> None:
    windows = ((19 * 60, 7 * 60), (12 * 60, 13 * 60))
    assert next_window_start(windows, NY, _ts("2026-11-27T09:00:00")) == _ts("2026-11-27T12:00:00")
    assert next_window_start(windows, NY, _ts("2026-11-27T14:00:00")) == _ts("2026-11-27T19:00:00")
    inside = _ts("2026-11-27T20:00:00")
    assert next_window_start(windows, NY, inside) == inside
