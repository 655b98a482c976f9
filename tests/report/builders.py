"""Hand-made summaries for the report tests, in the shape ``simulate_policy`` returns.

``row`` and ``summary`` build small summaries whose every number a test can predict;
``multi_run`` turns one into the several-runs shape; ``clinic_like`` builds a full-size day
(every series, every minute, noisy numbers) for a real policy, to measure the file size.
"""

from __future__ import annotations

import random
from typing import Any

from keypolicy.policy.model import Policy

START = "2026-11-18T00:00:00-05:00"
ABOUT = {
    "keypolicy": "0.1.0",
    "pricing_catalog": "2025-08-07",
    "traffic": "test-day",
    "traffic_description": "A made-up day for tests.",
    "start": START,
    "duration_s": 86400.0,
    "timezone": "America/New_York",
    "tier": 3,
    "generated": "2026-11-20T12:00:00+00:00",
}
NUMBERS = (
    "requests",
    "ok",
    "upstream_429",
    "retries",
    "rejected",
    "deferred",
    "batch",
    "wait_p50_s",
    "wait_p95_s",
    "wait_p99_s",
    "wait_max_s",
    "cost_usd",
    "prompt_tokens",
    "completion_tokens",
)


def row(
    requests: int = 100,
    *,
    rejected: int = 0,
    upstream_429: int = 0,
    retries: int = 0,
    deferred: int = 0,
    batch: int = 0,
    p95: float = 0.0,
    p99: float = 0.0,
    cost: float = 1.0,
    exhausted: str | None = None,
    outcomes: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One row of a summary (a domain, pool, project or key)."""
    ok = requests - rejected
    return {
        "requests": requests,
        "ok": ok,
        "upstream_429": upstream_429,
        "retries": retries,
        "rejected": rejected,
        "deferred": deferred,
        "batch": batch,
        "wait_p50_s": 0.0,
        "wait_p95_s": p95,
        "wait_p99_s": p99,
        "wait_max_s": p99,
        "cost_usd": cost,
        "prompt_tokens": requests * 1000,
        "completion_tokens": requests * 100,
        "budget_exhausted_at": exhausted,
        "outcomes": outcomes or ({"ok": ok, "rejected": rejected} if rejected else {"ok": ok}),
    }


def _totals(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = dict.fromkeys(NUMBERS, 0)
    for r in rows.values():
        for k in NUMBERS:
            total[k] = max(total[k], r[k]) if k.startswith("wait") else total[k] + r[k]
    times = [r["budget_exhausted_at"] for r in rows.values() if r["budget_exhausted_at"]]
    total["budget_exhausted_at"] = min(times) if times else None
    total["outcomes"] = {}
    return total


def summary(
    name: str,
    domains: dict[str, dict[str, Any]],
    *,
    keys: dict[str, dict[str, Any]] | None = None,
    series: dict[str, Any] | None = None,
    alerts: list[dict[str, Any]] | None = None,
    start: str = START,
) -> dict[str, Any]:
    """A one-run summary; pools, projects and keys repeat the domains unless given."""
    return {
        "policy": name,
        "runs": 1,
        "seed": 0,
        "partial": False,
        "domains": domains,
        "pools": dict(domains),
        "projects": dict(domains),
        "keys": keys if keys is not None else dict(domains),
        "totals": _totals(domains),
        "alerts": alerts or [],
        "series": series or {"minutes": 0},
        "about": {**ABOUT, "start": start},
    }


def _spread(value: Any, runs: int) -> Any:
    if isinstance(value, dict):
        return {k: _spread(v, runs) for k, v in value.items()}
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return {"mean": value, "ci95": value * 0.1, "min": value * 0.9, "max": value * 1.1}


def multi_run(one: dict[str, Any], runs: int = 3, exhausted_in: int = 2) -> dict[str, Any]:
    """The several-runs shape of a one-run summary: numbers as {mean, ci95, min, max} (the
    interval a tenth of the mean), exhaustion times as {earliest, runs, of}."""
    out = dict(one)
    out["runs"] = runs
    for section in ("domains", "pools", "projects", "keys"):
        out[section] = {
            name: _row_spread(r, runs, exhausted_in) for name, r in one[section].items()
        }
    out["totals"] = _row_spread(one["totals"], runs, exhausted_in)
    return out


def _row_spread(r: dict[str, Any], runs: int, exhausted_in: int) -> dict[str, Any]:
    spread = {k: _spread(v, runs) for k, v in r.items() if k != "budget_exhausted_at"}
    at = r.get("budget_exhausted_at")
    spread["budget_exhausted_at"] = (
        {"earliest": at, "runs": exhausted_in, "of": runs} if at else None
    )
    return spread


def clinic_like(policy: Policy, seed: int, minutes: int = 1500) -> dict[str, Any]:
    """A full-size noisy day for ``policy``: every row and every per-minute series filled,
    numbers with all their decimals (the worst case for the file size)."""
    rng = random.Random(seed)
    domains = {d: _noisy_row(rng) for d in policy.domains}
    uses: set[str] = set()
    for spec in policy.domains.values():
        for alias in policy.pools[spec.pool].keys:
            uses.add(f"{policy.keys[alias].project}/{spec.model}")

    def per_minute(scale: float, whole: bool = False) -> list[float]:
        values = [max(rng.gauss(scale, scale / 3), 0.0) for _ in range(minutes)]
        return [float(round(v)) if whole else round(v, 6) for v in values]

    tpm = {
        u: float(policy.projects[u.partition("/")[0]].models[u.partition("/")[2]].tpm or 1e5)
        for u in uses
    }
    classes = [p.name for p in policy.priorities]
    series = {
        "minutes": minutes,
        "arrivals": {d: per_minute(20, whole=True) for d in domains},
        "admitted_tokens": {u: per_minute(tpm[u] * 0.5, whole=True) for u in sorted(uses)},
        "admitted_requests": {u: per_minute(30, whole=True) for u in sorted(uses)},
        "rate_limited": {d: per_minute(2, whole=True) for d in domains},
        "queued": {c: per_minute(5, whole=True) for c in classes},
        "spend_usd": {d: per_minute(0.02) for d in domains},
        "max_wait_s": {c: per_minute(3.0) for c in classes},
    }
    out = summary(policy.name, domains, series=series)
    out["pools"] = {p: _noisy_row(rng) for p in policy.pools}
    out["projects"] = {p: _noisy_row(rng) for p in policy.projects}
    out["keys"] = {k: _noisy_row(rng) for k in policy.keys}
    out["alerts"] = [
        {"budget": b, "threshold": 0.8, "spent_usd": 12.345678, "at": "2026-11-18T17:00:00-05:00"}
        for b in policy.budgets
    ]
    return out


def _noisy_row(rng: random.Random) -> dict[str, Any]:
    requests = rng.randint(1000, 50000)
    r = row(
        requests,
        rejected=rng.randint(0, 200),
        upstream_429=rng.randint(0, 300),
        retries=rng.randint(0, 300),
        p95=rng.uniform(0, 10),
        p99=rng.uniform(0, 30),
        cost=rng.uniform(1, 300),
    )
    r["wait_p50_s"] = rng.uniform(0, 1)
    return r
