"""Building a candidate policy from the base policy and a grouping of its domains.

The rule (documented in README.md, "Which keys to merge"):

- **one project and one pool per group of domains.** Its limits, per model and per limit
  (rpm, rpd, tpm, tpd), are those of the projects it replaces added up, capped by the
  organization's (``LimitRule`` ``"sum"``, the default: merging moves capacity around, it never
  invents any). A base project that served several domains lends each of them an equal share
  (a project of three domains: a third each), so splitting a shared project never counts its
  capacity twice. A limit one of the replaced projects leaves unset stays unset (the project
  was not limited there). The other rule, ``"organization"``: every pool's project may use up
  to the organization's limits (as when the administrators cap nothing per project); a model
  the organization sets no limits for keeps the summed ones.
- **one key per domain, kept for attribution:** the key named as the domain (or the keys of a
  pool that served it alone), moved to its group's project; a domain without one gets a new
  key ``DOMAIN`` read from ``KEYPOLICY_KEY_<DOMAIN>`` (the written policy says so). Keys no
  domain keeps are removed.
- everything else unchanged: priorities and reserves, each domain's class, models, deferral,
  budgets, retry, pricing, provider and state.
- a group that is exactly one of the base's groups (its pool, and projects no other domain
  uses) keeps its pool, keys and project as they are under ``"sum"``: the base policy is one
  of the candidates, unchanged.

Budgets scoped to a pool or project cannot follow pools that change; a base with such a budget
is refused (:class:`BaseError`) with what to write instead.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from keypolicy.advise.partitions import Grouping
from keypolicy.policy.model import Policy

__all__ = ["BaseError", "Candidate", "LimitRule", "base_grouping", "build_candidate", "label"]

LimitRule = Literal["sum", "organization"]

_LIMITS = ("rpm", "rpd", "tpm", "tpd")


class BaseError(ValueError):
    """A base policy the advisor cannot regroup (a budget on a pool or project)."""


@dataclass(frozen=True)
class Candidate:
    """One grouping made into a policy.

    ``index``: its place in the enumeration; ``pools``: each pool's name and domains;
    ``projects``: pool name -> its project's name; ``keys``: keys to manage.
    """

    index: int
    grouping: Grouping
    policy: Policy
    pools: dict[str, frozenset[str]]
    projects: dict[str, str]
    is_base: bool

    @property
    def label(self) -> str:
        """The grouping for people: ``chat | diagnosis+xray | ...``."""
        return label(self.grouping)

    @property
    def key_count(self) -> int:
        """Keys to manage."""
        return len(self.policy.keys)

    @property
    def blast_radius(self) -> int:
        """The most domains one pool's overload can reach (they share its project's limits)."""
        return max(len(domains) for domains in self.pools.values())


def label(grouping: Grouping) -> str:
    """``a+b | c``: pools separated by bars, domains within a pool by plus signs."""
    return " | ".join("+".join(sorted(pool)) for pool in grouping)


def _projects_of(policy: Policy, domain: str) -> set[str]:
    pool = policy.pools[policy.domains[domain].pool]
    return {policy.keys[k].project for k in pool.keys}


def base_grouping(policy: Policy) -> Grouping:
    """The base policy's own grouping: domains that share a pool or a project share a group
    (they share capacity)."""
    parent = {d: d for d in policy.domains}

    def root(d: str) -> str:
        while parent[d] != d:
            d = parent[d]
        return d

    owner: dict[str, str] = {}
    for domain in sorted(policy.domains):
        for project in sorted(_projects_of(policy, domain)):
            if project in owner:
                parent[root(domain)] = root(owner[project])
            else:
                owner[project] = domain
    groups: dict[str, set[str]] = defaultdict(set)
    for domain in policy.domains:
        groups[root(domain)].add(domain)
    return tuple(sorted((frozenset(g) for g in groups.values()), key=min))


def check_base(policy: Policy) -> None:
    """Raise :class:`BaseError` if ``policy`` cannot be regrouped."""
    if len(policy.domains) < 2:
        raise BaseError(
            f"{policy.name} has one domain ({', '.join(policy.domains)}): there is nothing to "
            "group; the advisor needs a policy with two domains or more"
        )
    for name, budget in policy.budgets.items():
        if budget.applies_to.scope in ("pool", "project"):
            raise BaseError(
                f"budgets.{name} applies to {budget.applies_to.scope} "
                f"{budget.applies_to.name!r}, which regrouping replaces: make it apply to the "
                "domains or keys it is meant for (applies_to: {domain: NAME}), or to all"
            )


def _env_name(domain: str) -> str:
    return "KEYPOLICY_KEY_" + re.sub(r"[^A-Za-z0-9]", "_", domain).upper()


def domain_keys(policy: Policy, domain: str) -> list[str]:
    """The keys a domain keeps: the key named as the domain in its pool, else the keys of a pool
    that served it alone, else none (it gets a new key)."""
    pool_name = policy.domains[domain].pool
    pool = policy.pools[pool_name]
    if domain in pool.keys:
        return [domain]
    served = [d for d, spec in policy.domains.items() if spec.pool == pool_name]
    return list(pool.keys) if served == [domain] else []


def _share(policy: Policy) -> dict[str, dict[str, Fraction]]:
    """project -> domain -> the share of the project's limits the domain brings along."""
    users: dict[str, list[str]] = defaultdict(list)
    for domain in sorted(policy.domains):
        for project in _projects_of(policy, domain):
            users[project].append(domain)
    return {p: {d: Fraction(1, len(ds)) for d in ds} for p, ds in users.items()}


