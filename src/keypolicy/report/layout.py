"""How figures are laid out: panels in rows, one column per policy variant.

Panels in one row share their scale, so variants compare at a glance. Series are downsampled
(``STEP`` minutes per point) to keep the file small: the highest minute for demand and waits,
sums for 429s and cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from keypolicy.policy.model import Policy
from keypolicy.report.budgets import start_minute
from keypolicy.report.charts import Chart
from keypolicy.report.palette import domain_colors

__all__ = ["STEP", "Context", "Figure", "Panel", "downsample", "peak"]

STEP = 5
"""Minutes per point on the line charts."""


@dataclass(frozen=True, slots=True)
class Panel:
    """One chart with its caption and a line of numbers under it."""

    caption: str
    svg: Markup
    note: str = ""


@dataclass(frozen=True, slots=True)
class Figure:
    """Panels in rows, one cell per variant (None where a variant has nothing to draw there)."""

    key: str
    title: str
    explain: str
    variants: list[str]
    rows: list[list[Panel | None]]
    legend: list[tuple[str, str]] = field(default_factory=list)
    stacked: bool = False  # rows need not line up: each variant's panels are stacked
    message: str = ""  # said instead of the panels when there is nothing to draw

    @property
    def panels(self) -> list[Panel]:
        """Every panel, row by row (for one variant: a flowing grid)."""
        return [p for row in self.rows for p in row if p is not None]

    @property
    def columns(self) -> list[list[Panel]]:
        """Each variant's panels, top to bottom (for stacked figures)."""
        return [
            [panel for row in self.rows if (panel := row[i]) is not None]
            for i in range(len(self.variants))
        ]


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


class Context:
    """What every figure needs: the variants, their policies, the time axis, chart sizes."""

    def __init__(self, results: dict[str, dict[str, Any]], policies: dict[str, Policy]) -> None:
        self.results = results
        self.policies = policies
        self.names = list(results)
        first = next(iter(results.values()))
        self.minutes = max(int((r.get("series") or {}).get("minutes", 0)) for r in results.values())
        self.start = start_minute(first)
        self.width = {1: 600, 2: 560}.get(len(self.names), 420)
        self.height = 210 if len(self.names) == 1 else 190
        self.colors = domain_colors(results)
        self._counter = 0

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
    ) -> Chart:
        """A chart frame with a fresh id, over the whole simulated time; ticks are round in
        ``unit`` (60 for waits shown in minutes). ``alone``: the figure's only panel, drawn
        across the page when there is one variant."""
        self._counter += 1
        return Chart(
            f"chart{self._counter}",
            title,
            desc,
            self.minutes,
            step,
            self.start,
            y_max,
            fmt,
            1240 if alone and len(self.names) == 1 else self.width,
            240 if alone and len(self.names) == 1 else self.height,
            unit,
        )

    def series(self, name: str, kind: str) -> dict[str, list[float]]:
        """One kind of per-minute series of a variant (empty when the summary has none)."""
        data: dict[str, list[float]] = (self.results[name].get("series") or {}).get(kind, {})
        return data
