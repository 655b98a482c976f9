"""Cross references between the sections of a policy, checked after each section validated.

Each check gets the sections that validated (``None`` for one that did not), so that one broken
section does not hide the reference errors of the others: every problem is reported at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from keypolicy.catalog import CATALOG, SNAPSHOTS
from keypolicy.policy.model import Budget, Domain, Key, Pool, Pricing, Priority, Project
from keypolicy.policy.source import FieldPath

__all__ = ["Finding", "Sections", "check_references"]


@dataclass(frozen=True)
class Finding:
    """A problem at a field path, before it is given a file location."""

    path: FieldPath
    message: str
    hint: str = ""


@dataclass(frozen=True)
class Sections:
    """The sections of a policy that validated on their own; ``None`` where one did not."""

    projects: dict[str, Project] | None
    keys: dict[str, Key] | None
    pools: dict[str, Pool] | None
    priorities: list[Priority] | None
    domains: dict[str, Domain] | None
    budgets: dict[str, Budget] | None
    pricing: Pricing | None
    names: dict[str, set[str]]
    """Every name defined per section, including entries that failed to validate."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A hint naming the closest choice, or listing the choices when none is close."""
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if not options:
        return "none is defined"
    shown = ", ".join(options[:8]) + (", ..." if len(options) > 8 else "")
    return f"known: {shown}"


def _ref(kind: str, name: Any, known: Iterable[str], path: FieldPath) -> list[Finding]:
    names = set(known)
    if name in names:
        return []
    return [Finding(path, f"unknown {kind} '{name}'", did_you_mean(str(name), names))]


def check_references(s: Sections) -> list[Finding]:
    """Every dangling or inconsistent reference between the sections given."""
    return [
        *_check_keys_and_pools(s),
        *_check_priorities(s),
        *(_check_domains(s, _known_models(s.pricing)) if s.domains is not None else []),
        *(_check_budgets(s, _known_models(s.pricing)) if s.budgets is not None else []),
        *_check_pricing(s),
    ]


def _check_keys_and_pools(s: Sections) -> list[Finding]:
    found: list[Finding] = []
    if s.keys is not None and s.projects is not None:
        for alias, key in s.keys.items():
            found += _ref("project", key.project, s.names["projects"], ("keys", alias, "project"))
    if s.pools is not None and s.keys is not None:
        for name, pool in s.pools.items():
            for i, alias in enumerate(pool.keys):
                found += _ref("key", alias, s.names["keys"], ("pools", name, "keys", i))
            for i, alias in enumerate(pool.keys):
                if alias in pool.keys[:i]:
                    found.append(
                        Finding(("pools", name, "keys", i), f"key '{alias}' is listed twice")
                    )
    return found


def _check_priorities(s: Sections) -> list[Finding]:
    found: list[Finding] = []
    if s.priorities is not None:
        seen: set[str] = set()
        for i, prio in enumerate(s.priorities):
            if prio.name in seen:
                found.append(
                    Finding(("priorities", i, "name"), f"priority '{prio.name}' is defined twice")
                )
            seen.add(prio.name)
    return found


def _check_pricing(s: Sections) -> list[Finding]:
    found: list[Finding] = []
    if s.pricing is not None:
        for model, price in s.pricing.overrides.items():
            if price.cached_input is not None and price.cached_input > price.input:
                found.append(
                    Finding(
                        ("pricing", "overrides", model, "cached_input"),
                        "cached input costs more than uncached input",
                        "check the prices",
                    )
                )
    return found


def _known_models(pricing: Pricing | None) -> set[str]:
    """Models a domain may name: the catalog's, their dated snapshots, and any with a price."""
    return set(CATALOG) | set(SNAPSHOTS) | (set(pricing.overrides) if pricing else set())


def _check_domains(s: Sections, models: set[str]) -> list[Finding]:
    assert s.domains is not None
    found: list[Finding] = []
    hint_price = "add it under pricing.overrides to use a model the catalog does not know"
    for name, domain in s.domains.items():
        base: FieldPath = ("domains", name)
        if s.pools is not None:
            found += _ref("pool", domain.pool, s.names["pools"], (*base, "pool"))
        if s.priorities is not None:
            found += _ref("priority", domain.priority, s.names["priorities"], (*base, "priority"))
            prio = next((p for p in s.priorities if p.name == domain.priority), None)
            if prio is not None and domain.defer.mode != "never" and not prio.deferrable:
                found.append(
                    Finding(
                        (*base, "defer"),
                        f"domain defers ({domain.defer.mode}) "
                        f"but priority '{prio.name}' is not deferrable",
                        "set deferrable: true on the class, or defer: never here",
                    )
                )
        for path, model in [((*base, "model"), domain.model)] + [
            ((*base, "models", i), m) for i, m in enumerate(domain.models)
        ]:
            if model not in models:
                f = _ref("model", model, models, path)[0]
                found.append(Finding(f.path, f.message, f"{f.hint}; {hint_price}"))
    return found


def _check_budgets(s: Sections, models: set[str]) -> list[Finding]:
    assert s.budgets is not None
    found: list[Finding] = []
    sections = {
        "domain": s.names["domains"],
        "pool": s.names["pools"],
        "key": s.names["keys"],
        "project": s.names["projects"],
    }
    for name, budget in s.budgets.items():
        base: FieldPath = ("budgets", name)
        target = budget.applies_to
        if target.scope != "all":
            found += _ref(
                target.scope,
                target.name,
                sections[target.scope],
                (*base, "applies_to", target.scope),
            )
        fallback = budget.on_exhausted.model
        if fallback is not None and fallback not in models:
            found += _ref("model", fallback, models, (*base, "on_exhausted", "downgrade"))
        if (
            budget.on_exhausted.action == "defer"
            and s.domains is not None
            and target.scope == "domain"
        ):
            domain = s.domains.get(target.name or "")
            if domain is not None and domain.defer.mode == "never":
                found.append(
                    Finding(
                        (*base, "on_exhausted"),
                        f"on_exhausted is defer but domain '{target.name}' has defer: never",
                        "give the domain a defer mode, or reject or downgrade here",
                    )
                )
    return found
