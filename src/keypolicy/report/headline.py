"""The headline: the numbers that decide, a column per option, and for a single option the
answer in a paragraph.

The numbers: critical requests refused, requests refused, the worst p99 wait against its
max_wait, upstream 429s (when any), cost per served request and per month, the shortest budget
runway, headroom. Stars follow :mod:`keypolicy.report.measures`, the rules the decision uses.
Nothing here is fixed text about a particular policy; every name and number comes from the
summaries.
"""

from __future__ import annotations

from collections.abc import Callable

from keypolicy.report.facts import Variant
from keypolicy.report.measures import CRITERIA, Criterion, Value, equal, worst_wait
from keypolicy.report.runway import runways, shortest
from keypolicy.report.sensitivity import headroom_cell, headroom_of
from keypolicy.report.tables import Cell, Row, Table
from keypolicy.report.values import count, interval, money, percent, seconds
from keypolicy.summary import DAYS_A_MONTH

__all__ = ["answer", "headline_table", "problems"]


def _cells(
    variants: list[Variant],
    c: Criterion,
    cell: Callable[[Variant, Value], Cell],
) -> list[Cell]:
    """A headline row of criterion ``c``: each option's cell, the best starred where the options
    differ beyond rounding and noise (the decision's own rule, so the two never disagree)."""
    values = [c.of(v) for v in variants]
    cells = [cell(v, x) for v, x in zip(variants, values, strict=True)]
    if len(variants) < 2:
        return cells
    best = min(values, key=lambda x: x.mean)
    if all(equal(c, x, best) for x in values):
        return cells
    return [
        Cell(one.text, one.sub, equal(c, x, best), one.warn, one.ci)
        for one, x in zip(cells, values, strict=True)
    ]


def _pm(value: Value, fmt: Callable[[float], str]) -> str:
    """The 95% interval beside a value ("" for one run)."""
    return f"± {fmt(value.ci)}" if value.ci else ""


def _critical(v: Variant, x: Value) -> Cell:
    domains = v.critical_domains()
    if not domains:
        return Cell("–", "no priority classes known")
    asked = sum(v.value("domains", d, "requests") for d in domains)
    hit = [f"{d} {count(n)}" for d in domains if (n := v.value("domains", d, "rejected")) >= 0.5]
    sub = (
        f"of {count(asked)} ({', '.join(hit)})"
        if hit
        else f"of {count(asked)} ({', '.join(domains)})"
    )
    return Cell(count(x.mean), sub, warn=x.mean >= 0.5, ci=_pm(x, count))


def _refused(v: Variant, x: Value) -> Cell:
    requests = v.total("requests")
    share = percent(x.mean / requests) if requests else "0%"
    return Cell(count(x.mean), f"{share} of {count(requests)}", ci=_pm(x, count))


def _wait(v: Variant, x: Value) -> Cell:
    worst = worst_wait(v)
    if worst is None:
        return Cell("–", "no max_wait known")
    if worst.p99 < 0.005:
        return Cell("0 s", "no function waits at p99")
    return Cell(
        f"{seconds(worst.p99)} of {seconds(worst.max_wait)}",
        f"{worst.domain}, {percent(worst.share)} of its max_wait",
        warn=worst.share > 1.0,
        ci=f"± {seconds(worst.ci)}" if worst.ci else "",
    )


def _errors(v: Variant, x: Value) -> Cell:
    return Cell(count(x.mean), f"{count(v.total('retries'))} retries", ci=_pm(x, count))


def _per_served(v: Variant, x: Value) -> Cell:
    def per_k(usd: float) -> str:
        return money(usd * 1000)

    return Cell(per_k(x.mean), f"{count(v.total('ok'))} served", ci=_pm(x, per_k))


def _dollars(usd: float) -> str:
    """Whole dollars: a month's spend is not known to the cent."""
    return f"${usd:,.0f}"


def _month(v: Variant) -> Cell:
    per_day = v.cost_per_day()
    totals = v.summary.get("totals") or {}
    total = v.total("cost_usd")
    ci = interval(totals.get("cost_usd")) * (per_day / total if total else 1.0)
    month = DAYS_A_MONTH
    return Cell(
        _dollars(per_day * month),
        f"{money(per_day)} a day",
        ci=f"± {_dollars(ci * month)}" if ci else "",
    )


