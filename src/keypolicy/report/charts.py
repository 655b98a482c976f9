"""Static inline SVG charts over a simulated day: lines against limits, and stacked bars.

No script, no external resource: each chart is one ``<svg>`` element with a ``<title>`` and a
``<desc>`` (the text alternative), scaled by its ``viewBox`` so it stays crisp on a screen and in
print. The x axis is minutes since the start of the traffic, labelled with the time of day.
Hovering shows the values without JavaScript: the plot is cut into invisible columns (a quarter
of an hour, or the chart's step if longer), each with an SVG ``<title>`` that browsers show as a
tooltip. Every text that comes from data is escaped here, since the result is marked safe for
jinja2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from keypolicy.report.palette import LIMIT

__all__ = [
    "Chart",
    "HLine",
    "Marker",
    "Series",
    "line_chart",
    "nice_max",
    "stacked_bars",
    "tick_step",
]

_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 14, 12, 26


@dataclass(frozen=True, slots=True)
class Series:
    """One line (or one layer of bars): a value per point, ``step`` minutes apart."""

    label: str
    values: Sequence[float]
    color: str
    dash: bool = False
    thin: bool = False  # a secondary line (reservations beside use)


@dataclass(frozen=True, slots=True)
class HLine:
    """A horizontal reference line, such as a limit or a budget."""

    value: float
    label: str
    color: str = LIMIT


@dataclass(frozen=True, slots=True)
class Marker:
    """A vertical mark at a minute since the start, such as a budget running out."""

    minute: float
    label: str
    color: str = LIMIT


@dataclass(frozen=True, slots=True)
class Chart:
    """The frame shared by every chart: size, time axis, value axis."""

    ident: str
    title: str
    desc: str
    minutes: int
    step: int
    start_minute: int = 0
    y_max: float = 0.0
    y_format: Callable[[float], str] = field(default=lambda v: f"{v:,.0f}")
    width: int = 640
    height: int = 220
    y_unit: float = 1.0
    tip_minutes: int = 15  # the width of a tooltip's column


def _nice(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least ``value`` (> 0)."""
    power = 10.0 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= value * 0.999999:
            return float(factor * power)
    return 10.0 * power


def tick_step(top: float, unit: float = 1.0) -> float:
    """A round step for about five ticks up to ``top``, round in ``unit`` (60: minutes)."""
    if top <= 0:
        return unit
    return _nice(top / unit / 5) * unit


def nice_max(top: float, unit: float = 1.0) -> float:
    """The top of a value axis: ``top`` rounded up to a whole number of round steps."""
    if top <= 0:
        return unit
    step = tick_step(top, unit)
    return math.ceil(top / step - 1e-9) * step


