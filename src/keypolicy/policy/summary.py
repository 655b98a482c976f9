"""A person's view of a loaded policy: who draws on what, who goes first, what it may spend."""

from __future__ import annotations

from keypolicy.policy.loader import LoadedPolicy
from keypolicy.policy.model import Budget, Limits, ProviderAccounting
from keypolicy.policy.units import format_duration

__all__ = ["summarize"]


def _limits(limits: Limits) -> str:
    parts = [
        f"{value:,} {dim.upper()}"
        for dim in ("rpm", "rpd", "tpm", "tpd")
        if (value := getattr(limits, dim)) is not None
    ]
    if limits.quantum is not None:
        parts.append(f"in {format_duration(limits.quantum)} slices")
    return ", ".join(parts) or "no limits"


def _provider(rules: ProviderAccounting) -> list[str]:
    """How the policy assumes the provider counts (``provider:``), a rule a line."""

    def sliced(value: float | None) -> str:
        return "per whole minute" if value is None else f"in {format_duration(value)} slices"

    yes_no = {True: "yes", False: "no"}
    return [
        "Provider accounting assumed (undocumented by OpenAI; simulate --assume varies it)",
        f"  unused max_tokens given back at completion: {yes_no[rules.refund_unused]} "
        f"(refund_unused: {str(rules.refund_unused).lower()})",
        f"  refused requests count against RPM: {yes_no[rules.count_failed]} "
        f"(count_failed: {str(rules.count_failed).lower()})",
        f"  request limits spent {sliced(rules.quantum_requests)} (quantum_requests)",
        f"  token limits spent {sliced(rules.quantum_tokens)} (quantum_tokens)",
    ]


def _budget(name: str, budget: Budget, default_zone: str) -> str:
    scope = budget.applies_to
    target = "everything" if scope.scope == "all" else f"{scope.scope} {scope.name}"
    if isinstance(budget.per, str):
        period = f"per {budget.per} ({budget.timezone or default_zone})"
    else:
        period = f"per rolling {format_duration(budget.per)}"
    action: str = budget.on_exhausted.action
    if budget.on_exhausted.model:
        action += f" to {budget.on_exhausted.model}"
    alerts = ", ".join(f"{a:.0%}" for a in budget.alert_at)
    return f"{name}: ${budget.usd:,.2f} {period} on {target}; alerts at {alerts}; then {action}"


def summarize(loaded: LoadedPolicy) -> list[str]:
    """The policy as lines of plain text, for ``keypolicy check``."""
    p = loaded.policy
    lines = [f"{p.name}: valid"]
    if len(loaded.files) > 1:
        lines.append("  from " + " <- ".join(reversed(loaded.files)))
    if p.description:
        lines.append(f"  {p.description}")
    org = p.organization
    if org is not None:
        tier = f", usage tier {org.tier}" if org.tier else ""
        limit = org.monthly_usage_limit()
        usage = f", monthly usage limit ${limit:,.0f}" if limit is not None else ""
        lines.append(f"  organization {org.id or '(unnamed)'}{tier}{usage}")
        lines += [f"    {model}: {_limits(lim)}" for model, lim in org.models.items()]
    lines.append("")
    lines.append("Domains -> pools -> keys -> projects")
    for name, d in p.domains.items():
        pool = p.pools[d.pool]
        keys = ", ".join(pool.keys)
        projects = ", ".join(dict.fromkeys(p.keys[k].project for k in pool.keys))
        defer = "" if d.defer.mode == "never" else f", defer {d.defer.mode}"
        models = "/".join(d.allowed_models())
        lines.append(
            f"  {name} [{d.priority}, {models}{defer}] -> pool {d.pool} "
            f"({pool.strategy}) -> keys {keys} -> project {projects}"
        )
    lines.append("")
    lines.append("Projects (all keys of a project share its limits)")
    for name, project in p.projects.items():
        members = [a for a, k in p.keys.items() if k.project == name]
        lines.append(f"  {name}: keys {', '.join(members) or '(none)'}")
        lines += [f"    {model}: {_limits(lim)}" for model, lim in project.models.items()]
    lines.append("")
    lines.append(
        "Priorities (most urgent first; shares are of limits shared with every class above)"
    )
    for i, prio in enumerate(p.priorities, start=1):
        wait = f", max_wait {format_duration(prio.max_wait)}" if prio.max_wait is not None else ""
        defer = ", deferrable" if prio.deferrable else ""
        usable = 1 - p.floor(prio.name)
        lines.append(
            f"  {i}. {prio.name}: reserve {prio.reserve:.0%}, may use {usable:.0%} "
            f"of a shared limit{wait}{defer}"
        )
    if p.budgets:
        lines.append("")
        lines.append("Budgets")
        lines += [f"  {_budget(n, b, p.timezone)}" for n, b in p.budgets.items()]
    lines.append("")
    lines += _provider(p.provider)
    r = p.retry
    lines.append("")
    lines.append(
        f"Retry: up to {r.max_attempts} attempts, backoff {format_duration(r.backoff.initial)}"
        f"..{format_duration(r.backoff.max)} ({r.backoff.jitter} jitter)"
        f"{', honours retry-after' if r.honor_retry_after else ''}"
        f"{', honours reset headers' if r.honor_reset_headers else ''}"
    )
    return lines
