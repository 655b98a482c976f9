"""Figures over the day: waits and queues by priority class, upstream 429s, cost per domain.

Waits: a row per priority class (the most urgent first), the longest wait of each 5 minutes
against the class's max_wait. Queues: a row per class, the most requests waiting at any minute's
start in each 5 minutes. 429s and cost: one panel per variant, bars stacked by domain.
"""

from __future__ import annotations

from keypolicy.report.charts import HLine, Series, line_chart, nice_max, stacked_bars
from keypolicy.report.layout import STEP, Context, Figure, Panel, downsample, peak
from keypolicy.report.palette import class_color
from keypolicy.report.values import count, mean, money, seconds, tick_seconds

__all__ = ["cost_figure", "queue_figure", "rate_limit_figure", "wait_figure"]

RATE_LIMIT_STEP = 15
COST_STEP = 60


def _classes(ctx: Context) -> list[str]:
    """Priority classes with waits, most urgent first."""
    return _classes_of(ctx, "max_wait_s")


def _classes_of(ctx: Context, kind: str) -> list[str]:
    """Priority classes in series ``kind``, most urgent first (the policies' order; unknown ones
    after, by name)."""
    ordered: list[str] = []
    for name in ctx.names:
        policy = ctx.policies.get(name)
        if policy is not None:
            ordered += [p.name for p in policy.priorities if p.name not in ordered]
    seen = {c for name in ctx.names for c in ctx.series(name, kind)}
    return [c for c in ordered if c in seen] + sorted(seen - set(ordered))


def _max_wait(ctx: Context, name: str, cls: str) -> float | None:
    policy = ctx.policies.get(name)
    if policy is None:
        return None
    found = next((p for p in policy.priorities if p.name == cls), None)
    return found.max_wait if found is not None else None


def wait_figure(ctx: Context) -> Figure:
    """Longest wait per 5 minutes, a row per priority class, against its max_wait."""
    rows: list[list[Panel | None]] = []
    legend = []
    for rank, cls in enumerate(_classes(ctx)):
        color = class_color(rank)
        legend.append((cls, color))
        drawn = {n: downsample(ctx.series(n, "max_wait_s").get(cls, []), STEP) for n in ctx.names}
        limits = [w for n in ctx.names if (w := _max_wait(ctx, n, cls)) is not None]
        top = max([max(v, default=0.0) for v in drawn.values()] + limits + [1.0])
        unit = 60.0 if top >= 120 else 1.0
        y_max = nice_max(top, unit)
        row: list[Panel | None] = []
        for name in ctx.names:
            values = drawn[name]
            if cls not in ctx.series(name, "max_wait_s"):
                row.append(None)
                continue
            high, at = peak(values, ctx.start, STEP)
            limit = _max_wait(ctx, name, cls)
            note = f"longest {seconds(high)}" + (f" at {at}" if high > 0 else "")
            if limit is not None:
                note += f" · max_wait {seconds(limit)}"
            chart = ctx.chart(
                f"{name}: waits of {cls} requests",
                f"Longest wait of a {cls} request in each 5 minutes; {note}.",
                STEP,
                y_max,
                tick_seconds,
                unit,
            )
            refs = [HLine(limit, "max_wait", "#b42318")] if limit is not None else []
            svg = line_chart(chart, [Series(cls, values, color)], refs, fill_first=True)
            row.append(Panel(cls, svg, note))
        rows.append(row)
    return Figure(
        "waits",
        "Waits by priority over the day",
        "The longest time a request of each class queued before it went out, in each 5 minutes "
        "(served requests), against the class's max_wait. A row per class, most urgent first; "
        "panels in a row share their scale.",
        ctx.names,
        rows,
        legend,
    )


def queue_figure(ctx: Context) -> Figure | None:
    """Requests waiting for capacity per 5 minutes, a row per priority class; ``None`` when no
    variant ever had a request waiting (a flat line says nothing)."""
    queued = {n: ctx.series(n, "queued") for n in ctx.names}
    classes = [
        c
        for c in _classes_of(ctx, "queued")
        if any(max(q.get(c, []), default=0) > 0 for q in queued.values())
    ]
    if not classes:
        return None
    rows: list[list[Panel | None]] = []
    legend = []
    for rank, cls in enumerate(classes):
        color = class_color(rank)
        legend.append((cls, color))
        drawn = {n: downsample(queued[n].get(cls, []), STEP) for n in ctx.names}
        y_max = nice_max(max([max(v, default=0.0) for v in drawn.values()] + [5.0]))
        row: list[Panel | None] = []
        for name in ctx.names:
            if cls not in queued[name]:
                row.append(None)
                continue
            high, at = peak(drawn[name], ctx.start, STEP)
            note = f"at most {count(high)} waiting" + (f" at {at}" if high > 0 else "")
            chart = ctx.chart(
                f"{name}: {cls} requests waiting",
                f"Most {cls} requests queued for capacity at a minute's start, per 5 minutes; "
                f"{note}.",
                STEP,
                y_max,
                count,
            )
            svg = line_chart(chart, [Series(cls, drawn[name], color)], [], fill_first=True)
            row.append(Panel(cls, svg, note))
        rows.append(row)
    return Figure(
        "queues",
        "Queues by priority over the day",
        "How many requests of each class waited for capacity (sampled at the start of every "
        "minute; the most in each 5 minutes). A row per class that ever queued, most urgent "
        "first; panels in a row share their scale.",
        ctx.names,
        rows,
        legend,
    )


