"""The measures an option is judged by, each with its own rule for "equal".

One list (:data:`CRITERIA`), in the order that decides: critical requests refused, a budget
that stops traffic before its period ends, requests refused, the worst p99 wait against its
max_wait, headroom (when computed), upstream 429s, cost per served request. The headline table,
its stars and the decision all read it, so a star never marks a difference the decision calls
a tie.

Two values are equal when they differ by less than the measure's rounding (half a request, a
tenth of a max_wait, 10% of headroom, 1% of a cost) or by less than their two 95% intervals
added (several runs): a difference inside the noise decides nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from keypolicy.report.facts import Variant
from keypolicy.report.runway import runways
from keypolicy.report.values import interval, mean

__all__ = ["CRITERIA", "Criterion", "Value", "WorstWait", "equal", "worst_wait"]


@dataclass(frozen=True, slots=True)
class Value:
    """A measure of one option: the mean over runs and the half-width of its 95% interval."""

    mean: float
    ci: float = 0.0


@dataclass(frozen=True, slots=True)
class Criterion:
    """A measure (lower is better) and what counts as a real difference in it."""

    key: str
    label: str
    of: Callable[[Variant], Value]
    absolute: float = 0.0  # differences below this are rounding
    relative: float = 0.0  # ... or below this share of the larger value


def equal(c: Criterion, a: Value, b: Value) -> bool:
    """Whether two options' values of ``c`` differ by no more than rounding and noise."""
    gap = abs(a.mean - b.mean)
    if math.isinf(a.mean) or math.isinf(b.mean):
        return a.mean == b.mean
    return gap < c.absolute or gap <= c.relative * max(a.mean, b.mean) or gap <= a.ci + b.ci


def _sum(v: Variant, domains: list[str], field: str) -> Value:
    cells = [v.rows("domains").get(d, {}).get(field) for d in domains]
    return Value(sum(mean(c) for c in cells), math.sqrt(sum(interval(c) ** 2 for c in cells)))


def critical_refused(v: Variant) -> Value:
    """Requests of the most urgent class refused (by the policy or a spent budget)."""
    return _sum(v, v.critical_domains(), "rejected")


def refused(v: Variant) -> Value:
    """Every request refused."""
    totals = v.summary.get("totals") or {}
    return Value(mean(totals.get("rejected")), interval(totals.get("rejected")))


def budget_shortfall(v: Variant) -> Value:
    """The share of its period that a refusing budget does not cover (0: every budget lasts)."""
    short = [1.0 - r.share for r in runways(v) if r.short and r.action == "reject"]
    return Value(max(short, default=0.0))


@dataclass(frozen=True, slots=True)
class WorstWait:
    """The domain whose p99 wait is the largest share of its max_wait."""

    domain: str
    p99: float
    max_wait: float
    ci: float

    @property
    def share(self) -> float:
        """The p99 wait as a share of max_wait."""
        return self.p99 / self.max_wait


def worst_wait(v: Variant) -> WorstWait | None:
    """The served domain closest to (or past) its max_wait at p99; None when none has one."""
    found = []
    for domain, row in v.rows("domains").items():
        limit = v.max_wait(domain)
        if limit:
            cell = row.get("wait_p99_s")
            found.append(WorstWait(domain, mean(cell), limit, interval(cell)))
    return max(found, key=lambda w: w.share, default=None)


def wait_share(v: Variant) -> Value:
    """The worst p99 wait as a share of its max_wait."""
    worst = worst_wait(v)
    return Value(worst.share, worst.ci / worst.max_wait) if worst else Value(0.0)


def upstream_429(v: Variant) -> Value:
    """429 answers from the provider."""
    totals = v.summary.get("totals") or {}
    return Value(mean(totals.get("upstream_429")), interval(totals.get("upstream_429")))


def cost_per_served(v: Variant) -> Value:
    """US dollars per served request (a refused request costs nothing, serves no one)."""
    totals = v.summary.get("totals") or {}
    served = mean(totals.get("ok"))
    if served <= 0:
        return Value(math.inf)
    return Value(mean(totals.get("cost_usd")) / served, interval(totals.get("cost_usd")) / served)


def headroom_inverse(v: Variant) -> Value:
    """One over the traffic growth before the first critical refusal (lower is better: more
    room); 0 for every option when headroom was not computed, so it decides nothing then."""
    found = v.summary.get("headroom")
    if not isinstance(found, dict):
        return Value(0.0)
    growth = found.get("growth")
    if growth is None or float(growth) <= 0:
        return Value(math.inf)
    return Value(1.0 / float(growth))


CRITERIA: list[Criterion] = [
    Criterion("critical", "critical requests refused", critical_refused, absolute=0.5),
    Criterion("runway", "a budget stopping traffic before its period ends", budget_shortfall, 0.01),
    Criterion("refused", "requests refused", refused, absolute=0.5),
    Criterion("wait", "worst p99 wait against its max_wait", wait_share, absolute=0.1),
    Criterion(
        "headroom",
        "headroom (traffic growth before a critical refusal)",
        headroom_inverse,
        relative=0.1,
    ),
    Criterion("429", "upstream 429s", upstream_429, absolute=0.5),
    Criterion("cost", "cost per served request", cost_per_served, relative=0.01),
]
"""The order in which measures decide (lower is better in each)."""
