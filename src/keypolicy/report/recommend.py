"""Recommendations in plain words, each derived from the numbers of the summaries.

Every sentence names what it rests on (a budget, a domain, a limit, a key) and the number that
triggered it. With several variants, a finding shared by all is said once ("In every option,
..."); contrasts between variants (waits, rejections) are said as contrasts.
"""

from __future__ import annotations

from collections.abc import Callable

from keypolicy.catalog import BATCH_DISCOUNT
from keypolicy.report.budgets import BudgetView, budget_views
from keypolicy.report.burndown import describe_period
from keypolicy.report.facts import Variant
from keypolicy.report.governance import shape
from keypolicy.report.limits import limit_findings
from keypolicy.report.runway import runways
from keypolicy.report.values import Exhaustion, count, mean, money, percent, seconds

__all__ = ["recommendations"]

Rule = Callable[[Variant], list[str]]


def _runs(runs: int, of: int) -> str:
    return f" in {runs} of {of} runs" if of > 1 else ""


def _round(usd: float) -> float:
    """Three significant figures: $11,797 -> $11,800."""
    return float(f"{usd:.3g}")


def _per_day(v: Variant) -> float:
    """What turns the simulated span's cost into a day's."""
    total = v.total("cost_usd")
    return v.cost_per_day() / total if total else 1.0


def _exhausted(v: Variant, view: BudgetView, when: Exhaustion) -> str:
    """What happens once a budget runs out, and to how many requests."""
    action = view.budget.on_exhausted
    what = {
        "reject": "are rejected",
        "defer": "are deferred",
        "downgrade": f"go to {action.model}",
    }[action.action]
    refused = sum(
        mean((v.rows("domains").get(d, {}).get("outcomes") or {}).get("budget_exhausted"))
        for d in view.domains
    )
    tail = f" ({count(refused)} in the day)" if refused >= 0.5 else ""
    return (
        f"{view.name} ({describe_period(view)}) runs out at {when.clock}"
        f"{_runs(when.runs, when.of)}; after that, requests of "
        f"{', '.join(view.domains)} {what}{tail}."
    )


def budget_findings(v: Variant) -> list[str]:
    """Budgets that run out (first), budgets that will not last their period, budgets near
    their line at the end of the day; the runway is :func:`keypolicy.report.runway.runways`',
    the same the headline and the decision read."""
    out, later = [], []
    lasting = {r.budget: r for r in runways(v)}
    for view in budget_views(v.summary, v.policy):
        r = lasting[view.name]
        if view.exhausted is not None:
            out.append(_exhausted(v, view, view.exhausted))
        elif r.short:
            later.append(
                f"At {money(r.per_day_usd)} a day, {view.name} "
                f"({describe_period(view, share=False)}) lasts {r.days:.1f} of its "
                f"{view.period_days:g} days: raise it to about "
                f"{money(_round(r.per_day_usd * view.period_days))} or cut spend."
            )
        elif not view.daily_share and (spent := max(view.spent, default=0.0)) >= 0.75 * (
            view.line_usd
        ):
            later.append(
                f"{view.name} ends the day at {percent(spent / view.line_usd)} of "
                f"{money(view.line_usd)}: little margin for a busier day."
            )
    return out + later


def wait_findings(v: Variant) -> list[str]:
    """Domains whose p99 wait uses half or more of their max_wait (when not already rejecting)."""
    found = []
    for domain in v.rows("domains"):
        limit = v.max_wait(domain)
        p99 = v.value("domains", domain, "wait_p99_s")
        if limit and p99 >= 0.5 * limit and v.value("domains", domain, "rejected") < 0.5:
            found.append(
                f"{domain}'s p99 wait ({seconds(p99)}) is {percent(p99 / limit)} of its "
                f"max_wait ({seconds(limit)}): little room before requests are rejected."
            )
    return found


