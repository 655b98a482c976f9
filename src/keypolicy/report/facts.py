"""Facts about one variant that the headline and the recommendations rest on.

Read from a summary and, when given, the policy it ran: which class each domain belongs to, how
long each may wait, how it defers, which classes are critical. Without a policy, a summary
rebuilt from records carries ``domain_priority`` ({domain: class}) and the facts make do.
"""

from __future__ import annotations

from typing import Any

from keypolicy.policy.model import Policy
from keypolicy.report.values import interval, mean

__all__ = ["Variant"]


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

    def domains(self) -> list[str]:
        """Every domain in the summary."""
        return list(self.rows("domains"))

    def critical_classes(self) -> list[str]:
        """The classes whose refusals count as critical: the most urgent, and every class the
        policy reserves headroom for (a reserve says "this work must get through"; the same
        rule as :func:`keypolicy.sim.headroom.critical_classes`)."""
        if self.policy is not None:
            first = self.policy.priorities[0].name
            return [p.name for p in self.policy.priorities if p.name == first or p.reserve > 0]
        return [self.top_class] if self.top_class is not None else []

    def critical_domains(self) -> list[str]:
        """Domains of the critical classes that appear in the summary."""
        classes = self.critical_classes()
        return [d for d in self.rows("domains") if self.priority_of(d) in classes]

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

    def longest_wait(self, domains: list[str]) -> float:
        """The longest any served request of ``domains`` queued (seconds; 0: none waited)."""
        return max((self.value("domains", d, "wait_max_s") for d in domains), default=0.0)

    def cost_per_day(self) -> float:
        """Total cost scaled to 24 hours of traffic (USD)."""
        duration = float(self.summary.get("about", {}).get("duration_s") or 86400.0)
        return self.total("cost_usd") * 86400.0 / duration if duration > 0 else 0.0
