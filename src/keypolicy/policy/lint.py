"""Lint: a valid policy that is probably not what its author meant.

Warnings, not errors (``keypolicy check --strict`` makes them errors). Each finding names the
field to look at and what to do about it. The scan for literal secrets works on the file text and
lives in the loader, which has the text.
"""

from __future__ import annotations

from keypolicy.catalog import family, model_info
from keypolicy.policy.model import Domain, Limits, Policy
from keypolicy.policy.references import Finding
from keypolicy.policy.units import format_duration

__all__ = ["lint_policy", "max_request_cost"]


def lint_policy(policy: Policy) -> list[Finding]:
    """Every lint finding for a validated policy."""
    return [
        *_reserves(policy),
        *_limits_above_tiers(policy),
        *_small_budgets(policy),
        *_budgets_above_usage_limit(policy),
        *_unmeetable_waits(policy),
        *_unlimited_models(policy),
        *_limits_on_snapshots(policy),
    ]


def _reserves(policy: Policy) -> list[Finding]:
    found = []
    for i, prio in enumerate(policy.priorities):
        floor = policy.floor(prio.name)
        if floor >= 1.0:
            found.append(
                Finding(
                    ("priorities", i, "reserve"),
                    f"the classes above '{prio.name}' reserve {floor:.0%} of every limit, "
                    "which leaves this class nothing",
                    "lower the reserves above it",
                )
            )
    last = policy.priorities[-1]
    if last.reserve > 0 and len(policy.priorities) > 1:
        found.append(
            Finding(
                ("priorities", len(policy.priorities) - 1, "reserve"),
                f"'{last.name}' is the lowest class: its reserve protects nothing",
                "set it to 0, or move it to a higher class",
            )
        )
    return found


def _limits_above_tiers(policy: Policy) -> list[Finding]:
    places: list[tuple[tuple[str, ...], dict[str, Limits]]] = [
        (("projects", name, "models"), project.models) for name, project in policy.projects.items()
    ]
    if policy.organization is not None:
        places.append((("organization", "models"), policy.organization.models))
    found = []
    for base, models in places:
        for model, limits in models.items():
            info = model_info(model)
            if info is None:
                continue
            for dim, ceiling in (("rpm", info.max_rpm), ("tpm", info.max_tpm)):
                value = getattr(limits, dim)
                if value is not None and value > ceiling:
                    found.append(
                        Finding(
                            (*base, model, dim),
                            f"{dim} {value:,} is above the highest published tier for "
                            f"{model} ({ceiling:,})",
                            "check the number against your account's limits page",
                        )
                    )
    return found


def max_request_cost(policy: Policy, model: str) -> float | None:
    """USD of the largest request a model accepts (full context in, full output out)."""
    info = model_info(model)
    override = policy.pricing.overrides.get(model)
    if info is None:
        return None
    price_in = override.input if override else info.input
    price_out = override.output if override else info.output
    return (info.context_window * price_in + info.max_output * price_out) / 1e6


def _covered_domains(policy: Policy, scope: str, name: str | None) -> list[str]:
    def keys_of(domain: Domain) -> list[str]:
        return policy.pools[domain.pool].keys

    out = []
    for dname, domain in policy.domains.items():
        projects = {policy.keys[k].project for k in keys_of(domain)}
        if (
            scope == "all"
            or (scope == "domain" and name == dname)
            or (scope == "pool" and name == domain.pool)
            or (scope == "key" and name in keys_of(domain))
            or (scope == "project" and name in projects)
        ):
            out.append(dname)
    return out


def _small_budgets(policy: Policy) -> list[Finding]:
    found = []
    for bname, budget in policy.budgets.items():
        for dname in _covered_domains(policy, budget.applies_to.scope, budget.applies_to.name):
            cost = max_request_cost(policy, policy.domains[dname].model)
            if cost is not None and budget.usd < cost:
                found.append(
                    Finding(
                        ("budgets", bname, "usd"),
                        f"${budget.usd:g} is less than one request of domain '{dname}' "
                        f"can cost (${cost:.2f} at full context and output)",
                        "raise the budget or cap the domain's requests",
                    )
                )
                break
    return found


_LONGEST_MONTH_S = 31 * 86400.0
_PERIODS_IN_A_MONTH = {"day": 31.0, "week": 6.0, "month": 1.0}
"""The most calendar periods a month can spend a budget in: 31 days, 6 weeks (a 31-day month
touches six ISO weeks when it starts on a Sunday), 1 month."""