def rejection_findings(v: Variant) -> list[str]:
    """Domains with rejected requests: how many, and how many of them a budget refused."""
    found = []
    for domain, row in v.rows("domains").items():
        rejected = v.value("domains", domain, "rejected")
        if rejected < 0.5:
            continue
        share = rejected / max(v.value("domains", domain, "requests"), 1.0)
        by_budget = mean((row.get("outcomes") or {}).get("budget_exhausted"))
        limit = v.max_wait(domain)
        why = []
        if rejected - by_budget >= 0.5:
            wait = f", max_wait {seconds(limit)}" if limit else ""
            why.append(f"{count(rejected - by_budget)} by the policy (no capacity in time{wait})")
        if by_budget >= 0.5:
            why.append(f"{count(by_budget)} after a budget ran out")
        found.append(
            f"{count(rejected)} {domain} requests ({percent(share)}) are rejected: "
            f"{' and '.join(why)}."
        )
    return found


def rate_limit_findings(v: Variant) -> list[str]:
    """429s from the provider: where they fell, or that there were none."""
    errors = v.total("upstream_429")
    if errors < 0.5:
        return ["No upstream 429s: the policy keeps every project within its limits."]
    rows = {d: v.value("domains", d, "upstream_429") for d in v.rows("domains")}
    worst = max(rows, key=lambda d: rows[d])
    return [
        f"{count(errors)} upstream 429s ({count(v.total('retries'))} retries); most in {worst} "
        f"({count(rows[worst])})."
    ]


def key_findings(v: Variant) -> list[str]:
    """Which key carries most traffic, and whether a key still stands for one function (the
    provider's usage pages show spend per key: a key shared by functions hides theirs)."""
    rows = {k: v.value("keys", k, "requests") for k in v.rows("keys")}
    total = sum(rows.values())
    if not rows or total <= 0:
        return []
    top = max(rows, key=lambda k: rows[k])
    low = min(rows.values())
    cost = v.value("keys", top, "cost_usd") * _per_day(v)
    mixed = shape(v.policy).mixed_keys if v.policy is not None else {}
    hidden = (
        f" Keys {', '.join(mixed)} each carry several functions: the provider's per-key usage "
        "no longer shows any one function's spend."
        if mixed
        else ""
    )
    if len(rows) > 1 and low >= 0.95 * rows[top]:
        return [
            f"Traffic is spread evenly over the {len(rows)} keys: about "
            f"{count(rows[top])} requests each.{hidden}"
        ]
    return [
        f"Key {top} carries most traffic: {count(rows[top])} requests ({percent(rows[top] / total)}"
        f" of all), {money(cost)} a day.{hidden}"
    ]


def deferral_findings(v: Variant) -> list[str]:
    """Whether deferral works: batch domains finish, queue domains stay within max_wait."""
    found = []
    for domain in v.rows("domains"):
        mode = v.defer_mode(domain)
        requests = v.value("domains", domain, "requests")
        open_at_end = mean((v.rows("domains")[domain].get("outcomes") or {}).get("deferred"))
        rejected = v.value("domains", domain, "rejected")
        if mode == "batch":
            batch = v.value("domains", domain, "batch")
            left = (
                f"{count(open_at_end)} still waiting at the end"
                if open_at_end >= 0.5
                else "none left undone"
            )
            share = "all" if abs(batch - requests) < 0.5 else f"{count(batch)} of"
            cost = v.value("domains", domain, "cost_usd")
            # What the same work would have cost at real-time prices, less what it cost.
            saved = cost * BATCH_DISCOUNT / (1.0 - BATCH_DISCOUNT)
            reasons = v.rows("domains")[domain].get("reasons") or {}
            expired = mean(reasons.get("batch_expired"))
            lost = (
                f"; {count(expired)} ran past the 24 h window and expired (batch_expired)"
                if expired >= 0.5
                else ""
            )
            found.append(
                f"{domain} defers to the Batch API: {share} {count(requests)} requests "
                f"at half price ({money(cost)} for the day, {money(saved)} less than at "
                f"real-time prices), {left}{lost}."
            )
        elif mode == "queue":
            p99 = v.value("domains", domain, "wait_p99_s")
            limit = v.max_wait(domain)
            within = ""
            if limit:
                within = (
                    f", {'within' if p99 <= limit else 'over'} its max_wait of {seconds(limit)}"
                )
            verdict = (
                "deferral works"
                if rejected < 0.5 and (not limit or p99 <= limit)
                else f"deferral does not keep up ({count(rejected)} rejected)"
            )
            found.append(
                f"{domain} queues for spare capacity: p99 wait {seconds(p99)}{within}; {verdict}."
            )
    return found


