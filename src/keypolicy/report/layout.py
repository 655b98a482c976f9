"""How figures are laid out: panels in rows, one column per option.

Panels in one row share their scale, so options compare at a glance; rows line up across
options. A row with nothing to draw in any option is said in one sentence instead (``notes``).
Series are downsampled (``STEP`` minutes per point) to keep the file small: the highest minute
for demand and waits, sums for refusals, 429s and cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from keypolicy.policy.model import Policy
from keypolicy.report.budgets import start_minute
from keypolicy.report.charts import Chart
from keypolicy.report.palette import class_colors, domain_colors

__all__ = ["STEP", "Context", "Figure", "Panel", "downsample", "peak"]

STEP = 5
"""Minutes per point on the line charts of a day (more for longer spans: :attr:`Context.step`)."""

TIP_MINUTES = 30
"""The span of time one tooltip column covers."""


@dataclass(frozen=True, slots=True)
class Panel:
    """One chart with its caption and a line of numbers under it."""

    caption: str
    svg: Markup
    note: str = ""
    legend: list[tuple[str, str]] = field(default_factory=list)  # this panel's own series
    empty: str = ""  # a flat panel, said in a sentence instead of drawn


@dataclass(frozen=True, slots=True)
class Figure:
    """Panels in rows, one cell per variant (None where a variant has nothing to draw there)."""

    key: str
    title: str
    explain: str
    variants: list[str]
    rows: list[list[Panel | None]]
    legend: list[tuple[str, str]] = field(default_factory=list)
    message: str = ""  # said instead of the panels when there is nothing to draw
    summary: bool = False  # one of the key charts, shown before the appendix
    notes: list[str] = field(default_factory=list)  # rows with nothing to draw, in a sentence

    @property
    def panels(self) -> list[Panel]:
        """Every panel, row by row (for one variant: a flowing grid)."""
        return [p for row in self.rows for p in row if p is not None]


def downsample(
    values: Sequence[float], step: int, how: Callable[[Sequence[float]], float] = max
) -> list[float]:
    """Groups of ``step`` values, each folded with ``how`` (max or sum)."""
    return [how(values[i : i + step]) for i in range(0, len(values), step)]


def peak(values: Sequence[float], start: int, step: int) -> tuple[float, str]:
    """The highest value and the time of day (HH:MM) of its point; ``(0.0, "")`` when empty."""
    if not values:
        return 0.0, ""
    top = max(range(len(values)), key=lambda i: values[i])
    minute = start + top * step
    return values[top], f"{minute // 60 % 24:02d}:{minute % 60:02d}"


def _drawn_minutes(results: dict[str, dict[str, Any]], spend: bool = False) -> int:
    """The minutes the charts span: the traffic itself, and after it only as far as some series
    still moves, to the next whole hour; ``spend``: spend too (batches finishing the next day
    count there, not on the demand or wait charts)."""
    last = 0
    for r in results.values():
        series = r.get("series") or {}
        duration = float((r.get("about") or {}).get("duration_s") or 0.0)
        last = max(last, math.ceil(duration / 60))
        for kind, rows in series.items():
            if not isinstance(rows, dict):
                continue
            for values in rows.values():
                moving = next((i for i in reversed(range(len(values))) if values[i]), -1)
                if kind not in ("queued", "spend_usd") or (spend and kind == "spend_usd"):
                    last = max(last, moving + 1)
    longest = max(int((r.get("series") or {}).get("minutes", 0)) for r in results.values())
    return min(math.ceil(last / 60) * 60, longest) if last else longest


class Context:
    """What every figure needs: the variants, their policies, the time axis, chart sizes."""

    def __init__(self, results: dict[str, dict[str, Any]], policies: dict[str, Policy]) -> None:
        self.results = results
        self.policies = policies
        self.names = list(results)
        first = next(iter(results.values()))
        self.minutes = _drawn_minutes(results)
        self.spend_minutes = _drawn_minutes(results, spend=True)
        self.step = STEP * max(1, math.ceil(self.minutes / 1440))
        self.start = start_minute(first)
        self.width = {1: 600, 2: 560}.get(len(self.names), 420)
        self.height = 210 if len(self.names) == 1 else 190
        self.colors = domain_colors(results)
        self.classes = self._classes()
        self.class_colors = class_colors(self.classes)
        self._counter = 0

    def _classes(self) -> list[str]:
        """Every priority class, the most urgent first (the policies' order; classes known only
        from a summary after them, by name)."""
        ordered: list[str] = []
        for name in self.names:
            policy = self.policies.get(name)
            if policy is not None:
                ordered += [p.name for p in policy.priorities if p.name not in ordered]
        seen = {
            c
            for r in self.results.values()
            for kind in ("max_wait_s", "queued")
            for c in (r.get("series") or {}).get(kind, {})
        }
        return ordered + sorted(seen - set(ordered))

    def chart(
        self,
        title: str,
        desc: str,
        step: int,
        y_max: float,
        fmt: Callable[[float], str],
        unit: float = 1.0,
        *,
        alone: bool = False,
        minutes: int | None = None,
    ) -> Chart:
        """A chart frame with a fresh id, over the whole simulated time; ticks are round in
        ``unit`` (60 for waits shown in minutes). ``alone``: the figure's only panel, drawn
        across the page when there is one variant."""
        self._counter += 1
        return Chart(
            f"chart{self._counter}",
            title,
            desc,
            self.minutes if minutes is None else minutes,
            step,
            self.start,
            y_max,
            fmt,
            1240 if alone and len(self.names) == 1 else self.width,
            240 if alone and len(self.names) == 1 else self.height,
            unit,
            max(TIP_MINUTES, step),
        )

    def series(self, name: str, kind: str) -> dict[str, list[float]]:
        """One kind of per-minute series of a variant (empty when the summary has none)."""
        data: dict[str, list[float]] = (self.results[name].get("series") or {}).get(kind, {})
        return data
