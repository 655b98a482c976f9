"""Governance: what an option's shape means for the people who run it, from the policy alone.

Per option: how many functions (domains) share a key and a project, what revoking one key
stops, whether the provider's usage pages (which show spend per project and per API key) still
show each function's spend, and how many functions share a project with a function of another
priority class (what the decision's tie-break reads: a shared project means one function's
burst, a lowered limit or a project-wide incident reaches the others).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keypolicy.policy.model import Policy

__all__ = ["Shape", "governance_rows", "shape"]


@dataclass(frozen=True, slots=True)
class Shape:
    """The governance facts of one policy."""

    domains: int
    keys: int
    projects: int
    domains_by_key: dict[str, list[str]]  # key -> the domains whose pool draws on it
    domains_by_project: dict[str, list[str]]
    only_key_of: dict[str, list[str]]  # key -> domains that stop when it is revoked
    mixed_keys: dict[str, list[str]]  # keys carrying more than one domain
    mixed_classes: dict[str, list[str]]  # domain -> domains of other classes in its projects

    @property
    def attribution(self) -> bool:
        """Whether every key carries one function: the provider then shows spend per function."""
        return not self.mixed_keys

    @property
    def mixing(self) -> int:
        """Pairs of functions of different priority classes that share a project."""
        return sum(len(v) for v in self.mixed_classes.values()) // 2


def shape(policy: Policy) -> Shape:
    """The governance facts of ``policy``."""
    by_key: dict[str, list[str]] = {k: [] for k in policy.keys}
    by_project: dict[str, list[str]] = {p: [] for p in policy.projects}
    for domain, spec in policy.domains.items():
        keys = policy.pools[spec.pool].keys
        for alias in keys:
            by_key[alias].append(domain)
        for project in dict.fromkeys(policy.keys[alias].project for alias in keys):
            by_project[project].append(domain)
    only = {
        alias: [d for d, s in policy.domains.items() if policy.pools[s.pool].keys == [alias]]
        for alias in policy.keys
    }
    mixed_classes: dict[str, list[str]] = {}
    for domain, spec in policy.domains.items():
        others = {
            other
            for members in by_project.values()
            if domain in members
            for other in members
            if policy.domains[other].priority != spec.priority
        }
        if others:
            mixed_classes[domain] = sorted(others, key=list(policy.domains).index)
    return Shape(
        domains=len(policy.domains),
        keys=len(policy.keys),
        projects=len(policy.projects),
        domains_by_key=by_key,
        domains_by_project={p: d for p, d in by_project.items() if d},
        only_key_of={k: d for k, d in only.items() if d},
        mixed_keys={k: d for k, d in by_key.items() if len(d) > 1},
        mixed_classes=mixed_classes,
    )


def _n(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def _grouped(groups: dict[str, list[str]], noun: str, s: Shape) -> list[str]:
    """``keys diagnosis, xray each carry diagnosis, xray, treatment``: holders of the same
    functions said once."""
    by_set: dict[tuple[str, ...], list[str]] = {}
    for name, carried in groups.items():
        by_set.setdefault(tuple(carried), []).append(name)
    total = s.keys if noun == "key" else s.projects
    found = []
    for domains, names in by_set.items():
        what = f"all {s.domains} functions" if len(domains) == s.domains else ", ".join(domains)
        if len(names) == 1:
            found.append(f"{noun} {names[0]} carries {what}")
        elif len(names) == total:
            found.append(f"all {total} {noun}s each carry {what}")
        else:
            found.append(f"{noun}s {', '.join(names)} each carry {what}")
    return found


def _most(groups: dict[str, list[str]], noun: str, s: Shape) -> str:
    if not groups:
        return f"no {noun}"
    top = max(len(d) for d in groups.values())
    if top <= 1:
        return f"1 per {noun}"
    crowded = {name: d for name, d in groups.items() if len(d) > 1}
    return f"up to {top}: {'; '.join(_grouped(crowded, noun, s))}"


def _revoke(s: Shape) -> str:
    if not s.only_key_of:
        return "stops nothing: every pool has other keys (of the same project: no capacity lost)"
    stops = [f"{k} stops {', '.join(d)}" for k, d in s.only_key_of.items()]
    rest = s.keys - len(s.only_key_of)
    tail = f"; the other {rest} stop nothing (their pools have other keys)" if rest else ""
    if len(stops) == s.keys and all(len(d) == 1 and d[0] == k for k, d in s.only_key_of.items()):
        return "stops its own function only"
    return "; ".join(stops) + tail


def _attribution(s: Shape) -> str:
    if s.attribution:
        return "yes: each key carries one function, and the provider shows spend per key"
    return (
        f"no: {'; '.join(_grouped(s.mixed_keys, 'key', s))}. Spend per function of those is only "
        "in keypolicy's own records (keypolicy usage), not on the provider's usage pages"
    )


def _classes(s: Shape) -> str:
    if not s.mixed_classes:
        return "none: every project holds functions of one priority class"
    return f"{len(s.mixed_classes)} functions ({', '.join(s.mixed_classes)})"


def governance_rows(policies: dict[str, Policy | None]) -> list[tuple[str, list[str]]]:
    """The governance table: a row per question, a cell per option ("–" without a policy)."""
    shapes = {n: shape(p) if p is not None else None for n, p in policies.items()}

    def row(label: str, cell: Callable[[Shape], str]) -> tuple[str, list[str]]:
        return label, [cell(s) if s is not None else "–" for s in shapes.values()]

    return [
        row("Keys and projects", lambda s: f"{_n(s.keys, 'key')}, {_n(s.projects, 'project')}"),
        row("Functions per key", lambda s: _most(s.domains_by_key, "key", s)),
        row("Functions per project", lambda s: _most(s.domains_by_project, "project", s)),
        row("Revoking one key", _revoke),
        row("Spend per function visible at the provider", _attribution),
        row("Functions sharing a project with another priority class", _classes),
    ]
