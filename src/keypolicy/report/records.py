"""A summary rebuilt from usage records, for ``keypolicy report RECORDS``.

Records carry one line per request whoever wrote them (a simulation's ``--records`` CSV or the
runtime's ledger: SQLite, JSON lines or CSV), so the same report can be drawn from either.
The summary has the shape :func:`keypolicy.sim.run.simulate_policy` returns
(:mod:`keypolicy.summary` builds both), counted by the same :class:`~keypolicy.metrics.Metrics`.
Records know less than a simulation saw, and ``about.records_note`` says what that costs: 429s
count only the attempts of requests that gave up on them, and demand is each answered request's
admission charge once (prompt + max_tokens as asked; prompt + completion tokens in files written
before records carried what was asked). Without a policy there are no pools and no limits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from keypolicy.ledger_pg import PostgresURL
from keypolicy.metrics import Metrics
from keypolicy.policy.model import Policy
from keypolicy.recordfiles import iter_usage_records
from keypolicy.records import UsageRecord
from keypolicy.summary import about, summary

__all__ = ["read_records", "records_summary"]


def read_records(path: Path | PostgresURL) -> Iterator[UsageRecord]:
    """The records of a file, one at a time: a ledger (``.sqlite``, ``.jsonl``, ``.csv``, see
    :mod:`keypolicy.ledger`), Parquet (with pyarrow), or CSV whatever its suffix, gzip too
    (``.csv.gz``). A bad cell, a truncated or binary file: a ValueError naming the file, line,
    column and what to do (:func:`keypolicy.recordfiles.iter_usage_records`)."""
    return iter_usage_records(path)


def _queue_depths(
    metrics: Metrics, spans: dict[str, list[tuple[float, float]]], start: float
) -> None:
    """Requests waiting per class at each minute's start, from (submitted, started) spans."""
    for cls, pairs in spans.items():
        diff: dict[int, int] = defaultdict(int)
        for begin, end in pairs:
            first, last = -int(-(begin - start) // 60), -int(-(end - start) // 60)
            if last > first:
                diff[first] += 1
                diff[last] -= 1
        depth = 0
        for minute in range(metrics.minutes):
            depth += diff.get(minute, 0)
            metrics.queue_depth({cls: depth}, start + minute * 60)


def records_summary(path: Path | PostgresURL, policy: Policy | None = None) -> dict[str, Any]:
    """A summary of the usage records in ``path`` (the shape :func:`simulate_policy` returns),
    with ``domain_priority`` ({domain: class}) so that the report knows the classes even
    without a policy. Raises ValueError for a file that is not usage records."""
    zone = policy.timezone if policy is not None else "UTC"
    first, last, count = float("inf"), float("-inf"), 0
    domains: dict[str, str] = {}
    for r in read_records(path):
        first, last, count = min(first, r.submitted), max(last, r.submitted), count + 1
        domains[r.domain] = r.priority
    if not count:
        raise ValueError(f"{path}: no usage records in it")
    local = datetime.fromtimestamp(first, ZoneInfo(zone))
    start = local.replace(minute=0, second=0, microsecond=0).timestamp()
    pools = {
        d: (policy.domains[d].pool if policy and d in policy.domains else "?") for d in domains
    }
    metrics = Metrics(start, zone, pools, domains)
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in read_records(path):
        metrics.arrival(r.domain, r.submitted)
        if r.started is not None and r.outcome == "ok":
            charge = (
                r.requested_prompt_tokens + r.requested_max_tokens
                if r.requested_max_tokens
                else r.prompt_tokens + r.completion_tokens
            )
            metrics.admitted(r.project, r.model, charge, r.started)
        for _ in range(max(r.attempts - 1, 0)):
            metrics.retry(r.domain)
        if r.outcome == "upstream_429":
            for _ in range(max(r.attempts, 1)):
                metrics.rate_limit(r.domain, r.project, r.finished)
        if not r.batch:
            spans[r.priority].append(
                (r.submitted, r.started if r.started is not None else r.finished)
            )
        metrics.record(r)
    _queue_depths(metrics, spans, start)
    counts = metrics.summary()
    if policy is None:
        counts["pools"] = {}
    hours = max(-int(-(last - start) // 3600), 1)
    facts = about(
        policy,
        traffic=path.name,
        description=f"{count:,} usage records read from {path.name}.",
        start=datetime.fromtimestamp(start, ZoneInfo(zone)).isoformat(timespec="seconds"),
        duration_s=hours * 3600.0,
        timezone=zone,
        cost=counts["totals"]["cost_usd"],
        warnings=[],
        quota_refused=counts["totals"]["reasons"].get("quota", 0),
    )
    facts["source"] = "records"
    facts["records_note"] = (
        "Rebuilt from usage records: upstream 429s count only the attempts of requests "
        "that gave up on 429s, and demand counts each answered request's admission "
        "charge once (prompt + max_tokens as asked)."
    )
    document = summary(
        policy.name if policy is not None else path.name, counts, metrics.series(), facts
    )
    document["domain_priority"] = dict(sorted(domains.items()))
    document["priority_order"] = [p.name for p in policy.priorities] if policy is not None else []
    return document
