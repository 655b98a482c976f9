"""Running simulations: one policy or several variants, one seed or several, with summaries.

Every variant sees the same arrivals for a given seed (common random numbers): the traffic is
generated from the seed alone, never from the policy. ``--runs K`` repeats with seeds
``seed .. seed+K-1`` and reports each number as a mean with a 95% interval.

The simulated provider counts by the rules the policy assumes (its ``provider:`` section), unless
told otherwise (``--assume RULE=VALUES``): then each policy runs once per combination of the
values, its engine still assuming what the policy says (as it would in production), and the
result is the run under the policy's own rules (or the first combination) with the outcomes of
all of them as a range (:mod:`keypolicy.sim.ranges`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import signal
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import (
    FIRST_COMPLETED,
    CancelledError,
    Future,
    ProcessPoolExecutor,
    as_completed,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from keypolicy.policy.model import Policy
from keypolicy.records import UsageRecord
from keypolicy.sim.driver import Simulation
from keypolicy.sim.ranges import Assumptions, outcome_range, scenarios
from keypolicy.sim.traffic import Traffic, traffic_warnings
from keypolicy.sim.transit import Transit
from keypolicy.summary import about, summary
from keypolicy.upstream import Accounting, ProviderLimits

__all__ = [
    "Assumptions",
    "RunResult",
    "combine_runs",
    "run_once",
    "simulate_policy",
    "simulate_variants",
    "t95",
]

# Student's t for a two-sided 95% interval, by degrees of freedom (beyond 30: 1.96 is close).
_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    15: 2.131,
    20: 2.086,
    30: 2.042,
}


def t95(df: int) -> float:
    """Student's t for a two-sided 95% interval with ``df`` degrees of freedom (rounded up to
    the table's next entry; 1.96 beyond 30)."""
    return next((t for d, t in sorted(_T95.items()) if df <= d), 1.96)


@dataclass
class RunResult:
    """One run's outcome: its summary, its per-minute series, and whether it was cut short."""

    summary: dict[str, Any]
    series: dict[str, Any]
    partial: bool


def run_once(
    policy: Policy,
    traffic: Traffic,
    seed: int,
    *,
    on_record: Callable[[UsageRecord], None] | None = None,
    on_progress: Callable[[float], None] | None = None,
    extra_s: float = 26 * 3600.0,
    provider_factor: float = 1.0,
    accounting: Accounting | None = None,
    chars_per_token: Mapping[str, float] | None = None,
    transit: Transit | None = None,
) -> RunResult:
    """Simulate ``policy`` under ``traffic`` with one seed, the provider counting by
    ``accounting`` (default: as the policy assumes). ``chars_per_token``: characters of prompt
    text per exact token, by domain, when the limiters' character estimates are to be modelled
    (:class:`~keypolicy.sim.driver.Simulation`); ``transit``: requests' time on the way to the
    provider and back (:mod:`keypolicy.sim.transit`). Ctrl-C (KeyboardInterrupt) ends the run
    early, and what was simulated is returned, marked partial."""
    limits = ProviderLimits.from_policy(policy, factor=provider_factor, accounting=accounting)
    sim = Simulation(
        policy,
        traffic.arrivals(seed),
        traffic.start.timestamp(),
        seed,
        provider_limits=limits,
        on_record=on_record,
        on_progress=on_progress,
        chars_per_token=chars_per_token,
        transit=transit,
    )
    partial = False
    try:
        metrics = sim.run(until=traffic.duration_s + extra_s)
    except KeyboardInterrupt:  # stop cleanly: what was simulated so far is summarised
        partial = True
        metrics = sim.metrics
    return RunResult(metrics.summary(), metrics.series(), partial)


