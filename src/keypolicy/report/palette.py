"""Colours of the report: one per domain (the same in every variant), one per priority class.

Tableau's ten colours for domains: distinct, readable on white and in print; priority classes
go from red (most urgent) to grey (least).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DOMAIN_COLORS", "class_color", "domain_colors"]

DOMAIN_COLORS = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)

_CLASS_COLORS = ("#c0392b", "#e67e22", "#2f6db5", "#7f8c8d", "#8e44ad", "#16a085")


def domain_colors(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A colour per domain seen in any variant, assigned in name order so it never shifts."""
    names = sorted({d for summary in results.values() for d in summary.get("domains", {})})
    return {name: DOMAIN_COLORS[i % len(DOMAIN_COLORS)] for i, name in enumerate(names)}


def class_color(rank: int) -> str:
    """The colour of the priority class of this rank (0: the most urgent)."""
    return _CLASS_COLORS[rank % len(_CLASS_COLORS)]
