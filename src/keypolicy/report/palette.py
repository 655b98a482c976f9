"""Colours of the report, safe for colour-blind readers and fixed for the whole report.

Series take the Okabe-Ito palette (Okabe & Ito, "Color Universal Design", 2008), chosen so that
its colours stay apart under the common red-green deficiencies; lines are also told apart by
their labels and tooltips, never by colour alone. A domain keeps its colour in every chart and
every option (assigned in name order); a priority class keeps its colour too (assigned in the
policies' order, the most urgent first). Limits, budgets and max_wait lines are drawn in near
black, dashed: a hue no series uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

__all__ = [
    "LIMIT",
    "OKABE_ITO",
    "SHARE",
    "class_colors",
    "domain_colors",
    "series_color",
]

OKABE_ITO: Final = (
    "#0072b2",  # blue
    "#e69f00",  # orange
    "#009e73",  # bluish green
    "#cc79a7",  # reddish purple
    "#56b4e9",  # sky blue
    "#d55e00",  # vermillion
    "#f0e442",  # yellow (lines on white: last, and always labelled)
    "#7f7f7f",  # grey
)

LIMIT: Final = "#1b1b1b"
"""Limits, budgets, max_wait: near black, drawn dashed."""

SHARE: Final = "#6b6b6b"
"""A longer budget's share of the day: grey, drawn dotted."""

# The most urgent class takes vermillion, the next blue, then reddish purple, green.
_CLASS_ORDER: Final = ("#d55e00", "#0072b2", "#cc79a7", "#009e73", "#e69f00", "#56b4e9")


def series_color(index: int) -> str:
    """The ``index``-th colour of the palette (wrapping around)."""
    return OKABE_ITO[index % len(OKABE_ITO)]


def domain_colors(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A colour per domain seen in any option, assigned in name order so it never shifts."""
    names = sorted({d for summary in results.values() for d in summary.get("domains", {})})
    return {name: series_color(i) for i, name in enumerate(names)}


def class_colors(classes: Iterable[str]) -> dict[str, str]:
    """A colour per priority class, ``classes`` given the most urgent first."""
    return {c: _CLASS_ORDER[i % len(_CLASS_ORDER)] for i, c in enumerate(classes)}