def assemble(
    policy: Policy,
    traffic: Traffic,
    seeds: list[int],
    runs: list[RunResult],
    provider_factor: float,
    accounting: Accounting | None = None,
) -> dict[str, Any]:
    """The result of ``policy``'s runs (one per seed, in order; fewer if cut short): the single
    run's summary, or the runs combined (means with 95% intervals), with the first run's series.
    ``accounting``: the rules the simulated provider counted by (default: the policy's).
    """
    summaries = [r.summary for r in runs]
    counts = summaries[0] if len(summaries) == 1 else combine_runs(summaries)
    warnings = traffic_warnings(traffic)
    omitted = runs[0].series.get("omitted")
    if omitted:
        warnings.append(f"no charts over time: {omitted}")
    facts = about(
        policy,
        traffic=traffic.name,
        description=traffic.description,
        start=traffic.start.isoformat(),
        duration_s=traffic.duration_s,
        timezone=policy.timezone,
        cost=counts["totals"]["cost_usd"],
        warnings=warnings,
        quota_refused=counts["totals"]["reasons"].get("quota", 0),
        partial=any(r.partial for r in runs) or len(runs) < len(seeds),
    )
    facts["provider_factor"] = provider_factor
    facts["provider"] = {
        "assumed": Accounting.from_policy(policy).as_dict(),
        "simulated": (accounting or Accounting.from_policy(policy)).as_dict(),
    }
    return summary(
        policy.name,
        counts,
        runs[0].series,
        facts,
        runs=len(summaries),
        seed=seeds[0],
        partial=any(r.partial for r in runs) or len(runs) < len(seeds),
    )


def simulate_policy(
    policy: Policy,
    traffic: Traffic,
    seeds: list[int],
    *,
    on_record: Callable[[UsageRecord], None] | None = None,
    on_progress: Callable[[int, float], None] | None = None,
    extra_s: float = 26 * 3600.0,
    provider_factor: float = 1.0,
    accounting: Accounting | None = None,
) -> dict[str, Any]:
    """Simulate ``policy`` under ``traffic`` once per seed, in this process; return the summary
    (one run) or the summaries combined (means with 95% intervals) with the per-minute series
    of the first run.

    ``on_record`` receives the first run's records; ``on_progress(run_index, simulated_seconds)``
    is called as time advances; ``extra_s`` is how long after the traffic ends parked requests
    may still finish (deferral deadlines, batches); ``provider_factor`` scales the provider's
    real limits against the declared ones (0.8: the provider allows 20% less than the policy
    believes, so 429s and learning come into play); ``accounting``: the rules the provider
    counts by, if not those the policy assumes (its engine keeps assuming the policy's).
    """
    runs: list[RunResult] = []
    for i, seed in enumerate(seeds):

        def progress(now: float, i: int = i) -> None:
            if on_progress is not None:
                on_progress(i, now)

        runs.append(
            run_once(
                policy,
                traffic,
                seed,
                on_record=on_record if i == 0 else None,
                on_progress=progress,
                extra_s=extra_s,
                provider_factor=provider_factor,
                accounting=accounting,
            )
        )
        if runs[-1].partial:
            break
    return assemble(policy, traffic, seeds, runs, provider_factor, accounting)


@dataclass(frozen=True)
class _Case:
    """One policy under one set of provider rules: ``policy`` indexes the variants, ``rules``
    the policy's scenarios (0: the one its result is; :func:`keypolicy.sim.ranges.scenarios`)."""

    policy: int
    rules: int
    accounting: Accounting


def _cases(policies: list[Policy], assume: Assumptions | None) -> list[_Case]:
    return [
        _Case(p, k, accounting)
        for p, policy in enumerate(policies)
        for k, accounting in enumerate(scenarios(policy, assume))
    ]