def _runway(v: Variant) -> Cell:
    found = shortest(v)
    if found is None:
        return Cell("–", "no budget in the policy" if v.policy is not None else "no policy given")
    if found.short:
        return Cell(
            f"{found.days:.1f} days" if found.days >= 1 else f"{percent(found.share)} of a day",
            f"{found.budget}: {found.text()}",
            warn=True,
        )
    if found.days == float("inf"):
        return Cell("lasts", f"{found.budget}: nothing spent")
    return Cell(
        f"{found.days:.1f} days", f"{found.budget}, a {found.period_days:g}-day period: lasts"
    )


def headline_table(variants: list[Variant]) -> Table:
    """The numbers that decide, a column per option: critical refusals, refusals, the worst
    wait against its max_wait, 429s (when any), cost per served request and per month, the
    shortest budget runway, headroom."""
    by_key = {c.key: c for c in CRITERIA}
    rows = [
        Row("Critical requests refused", _cells(variants, by_key["critical"], _critical)),
        Row("Requests refused", _cells(variants, by_key["refused"], _refused)),
        Row("Worst p99 wait against max_wait", _cells(variants, by_key["wait"], _wait)),
    ]
    if any(v.total("upstream_429") >= 0.5 for v in variants):
        rows.append(Row("Upstream 429s", _cells(variants, by_key["429"], _errors)))
    rows += [
        Row("Cost per 1,000 served requests", _cells(variants, by_key["cost"], _per_served)),
        Row(f"Cost per month ({DAYS_A_MONTH:.0f} days)", [_month(v) for v in variants]),
        Row("Budget runway (shortest)", [_runway(v) for v in variants]),
        Row("Headroom", [headroom_cell(v) for v in variants]),
    ]
    note = (
        "Stars mark the best where options differ beyond rounding and the runs' noise. "
        "Cost per month is not starred: an option that refuses requests spends less by serving "
        "fewer; cost per served request compares like with like."
        if len(variants) > 1
        else ""
    )
    if not any(headroom_of(v) for v in variants):
        note += (
            " Headroom (how much more traffic before the first critical refusal) is not "
            "computed for this report: it takes further simulations at higher traffic."
        )
    return Table(
        "headline", "The numbers that decide", ["", *(v.name for v in variants)], rows, note.strip()
    )


def _rejected_by_domain(v: Variant) -> list[tuple[str, float]]:
    rows = [(d, v.value("domains", d, "rejected")) for d in v.rows("domains")]
    return sorted([r for r in rows if r[1] >= 0.5], key=lambda r: -r[1])


def _slowest(v: Variant) -> tuple[str, float] | None:
    """The domain whose p99 wait is longest, if any waited a second or more."""
    rows = [(d, v.value("domains", d, "wait_p99_s")) for d in v.rows("domains")]
    rows = [r for r in rows if r[1] >= 1.0]
    return max(rows, key=lambda r: r[1]) if rows else None


def problems(v: Variant) -> list[str]:
    """What goes wrong in a variant, as phrases that follow its name ("rejects ...")."""
    found = []
    rejected = _rejected_by_domain(v)
    if rejected:
        parts = ", ".join(f"{d} {count(n)}" for d, n in rejected)
        found.append(f"refuses {count(v.total('rejected'))} requests ({parts})")
    errors = v.total("upstream_429")
    if errors >= 0.5:
        found.append(f"meets {count(errors)} upstream 429s")
    slow = _slowest(v)
    if slow is not None:
        found.append(f"makes {slow[0]} wait {seconds(slow[1])} at p99")
    short = [r for r in runways(v) if r.short]
    for r in sorted(short, key=lambda r: r.share)[:1]:
        found.append(f"runs out of budget {r.budget} {r.when()}")
    return found


def _clean(v: Variant) -> str:
    p95 = v.critical_p95()[0]
    top = v.top_class or "all"
    budgets = " and every budget lasting its period" if runways(v) else ""
    return (
        f"serves all {count(v.total('requests'))} requests with no upstream 429s{budgets}; "
        f"{top} requests wait {seconds(p95)} at p95"
    )


def _one(v: Variant) -> str:
    found = problems(v)
    if not found:
        return f"{v.name} {_clean(v)}. The day costs {money(v.cost_per_day())}."
    served = f"serves {count(v.total('ok'))} of {count(v.total('requests'))} requests but "
    return f"{v.name} {served}{_join(found)}. The day costs {money(v.cost_per_day())}."


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def answer(variants: list[Variant]) -> str:
    """What one option does on the day, in a paragraph (several options: see
    :func:`keypolicy.report.decision.decide`)."""
    return _one(variants[0])
