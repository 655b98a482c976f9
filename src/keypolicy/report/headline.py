"""The headline: five numbers per variant and the answer in a paragraph.

The five numbers: the p95 wait of the most urgent class, upstream 429s, rejections, cost per day
and the first budget to run out. The paragraph is built from the same numbers: which variant
serves the day best and what goes wrong in the others. Nothing here is fixed text about a
particular policy; every name and number comes from the summaries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keypolicy.report.facts import Variant
from keypolicy.report.values import count, interval, money, percent, seconds

__all__ = ["Number", "answer", "headline_numbers", "problems", "rank"]


@dataclass(frozen=True, slots=True)
class Number:
    """One headline number: its text, a line of detail, and a score (lower is better)."""

    key: str
    label: str
    text: str
    detail: str
    score: float


def _pm(text: str, ci: float, fmt: Callable[[float], str]) -> str:
    """``text`` with its 95% interval when there is one."""
    return f"{text} ± {fmt(ci)}" if ci else text


def headline_numbers(v: Variant) -> list[Number]:
    """The five numbers of one variant."""
    p95, ci, domains = v.critical_p95()
    top = v.top_class
    wait_label = f"{top.capitalize()} p95 wait" if domains and top else "p95 wait, all requests"
    wait_detail = f"worst of {', '.join(domains)}" if domains else "no priority classes known"
    requests = v.total("requests")
    rejected = v.total("rejected")
    errors = v.total("upstream_429")
    retries = v.total("retries")
    out = v.budgets_out()
    if out:
        first = out[0]
        runs = f", in {first.when.runs} of {first.when.of} runs" if first.when.of > 1 else ""
        budget = Number(
            "budget",
            "First budget out",
            first.when.clock,
            f"{first.name}{runs}",
            1e7 - first.minute,
        )
    else:
        budget = Number("budget", "First budget out", "none", "no budget ran out", 0.0)
    hours = float(v.summary.get("about", {}).get("duration_s") or 86400.0) / 3600
    totals = v.summary.get("totals", {})
    scale = v.cost_per_day() / v.total("cost_usd") if v.total("cost_usd") else 1.0
    return [
        Number("wait", wait_label, _pm(seconds(p95), ci, seconds), wait_detail, round(p95, 2)),
        Number(
            "429",
            "Upstream 429s",
            _pm(count(errors), interval(totals.get("upstream_429")), count),
            f"{count(retries)} retries",
            errors,
        ),
        Number(
            "rejected",
            "Rejected",
            _pm(count(rejected), interval(totals.get("rejected")), count),
            f"{percent(rejected / requests) if requests else '0%'} of {count(requests)} requests",
            rejected,
        ),
        Number(
            "cost",
            "Cost per day",
            _pm(money(v.cost_per_day()), interval(totals.get("cost_usd")) * scale, money),
            f"{money(v.total('cost_usd'))} over {hours:g} h "
            + (
                "recorded" if v.summary.get("about", {}).get("source") == "records" else "simulated"
            ),
            round(v.cost_per_day(), 2),
        ),
        budget,
    ]


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
        found.append(f"rejects {count(v.total('rejected'))} requests ({parts})")
    errors = v.total("upstream_429")
    if errors >= 0.5:
        found.append(f"meets {count(errors)} upstream 429s")
    slow = _slowest(v)
    if slow is not None:
        found.append(f"makes {slow[0]} wait {seconds(slow[1])} at p99")
    for out in v.budgets_out()[:1]:
        found.append(f"runs out of {out.name} at {out.when.clock}")
    return found


def _key(v: Variant) -> tuple[float, ...]:
    """Service first (critical rejections, rejections, 429s, critical p95, slowest p99, first
    budget out), cost last; rounded so that noise does not pick a winner."""
    critical = sum(v.value("domains", d, "rejected") for d in v.critical_domains())
    slow = _slowest(v)
    out = v.budgets_out()
    return (
        round(critical),
        round(v.total("rejected")),
        round(v.total("upstream_429")),
        round(v.critical_p95()[0], 1),
        round(slow[1]) if slow else 0.0,
        -out[0].minute if out else -1e9,
        round(v.cost_per_day(), 2),
    )


def rank(variants: list[Variant]) -> list[Variant]:
    """Variants from the best to the worst: fewest critical rejections, then rejections, 429s,
    the critical p95 wait, the slowest p99 wait, the first budget out, cost."""
    return sorted(variants, key=_key)


def _clean(v: Variant) -> str:
    p95 = v.critical_p95()[0]
    top = v.top_class or "all"
    return (
        f"serves all {count(v.total('requests'))} requests with no upstream 429s and no budget "
        f"running out; {top} requests wait {seconds(p95)} at p95"
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


def _costs(ordered: list[Variant]) -> str:
    costs = sorted(((v.cost_per_day(), v) for v in ordered), key=lambda c: c[0])
    low, high = costs[0][0], costs[-1][0]
    if high - low < 0.005 * max(high, 1.0):
        return f"The day costs about the same in each: {money(high)}."
    text = "The day costs " + _join([f"{money(c)} with {v.name}" for c, v in costs])
    if costs[0][1].total("rejected") > costs[-1][1].total("rejected"):
        text += f" ({costs[0][1].name} is cheaper because rejected requests cost nothing)"
    return text + "."


def _structure(variants: list[Variant]) -> str:
    """How variants that serve alike differ in shape: projects (separate limits), pools, keys."""
    shapes = []
    for v in variants:
        if v.policy is None:
            return ""
        p = v.policy
        shapes.append(
            f"{v.name} has {_n(len(p.projects), 'project')}, {_n(len(p.pools), 'pool')} and "
            f"{_n(len(p.keys), 'key')}"
        )
    if len({s.split(" has ", 1)[1] for s in shapes}) == 1:
        return ""
    return f"They differ in shape: {'; '.join(shapes)}."


def _n(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def answer(variants: list[Variant]) -> str:
    """The answer in a paragraph: for one variant what it does; for several, which does best."""
    if len(variants) == 1:
        return _one(variants[0])
    ordered = rank(variants)
    best = ordered[0]
    twins = [v for v in ordered[1:] if _key(v)[:-1] == _key(best)[:-1]]
    found = problems(best)
    what = f"{_join(found)}" if found else _clean(best)
    if twins:
        names = _join([best.name, *(t.name for t in twins)])
        text = [f"{names} do equally well on this day: each {what}."]
        shape = _structure([best, *twins])
        if shape:
            text.append(shape)
    elif found:
        text = [f"No variant is free of trouble; {best.name} does best: it {what}."]
    else:
        text = [f"{best.name} does best: it {what}."]
    for v in ordered[1:]:
        if v not in twins:
            text.append(f"{v.name} {_join(problems(v)) or _clean(v)}.")
    text.append(_costs(ordered))
    return " ".join(text)