def simulate_variants(
    policies: list[Policy],
    traffic: Traffic,
    seeds: list[int],
    *,
    jobs: int = 1,
    on_record: Callable[[UsageRecord], None] | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
    extra_s: float = 26 * 3600.0,
    provider_factor: float = 1.0,
    assume: Assumptions | None = None,
    cluster: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Every policy under ``traffic``, once per seed: ``{policy name: result}`` in order.

    ``assume`` maps accounting rules to the values the simulated provider takes: each policy
    then runs once per combination (its engine assuming what the policy says), and its result,
    that of the combination the policy itself assumes (or the first), carries the outcomes of
    all of them as a ``range``.

    With ``jobs`` above 1, runs go to that many processes at once (this one included): the
    first policy's first run (the one whose records go to ``on_record``) here, the others to
    ``jobs - 1`` worker processes, one at a time, and back here once this process is free.
    Each run depends on its policy, rules and seed alone, so the results are the same whatever
    ``jobs`` is. ``on_progress(policy_index, run_index, simulated_seconds)``, runs counted over
    the policy's combinations. Ctrl-C stops every run; what was simulated is returned, marked
    partial.

    ``cluster``: the address of a Dask scheduler (:mod:`keypolicy.sim.cluster`); the first run
    stays here (it writes the records), every other goes to the cluster, ``jobs`` aside. The
    results are the same as here.
    """

    def tick(p: int, r: int, now: float) -> None:
        if on_progress is not None:
            on_progress(p, r, now)

    cases = _cases(policies, assume)
    if cluster is not None:
        done_there = _on_cluster(
            cluster, policies, cases, traffic, seeds, tick, on_record, extra_s, provider_factor
        )
        return _assemble_all(policies, traffic, seeds, cases, done_there, provider_factor)
    done: dict[tuple[int, int], RunResult] = {}
    if jobs <= 1 or len(cases) * len(seeds) <= 1:
        for c, case in enumerate(cases):
            for r, seed in enumerate(seeds):
                done[(c, r)] = run_once(
                    policies[case.policy],
                    traffic,
                    seed,
                    on_record=on_record if (c, r) == (0, 0) else None,
                    on_progress=functools.partial(tick, case.policy, case.rules * len(seeds) + r),
                    extra_s=extra_s,
                    provider_factor=provider_factor,
                    accounting=case.accounting,
                )
                if done[(c, r)].partial:
                    return _assemble_all(policies, traffic, seeds, cases, done, provider_factor)
        return _assemble_all(policies, traffic, seeds, cases, done, provider_factor)
    runs = _Parallel(policies, cases, traffic, seeds, jobs - 1, tick, extra_s, provider_factor)
    runs.run(on_record)
    return _assemble_all(policies, traffic, seeds, cases, runs.done, provider_factor)


def _on_cluster(
    address: str,
    policies: list[Policy],
    cases: list[_Case],
    traffic: Traffic,
    seeds: list[int],
    tick: Callable[[int, int, float], None],
    on_record: Callable[[UsageRecord], None] | None,
    extra_s: float,
    provider_factor: float,
) -> dict[tuple[int, int], RunResult]:
    """Every run but the first on the Dask cluster at ``address``, the first here; on Ctrl-C,
    the runs not finished are cancelled and what was done is kept."""
    from keypolicy.sim.cluster import open_executor  # noqa: PLC0415 - run imports it lazily

    done: dict[tuple[int, int], RunResult] = {}
    with open_executor(cluster=address) as executor:
        futures: dict[Future[RunResult], tuple[int, int]] = {}
        for c, case in enumerate(cases):
            for r, seed in enumerate(seeds):
                if (c, r) != (0, 0):
                    future = executor.submit(
                        run_once,
                        policies[case.policy],
                        traffic,
                        seed,
                        extra_s=extra_s,
                        provider_factor=provider_factor,
                        accounting=case.accounting,
                    )
                    futures[future] = (c, r)
        try:
            first = cases[0]
            done[(0, 0)] = run_once(
                policies[first.policy],
                traffic,
                seeds[0],
                on_record=on_record,
                on_progress=functools.partial(tick, first.policy, first.rules * len(seeds)),
                extra_s=extra_s,
                provider_factor=provider_factor,
                accounting=first.accounting,
            )
            if done[(0, 0)].partial:
                raise KeyboardInterrupt
            for future in as_completed(futures):
                c, r = futures[future]
                done[(c, r)] = future.result()
                tick(cases[c].policy, cases[c].rules * len(seeds) + r, traffic.duration_s)
        except KeyboardInterrupt:  # keep what is done; the rest is cancelled with the client
            for future in futures:
                future.cancel()
    return done


class _Parallel:
    """Runs in this process and ``workers`` others: this one runs the first (it writes the
    records), then takes runs no worker has started; each worker is handed one run at a time."""

    def __init__(
        self,
        policies: list[Policy],
        cases: list[_Case],
        traffic: Traffic,
        seeds: list[int],
        workers: int,
        tick: Callable[[int, int, float], None],
        extra_s: float,
        provider_factor: float,
    ) -> None:
        self.policies, self.traffic, self.seeds, self.workers = policies, traffic, seeds, workers
        self.cases = cases
        self.tick, self.extra_s, self.provider_factor = tick, extra_s, provider_factor
        self.context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        count = len(seeds)
        # Progress is one number per run in shared memory (simulated seconds), read here when
        # convenient: no pipe that a worker could block on.
        self.progress: Any = self.context.Array("d", len(cases) * count, lock=False)
        self.stop: Any = self.context.Event()
        self.todo = deque((c, r) for c in range(len(cases)) for r in range(count))
        self.todo.popleft()  # (0, 0) is this process's
        self.inflight: dict[Future[RunResult | None], tuple[int, int]] = {}
        self.done: dict[tuple[int, int], RunResult] = {}
        self.pool: ProcessPoolExecutor | None = None

    def run(self, on_record: Callable[[UsageRecord], None] | None) -> None:
        """Every run, or (after Ctrl-C) what was simulated of them, into ``self.done``."""
        # Workers start with Ctrl-C ignored (inherited across exec): a Ctrl-C while they import
        # must not kill them; the stop event ends their runs. (One that comes in the few
        # milliseconds while they are started is lost: press it again.)
        with _sigint_ignored():
            self.pool = ProcessPoolExecutor(
                self.workers,
                mp_context=self.context,
                initializer=_worker_init,
                initargs=(self.progress, self.stop),
            )
            self._fill()
        try:
            mine: tuple[int, int] | None = (0, 0)
            while mine is not None:  # this process's runs: the first, then any not started
                self._run_here(mine, on_record if mine == (0, 0) else None)
                mine = self.todo.popleft() if self.todo else None
            while self.inflight:
                wait(list(self.inflight), timeout=0.2, return_when=FIRST_COMPLETED)
                self._collect()
                self._report()
        except KeyboardInterrupt:
            self._interrupted()
            return
        except BaseException:
            self.stop.set()
            self.pool.shutdown(wait=False, cancel_futures=True)
            raise
        self.pool.shutdown(cancel_futures=True)

    def _run_here(
        self, which: tuple[int, int], on_record: Callable[[UsageRecord], None] | None
    ) -> None:
        c, r = which
        index = c * len(self.seeds) + r
        case = self.cases[c]

        def here(now: float) -> None:
            self.progress[index] = now
            self._collect()
            self._fill()
            self._report()

        self.done[which] = run_once(
            self.policies[case.policy],
            self.traffic,
            self.seeds[r],
            on_record=on_record,
            on_progress=here,
            extra_s=self.extra_s,
            provider_factor=self.provider_factor,
            accounting=case.accounting,
        )
        if self.done[which].partial:
            raise KeyboardInterrupt
        self._collect()
        self._fill()

    def _fill(self) -> None:
        assert self.pool is not None
        while self.todo and len(self.inflight) < self.workers:
            c, r = self.todo.popleft()
            case = self.cases[c]
            job = self.pool.submit(
                _worker_run,
                c * len(self.seeds) + r,
                self.policies[case.policy],
                self.seeds[r],
                self.traffic,
                self.extra_s,
                self.provider_factor,
                case.accounting,
            )
            self.inflight[job] = (c, r)

    def _collect(self) -> None:
        for future in [f for f in self.inflight if f.done()]:
            where = self.inflight.pop(future)
            result = future.result()  # a worker's error stops everything now, not at the end
            if result is not None:
                self.done[where] = result

    def _report(self) -> None:
        count, end = len(self.seeds), self.traffic.duration_s
        for p in range(len(self.policies)):
            mine = [c for c, case in enumerate(self.cases) if case.policy == p]
            runs = [(c, r) for c in mine for r in range(count)]
            running = [i for i, run in enumerate(runs) if run not in self.done]
            times = [min(self.progress[c * count + r], end) for c, r in runs]
            self.tick(p, running[0] if running else len(runs) - 1, sum(times) / len(runs))

    def _interrupted(self) -> None:
        """Keep what the running workers simulated (they end their runs at the stop event and
        return it), then end every worker: one still starting (importing, for a second or two)
        has nothing to give, and is not waited for."""
        self.stop.set()
        count = len(self.seeds)
        deadline = time.monotonic() + _GRACE_S
        for future, (c, r) in self.inflight.items():
            if future.cancel() or not self.progress[c * count + r]:
                continue  # not begun: nothing simulated to keep
            with contextlib.suppress(CancelledError, BrokenProcessPool, KeyboardInterrupt):
                result = future.result(timeout=max(deadline - time.monotonic(), 0.0))
                if result is not None:
                    self.done[c, r] = result
        assert self.pool is not None
        _end_workers(self.pool)


_GRACE_S = 0.5
"""How long, after Ctrl-C, running workers have to hand back what they simulated."""


def _end_workers(pool: ProcessPoolExecutor) -> None:
    """Shut ``pool`` down now, ending its worker processes rather than waiting for them.
    ``terminate_workers`` is Python 3.14's; before it, the executor's own process table."""
    pool.shutdown(wait=False, cancel_futures=True)
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError):
            process.terminate()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ctrl-C ignored meanwhile (in the main thread; elsewhere signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _assemble_all(
    policies: list[Policy],
    traffic: Traffic,
    seeds: list[int],
    cases: list[_Case],
    done: dict[tuple[int, int], RunResult],
    provider_factor: float,
) -> dict[str, dict[str, Any]]:
    """Each policy's result from its runs done (in seed order, up to the first missing one),
    with the range over its provider rules where there are several; policies after the first
    without any run are left out, as in one process. A policy some of whose rules did not run
    to the end is marked partial."""
    results: dict[str, dict[str, Any]] = {}
    for p, policy in enumerate(policies):
        outcomes: list[tuple[Accounting, dict[str, Any]]] = []
        missing = False
        for c, case in enumerate(cases):
            if case.policy != p:
                continue
            runs = []
            for r in range(len(seeds)):
                if (c, r) not in done:
                    break
                runs.append(done[(c, r)])
            if not runs:
                missing = True
                continue
            result = assemble(policy, traffic, seeds, runs, provider_factor, case.accounting)
            outcomes.append((case.accounting, result))
        if not outcomes:
            break
        result = outcomes[0][1]
        if missing:
            result["partial"] = True
        if len([c for c in cases if c.policy == p]) > 1:
            result["range"] = outcome_range(policy, outcomes)
            result["partial"] = result["partial"] or any(o["partial"] for _, o in outcomes)
        results[policy.name] = result
    return results


_progress: Any = None
_stop: Any = None


def _worker_init(progress: Any, stop: Any) -> None:
    """In a worker process: Ctrl-C is the parent's to handle (it sets ``stop``)."""
    global _progress, _stop  # one worker process, one pair of shared objects
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _progress, _stop = progress, stop


def _worker_run(
    index: int,
    policy: Policy,
    seed: int,
    traffic: Traffic,
    extra_s: float,
    provider_factor: float,
    accounting: Accounting,
) -> RunResult | None:
    """One run in a worker process; ``None`` if the parent said stop before it began."""

    def progress(now: float) -> None:
        _progress[index] = now
        if _stop.is_set():
            raise KeyboardInterrupt

    if _stop.is_set():
        return None
    return run_once(
        policy,
        traffic,
        seed,
        on_progress=progress,
        extra_s=extra_s,
        provider_factor=provider_factor,
        accounting=accounting,
    )


def combine_runs(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Numbers become ``{"mean", "ci95", "min", "max"}`` across runs; other values come from the
    first run (budget exhaustion times: the earliest, and in how many runs it happened)."""
    combined: dict[str, Any] = _combine(summaries)
    return combined


def _combine(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for v in values if isinstance(v, dict) for k in v))
        return {k: _combine([v.get(k) for v in values if isinstance(v, dict)]) for k in keys}
    if isinstance(first, bool) or not isinstance(first, int | float):
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, str) for v in present):
            return {"earliest": min(present), "runs": len(present), "of": len(values)}
        return first
    numbers = [float(v) if isinstance(v, int | float) else 0.0 for v in values]
    mean = statistics.fmean(numbers)
    spread = statistics.stdev(numbers) if len(numbers) > 1 else 0.0
    half = t95(len(numbers) - 1) * spread / math.sqrt(len(numbers))
    return {
        "mean": round(mean, 6),
        "ci95": round(half, 6),
        "min": min(numbers),
        "max": max(numbers),
    }
