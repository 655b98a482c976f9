"""Budgets seen through a summary: what each budget counts, its spend over the day, and when it
ran out.

The summary's series hold spend per domain and minute (counted when a request finished), so a
budget's spend is the sum over the domains it covers. A budget per key cannot be drawn from
those series and is left out of the charts (its alerts still appear in the recommendations).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from keypolicy.policy.model import Budget, Policy
from keypolicy.report.values import Exhaustion, exhaustion

__all__ = [
    "BudgetView",
    "budget_views",
    "domains_of_budget",
    "minute_of",
    "start_minute",
]

_DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class BudgetView:
    """One budget over the simulated day.

    ``line_usd`` is what the chart compares spend with: the budget itself for a daily or shorter
    period, the day's share of it for a week or a month (``daily_share`` is then True).
    ``spent`` is the cumulative spend per minute in the budget's current period (USD).
    """

    name: str
    budget: Budget
    domains: list[str]
    line_usd: float
    daily_share: bool
    period_days: float
    spent: list[float]
    exhausted: Exhaustion | None
    exhausted_minute: float | None
    crossed_minute: float | None


def start_minute(summary: dict[str, Any]) -> int:
    """Minutes after local midnight at which the summary's traffic starts."""
    start = summary.get("about", {}).get("start")
    try:
        moment = datetime.fromisoformat(str(start))
    except ValueError:
        return 0
    return moment.hour * 60 + moment.minute


def minute_of(summary: dict[str, Any], iso: str) -> float | None:
    """Minutes since the traffic's start of an ISO time, or None if either is unreadable."""
    try:
        start = datetime.fromisoformat(str(summary.get("about", {}).get("start")))
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return (moment - start).total_seconds() / 60


def domains_of_budget(budget: Budget, policy: Policy) -> list[str] | None:
    """The domains whose spend a budget counts, or None when domains cannot tell (per key)."""
    scope, name = budget.applies_to.scope, budget.applies_to.name
    if scope == "all":
        return list(policy.domains)
    if scope == "domain":
        return [name] if name in policy.domains else []
    if scope == "pool":
        return [d for d, dom in policy.domains.items() if dom.pool == name]
    if scope == "project":
        keys = {k for k, key in policy.keys.items() if key.project == name}
        return [
            d
            for d, dom in policy.domains.items()
            if dom.pool in policy.pools and set(policy.pools[dom.pool].keys) & keys
        ]
    return None


def _period(budget: Budget, summary: dict[str, Any]) -> tuple[float, bool]:
    """The period in days, and whether the chart shows the day's share of it."""
    if budget.per == "day":
        return 1.0, False
    if budget.per == "week":
        return 7.0, True
    if budget.per == "month":
        try:
            start = datetime.fromisoformat(str(summary.get("about", {}).get("start")))
            return float(calendar.monthrange(start.year, start.month)[1]), True
        except ValueError:
            return 30.0, True
    days = float(budget.per) / _DAY_S
    return days, days > 1.0


def _cumulative(per_minute: Sequence[float], start: int, budget: Budget) -> list[float]:
    """Spend so far in the period, per minute: a calendar day ends at the next local midnight
    (the list stops there: the next day is another budget), a rolling window forgets what is
    older than the window."""
    out: list[float] = []
    total = 0.0
    window = int(float(budget.per) // 60) if isinstance(budget.per, float) else 0
    for minute, value in enumerate(per_minute):
        if budget.per == "day" and minute and (start + minute) % 1440 == 0:
            break
        total += value
        if 0 < window <= minute:
            total -= per_minute[minute - window]
        out.append(total)
    return out


def _exhaustion(
    name: str, budget: Budget, summary: dict[str, Any], crossed: float | None
) -> tuple[Exhaustion | None, float | None]:
    """When the budget ran out: its alert at 100% (first run), else the minute its spend passed
    it on the chart. A budget of one domain takes the domain's count of runs, too."""
    row: dict[str, Any] = {}
    if budget.applies_to.scope == "domain":
        row = summary.get("domains", {}).get(budget.applies_to.name, {})
    runs = exhaustion(row.get("budget_exhausted_at"))
    for alert in summary.get("alerts", []):
        if alert.get("budget") == name and float(alert.get("threshold", 0)) >= 1.0:
            at = str(alert.get("at"))
            found = Exhaustion(runs.at, runs.runs, runs.of) if runs else Exhaustion(at)
            return found, minute_of(summary, found.at)
    if runs is not None:
        return runs, minute_of(summary, runs.at)
    if crossed is not None and budget.per == "day":
        return Exhaustion(_iso_at(summary, crossed)), crossed
    return None, None


def _iso_at(summary: dict[str, Any], minute: float) -> str:
    try:
        start = datetime.fromisoformat(str(summary.get("about", {}).get("start")))
    except ValueError:
        return ""
    return (start + timedelta(minutes=minute)).isoformat(timespec="seconds")


def budget_views(summary: dict[str, Any], policy: Policy | None) -> list[BudgetView]:
    """Every budget of ``policy`` that the summary's series can show, in the policy's order."""
    if policy is None:
        return []
    series = summary.get("series") or {}
    spend: dict[str, list[float]] = series.get("spend_usd", {})
    minutes = int(series.get("minutes", 0))
    start = start_minute(summary)
    views = []
    for name, budget in policy.budgets.items():
        domains = domains_of_budget(budget, policy)
        if domains is None:
            continue
        per_minute = [
            sum(spend.get(d, [0.0] * minutes)[m] for d in domains) for m in range(minutes)
        ]
        days, share = _period(budget, summary)
        line = budget.usd / days if share else budget.usd
        spent = _cumulative(per_minute, start, budget)
        crossed = next((m + 1.0 for m, v in enumerate(spent) if v >= line), None)
        found, at_minute = _exhaustion(name, budget, summary, crossed)
        views.append(
            BudgetView(name, budget, domains, line, share, days, spent, found, at_minute, crossed)
        )
    return views