RULES: list[Rule] = [
    budget_findings,
    rejection_findings,
    wait_findings,
    limit_findings,
    deferral_findings,
    rate_limit_findings,
    key_findings,
]


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _reject_contrast(variants: list[Variant], domain: str) -> tuple[float, str] | None:
    vals = {v.name: v.value("domains", domain, "rejected") for v in variants}
    high, low = max(vals.values()), min(vals.values())
    if high < 0.5 or high - low < 0.5:
        return None
    worst = [n for n, x in vals.items() if high - x < 0.5]
    best = [n for n, x in vals.items() if x - low < 0.5]
    requests = max(v.value("domains", domain, "requests") for v in variants)
    share = f" ({percent(high / requests)})" if requests else ""
    others = "none" if low < 0.5 else f"only {count(low)}"
    return high, (
        f"{_names(worst)} {_verb('reject', worst)} {count(high)} {domain} requests{share}; "
        f"{_names(best)} {_verb('reject', best)} {others}."
    )


def _wait_contrast(variants: list[Variant], domain: str) -> tuple[float, str] | None:
    vals = {v.name: v.value("domains", domain, "wait_p99_s") for v in variants}
    high, low = max(vals.values()), min(vals.values())
    if high < 1.0 or high < 2 * low + 1.0:
        return None
    worst = [n for n, x in vals.items() if x >= high * 0.9]
    best = [n for n, x in vals.items() if x <= max(low * 1.1, low + 0.05)]
    if low < 0.5:
        keeps = "do not" if len(best) > 1 else "does not"
    else:
        keeps = f"{_verb('keep', best)} it to {seconds(low)}"
    return high, (
        f"{_names(worst)} {_verb('make', worst)} {domain} wait {seconds(high)} at p99 while "
        f"{_names(best)} {keeps}."
    )


def _verb(verb: str, subjects: list[str]) -> str:
    return verb if len(subjects) > 1 else f"{verb}s"


def contrasts(variants: list[Variant]) -> list[str]:
    """Where variants differ for a domain: rejections, then p99 waits, the largest first."""
    domains = list(dict.fromkeys(d for v in variants for d in v.rows("domains")))
    found = []
    for contrast in (_reject_contrast, _wait_contrast):
        hits = [c for d in domains if (c := contrast(variants, d)) is not None]
        found += [text for _, text in sorted(hits, key=lambda c: -c[0])]
    return found


def _lower(sentence: str) -> str:
    """The sentence to follow "In every option, ": our own opening words lose their capital."""
    first, _, rest = sentence.partition(" ")
    return f"{first.lower()} {rest}" if first in _OPENINGS else sentence


_OPENINGS = {"No", "Key", "Traffic", "At"}


def recommendations(variants: list[Variant]) -> list[str]:
    """All findings: contrasts first (for several variants), then each rule's, shared ones once."""
    if len(variants) == 1:
        return [s for rule in RULES for s in rule(variants[0])]
    found = contrasts(variants)
    for rule in RULES:
        if rule in (rejection_findings, wait_findings):
            continue  # said as contrasts above, where variants differ
        per = {v.name: rule(v) for v in variants}
        seen: list[str] = []
        for sentences in per.values():
            seen += [s for s in sentences if s not in seen]
        for sentence in seen:
            holders = [n for n, s in per.items() if sentence in s]
            if len(holders) == len(variants):
                found.append(f"In every option, {_lower(sentence)}")
            else:
                found.append(f"{', '.join(holders)}: {sentence}")
    return found
