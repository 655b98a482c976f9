"""Outcomes as ranges over what nobody knows for sure: how the provider counts.

OpenAI does not document whether the unused part of ``max_tokens`` is given back when a response
completes, and says only that failed requests count and that limits "may be" enforced in slices
(:class:`~keypolicy.upstream.Accounting`). A simulation can run the provider under several of
those rules (``--assume refund_unused=both``), the engine always assuming what the policy says,
as it would in production. This module makes the combinations (:func:`scenarios`) and the
range of outcomes over them (:func:`outcome_range`), with sentences a person reads ("0 to 340
xray rejections depending on whether OpenAI gives unused max_tokens back").
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypedDict

from keypolicy.policy.model import Policy
from keypolicy.upstream import Accounting

__all__ = ["Assumptions", "OutcomeRange", "outcome_range", "range_sentences", "scenarios"]

Assumptions = Mapping[str, Sequence[bool | float | None]]
"""Accounting rules and the values the simulated provider takes for each, in order."""

METRICS: Final = ("rejected", "upstream_429", "wait_p95_s", "cost_usd")
"""The numbers a range is given for, per domain and in total."""

_WHAT: Final = {
    "refund_unused": "whether OpenAI gives unused max_tokens back",
    "count_failed": "whether OpenAI counts refused requests",
    "quantum_requests": "whether OpenAI spends request limits in slices",
    "quantum_tokens": "whether OpenAI spends token limits in slices",
}
_NOUNS: Final = {"rejected": "rejections", "upstream_429": "upstream 429s"}


class Scenario(TypedDict):
    """One combination of provider rules and what the policy did under it."""

    label: str
    provider: dict[str, bool | float | None]
    partial: bool
    totals: dict[str, float]
    domains: dict[str, dict[str, float]]


class OutcomeRange(TypedDict):
    """A policy's outcomes under several provider rules: ``summary["range"]``."""

    varied: list[str]
    assumed: dict[str, bool | float | None]
    scenarios: list[Scenario]
    totals: dict[str, dict[str, float]]
    domains: dict[str, dict[str, dict[str, float]]]
    sentences: list[str]


def scenarios(policy: Policy, assume: Assumptions | None) -> list[Accounting]:
    """The provider rules to simulate ``policy`` under: what it assumes, varied by ``assume``
    (every combination of the values given), the policy's own first if it is among them."""
    base = Accounting.from_policy(policy)
    if not assume:
        return [base]
    rules = list(assume)
    combos = []
    for values in itertools.product(*(assume[rule] for rule in rules)):
        accounting = base
        for rule, value in zip(rules, values, strict=True):
            accounting = accounting.with_rule(rule, value)
        combos.append(accounting)
    combos = list(dict.fromkeys(combos))
    if base in combos:
        combos.remove(base)
        combos.insert(0, base)
    return combos


def _number(value: Any) -> float:
    """A summary's number: itself, or the mean over several runs."""
    if isinstance(value, dict):
        value = value.get("mean", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def _label(accounting: Accounting, varied: list[str]) -> str:
    return ", ".join(accounting.describe(rule) for rule in varied)


def outcome_range(
    policy: Policy, outcomes: Sequence[tuple[Accounting, dict[str, Any]]]
) -> OutcomeRange:
    """The range of ``policy``'s outcomes over the provider rules it ran under (each with its
    result, the shape ``simulate_policy`` returns): per combination the numbers of
    :data:`METRICS`, per domain and in total their least and greatest, and sentences."""
    rules = [a for a, _ in outcomes]
    varied = [r for r in _WHAT if len({getattr(a, r) for a in rules}) > 1]
    scenario_list: list[Scenario] = []
    for accounting, result in outcomes:
        domains = {
            name: {m: _number(numbers.get(m)) for m in METRICS}
            for name, numbers in result.get("domains", {}).items()
        }
        totals = {m: _number(result.get("totals", {}).get(m)) for m in METRICS}
        scenario_list.append(
            Scenario(
                label=_label(accounting, varied),
                provider=accounting.as_dict(),
                partial=bool(result.get("partial")),
                totals=totals,
                domains=domains,
            )
        )

    def spread(values: list[float]) -> dict[str, float]:
        return {"min": min(values), "max": max(values)}

    names = list(dict.fromkeys(d for s in scenario_list for d in s["domains"]))
    found = OutcomeRange(
        varied=varied,
        assumed=Accounting.from_policy(policy).as_dict(),
        scenarios=scenario_list,
        totals={m: spread([s["totals"][m] for s in scenario_list]) for m in METRICS},
        domains={
            d: {
                m: spread([s["domains"].get(d, {}).get(m, 0.0) for s in scenario_list])
                for m in METRICS
            }
            for d in names
        },
        sentences=[],
    )
    found["sentences"] = range_sentences(found)
    return found


def _count(value: float) -> str:
    return f"{value:,.0f}"


def range_sentences(found: OutcomeRange) -> list[str]:
    """What the range says, as sentences: the total 429s and rejections, then each domain whose
    rejections depend on the rules (or that has some whichever way they go)."""
    what = " and ".join(_WHAT[r] for r in found["varied"]) or "how OpenAI counts"

    def sentence(numbers: dict[str, float], noun: str, key: str, owner: str) -> str | None:
        low, high = numbers["min"], numbers["max"]
        subject = f"{owner} {noun}".strip()
        if low == high:
            return f"{_count(low)} {subject} whichever way ({what})" if low else None
        by = "; ".join(
            f"{s['label']}: {_count(s['domains'][owner][key] if owner else s['totals'][key])}"
            for s in found["scenarios"]
            if not owner or owner in s["domains"]
        )
        return f"{_count(low)} to {_count(high)} {subject} depending on {what} ({by})"

    out = []
    for key in ("upstream_429", "rejected"):
        text = sentence(found["totals"][key], _NOUNS[key] + " in all", key, "")
        out.append(text or f"no {_NOUNS[key]} whichever way ({what})")
    for name, numbers in found["domains"].items():
        text = sentence(numbers["rejected"], _NOUNS["rejected"], "rejected", name)
        if text is not None and numbers["rejected"]["min"] != numbers["rejected"]["max"]:
            out.append(text)
    return out