def _limits(policy: Policy, group: frozenset[str], rule: LimitRule) -> dict[str, Any]:
    """The group's project's models and limits, as policy data."""
    shares = _share(policy)
    summed: dict[str, dict[str, Fraction | None]] = {}
    quanta: dict[str, set[float | None]] = defaultdict(set)
    for project, users in sorted(shares.items()):
        share = sum((users[d] for d in group if d in users), Fraction(0))
        if not share:
            continue
        for model, limits in policy.projects[project].models.items():
            into = summed.setdefault(model, {f: Fraction(0) for f in _LIMITS})
            quanta[model].add(limits.quantum)
            for field in _LIMITS:
                value, total = getattr(limits, field), into[field]
                into[field] = None if value is None or total is None else total + share * value
    org = policy.organization.models if policy.organization else {}
    models: dict[str, Any] = {}
    for model, fields in summed.items():
        cap = org.get(model)
        given: dict[str, Any] = {}
        for field in _LIMITS:
            value = fields[field]
            top = getattr(cap, field) if cap is not None else None
            if rule == "organization" and top is not None:
                given[field] = top
            elif value is not None:
                amount = int(value)  # whole requests and tokens, never rounded up
                given[field] = amount if top is None else min(amount, top)
        (quantum,) = quanta[model] if len(quanta[model]) == 1 else (None,)
        if quantum is not None:
            given["quantum"] = quantum
        if given:
            models[model] = given
    return {"models": models}


def _kept_as_is(policy: Policy, group: frozenset[str], rule: LimitRule) -> str | None:
    """The base pool serving exactly ``group`` from projects nobody else uses, if any (kept)."""
    if rule != "sum":
        return None
    pools = {policy.domains[d].pool for d in group}
    if len(pools) != 1:
        return None
    (pool,) = pools
    served = {d for d, spec in policy.domains.items() if spec.pool == pool}
    if served != group:
        return None
    projects = _projects_of(policy, min(group))
    others = {d for d in policy.domains if d not in group and _projects_of(policy, d) & projects}
    return None if others else pool


def build_candidate(
    base: Policy, grouping: Grouping, index: int, rule: LimitRule = "sum"
) -> Candidate:
    """The candidate policy for ``grouping`` (every domain of ``base`` in exactly one pool)."""
    data = base.model_dump(mode="json", exclude_none=True)
    data.pop("extends", None)
    data["name"] = f"{base.name}-candidate-{index}"
    data["description"] = f"{base.name} regrouped: {label(grouping)}"
    used = {p for d in base.domains for p in _projects_of(base, d)}
    projects = {p: v for p, v in data["projects"].items() if p not in used}
    pools: dict[str, Any] = {}
    keys: dict[str, Any] = {}
    names: dict[str, frozenset[str]] = {}
    project_of: dict[str, str] = {}
    for group in grouping:
        kept = _kept_as_is(base, group, rule)
        if kept is not None:
            pools[kept] = data["pools"][kept]
            for key in base.pools[kept].keys:
                keys[key] = data["keys"][key]
                projects[base.keys[key].project] = data["projects"][base.keys[key].project]
            names[kept] = group
            project_of[kept] = base.keys[base.pools[kept].keys[0]].project
            continue
        name = _free("-".join(sorted(group)), set(pools) | set(projects))
        projects[name] = _limits(base, group, rule)
        members: list[str] = []
        for domain in sorted(group):
            own = domain_keys(base, domain)
            for key in own:
                keys[key] = {**data["keys"][key], "project": name}
            if not own:
                alias = _free(domain, set(keys) | set(base.keys))
                keys[alias] = {"project": name, "env": _env_name(domain)}
                own = [alias]
            members += own
        strategy = base.pools[base.domains[min(group)].pool].strategy
        pools[name] = {"keys": members, "strategy": strategy}
        names[name] = group
        project_of[name] = name
        for domain in group:
            data["domains"][domain]["pool"] = name
    for kept_pool, group in names.items():
        for domain in group:
            data["domains"][domain]["pool"] = kept_pool
    data.update(projects=projects, pools=pools, keys=keys)
    policy = Policy.model_validate(data)
    return Candidate(
        index,
        grouping,
        policy,
        names,
        project_of,
        is_base=set(grouping) == set(base_grouping(base)),
    )


def _free(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... whichever is not taken."""
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"
