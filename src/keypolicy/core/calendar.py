"""Calendar arithmetic in a time zone: budget periods and deferral windows.

Pure functions of an epoch time and a zone; nothing here reads a clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["minute_of_day", "next_window_start", "period_of", "within_windows"]


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def period_of(kind: str, zone: str, now: float) -> tuple[str, float, float]:
    """The calendar ``day``/``week`` (ISO, from Monday)/``month`` holding ``now`` in ``zone``.

    Returns ``(id, start, end)``: an id such as ``2026-11-27``, ``2026-W48`` or ``2026-11``, and
    the period's bounds in epoch seconds.
    """
    tz = _zone(zone)
    local = datetime.fromtimestamp(now, tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "day":
        start, end = day, day + timedelta(days=1)
        ident = start.strftime("%Y-%m-%d")
    elif kind == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
        year, week, _ = start.isocalendar()
        ident = f"{year}-W{week:02d}"
    elif kind == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        ident = start.strftime("%Y-%m")
    else:
        raise ValueError(f"unknown calendar period {kind!r}")
    # Rebuild with the zone so that a DST change inside the period gives the right offset.
    start = start.replace(tzinfo=None).replace(tzinfo=tz)
    end = end.replace(tzinfo=None).replace(tzinfo=tz)
    return ident, start.timestamp(), end.timestamp()


def minute_of_day(zone: str, now: float) -> float:
    """Minutes since local midnight in ``zone`` (fractional)."""
    local = datetime.fromtimestamp(now, _zone(zone))
    return local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 6e7


def within_windows(windows: tuple[tuple[int, int], ...], minute: float) -> bool:
    """Whether ``minute`` of the day falls in one of ``windows`` ((start, end) minutes; end
    before start wraps past midnight; start == end is the whole day)."""
    for start, end in windows:
        if start == end:
            return True
        if start < end and start <= minute < end:
            return True
        if start > end and (minute >= start or minute < end):
            return True
    return False


def next_window_start(windows: tuple[tuple[int, int], ...], zone: str, now: float) -> float:
    """Epoch seconds when the next window opens (``now`` if one is open already), as local wall
    time in ``zone``: a window at 03:00 opens at 03:00 local even across a DST change."""
    if within_windows(windows, minute_of_day(zone, now)):
        return now
    tz = _zone(zone)
    local = datetime.fromtimestamp(now, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    starts = []
    for days in (0, 1):
        for start, _ in windows:
            wall = midnight + timedelta(days=days, minutes=start)
            opening = wall.replace(tzinfo=tz).timestamp()
            if opening > now:
                starts.append(opening)
    return min(starts)
