"""Headroom: how far a policy is from its first critical refusal.

Two questions, each answered by a search over a factor, every step a simulation:

- **growth**: how much more traffic the policy takes before a critical request is refused.
  Traffic is grown by :class:`GrownTraffic`'s rule (more arrivals of the same shape).
- **shrink**: how much the provider's limits may fall short of what the policy declares
  (``--provider-factor``) before a critical request is refused.

*Critical* (:func:`critical_classes`): the most urgent priority class, and every class that holds
a reserve (``reserve`` above 0): a reserve is the policy saying "this class's work must get
through". In the clinic that is ``critical`` and ``clinical``. A caller may name the classes.

A factor is *safe* when no run (one per seed) refuses more than ``allowed`` critical requests
(default 0: "before the first critical refusal"): refused meaning ended other than ``ok`` or
still deferred (rejected by the policy, given up after 429s, over budget, failed).

The search (:class:`FactorSearch`): from the factor 1 (today), steps out geometrically (×2 for
growth, ÷2 for limits) until a factor is unsafe (or the bound is reached), then bisects
geometrically until the safe and unsafe factors are within ``precision`` of each other
(relative: 0.05 finds the edge to within 5%), or ``max_steps`` simulations of one seed set have
been made. The answer is the largest growth (smallest limits factor) found safe, with the first
unsafe one beside it: the edge lies between them. A policy that already refuses critical
requests today has a growth below 1 (how far traffic would have to fall) and no shrink.
The search assumes that more traffic (or less capacity) never refuses fewer critical requests;
grown traffic keeps every arrival of the smaller one (see :class:`GrownTraffic`), which makes
that hold closely for a given seed.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from keypolicy.policy.model import Policy
from keypolicy.sim.arrival import Arrival
from keypolicy.sim.cluster import open_executor
from keypolicy.sim.traffic import Traffic

__all__ = [
    "GrownTraffic",
    "Headroom",
    "critical_classes",
    "critical_refused",
    "headroom",
]

Direction = Literal["growth", "limits"]

COPY_SPREAD_S = 60.0
"""Copies of an arrival come within this many seconds after it (see :class:`GrownTraffic`)."""


def critical_classes(policy: Policy) -> tuple[str, ...]:
    """The priority classes whose refusals count as critical: the most urgent class, and every
    class holding a reserve, most urgent first."""
    first = policy.priorities[0].name
    return tuple(p.name for p in policy.priorities if p.name == first or p.reserve > 0)


def critical_refused(policy: Policy, result: dict[str, Any], classes: Sequence[str]) -> int:
    """Requests of the domains in ``classes`` that one run's summary ``result`` (not runs
    combined) says were refused: every outcome but ``ok`` and ``deferred``."""
    return sum(
        count
        for name, domain in policy.domains.items()
        if domain.priority in classes and name in result["domains"]
        for outcome, count in result["domains"][name]["outcomes"].items()
        if outcome not in ("ok", "deferred")
    )


class GrownTraffic:
    """``traffic`` with ``factor`` times as many arrivals, of the same shape.

    The rule: each arrival of the original is kept ``floor(factor + 1 - u)`` times, ``u`` a
    uniform draw of its own (from a generator seeded by the run's seed and the arrival's
    domain, so that a domain's copies are the same whatever other domains there are): at 1.3
    every arrival comes once and 30% of them twice; at 0.7, 70% of them once and the rest not
    at all. The first copy is the arrival itself; copy ``j`` comes
    ``60 s × frac(v + (j-1) × 0.618...)`` later (``v`` another draw of its own), clipped to the
    period: within a minute, so per-minute and hourly shapes, bursts included, stay as they
    were; not on the same instant as the original. Token sizes are the original's. Each arrival
    takes its two draws whatever the factor, so a larger factor keeps every arrival of a
    smaller one (same seed): headroom searches compare like with like.
    """

    def __init__(self, traffic: Traffic, factor: float) -> None:
        if not (factor > 0 and math.isfinite(factor)):
            raise ValueError(f"a traffic factor must be a number above 0, not {factor}")
        self.traffic, self.factor = traffic, factor
        self.name: str = f"{traffic.name}-x{factor:g}"
        self.description: str = f"{traffic.description}, {factor:g} times the arrivals"
        self.start: datetime = traffic.start
        self.duration_s: float = traffic.duration_s

    def domains(self) -> set[str]:
        """The original's domains."""
        return self.traffic.domains()

    def models(self) -> dict[str, set[str]]:
        """The original's models."""
        return self.traffic.models()

    def arrivals(self, seed: int) -> Iterator[Arrival]:
        """The grown arrivals, sorted by time."""
        draws: dict[str, random.Random] = {}
        end = math.nextafter(self.duration_s, -math.inf)
        later: list[tuple[float, int, Arrival]] = []  # copies due later, by time
        sequence = 0
        for arrival in self.traffic.arrivals(seed):
            mine = draws.get(arrival.domain)
            if mine is None:  # a generator per domain: a domain's copies do not depend on others
                mine = draws[arrival.domain] = random.Random(f"grow:{seed}:{arrival.domain}")
            u, v = mine.random(), mine.random()
            while later and later[0][0] <= arrival.time:
                yield heapq.heappop(later)[2]
            count = math.floor(self.factor + 1 - u)
            if count >= 1:
                yield arrival
            for j in range(1, count):
                at = min(arrival.time + COPY_SPREAD_S * ((v + (j - 1) * _GOLDEN) % 1.0), end)
                sequence += 1
                heapq.heappush(later, (at, sequence, _moved(arrival, at)))
        while later:
            yield heapq.heappop(later)[2]


_GOLDEN = (math.sqrt(5) - 1) / 2


def _moved(arrival: Arrival, time: float) -> Arrival:
    return Arrival(
        time,
        arrival.domain,
        arrival.prompt_tokens,
        arrival.max_output_tokens,
        arrival.completion_tokens,
        arrival.model,
        arrival.shared_prefix,
    )


def probe_run(
    policy: Policy,
    traffic: Traffic,
    seed: int,
    growth: float,
    limits: float,
    classes: tuple[str, ...],
) -> int:
    """One simulation (in whatever process runs it): critical requests refused with traffic
    grown ``growth`` times and the provider's limits at ``limits`` of the declared ones."""
    from keypolicy.sim.run import run_once  # noqa: PLC0415 - run imports this module's users

    grown: Traffic = traffic if growth == 1 else GrownTraffic(traffic, growth)
    result = run_once(policy, grown, seed, provider_factor=limits)
    if result.partial:  # Ctrl-C in this process: a part of a run proves nothing
        raise KeyboardInterrupt
    return critical_refused(policy, result.summary, classes)


@dataclass
class FactorSearch:
    """The search over one factor (see the module's docstring), as a small state machine: ask
    :meth:`next_factor`, simulate it on every seed, tell :meth:`record`. Several searches can
    so be run in lockstep, their simulations sent out together."""

    direction: Direction
    precision: float = 0.05
    max_steps: int = 10
    bound: float = 8.0  # growth: the largest factor tried; limits: 1 / the smallest
    safe: float | None = None  # growth: the largest factor found safe; limits: the smallest
    unsafe: float | None = None  # the first factor beyond it found unsafe
    steps: int = 0  # simulated factors (each over every seed)
    tried: dict[float, bool] = field(default_factory=dict)

    def next_factor(self) -> float | None:
        """The factor to simulate next, or None once the edge is found closely enough."""
        if self.steps >= self.max_steps:
            return None
        if not self.tried:
            return 1.0
        if self.safe is None:  # every factor tried refuses: today's already does
            return self._inward()
        if self.unsafe is None:  # every factor tried is safe: step out
            return self._outward(self.safe)
        low, high = sorted((self.safe, self.unsafe))
        return None if high / low <= 1 + self.precision else math.sqrt(low * high)

    def _inward(self) -> float | None:
        """Growth: how far traffic must fall (halving); limits: more capacity than declared
        does not help (the engine paces by the declared limits), so the search ends."""
        low = min(self.tried)
        if self.direction == "limits" or low <= 1 / self.bound:
            return None
        return max(low / 2, 1 / self.bound)

    def _outward(self, safe: float) -> float | None:
        """One step further from today (×2 traffic, or ÷2 limits), up to the bound."""
        if self.direction == "growth":
            return None if safe >= self.bound else min(safe * 2, self.bound)
        return None if safe <= 1 / self.bound else max(safe / 2, 1 / self.bound)

    def record(self, factor: float, refused: int, allowed: int = 0) -> None:
        """The most critical refusals any seed's run had at ``factor``."""
        self.tried[factor] = refused <= allowed
        self.steps += 1
        safe = [f for f, ok in self.tried.items() if ok]
        unsafe = [f for f, ok in self.tried.items() if not ok]
        if self.direction == "growth":
            self.safe = max(safe, default=None)
            beyond = [f for f in unsafe if self.safe is None or f > self.safe]
            self.unsafe = min(beyond, default=None)
        else:
            self.safe = min(safe, default=None)
            beyond = [f for f in unsafe if self.safe is None or f < self.safe]
            self.unsafe = max(beyond, default=None)


@dataclass(frozen=True)
class Headroom:
    """How far a policy is from its first critical refusal, on the seeds simulated.

    ``growth``: traffic may be this many times today's (1.5: half as much again) with no
    critical refusal; below 1 when today's traffic already brings one (how far it must fall);
    ``None`` if not even the smallest factor tried is safe. ``growth_fails_at``: the first factor
    found unsafe (the edge lies between the two; ``None``: none up to ``max_growth``).
    ``limits``: the provider's limits may fall to this share of the declared ones (0.6: 40%
    less) with none; ``None`` when today's already refuses. ``limits_fail_at`` likewise.
    ``precision``: the relative width the search aimed at; ``simulations``: runs made.
    """

    growth: float | None
    growth_fails_at: float | None
    limits: float | None
    limits_fail_at: float | None
    precision: float
    critical: tuple[str, ...]
    seeds: tuple[int, ...]
    simulations: int

    @property
    def shrink(self) -> float | None:
        """The share the provider's limits may lose (1 - ``limits``)."""
        return None if self.limits is None else 1 - self.limits

    @classmethod
    def from_searches(
        cls,
        growth: FactorSearch,
        limits: FactorSearch,
        critical: tuple[str, ...],
        seeds: Sequence[int],
        simulations: int,
    ) -> Headroom:
        """The result of two finished searches, which took ``simulations`` runs."""
        return cls(
            growth=growth.safe,
            growth_fails_at=growth.unsafe,
            limits=limits.safe,
            limits_fail_at=limits.unsafe,
            precision=growth.precision,
            critical=critical,
            seeds=tuple(seeds),
            simulations=simulations,
        )

    def describe(self) -> str:
        """One sentence for people."""
        if self.growth is None:
            grow = "critical requests are refused even at a fraction of today's traffic"
        elif self.growth < 1:
            grow = f"critical requests are refused today; safe at ×{self.growth:.2f} the traffic"
        elif self.growth_fails_at is None:
            grow = f"traffic can grow ×{self.growth:g} or more"
        else:
            grow = (
                f"traffic can grow ×{self.growth:.2f} (refusals from ×{self.growth_fails_at:.2f})"
            )
        if self.limits is None:
            shrink = "the provider's limits cannot shrink at all"
        elif self.limits_fail_at is None:
            shrink = f"the limits can shrink to {self.limits:.0%} or less"
        else:
            shrink = f"the limits can shrink by {1 - self.limits:.0%}"
        return f"{grow}; {shrink} (within {self.precision:.0%}, {len(self.seeds)} seeds)"


def searches(
    precision: float = 0.05, max_steps: int = 10, max_growth: float = 8.0, min_limits: float = 1 / 8
) -> tuple[FactorSearch, FactorSearch]:
    """A fresh pair of searches (growth, limits) with these bounds."""
    return (
        FactorSearch("growth", precision, max_steps, max_growth),
        FactorSearch("limits", precision, max_steps, 1 / min_limits),
    )


def headroom(
    policy: Policy,
    traffic: Traffic,
    seeds: Sequence[int],
    *,
    critical: Sequence[str] | None = None,
    allowed: int = 0,
    max_growth: float = 8.0,
    min_limits: float = 1 / 8,
    precision: float = 0.05,
    max_steps: int = 10,
    executor: Executor | None = None,
    jobs: int = 1,
) -> Headroom:
    """How much ``traffic`` can grow, and the provider's limits shrink, before ``policy``
    refuses more than ``allowed`` critical requests in any run of ``seeds``.

    ``critical``: the priority classes that count (default :func:`critical_classes`).
    ``max_growth`` and ``min_limits`` bound the searches (the answer is then "at least");
    ``precision`` is the relative width the edge is found to (0.05: within 5%), at most
    ``max_steps`` factors per search, each simulated once per seed: at most
    ``2 × max_steps × len(seeds)`` simulations, the two searches' runs sent out together, to
    ``executor`` (see :func:`keypolicy.sim.cluster.open_executor`) or to ``jobs`` processes.
    A simulation at growth ``g`` takes about ``g`` times as long as one of today's traffic.
    """
    classes = tuple(critical) if critical else critical_classes(policy)
    unknown = [c for c in classes if c not in {p.name for p in policy.priorities}]
    if unknown:
        raise ValueError(f"not priority classes of {policy.name}: {', '.join(unknown)}")
    if not 0 < precision < 1:
        raise ValueError(f"precision is a share between 0 and 1, not {precision}")
    growth, limits = searches(precision, max_steps, max_growth, min_limits)
    if executor is None:
        with open_executor(jobs) as pool:
            return _search(policy, traffic, seeds, classes, allowed, growth, limits, pool)
    return _search(policy, traffic, seeds, classes, allowed, growth, limits, executor)


def _search(
    policy: Policy,
    traffic: Traffic,
    seeds: Sequence[int],
    classes: tuple[str, ...],
    allowed: int,
    growth: FactorSearch,
    limits: FactorSearch,
    executor: Executor,
) -> Headroom:
    results: dict[tuple[float, float], int] = {}  # (growth, limits) -> worst run
    while True:
        asked = [(s, f) for s in (growth, limits) if (f := s.next_factor()) is not None]
        if not asked:
            return Headroom.from_searches(growth, limits, classes, seeds, len(results) * len(seeds))
        probes = {_probe(search, factor) for search, factor in asked} - set(results)
        futures = {
            (probe, seed): executor.submit(
                probe_run, policy, traffic, seed, probe[0], probe[1], classes
            )
            for probe in sorted(probes)
            for seed in seeds
        }
        for probe in sorted(probes):
            results[probe] = max(futures[(probe, seed)].result() for seed in seeds)
        for search, factor in asked:
            search.record(factor, results[_probe(search, factor)], allowed)


def _probe(search: FactorSearch, factor: float) -> tuple[float, float]:
    """The (traffic growth, limits factor) that a search's factor simulates."""
    return (factor, 1.0) if search.direction == "growth" else (1.0, factor)
