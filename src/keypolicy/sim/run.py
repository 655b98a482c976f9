"""Running simulations: one policy or several variants, one seed or several, with summaries.

Every variant sees the same arrivals for a given seed (common random numbers): the traffic is
generated from the seed alone, never from the policy. ``--runs K`` repeats with seeds
``seed .. seed+K-1`` and reports each number as a mean with a 95% interval.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from keypolicy import __version__
from keypolicy.catalog import CATALOG_DATE
from keypolicy.policy.model import Policy
from keypolicy.records import UsageRecord
from keypolicy.sim.driver import Simulation
from keypolicy.sim.traffic import Traffic
from keypolicy.upstream import ProviderLimits

__all__ = ["combine_runs", "simulate_policy"]

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


def _t95(df: int) -> float:
    return next((t for d, t in sorted(_T95.items()) if df <= d), 1.96)


def simulate_policy(
    policy: Policy,
    traffic: Traffic,
    seeds: list[int],
    *,
    on_record: Callable[[UsageRecord], None] | None = None,
    on_progress: Callable[[int, float], None] | None = None,
    extra_s: float = 26 * 3600.0,
    provider_factor: float = 1.0,
) -> dict[str, Any]:
    """Simulate ``policy`` under ``traffic`` once per seed; return the summary (one run) or the
    summaries combined (means with 95% intervals) with the per-minute series of the first run.

    ``on_progress(run_index, simulated_seconds)`` is called as time advances; ``extra_s`` is how
    long after the traffic ends parked requests may still finish (deferral deadlines, batches);
    ``provider_factor`` scales the provider's real limits against the declared ones (0.8: the
    provider allows 20% less than the policy believes, so 429s and learning come into play).
    """
    start = traffic.start.timestamp()
    summaries: list[dict[str, Any]] = []
    series: dict[str, Any] | None = None
    partial = False
    for i, seed in enumerate(seeds):

        def progress(now: float, i: int = i) -> None:
            if on_progress is not None:
                on_progress(i, now)

        sim = Simulation(
            policy,
            traffic.arrivals(seed),
            start,
            seed,
            provider_limits=ProviderLimits.from_policy(policy, factor=provider_factor),
            on_record=on_record if i == 0 else None,
            on_progress=progress,
        )
        try:
            metrics = sim.run(until=traffic.duration_s + extra_s)
        except KeyboardInterrupt:  # stop cleanly: what was simulated so far is summarised
            partial = True
            metrics = sim.metrics
        summaries.append(metrics.summary())
        if series is None:
            series = metrics.series()
        if partial:
            break
    summary = summaries[0] if len(summaries) == 1 else combine_runs(summaries)
    return {
        "policy": policy.name,
        "runs": len(summaries),
        "seed": seeds[0],
        "partial": partial,
        **summary,
        "series": series,
        "about": {
            "keypolicy": __version__,
            "pricing_catalog": CATALOG_DATE,
            "traffic": traffic.name,
            "traffic_description": traffic.description,
            "start": traffic.start.isoformat(),
            "duration_s": traffic.duration_s,
            "timezone": policy.timezone,
            "tier": policy.organization.tier if policy.organization else None,
            "provider_factor": provider_factor,
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }


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
    half = _t95(len(numbers) - 1) * spread / math.sqrt(len(numbers))
    return {
        "mean": round(mean, 6),
        "ci95": round(half, 6),
        "min": min(numbers),
        "max": max(numbers),
    }
