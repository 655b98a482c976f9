"""The search: every grouping made a candidate, screened, simulated, put on a front, ranked,
and the front's headroom found.

1. **Enumerate** the groupings that honour the constraints (:mod:`.partitions`) and build each
   into a candidate policy by the rule (:mod:`.candidates`).
2. **Screen** (unless ``screen=False``): a candidate is cut into parts that share no bucket
   (:mod:`.screen`: the domains of models no domain links; the clinic: its gpt-4o domains and
   its gpt-4o-mini ones), every distinct part is simulated apart with its domains' traffic,
   once per seed (the clinic: 10 parts against 203 candidates), and a candidate's screened
   scores are its parts' measures merged. Where the domains make one component, there is
   nothing to cut: every candidate is simulated in full.
3. **Simulate in full** (every domain, every seed, on the same arrivals): the current grouping,
   the screened front, and every candidate the screen cannot rule out within its error margin.
   The margin is twice the largest error the screen made on any candidate simulated both ways,
   per score; a candidate is dropped only if another one surely dominates it: the other's worst
   case (screened scores plus the margins, or its full run) dominates the dropped one's best
   case (screened scores less the margins), on the grid. Whenever a new full run shows a larger
   error, the margins widen and more candidates are simulated, until none is left in doubt.
4. The **front** of the candidates simulated in full, ranked (:mod:`.pareto`).
5. **Headroom** of each front member and of the current grouping
   (:mod:`keypolicy.sim.headroom`), found on the candidate's parts that hold its critical
   domains (the rest shares no limit with them: the clinic's front of 14 has 5 distinct
   critical parts, each half the traffic), once per distinct part, the searches run in
   lockstep so that their simulations go out together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from typing import Any

from keypolicy.advise.candidates import (
    Candidate,
    LimitRule,
    base_grouping,
    build_candidate,
    check_base,
)
from keypolicy.advise.pareto import Objectives, dominates, front, rank
from keypolicy.advise.partitions import Constraints, count_groupings, groupings
from keypolicy.advise.scores import (
    COST_RESOLUTION_SHARE,
    DEFAULT_RANK,
    METRICS,
    RunMeasures,
    Scores,
    measure,
    merge,
)
from keypolicy.advise.screen import components, part_key, part_policy
from keypolicy.policy.model import Policy
from keypolicy.sim.headroom import (
    FactorSearch,
    Headroom,
    critical_classes,
    probe_run,
    searches,
)
from keypolicy.sim.traffic import SyntheticTraffic, Traffic

__all__ = ["Advice", "SearchTooLargeError", "Settings", "advise", "measured_run"]

Progress = Callable[[str, int, int], None]
"""``(phase, done, total)``: runs finished of the phase's runs."""


class SearchTooLargeError(ValueError):
    """More candidates than the caller allows (``max_candidates``)."""


@dataclass(frozen=True)
class Settings:
    """How the search is made (defaults as the command line's)."""

    constraints: Constraints = field(default_factory=Constraints)
    rule: LimitRule = "sum"
    objectives: Objectives = field(default_factory=Objectives.default)
    order: tuple[str, ...] = DEFAULT_RANK
    screen: bool = True
    headroom: bool = True
    headroom_precision: float = 0.1
    headroom_steps: int = 6
    max_growth: float = 4.0
    critical: tuple[str, ...] | None = None
    max_candidates: int = 1000


@dataclass
class ScreenReport:
    """How the screen went: the components, the distinct parts simulated apart and their
    runs, the margins it ended with (per score, in the score's units), candidates simulated in
    full and dropped; ``skipped`` when the domains make one component (then every candidate is
    simulated in full)."""

    components: int = 0
    skipped: bool = False  # one component: parts would be whole candidates
    pools: int = 0  # distinct parts simulated
    runs: int = 0
    margins: dict[str, float] = field(default_factory=dict)
    simulated: int = 0
    dropped: int = 0
    rounds: int = 0


@dataclass
class Advice:
    """The search's outcome. ``scores``: candidates simulated in full; ``screened``: the
    screen's estimates (every candidate, if screened); ``front``: ranked, best first."""

    base: Policy
    candidates: list[Candidate]
    current: int
    seeds: tuple[int, ...]
    critical: tuple[str, ...]
    settings: Settings
    scores: dict[int, Scores]
    screened: dict[int, Scores]
    front: list[int]
    headroom: dict[int, Headroom]
    screen: ScreenReport | None
    runs: int
    seconds: float

    @property
    def best(self) -> Candidate:
        """The recommended candidate: the first of the ranked front."""
        return self.candidates[self.front[0]]


