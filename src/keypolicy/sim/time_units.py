"""The unit of a trace's numeric timestamps, decided from the whole column, never one row.

A trace's time column holds date-times, epoch seconds, epoch milliseconds, or numbers counted
from the trace's start (in seconds or milliseconds: the column alone cannot always tell). The
first row alone misleads: one hour of milliseconds from the start reads as 41 days of seconds,
and a placeholder ``0`` among epoch seconds makes a span of 56 years. So the unit comes from the
range and the span of every value, and what is ambiguous or implausible is an error saying what
was found and how to choose (``time_format`` in a profile, ``--time-unit`` on the command line).

What no rule can see: numbers counted from the start in milliseconds over less than about ten
minutes look like seconds over up to seven days, and are read so, with a warning past a day;
name the unit for those. A unit given explicitly is used as given, with a warning when the
column looks like another one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Final, Literal

__all__ = ["PLAUSIBLE_SPAN_S", "TimeUnitError", "decide_unit"]

Unit = Literal["datetime", "seconds", "milliseconds"]

EPOCH_S: Final = 1e9  # 2001-09-09 in epoch seconds: smaller numbers count from a trace's start
EPOCH_MS: Final = 1e11  # epoch seconds stop here (year 5138); epoch milliseconds start (1973)
TOO_BIG: Final = 1e14  # epoch milliseconds stop here (year 5138): microseconds or worse
PLAUSIBLE_SPAN_S: Final = 366 * 86400.0
"""The longest span a trace is taken to cover without being told its unit (seconds)."""
RELATIVE_SPAN_S: Final = 7 * 86400.0
"""Numbers counted from a trace's start spanning more than this, read as seconds, could as well
be milliseconds: the unit must be given."""


AMBIGUOUS_SPAN_S: Final = 86400.0
"""Numbers counted from a trace's start spanning more than this, read as seconds, are read so
with a warning: as milliseconds they would be minutes."""


class TimeUnitError(ValueError):
    """The column's unit cannot be decided, or the decision gives an implausible span."""


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.3g} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.3g} h"
    if seconds < 2 * 365 * 86400:
        return f"{seconds / 86400:.3g} days"
    return f"{seconds / (365.25 * 86400):.3g} years"


def decide_unit(values: Iterable[Any], where: str, notes: list[str] | None = None) -> Unit:
    """The unit of a time column from all its ``values`` (cells as read; empty ones skipped);
    ``where`` names the column in errors. Raises :class:`TimeUnitError`. A decision that could
    be wrong (numbers from the start read as seconds over more than a day, which as
    milliseconds would be minutes) is appended to ``notes``, to be shown as a warning."""
    low, high, numbers, texts = math.inf, -math.inf, 0, 0
    for value in values:
        if value is None or value == "":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            texts += 1
            continue
        if not math.isfinite(number):
            continue
        numbers += 1
        low, high = min(low, number), max(high, number)
    if texts >= numbers:
        return "datetime"  # a number among date-times is the row's error, reported as such
    choose = "say which with time_format in the trace profile, or --time-unit on the command line"
    found = f"{where}: timestamps from {low:g} to {high:g}"
    if high >= TOO_BIG:
        raise TimeUnitError(
            f"{found}: too large for epoch seconds or milliseconds (microseconds or "
            "nanoseconds?); convert the column to seconds, milliseconds or date-times"
        )
    if low >= EPOCH_MS:
        unit: Unit = "milliseconds"
    elif low >= EPOCH_S and high < EPOCH_MS:
        unit = "seconds"
    elif low >= EPOCH_S or high >= EPOCH_S:
        raise TimeUnitError(
            f"{found}: epoch times mixed with numbers of another size (a placeholder such as "
            "0, or two units in one column?); fix those rows"
        )
    else:
        return _from_start(high - low, found, choose, notes)
    span = (high - low) / (1000 if unit == "milliseconds" else 1)
    if span > PLAUSIBLE_SPAN_S:
        raise TimeUnitError(
            f"{found}: as epoch {unit} they span {_span(span)}; a trace that long is more "
            "likely a bad row (a placeholder, a typo): fix it, or " + choose
        )
    return unit


def _from_start(as_seconds: float, found: str, choose: str, notes: list[str] | None) -> Unit:
    """Numbers counted from the trace's start, spanning ``as_seconds`` if seconds: seconds,
    unless that makes an implausible span (an error) or a doubtful one (a note)."""
    if as_seconds > RELATIVE_SPAN_S:
        raise TimeUnitError(
            f"{found}, counted from its start: as seconds they span {_span(as_seconds)}, as "
            f"milliseconds {_span(as_seconds / 1000)}; {choose}"
        )
    if as_seconds > AMBIGUOUS_SPAN_S and notes is not None:
        notes.append(
            f"{found}, counted from its start, read as seconds: they span "
            f"{_span(as_seconds)} (as milliseconds they would span "
            f"{_span(as_seconds / 1000)}: if so, --time-unit milliseconds)"
        )
    return "seconds"