def _totals(layers: list[Series]) -> list[float]:
    return [sum(column) for column in zip(*(s.values for s in layers), strict=False)]


def _stacked(ctx: Context, kind: str, step: int) -> tuple[dict[str, list[Series]], float]:
    """Each variant's series of ``kind`` summed per ``step`` minutes; the highest stack."""
    layers: dict[str, list[Series]] = {}
    top = 0.0
    for name in ctx.names:
        data = ctx.series(name, kind)
        layers[name] = [
            Series(d, downsample(v, step, sum), ctx.colors.get(d, "#999999"))
            for d, v in sorted(data.items())
        ]
        top = max([top, *_totals(layers[name])])
    return layers, top


def rate_limit_figure(ctx: Context) -> Figure:
    """Upstream 429s per 15 minutes, stacked by domain; one panel per variant."""
    layers, top = _stacked(ctx, "rate_limited", RATE_LIMIT_STEP)
    if top <= 0:
        some = "any variant" if len(ctx.names) > 1 else ctx.names[0]
        counted = any(mean(r.get("totals", {}).get("upstream_429")) for r in ctx.results.values())
        return Figure(
            "ratelimits",
            "Upstream 429s over the day",
            "Answers 429 (rate limited) from the provider, every attempt counted.",
            ctx.names,
            [],
            message="The summaries count 429s but hold no series of them to draw."
            if counted
            else f"No upstream 429s in {some} all day: nothing to draw.",
        )
    y_max = nice_max(max(top, 5.0))
    row: list[Panel | None] = []
    for name in ctx.names:
        total = sum(sum(s.values) for s in layers[name])
        worst = max(layers[name], key=lambda s: sum(s.values), default=None)
        high, at = peak(_totals(layers[name]), ctx.start, RATE_LIMIT_STEP)
        note = (
            f"{count(total)} in all; most in {worst.label}; "
            f"busiest quarter hour {at} ({count(high)})"
            if total and worst is not None
            else "no 429s from the provider"
        )
        chart = ctx.chart(
            f"{name}: upstream 429s over the day",
            f"429 answers from the provider per 15 minutes, stacked by domain; {note}.",
            RATE_LIMIT_STEP,
            y_max,
            count,
            alone=True,
        )
        row.append(Panel("429s per 15 minutes", stacked_bars(chart, layers[name]), note))
    return Figure(
        "ratelimits",
        "Upstream 429s over the day",
        "Answers 429 (rate limited) from the provider, every attempt counted, per 15 minutes and "
        "stacked by domain; one scale for every panel.",
        ctx.names,
        [row],
        sorted(ctx.colors.items()),
    )


def cost_figure(ctx: Context) -> Figure:
    """Cost per hour, stacked by domain; one panel per variant."""
    layers, top = _stacked(ctx, "spend_usd", COST_STEP)
    if not any(layers.values()):
        return Figure("cost", "Cost per domain over the day", "", ctx.names, [])
    y_max = nice_max(max(top, 0.01))
    row: list[Panel | None] = []
    for name in ctx.names:
        total = sum(sum(s.values) for s in layers[name])
        high, at = peak(_totals(layers[name]), ctx.start, COST_STEP)
        note = f"{money(total)} in all; the dearest hour starts {at} ({money(high)})"
        chart = ctx.chart(
            f"{name}: cost per hour by domain",
            f"US dollars spent per hour, stacked by domain; {note}.",
            COST_STEP,
            y_max,
            money,
            alone=True,
        )
        row.append(Panel("USD per hour", stacked_bars(chart, layers[name]), note))
    return Figure(
        "cost",
        "Cost per domain over the day",
        "US dollars per hour, stacked by domain, counted when each request finished (batches "
        "when the batch completes); one scale for every panel.",
        ctx.names,
        [row],
        sorted(ctx.colors.items()),
    )