def measured_run(policy: Policy, traffic: Traffic, seed: int) -> RunMeasures:
    """One simulation, boiled down where it ran (a worker sends back a few numbers)."""
    from keypolicy.sim.run import run_once  # noqa: PLC0415 - keeps this module light to import

    result = run_once(policy, traffic, seed)
    if result.partial:  # Ctrl-C in this process: a part of a run is no score
        raise KeyboardInterrupt
    return measure(policy, result.summary, traffic.duration_s)


def only(traffic: Traffic, domains: frozenset[str]) -> Traffic:
    """``traffic`` of ``domains`` alone, arrival for arrival as in the whole (each domain's
    draws come from its own streams)."""
    if isinstance(traffic, SyntheticTraffic):
        profile = traffic.profile
        kept = {d: spec for d, spec in profile.domains.items() if d in domains}
        return SyntheticTraffic(profile.model_copy(update={"domains": kept}), scale=traffic.scale)
    return _Filtered(traffic, domains)


class _Filtered:
    """Arrivals of some domains only (for traffic that cannot be restricted at its source)."""

    def __init__(self, traffic: Traffic, domains: frozenset[str]) -> None:
        self.traffic, self.keep = traffic, domains
        self.name, self.description = traffic.name, traffic.description
        self.start, self.duration_s = traffic.start, traffic.duration_s

    def domains(self) -> set[str]:
        return self.traffic.domains() & self.keep

    def models(self) -> dict[str, set[str]]:
        return {d: m for d, m in self.traffic.models().items() if d in self.keep}

    def arrivals(self, seed: int) -> Any:
        return (a for a in self.traffic.arrivals(seed) if a.domain in self.keep)


def advise(
    base: Policy,
    traffic: Traffic,
    seeds: Sequence[int],
    executor: Executor,
    settings: Settings | None = None,
    *,
    on_progress: Progress | None = None,
    estimate_s: float | None = None,
) -> Advice:
    """Search every grouping of ``base``'s domains under ``traffic`` (see the module's
    docstring), simulating on ``executor`` (:func:`keypolicy.sim.cluster.open_executor`).

    Raises :class:`~keypolicy.advise.candidates.BaseError`,
    :class:`~keypolicy.advise.partitions.ConstraintError`, :class:`SearchTooLargeError` (its
    message uses ``estimate_s``, the seconds one run takes, if given) before any simulation.
    """
    rules = settings or Settings()
    started = time.monotonic()
    check_base(base)
    domains = sorted(base.domains)
    rules.constraints.check(domains)
    count = count_groupings(domains, rules.constraints, stop_at=rules.max_candidates)
    if count > rules.max_candidates:
        raise SearchTooLargeError(_too_large(domains, rules, len(seeds), estimate_s))
    if count == 0:
        raise SearchTooLargeError("no grouping honours these constraints: loosen them")
    critical = rules.critical or critical_classes(base)
    unknown = sorted(set(critical) - {p.name for p in base.priorities})
    if unknown:
        raise ValueError(
            f"--critical {','.join(critical)}: {', '.join(unknown)} is not a priority class of "
            f"{base.name} (its classes: {', '.join(p.name for p in base.priorities)})"
        )
    candidates = [
        build_candidate(base, g, i, rules.rule)
        for i, g in enumerate(groupings(domains, rules.constraints))
    ]
    current = _current(base, candidates, rules)
    search = _Search(candidates, traffic, list(seeds), executor, critical, rules, on_progress)
    search.simulate([current], "simulating the current grouping")
    today = search.scores[current].mean("cost")
    rules = replace(
        rules, objectives=rules.objectives.with_cost_step(COST_RESOLUTION_SHARE * today, today)
    )
    search.rules = rules
    screen = search.screen(current) if rules.screen else None
    if screen is None or screen.skipped:
        search.simulate(range(len(candidates)), "simulating every candidate")
    members = front({i: rules.objectives.grid(s) for i, s in search.scores.items()})
    ranked = rank(members, search.scores, rules.objectives, rules.order)
    room: dict[int, Headroom] = {}
    if rules.headroom:
        room = search.headroom(list(dict.fromkeys([*ranked, current])))
    return Advice(
        base=base,
        candidates=candidates,
        current=current,
        seeds=tuple(seeds),
        critical=critical,
        settings=rules,
        scores=search.scores,
        screened=search.screened,
        front=ranked,
        headroom=room,
        screen=screen,
        runs=search.runs,
        seconds=time.monotonic() - started,
    )


def _current(base: Policy, candidates: list[Candidate], rules: Settings) -> int:
    """The candidate with the base's own grouping; if the constraints exclude it, the base
    policy is appended as a candidate of its own (scored, never recommended by accident)."""
    mine = set(base_grouping(base))
    for c in candidates:
        if set(c.grouping) == mine:
            return c.index
    grouping = base_grouping(base)
    names = {p: frozenset(d for d, s in base.domains.items() if s.pool == p) for p in base.pools}
    projects = {p: base.keys[base.pools[p].keys[0]].project for p in base.pools}
    candidates.append(
        Candidate(
            len(candidates),
            grouping,
            base,
            {p: d for p, d in names.items() if d},
            projects,
            is_base=True,
        )
    )
    _ = rules
    return len(candidates) - 1