def _budgets_above_usage_limit(policy: Policy) -> list[Finding]:
    """Budgets that let more be spent in a month than the organization's monthly usage limit:
    OpenAI refuses every call once the limit is reached, so such a budget never acts. The worst
    month counts (the longest, the most weeks), not an average one: this is a bound."""
    org = policy.organization
    limit = org.monthly_usage_limit() if org is not None else None
    if limit is None:
        return []
    assert org is not None
    source = (
        f"organization.usage_limit ${limit:,.0f}"
        if org.usage_limit is not None
        else f"tier {org.tier}'s ${limit:,.0f}"
    )
    found = []
    for bname, budget in policy.budgets.items():
        if isinstance(budget.per, str):
            periods = _PERIODS_IN_A_MONTH[budget.per]
        else:  # a rolling budget: full at the start, then refilled over the whole month
            periods = 1.0 + _LONGEST_MONTH_S / budget.per
        month = budget.usd * periods
        if month > limit:
            if budget.per == "month":
                allows = f"${budget.usd:,.0f} a month is"
            else:
                per = f"per {budget.per}" if isinstance(budget.per, str) else "per window"
                allows = f"${budget.usd:,.0f} {per} allows up to ${month:,.0f} in a month,"
            found.append(
                Finding(
                    ("budgets", bname, "usd"),
                    f"{allows} above the organization's monthly usage limit ({source}): OpenAI "
                    "refuses every call with insufficient_quota before this budget is spent",
                    "keep the budget below the usage limit, or state the organization's real "
                    "limit (organization.usage_limit) or tier",
                )
            )
    return found


def _unmeetable_waits(policy: Policy) -> list[Finding]:
    found = []
    for dname, domain in policy.domains.items():
        prio = policy.priorities[policy.priority_index(domain.priority)]
        waits = [w for w in (domain.max_wait, prio.max_wait) if w is not None]
        if not waits:
            continue
        max_wait = min(waits)
        share = 1.0 - policy.floor(domain.priority)
        if share <= 0:
            found.append(
                Finding(
                    ("domains", dname, "max_wait"),
                    f"max_wait {format_duration(max_wait)} can never be met: class "
                    f"'{prio.name}' may use no capacity at all",
                    "lower the reserves of the classes above it",
                )
            )
            continue
        for alias in policy.pools[domain.pool].keys:
            project = policy.keys[alias].project
            limits = policy.projects[project].models.get(domain.model)
            if limits is None or limits.rpm is None:
                continue
            refill = 60.0 / (limits.rpm * share)
            if max_wait < refill:
                found.append(
                    Finding(
                        ("domains", dname, "max_wait"),
                        f"max_wait {format_duration(max_wait)} is shorter than the "
                        f"{format_duration(round(refill, 3))} one request needs to "
                        f"refill in project '{project}' at this class's share",
                        "any queueing at all will break it: raise max_wait or the limit",
                    )
                )
                break
    return found


def _unlimited_models(policy: Policy) -> list[Finding]:
    found = []
    org_models = policy.organization.models if policy.organization else {}
    for dname, domain in policy.domains.items():
        for model in domain.allowed_models():
            drawn = family(model)  # a dated snapshot draws on its family's limits
            for alias in policy.pools[domain.pool].keys:
                project = policy.keys[alias].project
                if drawn not in policy.projects[project].models and drawn not in org_models:
                    found.append(
                        Finding(
                            ("domains", dname, "model" if model == domain.model else "models"),
                            f"project '{project}' (key '{alias}') declares no limits for "
                            f"{drawn}: keypolicy cannot pace it there",
                            f"add projects.{project}.models.{drawn}",
                        )
                    )
                    break
    return found


def _limits_on_snapshots(policy: Policy) -> list[Finding]:
    """Limits declared for a dated snapshot: OpenAI counts it under its family's limits, and so
    does keypolicy, so these limits would pace nothing."""
    places: list[tuple[tuple[str, ...], dict[str, Limits]]] = [
        (("projects", name, "models"), project.models) for name, project in policy.projects.items()
    ]
    if policy.organization is not None:
        places.append((("organization", "models"), policy.organization.models))
    found = []
    for base, models in places:
        for model in models:
            if family(model) != model:
                found.append(
                    Finding(
                        (*base, model),
                        f"{model} is a dated snapshot of {family(model)}: OpenAI counts it under "
                        f"{family(model)}'s limits, and so does keypolicy; these pace nothing",
                        f"declare the limits for {family(model)}",
                    )
                )
    return found
