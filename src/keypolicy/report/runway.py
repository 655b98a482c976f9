"""Budget runway: how many days of this traffic each budget lasts, against its period.

One answer for the whole report: the headline, the banner, the decision and the
recommendations all read :func:`runways`, so none of them can say "no budget runs out" while
another says a budget lasts 15 of its 30 days.

A budget that ran out within the simulated traffic lasts until that moment. A budget whose
period is longer than the traffic (a week, a month) lasts ``usd / spend per day`` days, the spend
per day being the mean over runs of the domains it counts, scaled to 24 hours. A budget that
lasts fewer days than its period stops (or defers, or downgrades) its domains before the period
ends: that is a shortfall, and the report shows it as a banner.
"""

from __future__ import annotations

from dataclasses import dataclass

from keypolicy.report.budgets import BudgetView, budget_views
from keypolicy.report.facts import Variant

__all__ = ["Runway", "describe_budget", "runways", "shortest"]

_ACTIONS = {"reject": "rejects", "defer": "defers", "downgrade": "downgrades"}


@dataclass(frozen=True, slots=True)
class Runway:
    """One budget's runway under one option.

    ``days``: days of this traffic the budget lasts (``inf`` when nothing is spent);
    ``period_days``: the budget's period; ``domains``: what it counts; ``action``: what happens
    to their requests once it is spent (reject, defer, downgrade)."""

    budget: str
    usd: float
    period_days: float
    days: float
    domains: list[str]
    action: str
    per_day_usd: float
    at: str = ""  # HH:MM when it ran out within the traffic itself
    runs: str = ""  # ", in 2 of 3 runs" when it ran out in some runs only

    @property
    def short(self) -> bool:
        """Whether the budget runs out inside its period."""
        return self.days < self.period_days - 1e-9

    @property
    def share(self) -> float:
        """The days it lasts as a share of its period (below 1: it runs out)."""
        return self.days / self.period_days if self.period_days else float("inf")

    def when(self) -> str:
        """``at 19:51``, ``on day 15 of 30``, ``62% into its day`` ("" when it lasts)."""
        if not self.short:
            return ""
        if self.at:
            return f"at {self.at}{self.runs}"
        if self.period_days <= 1:
            return f"{self.share:.0%} into its day"
        return f"on day {int(self.days) + 1} of {self.period_days:g}"

    def text(self) -> str:
        """``lasts its 30-day period (31.5 days of this traffic)``, ``runs out on day 15 of
        30``, ``runs out at 19:51``."""
        period = "day" if self.period_days == 1 else f"{self.period_days:g}-day period"
        if self.short:
            return f"runs out {self.when()}"
        if self.days == float("inf"):
            return f"lasts its {period} (nothing spent)"
        return f"lasts its {period} ({self.days:.1f} days of this traffic)"

    def consequence(self, critical: list[str], everything: list[str] | None = None) -> str:
        """What the budget's running out does, naming the critical domains it stops;
        ``everything``: all the option's domains (to say "every function")."""
        verb = _ACTIONS.get(self.action, self.action)
        every = everything is not None and set(self.domains) >= set(everything)
        what = "every function" if every else ", ".join(self.domains)
        hit = [d for d in self.domains if d in critical]
        tail = f", critical {', '.join(hit)} included" if hit and self.action == "reject" else ""
        return f"then it {verb} every request of {what}{tail}"


def describe_budget(r: Runway) -> str:
    """``$12,500 a 30-day period``, ``$40.00 a day``."""
    period = "day" if r.period_days == 1 else f"{r.period_days:g}-day period"
    amount = f"${r.usd:,.0f}" if r.usd >= 1000 else f"${r.usd:,.2f}"
    return f"{amount} a {period}"


def _runway(v: Variant, view: BudgetView) -> Runway:
    duration = float((v.summary.get("about") or {}).get("duration_s") or 86400.0)
    per_day = sum(v.value("domains", d, "cost_usd") for d in view.domains)
    per_day = per_day * 86400.0 / duration if duration > 0 else per_day
    if view.exhausted is not None and view.exhausted_minute is not None:
        days = max(view.exhausted_minute, 0.0) / 1440.0  # ran out within the traffic itself
    elif per_day > 0:
        days = view.budget.usd / per_day
        if duration >= view.period_days * 86400.0:  # a whole period simulated without running out
            days = max(days, view.period_days)
    else:
        days = float("inf")
    at = runs = ""
    if view.exhausted is not None and view.exhausted_minute is not None:
        at = view.exhausted.clock
        if view.exhausted.of > 1:
            runs = f", in {view.exhausted.runs} of {view.exhausted.of} runs"
    return Runway(
        view.name,
        view.budget.usd,
        view.period_days,
        days,
        list(view.domains),
        view.budget.on_exhausted.action,
        per_day,
        at,
        runs,
    )


def runways(v: Variant) -> list[Runway]:
    """Every budget of the option's policy that the summary can follow, in the policy's order
    (none without a policy: a summary alone does not know its budgets)."""
    return [_runway(v, view) for view in budget_views(v.summary, v.policy)]


def shortest(v: Variant) -> Runway | None:
    """The budget that runs shortest against its own period (None without budgets)."""
    found = runways(v)
    return min(found, key=lambda r: r.share) if found else None
