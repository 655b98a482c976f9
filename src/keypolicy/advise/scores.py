"""What a candidate is scored on, per run and over the seeds.

A run is boiled down, in the process that simulated it, to :class:`RunMeasures`: per domain,
requests refused, 429s drawn, deferrals that missed their deadline, cost, and the p99 wait as a
share of the domain's ``max_wait``. Everything a candidate is scored on is a sum or a maximum
over its domains, so the measures of separate runs of its pools add up to an estimate of the
whole (:func:`merge`: the screen, :mod:`keypolicy.advise.screen`).

The scores (:data:`METRICS`, each to be minimized):

- ``critical``: requests of the critical classes refused (rejected, given up, over budget,
  failed) in the day; critical classes as :func:`keypolicy.sim.headroom.critical_classes`;
- ``wait``: the worst p99 wait of any domain as a share of its ``max_wait`` (1.0: at the limit);
- ``refused``: every request refused, whatever its class;
- ``throttled``: 429s the provider answered;
- ``cost``: USD per day of traffic (per month: times 30);
- ``late``: deferred requests that missed their deadline (queue deadline, Batch window);
- ``blast``: the most domains one pool's overload can reach (they share its limits);
- ``projects``, ``keys``: how many there are to manage.

Over the seeds each becomes a mean with a 95% interval (Student's t); the structural ones are
exact. Each has a *resolution*: two candidates closer than it on a score count as equal there
(means are compared after rounding down to a multiple of it), so that the noise of the seeds
does not make every candidate "best at something".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from keypolicy.policy.model import Policy
from keypolicy.sim.run import t95

__all__ = [
    "COST_RESOLUTION_SHARE",
    "DEFAULT_RANK",
    "METRICS",
    "Estimate",
    "Metric",
    "RunMeasures",
    "Scores",
    "measure",
    "merge",
]


@dataclass(frozen=True)
class Metric:
    """One score: its name, how it reads, its unit, and the default resolution."""

    name: str
    title: str
    unit: str
    resolution: float
    structural: bool = False


METRICS: Final[dict[str, Metric]] = {
    m.name: m
    for m in (
        Metric("critical", "critical requests refused", "requests/day", 1.0),
        Metric("wait", "worst p99 wait / max_wait", "share", 0.05),
        Metric("refused", "requests refused", "requests/day", 10.0),
        Metric("throttled", "429s", "responses/day", 10.0),
        Metric("cost", "cost per day", "USD/day", 0.0),  # 0: COST_RESOLUTION_SHARE
        Metric("late", "deferrals past deadline", "requests/day", 10.0),
        Metric("blast", "blast radius", "domains", 1.0, structural=True),
        Metric("projects", "projects", "projects", 1.0, structural=True),
        Metric("keys", "keys", "keys", 1.0, structural=True),
    )
}
"""Every score, in the default ranking order (critical safety, then cost, then simplicity)."""

DEFAULT_RANK: Final = (
    "critical",
    "wait",
    "cost",
    "blast",
    "projects",
    "refused",
    "late",
    "throttled",
    "keys",
)
"""The default order of what matters: critical safety first (critical refusals, then waits),
then cost, then simplicity (the blast radius first: it is a risk too; then projects)."""

COST_RESOLUTION_SHARE: Final = 0.02
"""Cost is compared in steps of 2% of the current grouping's cost per day (its full run): pooling
changes no price, so what moves cost between groupings is mostly requests refused (never
billed), already counted as refusals; a step of 2% keeps "cheaper because it refuses" off the
front. A resolution given for ``cost`` replaces it."""

_REFUSED_BY: Final = ("deadline", "batch_expired")


@dataclass(frozen=True)
class RunMeasures:
    """One run of some domains, boiled down per domain."""

    refused: dict[str, int]
    throttled: dict[str, int]
    late: dict[str, int]
    cost: dict[str, float]
    wait: dict[str, float]  # p99 wait / max_wait (0 where no max_wait applies)
    days: float

    def totals(self, critical: Iterable[str]) -> dict[str, float]:
        """The run's scores for the domains it simulated (``critical``: the domains of the
        critical classes)."""
        urgent = set(critical)
        return {
            "critical": float(sum(n for d, n in self.refused.items() if d in urgent)),
            "wait": max(self.wait.values(), default=0.0),
            "refused": float(sum(self.refused.values())),
            "throttled": float(sum(self.throttled.values())),
            "cost": sum(self.cost.values()) / self.days,
            "late": float(sum(self.late.values())),
        }


def measure(policy: Policy, summary: dict[str, Any], duration_s: float) -> RunMeasures:
    """One run's summary (not runs combined) boiled down."""
    refused, throttled, late, cost, wait = {}, {}, {}, {}, {}
    for name, tally in summary["domains"].items():
        domain = policy.domains.get(name)
        if domain is None:
            continue
        refused[name] = sum(
            n for outcome, n in tally["outcomes"].items() if outcome not in ("ok", "deferred")
        )
        throttled[name] = int(tally["upstream_429"])
        late[name] = sum(int(tally["reasons"].get(r, 0)) for r in _REFUSED_BY)
        cost[name] = float(tally["cost_usd"])
        limit = domain.max_wait
        if limit is None:
            limit = policy.priorities[policy.priority_index(domain.priority)].max_wait
        wait[name] = float(tally["wait_p99_s"]) / limit if limit else 0.0
    return RunMeasures(refused, throttled, late, cost, wait, max(duration_s, 1.0) / 86400.0)


def merge(parts: Sequence[RunMeasures]) -> RunMeasures:
    """Runs of disjoint sets of domains (on one seed) as one run of them all."""
    out = RunMeasures({}, {}, {}, {}, {}, parts[0].days)
    for part in parts:
        out.refused.update(part.refused)
        out.throttled.update(part.throttled)
        out.late.update(part.late)
        out.cost.update(part.cost)
        out.wait.update(part.wait)
    return out


@dataclass(frozen=True)
class Estimate:
    """A score over the seeds: mean, half-width of its 95% interval, and each seed's value."""

    mean: float
    ci95: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Estimate:
        """The estimate from one value per seed."""
        mean = statistics.fmean(values)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        half = t95(len(values) - 1) * spread / math.sqrt(len(values)) if len(values) > 1 else 0.0
        return cls(mean, half, tuple(values))


@dataclass(frozen=True)
class Scores:
    """A candidate's scores: each :data:`METRICS` name -> :class:`Estimate`."""

    values: dict[str, Estimate] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        runs: Sequence[RunMeasures],
        critical: Iterable[str],
        structure: dict[str, int],
    ) -> Scores:
        """From one :class:`RunMeasures` per seed, the domains of the critical classes, and the
        exact structural counts."""
        urgent = list(critical)
        per_run = [run.totals(urgent) for run in runs]
        values = {name: Estimate.of([t[name] for t in per_run]) for name in per_run[0]}
        values.update({n: Estimate(float(v), 0.0, (float(v),)) for n, v in structure.items()})
        return cls(values)

    def mean(self, name: str) -> float:
        """The mean of one score."""
        return self.values[name].mean

    def as_dict(self) -> dict[str, Any]:
        """For JSON: each score's mean, interval and per-seed values (rounded for reading)."""
        return {
            n: {"mean": round(e.mean, 6), "ci95": round(e.ci95, 6), "runs": list(e.values)}
            for n, e in self.values.items()
        }
