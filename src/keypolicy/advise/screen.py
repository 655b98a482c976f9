"""The screen's units: the parts of a candidate that can be simulated apart.

Two pools interact when they draw on a common bucket: the organization's limits of a model
both call (a request waiting there also claims the organization's bucket, holding back less
urgent classes of other pools: the engine's rule), and nothing else that matters much. So the
domains fall into *components*: the models linked by a domain that may call both, each
component with the domains calling its models. A candidate's part in one component (its pools
cut down to that component's domains, keys and project limits as in the candidate) runs apart
from the rest with the traffic of those domains alone, arrival for arrival as in the whole
(each domain's arrivals come from streams of their own). Every score is a sum or a maximum over
domains, so a candidate's screened scores are its parts' measures merged
(:func:`keypolicy.advise.scores.merge`). What parts still share (budgets on everything, the order
of the provider model's random draws, a model the organization does not limit) is what the
screen's error margin is there for.

Many candidates share a part (the clinic: 203 candidates, two components of three domains,
five parts each: ten runs a seed instead of 203).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from keypolicy.advise.candidates import Candidate
from keypolicy.policy.model import Policy

__all__ = ["components", "part_key", "part_policy"]


def _models(policy: Policy, domain: str) -> set[str]:
    spec = policy.domains[domain]
    models = set(spec.allowed_models())
    for budget in policy.budgets.values():  # a downgrade sends the domain to another model
        if budget.on_exhausted.model is not None:
            models.add(budget.on_exhausted.model)
    return models


def components(policy: Policy) -> list[frozenset[str]]:
    """The domains in groups that never share a bucket, whatever the grouping (sorted)."""
    parent: dict[str, str] = {}

    def root(m: str) -> str:
        while parent.setdefault(m, m) != m:
            m = parent[m]
        return m

    for domain in policy.domains:
        first, *others = sorted(_models(policy, domain))
        for model in others:
            parent[root(model)] = root(first)
    groups: dict[str, set[str]] = {}
    for domain in policy.domains:
        groups.setdefault(root(min(_models(policy, domain))), set()).add(domain)
    return sorted((frozenset(g) for g in groups.values()), key=min)


def part_policy(candidate: Candidate, domains: Iterable[str]) -> Policy:
    """``candidate``'s policy cut down to ``domains`` (one component): their pools (every key
    of a pool kept: keys of one pool share its project's limits, so which of them a request
    goes out on changes nothing that is scored), those pools' projects, and the budgets on
    everything or on what is kept."""
    policy = candidate.policy
    kept = set(domains)
    pools = {policy.domains[d].pool for d in kept}
    keys = {k for p in pools for k in policy.pools[p].keys}
    projects = {policy.keys[k].project for k in keys}
    budgets = {
        name: b
        for name, b in policy.budgets.items()
        if b.applies_to.scope == "all"
        or (b.applies_to.scope == "domain" and b.applies_to.name in kept)
        or (b.applies_to.scope == "key" and b.applies_to.name in keys)
    }
    return policy.model_copy(
        update={
            "name": f"{policy.name}-part",
            "domains": {d: s for d, s in policy.domains.items() if d in kept},
            "pools": {p: v for p, v in policy.pools.items() if p in pools},
            "keys": {k: v for k, v in policy.keys.items() if k in keys},
            "projects": {p: v for p, v in policy.projects.items() if p in projects},
            "budgets": budgets,
        }
    )


def part_key(candidate: Candidate, domains: Iterable[str]) -> str:
    """What makes two candidates' parts the same simulation: the part policy's pools (domains,
    strategy) and their projects' limits, as canonical text."""
    part = part_policy(candidate, domains)
    models = {m for d in part.domains for m in _models(part, d)}

    def limits(project: str) -> str:
        limits = part.projects[project].models
        return json.dumps(
            {m: v.model_dump(mode="json") for m, v in limits.items() if m in models},
            sort_keys=True,
        )

    shape = sorted(
        [
            sorted(d for d, s in part.domains.items() if s.pool == name),
            pool.strategy,
            sorted(limits(p) for p in {part.keys[k].project for k in pool.keys}),
        ]
        for name, pool in part.pools.items()
    )
    return json.dumps(shape)