def _too_large(domains: list[str], rules: Settings, seeds: int, run_s: float | None) -> str:
    shown = f"more than {rules.max_candidates:,}"
    when = ""
    if run_s is not None:
        hours = rules.max_candidates * seeds * run_s / 3600
        when = f" (simulating them in full would take over {hours:,.1f} CPU hours)"
    return (
        f"{len(domains)} domains make {shown} groupings under these constraints{when}: "
        "narrow the search with --together A,B, --apart A,B or --max-pools N, or allow more "
        "with --max-candidates N"
    )


class _Search:
    """The simulations of one search, sent to the executor a round at a time."""

    def __init__(
        self,
        candidates: list[Candidate],
        traffic: Traffic,
        seeds: list[int],
        executor: Executor,
        critical: tuple[str, ...],
        rules: Settings,
        on_progress: Progress | None,
    ) -> None:
        self.candidates, self.traffic, self.seeds = candidates, traffic, seeds
        self.executor, self.critical, self.rules = executor, critical, rules
        policy = candidates[0].policy
        self.urgent = sorted(d for d, s in policy.domains.items() if s.priority in critical)
        self.on_progress = on_progress
        self.scores: dict[int, Scores] = {}
        self.screened: dict[int, Scores] = {}
        self.runs = 0

    def _structure(self, c: Candidate) -> dict[str, int]:
        return {
            "blast": c.blast_radius,
            "projects": len(set(c.projects.values())),
            "keys": c.key_count,
        }

    def _gather(self, phase: str, jobs: dict[Any, Future[Any]]) -> dict[Any, Any]:
        """Every job's result, reporting progress as they come."""
        results: dict[Any, Any] = {}
        total = len(jobs)
        pending = {future: key for key, future in jobs.items()}
        if self.on_progress is not None:
            self.on_progress(phase, 0, total)
        from concurrent.futures import as_completed  # noqa: PLC0415

        for future in as_completed(pending):
            results[pending[future]] = future.result()
            self.runs += 1
            if self.on_progress is not None:
                self.on_progress(phase, len(results), total)
        return results

    def simulate(self, which: Sequence[int] | range, phase: str) -> None:
        """Simulate candidates in full, every seed."""
        todo = [i for i in which if i not in self.scores]
        jobs = {
            (i, s): self.executor.submit(
                measured_run, self.candidates[i].policy, self.traffic, seed
            )
            for i in todo
            for s, seed in enumerate(self.seeds)
        }
        done = self._gather(phase, jobs)
        for i in todo:
            runs = [done[(i, s)] for s in range(len(self.seeds))]
            self.scores[i] = Scores.of(runs, self.urgent, self._structure(self.candidates[i]))

    def screen(self, current: int) -> ScreenReport:
        """The screen (step 2), then the full runs it cannot spare (step 3)."""
        report = ScreenReport()
        groups = components(self.candidates[0].policy)
        parts: dict[str, tuple[Candidate, frozenset[str]]] = {}
        of: dict[tuple[int, int], str] = {}  # (candidate, component) -> its part
        for c in self.candidates:
            for k, domains in enumerate(groups):
                key = part_key(c, domains)
                parts.setdefault(key, (c, domains))
                of[(c.index, k)] = key
        report.components = len(groups)
        if len(parts) >= len(self.candidates):  # nothing to gain: every part is a candidate
            report.skipped = True
            return report
        jobs = {
            (key, s): self.executor.submit(
                measured_run, part_policy(c, domains), only(self.traffic, domains), seed
            )
            for key, (c, domains) in parts.items()
            for s, seed in enumerate(self.seeds)
        }
        done = self._gather("screening: the candidates' parts apart", jobs)
        report.pools, report.runs = len(parts), len(jobs)
        for c in self.candidates:
            runs = [
                merge([done[(of[(c.index, k)], s)] for k in range(len(groups))])
                for s in range(len(self.seeds))
            ]
            self.screened[c.index] = Scores.of(runs, self.urgent, self._structure(c))
        objectives = self.rules.objectives
        grids = {i: objectives.grid(s) for i, s in self.screened.items()}
        self.simulate(sorted({current, *front(grids)}), "simulating the screened front")
        while True:
            report.rounds += 1
            margins = self._margins()
            report.margins = {n: margins[n] for n in objectives.names}
            doubtful = self._doubtful(margins)
            if not doubtful:
                break
            self.simulate(doubtful, "simulating the candidates within the screen's margin")
        report.simulated = len(self.scores)
        report.dropped = len(self.candidates) - len(self.scores)
        return report

    def _doubtful(self, margins: dict[str, float]) -> list[int]:
        """Candidates not simulated in full that no candidate surely dominates: with every
        screened score off by up to its margin, the best a candidate can truly be (its lower
        bound on the grid) is still not dominated by the worst another can be (its upper bound;
        a candidate simulated in full is exact)."""
        objectives = self.rules.objectives
        up = {n: margins[n] for n in objectives.names}
        down = {n: -margins[n] for n in objectives.names}
        worst = {
            i: objectives.grid(self.scores[i]) if i in self.scores else objectives.grid(s, None, up)
            for i, s in self.screened.items()
        }
        return [
            i
            for i, s in self.screened.items()
            if i not in self.scores
            and not any(
                dominates(w, objectives.grid(s, None, down)) for j, w in worst.items() if j != i
            )
        ]

    def _margins(self) -> dict[str, float]:
        """Per score: twice the largest screen error on candidates simulated both ways (an
        error below a millionth of the score's resolution is rounding: none)."""
        out = {}
        for name in METRICS:
            errors = [
                abs(self.scores[i].mean(name) - self.screened[i].mean(name))
                for i in self.scores
                if i in self.screened
            ]
            largest = max(errors, default=0.0)
            tiny = 1e-6 * self.rules.objectives.resolution[name]
            out[name] = 0.0 if largest <= tiny else 2 * largest
        return out

    def _critical_part(self, i: int) -> tuple[str, Policy, Traffic]:
        """What decides candidate ``i``'s critical refusals: its parts in the components that
        hold a critical domain (the other parts share no limit with them), as a key, a policy
        and its traffic; the whole candidate when the domains make one component."""
        c = self.candidates[i]
        groups = components(c.policy)
        urgent = set(self.urgent)
        mine = [g for g in groups if g & urgent] if len(groups) > 1 else groups
        domains = frozenset().union(*mine)
        if domains == frozenset(c.policy.domains):
            return f"whole:{i}", c.policy, self.traffic
        key = "|".join(part_key(c, g) for g in mine)
        return key, part_policy(c, domains), only(self.traffic, domains)

    def headroom(self, members: list[int]) -> dict[int, Headroom]:
        """Every member's headroom (step 5): one search per distinct critical part (members
        sharing it share its headroom), the searches in lockstep."""
        rules = self.rules
        parts = {i: self._critical_part(i) for i in members}
        pairs: dict[str, tuple[FactorSearch, FactorSearch]] = {}
        known: dict[tuple[str, float, float], int] = {}
        for i in members:  # today's runs are done: factor 1 is known
            key = parts[i][0]
            if key not in pairs:
                pairs[key] = searches(
                    rules.headroom_precision, rules.headroom_steps, rules.max_growth
                )
                known[(key, 1.0, 1.0)] = int(max(self.scores[i].values["critical"].values))
        subjects = {key: (policy, traffic) for key, policy, traffic in parts.values()}
        while True:
            asked = [
                (key, search, factor)
                for key, pair in pairs.items()
                for search in pair
                if (factor := search.next_factor()) is not None
            ]
            if not asked:
                break
            probes = sorted({(key, *_probe(s, f)) for key, s, f in asked} - set(known))
            jobs = {
                (probe, seed): self.executor.submit(
                    probe_run,
                    subjects[probe[0]][0],
                    subjects[probe[0]][1],
                    seed,
                    probe[1],
                    probe[2],
                    self.critical,
                )
                for probe in probes
                for seed in self.seeds
            }
            done = self._gather("headroom", jobs) if jobs else {}
            for probe in probes:
                known[probe] = max(done[(probe, seed)] for seed in self.seeds)
            for key, search, factor in asked:
                search.record(factor, known[(key, *_probe(search, factor))])
        found = {
            key: Headroom.from_searches(
                growth,
                limits,
                self.critical,
                self.seeds,
                len([k for k in known if k[0] == key and k[1:] != (1.0, 1.0)]) * len(self.seeds),
            )
            for key, (growth, limits) in pairs.items()
        }
        return {i: found[parts[i][0]] for i in members}


def _probe(search: FactorSearch, factor: float) -> tuple[float, float]:
    return (factor, 1.0) if search.direction == "growth" else (1.0, factor)


def seconds_per_run(traffic: Traffic, compiled: bool) -> float | None:
    """A rough time for one run of ``traffic`` on one core (None if its size is unknown)."""
    expected = getattr(traffic, "expected_requests", None)
    if expected is None:
        return None
    requests = float(sum(expected().values()))
    return requests / (100_000.0 if compiled else 18_000.0) + 0.2


_ = math
