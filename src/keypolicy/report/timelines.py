"""Figures over the day: waits and queues by priority class, upstream 429s, cost per domain.

Waits: a row per priority class (the most urgent first), the longest wait of each 5 minutes
against the class's max_wait. Queues: a row per class, the most requests waiting at any minute's
start in each 5 minutes. 429s and cost: one panel per variant, bars stacked by domain.
"""

from __future__ import annotations

from markupsafe import Markup

from keypolicy.report.charts import HLine, Series, line_chart, nice_max, stacked_bars
from keypolicy.report.layout import Context, Figure, Panel, downsample, peak
from keypolicy.report.palette import LIMIT
from keypolicy.report.values import count, mean, money, seconds, tick_seconds

__all__ = ["cost_figure", "queue_figure", "rate_limit_figure", "wait_figure"]

RATE_LIMIT_STEP = 15
COST_STEP = 60


def _classes_of(ctx: Context, kind: str) -> list[str]:
    """Priority classes in series ``kind``, most urgent first."""
    seen = {c for name in ctx.names for c in ctx.series(name, kind)}
    return [c for c in ctx.classes if c in seen]


def _max_wait(ctx: Context, name: str, cls: str) -> float | None:
    policy = ctx.policies.get(name)
    if policy is None:
        return None
    found = next((p for p in policy.priorities if p.name == cls), None)
    return found.max_wait if found is not None else None


def _flat(values: list[float]) -> bool:
    return max(values, default=0.0) < 0.005


def wait_figure(ctx: Context) -> Figure:
    """Longest wait per 5 minutes, a row per priority class that waited somewhere, against its
    max_wait; classes that never waited are said in a sentence."""
    rows: list[list[Panel | None]] = []
    legend = []
    calm = []
    for cls in _classes_of(ctx, "max_wait_s"):
        color = ctx.class_colors[cls]
        drawn = {
            n: downsample(ctx.series(n, "max_wait_s").get(cls, []), ctx.step) for n in ctx.names
        }
        if all(_flat(v) for v in drawn.values()):
            calm.append(cls)
            continue
        legend.append((cls, color))
        limits = [w for n in ctx.names if (w := _max_wait(ctx, n, cls)) is not None]
        top = max([max(v, default=0.0) for v in drawn.values()] + limits + [1.0])
        unit = 60.0 if top >= 120 else 1.0
        y_max = nice_max(top, unit)
        row: list[Panel | None] = []
        for name in ctx.names:
            values = drawn[name]
            limit = _max_wait(ctx, name, cls)
            if cls not in ctx.series(name, "max_wait_s"):
                row.append(None)
                continue
            if _flat(values):
                row.append(Panel(cls, Markup(""), "", empty=f"No {cls} request waited all day."))
                continue
            high, at = peak(values, ctx.start, ctx.step)
            note = f"longest {seconds(high)} at {at}"
            if limit is not None:
                note += f" · max_wait {seconds(limit)}"
            chart = ctx.chart(
                f"{name}: waits of {cls} requests",
                f"Longest wait of a {cls} request in each 5 minutes; {note}.",
                ctx.step,
                y_max,
                tick_seconds,
                unit,
            )
            refs = [HLine(limit, "max_wait", LIMIT)] if limit is not None else []
            svg = line_chart(chart, [Series(cls, values, color)], refs, fill_first=True)
            row.append(Panel(cls, svg, note))
        rows.append(row)
    notes = [f"No {_names(calm)} request waited in any option: nothing to draw."] if calm else []
    return Figure(
        "waits",
        "Waits by priority over the day",
        "The longest time a served request of each class queued before it went out, in each "
        "5 minutes, against the class's max_wait (dashed black). A row per class that waited, "
        "most urgent first; panels in a row share their scale.",
        ctx.names,
        rows,
        legend,
        message="No request waited in any option." if not rows and calm else "",
        notes=notes if rows else [],
    )


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def queue_figure(ctx: Context) -> Figure | None:
    """Requests waiting for capacity per 5 minutes, a row per priority class that ever queued;
    ``None`` when no option ever had a request waiting (a flat line says nothing)."""
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
    for cls in classes:
        color = ctx.class_colors[cls]
        legend.append((cls, color))
        drawn = {n: downsample(queued[n].get(cls, []), ctx.step) for n in ctx.names}
        y_max = nice_max(max([max(v, default=0.0) for v in drawn.values()] + [5.0]))
        row: list[Panel | None] = []
        for name in ctx.names:
            if cls not in queued[name]:
                row.append(None)
                continue
            if _flat(drawn[name]):
                row.append(Panel(cls, Markup(""), "", empty=f"No {cls} request queued."))
                continue
            high, at = peak(drawn[name], ctx.start, ctx.step)
            note = f"at most {count(high)} waiting at {at}"
            chart = ctx.chart(
                f"{name}: {cls} requests waiting",
                f"Most {cls} requests queued for capacity at a minute's start, per 5 minutes; "
                f"{note}.",
                ctx.step,
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
            if any(v)
        ]
        top = max([top, *_totals(layers[name])])
    return layers, top


def rate_limit_figure(ctx: Context) -> Figure:
    """Upstream 429s per 15 minutes, stacked by domain; one panel per variant."""
    layers, top = _stacked(ctx, "rate_limited", RATE_LIMIT_STEP)
    if top <= 0:
        some = "any option" if len(ctx.names) > 1 else ctx.names[0]
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
            f"most in {worst.label}; busiest quarter hour {at} ({count(high)})"
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
        high, at = peak(_totals(layers[name]), ctx.start, COST_STEP)
        note = f"the dearest hour starts {at} ({money(high)})"
        chart = ctx.chart(
            f"{name}: cost per hour by domain",
            f"US dollars spent per hour, stacked by domain; {note}.",
            COST_STEP,
            y_max,
            money,
            alone=True,
            minutes=ctx.spend_minutes,
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