def _frame(chart: Chart) -> tuple[list[str], Callable[[float], float], Callable[[float], float]]:
    """The svg opening, axes, grid and ticks; the x (minute) and y (value) mappings."""
    w, h = chart.width, chart.height
    plot_w, plot_h = w - _LEFT - _RIGHT, h - _TOP - _BOTTOM
    y_max = chart.y_max or 1.0

    def x(minute: float) -> float:
        return _LEFT + plot_w * min(max(minute, 0), chart.minutes) / max(chart.minutes, 1)

    def y(value: float) -> float:
        return _TOP + plot_h * (1 - min(max(value, 0), y_max * 1.04) / y_max)

    ident = escape(chart.ident)
    parts = [
        f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d">',
        f'<title id="{ident}-t">{escape(chart.title)}</title>',
        f'<desc id="{ident}-d">{escape(chart.desc)}</desc>',
    ]
    step = tick_step(y_max, chart.y_unit)
    for i in range(int(y_max / step + 1e-9) + 1):
        value = i * step
        yy = y(value)
        parts.append(
            f'<line class="gl" x1="{_LEFT}" x2="{w - _RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}"/>'
        )
        parts.append(
            f'<text class="tick" x="{_LEFT - 5}" y="{yy + 3.5:.1f}" text-anchor="end">'
            f"{escape(chart.y_format(value))}</text>"
        )
    hours = max(chart.minutes // 60, 1)
    every = next((e for e in (1, 2, 3, 4, 6, 12, 24) if hours / e <= 8), 48)
    first = (-chart.start_minute) % 60
    for minute in range(first, chart.minutes + 1, 60):
        hour = (chart.start_minute + minute) // 60
        if hour % every:
            continue
        xx = x(minute)
        parts.append(
            f'<line class="axis" x1="{xx:.1f}" x2="{xx:.1f}" '
            f'y1="{h - _BOTTOM}" y2="{h - _BOTTOM + 4}"/>'
        )
        parts.append(
            f'<text class="tick" x="{xx:.1f}" y="{h - _BOTTOM + 15}" text-anchor="middle">'
            f"{hour % 24:02d}:00</text>"
        )
    parts.append(
        f'<line class="axis" x1="{_LEFT}" x2="{w - _RIGHT}" y1="{h - _BOTTOM}" y2="{h - _BOTTOM}"/>'
    )
    return parts, x, y


def _refs(
    chart: Chart,
    x: Callable[[float], float],
    y: Callable[[float], float],
    hlines: Sequence[HLine],
    markers: Sequence[Marker],
) -> list[str]:
    parts = []
    right = chart.width - _RIGHT
    for ref in hlines:
        yy = y(ref.value)
        parts.append(
            f'<line class="limit" x1="{_LEFT}" x2="{right}" y1="{yy:.1f}" y2="{yy:.1f}" '
            f'stroke="{escape(ref.color)}"/>'
            f'<text class="ref" x="{right - 2}" y="{yy - 4:.1f}" text-anchor="end" '
            f'fill="{escape(ref.color)}">{escape(ref.label)}</text>'
        )
    for mark in markers:
        xx = x(mark.minute)
        anchor = "end" if xx > chart.width * 0.7 else "start"
        dx = -4 if anchor == "end" else 4
        parts.append(
            f'<line class="marker" x1="{xx:.1f}" x2="{xx:.1f}" y1="{_TOP}" '
            f'y2="{chart.height - _BOTTOM}" stroke="{escape(mark.color)}"/>'
            f'<text class="ref" x="{xx + dx:.1f}" y="{_TOP + 10}" text-anchor="{anchor}" '
            f'fill="{escape(mark.color)}">{escape(mark.label)}</text>'
        )
    return parts


def _clock(minute: int) -> str:
    return f"{minute // 60 % 24:02d}:{minute % 60:02d}"


def _tips(
    chart: Chart,
    x: Callable[[float], float],
    layers: Sequence[Series],
    fold: Callable[[Sequence[float]], float] = max,
) -> list[str]:
    """Invisible columns, each with a ``<title>``: the time span and every series' value in it
    (the highest of its points, or their sum for bars: ``fold``)."""
    every = max(chart.tip_minutes // chart.step, 1)
    points = max((len(s.values) for s in layers), default=0)
    top, bottom = _TOP, chart.height - _BOTTOM
    parts = []
    for first in range(0, points, every):
        start = first * chart.step
        end = min(start + every * chart.step, chart.minutes)
        values = [
            f"{s.label} {chart.y_format(fold(s.values[first : first + every]))}"
            for s in layers
            if first < len(s.values)
        ]
        when = f"{_clock(chart.start_minute + start)}–{_clock(chart.start_minute + end)}"
        parts.append(
            f'<rect class="tip" x="{x(start):.1f}" y="{top}" width="{x(end) - x(start):.1f}" '
            f'height="{bottom - top}"><title>{escape(when)}: {escape("; ".join(values))}'
            "</title></rect>"
        )
    return parts


def line_chart(
    chart: Chart,
    lines: Sequence[Series],
    hlines: Sequence[HLine] = (),
    markers: Sequence[Marker] = (),
    *,
    fill_first: bool = False,
) -> Markup:
    """Lines over the day against reference lines; ``fill_first`` shades under the first line."""
    parts, x, y = _frame(chart)
    base = chart.height - _BOTTOM
    for index, line in enumerate(lines):
        points = " ".join(
            f"{x(i * chart.step + chart.step / 2):.1f},{y(v):.1f}"
            for i, v in enumerate(line.values)
        )
        if not points:
            continue
        color = escape(line.color)
        if index == 0 and fill_first:
            first, last = points.split(" ", 1)[0], points.rsplit(" ", 1)[-1]
            parts.append(
                f'<polygon class="area" fill="{color}" points="{first.split(",")[0]},{base} '
                f'{points} {last.split(",")[0]},{base}"/>'
            )
        dash = ' stroke-dasharray="5 3"' if line.dash else ""
        kind = "line thin" if line.thin else "line"
        parts.append(f'<polyline class="{kind}" stroke="{color}"{dash} points="{points}"/>')
    parts.extend(_refs(chart, x, y, hlines, markers))
    parts.extend(_tips(chart, x, lines))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every data text above went through escape()


def stacked_bars(
    chart: Chart,
    layers: Sequence[Series],
    hlines: Sequence[HLine] = (),
    markers: Sequence[Marker] = (),
) -> Markup:
    """Bars ``chart.step`` minutes wide, one layer per series stacked bottom to top."""
    parts, x, y = _frame(chart)
    width = max(x(chart.step) - x(0) - 1.5, 1.0)
    bars = max((len(layer.values) for layer in layers), default=0)
    for i in range(bars):
        bottom = 0.0
        left = x(i * chart.step) + 0.75
        for layer in layers:
            value = layer.values[i] if i < len(layer.values) else 0.0
            if value <= 0:
                continue
            top = bottom + value
            y0, y1 = y(bottom), y(top)
            parts.append(
                f'<rect x="{left:.1f}" y="{y1:.1f}" width="{width:.1f}" '
                f'height="{max(y0 - y1, 0.3):.1f}" fill="{escape(layer.color)}"/>'
            )
            bottom = top
    parts.extend(_refs(chart, x, y, hlines, markers))
    parts.extend(_tips(chart, x, layers, sum))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every data text above went through escape()
