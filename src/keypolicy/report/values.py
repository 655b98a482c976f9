"""Reading numbers out of a summary, whichever shape they have, and writing them for people.

A summary from one run holds plain numbers; one from several runs holds ``{"mean", "ci95",
"min", "max"}`` for every number and ``{"earliest", "runs", "of"}`` for budget exhaustion times.
Everything in the report reads numbers through :func:`mean` and times through
:func:`exhaustion`, so both shapes work everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "Exhaustion",
    "clock",
    "count",
    "exhaustion",
    "interval",
    "mean",
    "money",
    "percent",
    "seconds",
    "tick_seconds",
]


def mean(value: Any) -> float:
    """The number itself, or the mean of a multi-run number; 0.0 for anything else (None)."""
    if isinstance(value, dict):
        value = value.get("mean")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def interval(value: Any) -> float:
    """The half-width of the 95% interval of a multi-run number; 0.0 for a single run."""
    if isinstance(value, dict) and isinstance(value.get("ci95"), int | float):
        return float(value["ci95"])
    return 0.0


@dataclass(frozen=True, slots=True)
class Exhaustion:
    """When a budget first ran out: an ISO time, and in how many of how many runs it did."""

    at: str
    runs: int = 1
    of: int = 1

    @property
    def clock(self) -> str:
        """The time of day, HH:MM."""
        return clock(self.at)

    def sort_key(self) -> str:
        """Comparable across rows of one summary (ISO strings with the same offset)."""
        return self.at


def exhaustion(value: Any) -> Exhaustion | None:
    """``budget_exhausted_at`` in either shape, or None when no budget ran out."""
    if isinstance(value, str) and value:
        return Exhaustion(value)
    if isinstance(value, dict) and isinstance(value.get("earliest"), str):
        return Exhaustion(value["earliest"], int(value.get("runs", 1)), int(value.get("of", 1)))
    return None


def clock(iso: str) -> str:
    """``2026-11-18T19:51:07-05:00`` -> ``19:51``; other text unchanged."""
    try:
        return datetime.fromisoformat(iso).strftime("%H:%M")
    except ValueError:
        return iso


def count(value: float) -> str:
    """A count with thousands separators; one decimal below 10 when it is not whole (a mean)."""
    if abs(value - round(value)) > 1e-9 and abs(value) < 10:
        return f"{value:,.1f}"
    return f"{round(value):,}"


def money(value: float) -> str:
    """US dollars: cents below $1,000, whole dollars above."""
    return f"${value:,.2f}" if abs(value) < 1000 else f"${value:,.0f}"


def seconds(value: float) -> str:
    """A wait: ``0 s``, ``0.42 s``, ``15 s``, ``4.5 min``, ``2.1 h``."""
    if value < 0.005:
        return "0 s"
    if value < 10:
        return f"{value:.2f}".rstrip("0").rstrip(".") + " s"
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{_trim(value / 60)} min"
    return f"{_trim(value / 3600)} h"


def _trim(value: float) -> str:
    """One decimal, without a trailing .0: 15.0 -> 15, 7.7 -> 7.7."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def tick_seconds(value: float) -> str:
    """An axis label for a wait: ``0``, ``2.5 s``, ``45 s``, ``5 min``."""
    if value <= 0:
        return "0"
    if value >= 120:
        return f"{value / 60:g} min"
    return f"{value:g} s"


def percent(share: float) -> str:
    """A share as a percentage: ``0.4%``, ``38%``."""
    pct = share * 100
    if pct == 0:
        return "0%"
    if pct < 1:
        return f"{pct:.1f}%"
    return f"{pct:.0f}%"
