"""Facts about one variant that the headline and the recommendations rest on.

Read from a summary and, when given, the policy it ran: which class each domain belongs to, how
long each may wait, how it defers, which budget ran out first. Without a policy, a summary
rebuilt from records carries ``domain_priority`` ({domain: class}) and the facts make do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keypolicy.policy.model import Policy
from keypolicy.report.budgets import budget_views, minute_of
from keypolicy.report.values import Exhaustion, exhaustion, interval, mean

__all__ = ["BudgetOut", "Variant"]


@dataclass(frozen=True, slots=True)
class BudgetOut:
    """A budget that ran out: its name (or a description), when, and how often."""

    name: str
    when: Exhaustion
    minute: float


class Variant:
    """One policy variant's summary with its policy, asked questions in report terms."""

    def __init__(self, name: str, summary: dict[str, Any], policy: Policy | None) -> None:
        self.name = name
        self.summary = summary
        self.policy = policy

    def rows(self, section: str) -> dict[str, dict[str, Any]]:
        """The rows of ``domains``, ``pools``, ``projects`` or ``keys``."""
        data: dict[str, dict[str, Any]] = self.summary.get(section) or {}
        return data

    def value(self, section: str, name: str, field: str) -> float:
        """One number (the mean over runs) of one row; ``section`` "totals" takes no name."""
        row = (
            self.summary.get("totals", {})
            if section == "totals"
            else self.rows(section).get(name, {})
        )
        return mean(row.get(field))

    def total(self, field: str) -> float:
        """One number of the totals row."""
        return self.value("totals", "", field)

    @property
    def runs(self) -> int:
        """How many runs (seeds) the numbers are means of."""
        return int(self.summary.get("runs") or 1)

    def priority_of(self, domain: str) -> str | None:
        """The priority class of a domain."""
        if self.policy is not None and domain in self.policy.domains:
            return self.policy.domains[domain].priority
        known: dict[str, str] = self.summary.get("domain_priority") or {}
        return known.get(domain)

    @property
    def top_class(self) -> str | None:
        """The most urgent priority class (the policy's first; else none known)."""
        if self.policy is not None:
            return self.policy.priorities[0].name
        order: list[str] = self.summary.get("priority_order") or []
        return order[0] if order else None

    def critical_domains(self) -> list[str]:
        """Domains of the most urgent class that appear in the summary."""
        top = self.top_class
        return [d for d in self.rows("domains") if top is not None and self.priority_of(d) == top]

    def max_wait(self, domain: str) -> float | None:
        """How long a request of ``domain`` may queue (seconds): its own, else its class's."""
        if self.policy is None or domain not in self.policy.domains:
            return None
        spec = self.policy.domains[domain]
        if spec.max_wait is not None:
            return spec.max_wait
        found = next((p for p in self.policy.priorities if p.name == spec.priority), None)
        return found.max_wait if found is not None else None

    def defer_mode(self, domain: str) -> str:
        """``never``, ``queue`` or ``batch`` (from the policy; else guessed from the counts)."""
        if self.policy is not None and domain in self.policy.domains:
            return self.policy.domains[domain].defer.mode
        if self.value("domains", domain, "batch") > 0:
            return "batch"
        return "queue" if self.value("domains", domain, "deferred") > 0 else "never"

    def critical_p95(self) -> tuple[float, float, list[str]]:
        """The worst p95 wait among the critical domains (mean, interval) and those domains;
        the whole's p95 when no class is known."""
        domains = self.critical_domains()
        if not domains:
            row = self.summary.get("totals", {})
            return mean(row.get("wait_p95_s")), interval(row.get("wait_p95_s")), []
        worst = max(domains, key=lambda d: self.value("domains", d, "wait_p95_s"))
        cell = self.rows("domains")[worst].get("wait_p95_s")
        return mean(cell), interval(cell), domains

    def budgets_out(self) -> list[BudgetOut]:
        """Budgets that ran out, the earliest first: the policy's (from the series and
        alerts), then any exhaustion the policy cannot place (a domain's row, an alert)."""
        found: dict[str, BudgetOut] = {}
        for view in budget_views(self.summary, self.policy):
            if view.exhausted is not None and view.exhausted_minute is not None:
                found[view.name] = BudgetOut(view.name, view.exhausted, view.exhausted_minute)
        for alert in self.summary.get("alerts") or []:
            name = str(alert.get("budget"))
            minute = minute_of(self.summary, str(alert.get("at")))
            if float(alert.get("threshold", 0)) >= 1.0 and name not in found and minute is not None:
                found[name] = BudgetOut(name, Exhaustion(str(alert.get("at"))), minute)
        if not found:
            for domain, row in self.rows("domains").items():
                seen = exhaustion(row.get("budget_exhausted_at"))
                minute = minute_of(self.summary, seen.at) if seen else None
                if seen is not None and minute is not None:
                    found[f"{domain}'s budget"] = BudgetOut(f"{domain}'s budget", seen, minute)
        return sorted(found.values(), key=lambda b: b.minute)

    def cost_per_day(self) -> float:
        """Total cost scaled to 24 hours of traffic (USD)."""
        duration = float(self.summary.get("about", {}).get("duration_s") or 86400.0)
        return self.total("cost_usd") * 86400.0 / duration if duration > 0 else 0.0
