"""Refusals over the day: the requests no option should lose, when and in which function.

Drawn from the summary's per-minute ``refused`` series (by domain: requests rejected by the
policy or refused by a spent budget), bars per 15 minutes stacked by domain, one panel per
option on one scale. A summary without that series (an older simulator) gets a sentence with
the totals per function instead of an empty chart.
"""

from __future__ import annotations

from markupsafe import Markup

from keypolicy.report.charts import Series, nice_max, stacked_bars
from keypolicy.report.layout import Context, Figure, Panel, downsample, peak
from keypolicy.report.values import count, mean

__all__ = ["refusal_figure"]

STEP = 15
TITLE = "Refusals over the day"


def _totals(ctx: Context) -> dict[str, dict[str, float]]:
    """Requests refused per option and domain (the summaries' means), those above zero."""
    found: dict[str, dict[str, float]] = {}
    for name in ctx.names:
        rows = ctx.results[name].get("domains") or {}
        hit = {
            d: mean(r.get("rejected")) for d, r in rows.items() if mean(r.get("rejected")) >= 0.5
        }
        if hit:
            found[name] = hit
    return found


def refusal_figure(ctx: Context) -> Figure:
    """Refused requests per 15 minutes, stacked by domain; a sentence when there is none."""
    totals = _totals(ctx)
    explain = (
        "Requests refused (by the policy for want of capacity within max_wait, or by a spent "
        "budget) per 15 minutes, stacked by function; one scale for every option."
    )
    if not totals:
        some = "any option" if len(ctx.names) > 1 else ctx.names[0]
        return Figure(
            "refusals",
            TITLE,
            explain,
            ctx.names,
            [],
            message=f"No request was refused in {some}.",
            summary=True,
        )
    if not any(ctx.series(n, "refused") for n in ctx.names):
        said = "; ".join(
            f"{name}: " + ", ".join(f"{d} {count(n)}" for d, n in hit.items())
            for name, hit in totals.items()
        )
        return Figure(
            "refusals",
            TITLE,
            explain,
            ctx.names,
            [],
            message=f"The summary holds no per-minute series of refusals to draw; in all, {said}.",
            summary=True,
        )
    layers = {
        name: [
            Series(d, downsample(v, STEP, sum), ctx.colors.get(d, "#999999"))
            for d, v in sorted(ctx.series(name, "refused").items())
            if any(v)
        ]
        for name in ctx.names
    }
    top = max(
        (sum(col) for ls in layers.values() for col in zip(*(s.values for s in ls), strict=False)),
        default=0.0,
    )
    y_max = nice_max(max(top, 5.0))
    row: list[Panel | None] = []
    for name in ctx.names:
        if not layers[name]:
            row.append(Panel("refusals", Markup(""), "", empty="No request refused."))
            continue
        sums = [sum(col) for col in zip(*(s.values for s in layers[name]), strict=False)]
        high, at = peak(sums, ctx.start, STEP)
        note = f"busiest quarter hour {at} ({count(high)} refused)"
        chart = ctx.chart(
            f"{name}: requests refused over the day",
            f"Requests refused per 15 minutes, stacked by function; {note}.",
            STEP,
            y_max,
            count,
            alone=True,
        )
        row.append(Panel("refused per 15 minutes", stacked_bars(chart, layers[name]), note))
    shown = sorted({s.label for ls in layers.values() for s in ls})
    return Figure(
        "refusals",
        TITLE,
        explain,
        ctx.names,
        [row],
        [(d, ctx.colors.get(d, "#999999")) for d in shown],
        summary=True,
    )
