"""The summary document: what a simulation, or a file of usage records, comes to.

One shape, built here and only here, whoever fills it: :func:`keypolicy.sim.run.simulate_policy`
(from simulated runs) and :func:`keypolicy.report.records.records_summary` (from a runtime's
ledger or a simulation's records). It is what ``--json`` writes and what the report reads.

The counts (``domains``, ``pools``, ``projects``, ``keys``, ``totals``, ``alerts``) and the
per-minute ``series`` come from :class:`keypolicy.metrics.Metrics`; ``about`` says what was run,
on what, and what a reader should know about it (``warnings``). Several runs combined turn every
number into ``{"mean", "ci95", "min", "max"}`` (:func:`keypolicy.sim.run.combine_runs`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, TypedDict, cast

from keypolicy import __version__
from keypolicy.catalog import CATALOG_DATE
from keypolicy.core.pricing import format_usd
from keypolicy.policy.model import Policy

__all__ = ["DAYS_A_MONTH", "About", "Summary", "UsageLimit", "about", "summary", "usage_limit"]

DAYS_A_MONTH: Final = 30.0
"""The days a month's spend is projected over (from the spend per day)."""


class UsageLimit(TypedDict):
    """The organization's monthly usage limit against the month the traffic projects."""

    usd: float | None  # the limit (None: the policy states no tier nor usage_limit)
    tier: int | None
    projected_month_usd: float  # spend per day times DAYS_A_MONTH
    lasts_days: float | None  # days of this traffic until the limit stops every call


class About(TypedDict, total=False):
    """What was run, on what, and what a reader should know about it."""

    keypolicy: str
    pricing_catalog: str
    traffic: str
    traffic_description: str
    start: str  # ISO 8601, with its offset
    duration_s: float
    timezone: str
    tier: int | None
    usage_limit: UsageLimit
    generated: str
    warnings: list[str]
    # simulations only
    provider_factor: float
    provider: dict[str, Any]  # the accounting rules assumed and simulated
    # records only
    source: str
    records_note: str


class Summary(TypedDict, total=False):
    """The whole document (counts as :meth:`keypolicy.metrics.Metrics.summary` makes them)."""

    policy: str
    runs: int
    seed: int | None
    partial: bool
    domains: dict[str, Any]
    pools: dict[str, Any]
    projects: dict[str, Any]
    keys: dict[str, Any]
    totals: dict[str, Any]
    alerts: list[Any]
    series: dict[str, Any]
    about: About
    range: dict[str, Any]  # outcomes under several provider rules (keypolicy.sim.ranges)
    domain_priority: dict[str, str]  # records only: each domain's class, known without a policy
    priority_order: list[str]


def summary(
    name: str,
    counts: dict[str, Any],
    series: dict[str, Any],
    facts: About,
    *,
    runs: int = 1,
    seed: int | None = None,
    partial: bool = False,
) -> dict[str, Any]:
    """The document (a :class:`Summary`) for ``counts`` (what
    :class:`~keypolicy.metrics.Metrics` summed, or runs combined) and ``series``, under the
    policy (or file) ``name``. Readers index it freely, hence the plain dict it is returned as."""
    document: Summary = {
        "policy": name,
        "runs": runs,
        "seed": seed,
        "partial": partial,
        "domains": counts["domains"],
        "pools": counts["pools"],
        "projects": counts["projects"],
        "keys": counts["keys"],
        "totals": counts["totals"],
        "alerts": counts["alerts"],
        "series": series,
        "about": facts,
    }
    return cast(dict[str, Any], document)


def about(
    policy: Policy | None,
    *,
    traffic: str,
    description: str,
    start: str,
    duration_s: float,
    timezone: str,
    cost: Any,
    warnings: list[str],
    quota_refused: Any = 0,
    partial: bool = False,
) -> About:
    """The ``about`` section common to every summary; ``cost``: the traffic's total cost (a
    number, or runs combined), whose month is compared with the usage limit (a warning if it
    passes it); ``quota_refused``: the calls refused as past the limit (a warning if any);
    ``partial``: the run was cut short, so its cost says nothing of a whole month's."""
    org = policy.organization if policy is not None else None
    limit, warning = usage_limit(policy, cost, duration_s, quota_refused, partial)
    return {
        "keypolicy": __version__,
        "pricing_catalog": CATALOG_DATE,
        "traffic": traffic,
        "traffic_description": description,
        "start": start,
        "duration_s": duration_s,
        "timezone": timezone,
        "tier": org.tier if org is not None else None,
        "usage_limit": limit,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "warnings": [*warnings, warning] if warning else list(warnings),
    }


def usage_limit(
    policy: Policy | None,
    cost: Any,
    duration_s: float,
    quota_refused: Any = 0,
    partial: bool = False,
) -> tuple[UsageLimit, str]:
    """The organization's monthly usage limit against the spend projected for a month (spend
    per day times :data:`DAYS_A_MONTH`), and a warning when the projection passes it ("" if
    not): OpenAI refuses every call once the limit is reached, so a policy that fits its rate
    limits may still stop mid-month. A simulated month starts with nothing spent; the warning
    is what tells a day's simulation that the month will not last."""
    org = policy.organization if policy is not None else None
    limit = org.monthly_usage_limit() if org is not None else None
    spent = float(cost["mean"] if isinstance(cost, dict) else cost)
    per_day = spent * 86400.0 / duration_s if duration_s > 0 else 0.0
    projected = per_day * DAYS_A_MONTH
    found: UsageLimit = {
        "usd": limit,
        "tier": org.tier if org is not None else None,
        "projected_month_usd": round(projected, 2),
        "lasts_days": None,
    }
    refused = float(quota_refused["mean"] if isinstance(quota_refused, dict) else quota_refused)
    if org is None or limit is None:
        return found, ""
    assert policy is not None
    if refused > 0:  # reached within the traffic itself: the projection undercounts it
        found["lasts_days"] = round(limit / per_day, 1) if per_day > 0 else None
        return found, (
            f"{policy.name}: {refused:,.0f} calls were refused with insufficient_quota: the "
            f"organization's monthly usage limit ({_usd(limit)}) was reached within the "
            "traffic itself; raise the tier's limit or plan the spend below it"
        )
    if partial or projected <= limit:
        return found, ""
    lasts = limit / per_day
    found["lasts_days"] = round(lasts, 1)
    source = "organization.usage_limit" if org.usage_limit is not None else f"tier {org.tier}"
    warning = (
        f"{policy.name}: the spend projected for a month ({_usd(projected)}: {_usd(per_day)} a "
        f"day for {DAYS_A_MONTH:.0f} days) passes the organization's monthly usage limit "
        f"({_usd(limit)}, {source}); OpenAI refuses every call with insufficient_quota once it "
        f"is reached, after about {lasts:.1f} days of this traffic: raise the tier's limit or "
        "plan the spend below it"
    )
    return found, warning


def _usd(amount: float) -> str:
    """Whole dollars from $100 up (a month's spend), else as :func:`format_usd` writes them."""
    return f"${amount:,.0f}" if amount >= 100 else format_usd(amount)
