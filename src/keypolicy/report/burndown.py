"""Budget burn-down: each budget's spend so far against its line, the exhaustion point marked.

A daily (or shorter) budget is drawn against itself. A weekly or monthly budget is drawn against
the day's share of it (a $6,000 month of 30 days: $200 a day), which is what tells whether it
lasts the period. A row per budget, a column per variant, one scale per row.
"""

from __future__ import annotations

from keypolicy.report.budgets import BudgetView, budget_views
from keypolicy.report.charts import HLine, Marker, Series, line_chart, nice_max
from keypolicy.report.layout import Context, Figure, Panel, downsample
from keypolicy.report.palette import LIMIT, OKABE_ITO, SHARE
from keypolicy.report.values import money, percent

__all__ = ["burndown_figure", "describe_period"]

SPEND, LINE = OKABE_ITO[0], LIMIT


def describe_period(view: BudgetView, *, share: bool = True) -> str:
    """``$40 a day``, ``$6,000 a month = $200 a day (30 days)``, ``$50 per 6 h``; without
    ``share``, never the day's share."""
    budget = view.budget
    if budget.per in ("day", "week", "month"):
        text = f"{money(budget.usd)} a {budget.per}"
    else:
        text = f"{money(budget.usd)} per {float(budget.per) / 3600:g} h"
    if view.daily_share and share:
        text += f" = {money(view.line_usd)} a day ({view.period_days:g} days)"
    return text


def _scope(view: BudgetView) -> str:
    applies = view.budget.applies_to
    return "everything" if applies.scope == "all" else f"{applies.scope} {applies.name}"


def _panel(ctx: Context, name: str, view: BudgetView, y_max: float) -> Panel:
    values = downsample(view.spent, ctx.step)
    spent = max(view.spent, default=0.0)
    markers = []
    if view.exhausted is not None and view.exhausted_minute is not None:
        runs = f" ({view.exhausted.runs}/{view.exhausted.of} runs)" if view.exhausted.of > 1 else ""
        label = f"runs out {view.exhausted.clock}{runs}"
        markers.append(Marker(view.exhausted_minute, label, LINE))
        note = f"{describe_period(view)} · {label}"
    elif view.daily_share and view.crossed_minute is not None:
        minute = ctx.start + int(view.crossed_minute)
        label = f"day's share spent {minute // 60 % 24:02d}:{minute % 60:02d}"
        markers.append(Marker(view.crossed_minute, label, SHARE))
        note = f"{describe_period(view)} · {label} · {money(spent)} in the day"
    else:
        share = percent(spent / view.line_usd)
        note = f"{describe_period(view)} · {money(spent)} spent, {share} of it"
    line_label = "daily share" if view.daily_share else "budget"
    chart = ctx.chart(
        f"{name}: budget {view.name} ({_scope(view)})",
        f"Spend so far in the period against the {line_label}; {note}.",
        ctx.step,
        y_max,
        money,
        minutes=ctx.spend_minutes,
    )
    svg = line_chart(
        chart,
        [Series("spent", values, SPEND)],
        [HLine(view.line_usd, line_label, SHARE if view.daily_share else LINE)],
        markers,
        fill_first=True,
    )
    return Panel(f"{view.name} · {_scope(view)}", svg, note)


def burndown_figure(ctx: Context) -> Figure | None:
    """The burn-down figure, or None when no variant has a budget the series can show."""
    views = {
        name: {v.name: v for v in budget_views(ctx.results[name], ctx.policies.get(name))}
        for name in ctx.names
    }
    budgets = list(dict.fromkeys(b for row in views.values() for b in row))
    if not budgets:
        return None
    rows: list[list[Panel | None]] = []
    for budget in budgets:
        cells = [views[name].get(budget) for name in ctx.names]
        top = max(max(max(v.spent, default=0.0), v.line_usd) for v in cells if v is not None)
        y_max = nice_max(top)
        rows.append(
            [
                _panel(ctx, name, v, y_max) if v is not None else None
                for name, v in zip(ctx.names, cells, strict=True)
            ]
        )
    return Figure(
        "budgets",
        "Budget burn-down",
        "Spend so far in each budget's period (counted when requests finish) against the budget; "
        "a week's or month's budget against the day's share of it. The point where it ran out is "
        "marked.",
        ctx.names,
        rows,
        [("spent", SPEND), ("budget", LINE), ("day's share of a longer budget", SHARE)],
        summary=False,
    )
