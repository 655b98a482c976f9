"""What a report says about how the provider counts: the policy's assumption, what was
simulated, and the outcome as a range where the simulation ran under several rules
(``summary["about"]["provider"]`` and ``summary["range"]``, see :mod:`keypolicy.sim.ranges`)."""

from __future__ import annotations

from typing import Any

from keypolicy.policy.units import format_duration
from keypolicy.report.facts import Variant

__all__ = ["accounting_rows", "assumed_rules", "range_sentence"]


def _rules(rules: dict[str, Any]) -> str:
    """The rules as a person reads them."""

    def sliced(value: Any, what: str) -> str:
        return f"{what} in {format_duration(float(value))} slices" if value else ""

    parts = [
        "unused max_tokens given back" if rules.get("refund_unused") else "unused max_tokens kept",
        "refused requests count" if rules.get("count_failed") else "refused requests not counted",
        sliced(rules.get("quantum_requests"), "requests"),
        sliced(rules.get("quantum_tokens"), "tokens"),
    ]
    return "; ".join(p for p in parts if p)


def assumed_rules(v: Variant) -> str:
    """How the simulated provider counted, as a person reads it ("" when the summary does not
    say: records from the runtime)."""
    provider = (v.summary.get("about") or {}).get("provider") or {}
    rules = provider.get("simulated") or provider.get("assumed")
    return _rules(rules) if rules else ""


def accounting_rows(v: Variant) -> list[tuple[str, str]]:
    """Rows for the basis table: how the policy assumes the provider counts, and how the
    simulated provider counted (all the ways, when the outcome is shown as a range)."""
    provider = (v.summary.get("about") or {}).get("provider") or {}
    if not provider:
        return []
    assumed = provider.get("assumed") or {}
    rows = [("Provider accounting assumed", _rules(assumed))]
    found = v.summary.get("range")
    if found:
        labels = [s["label"] for s in found.get("scenarios", [])]
        rows.append(("Provider simulated", " / ".join(labels) + " (outcome as a range)"))
    elif provider.get("simulated") and provider["simulated"] != assumed:
        rows.append(("Provider simulated", _rules(provider["simulated"])))
    return rows


def range_sentence(v: Variant) -> str:
    """A sentence for the answer where the simulation ran under several provider rules: its
    rejections (by domain), else its 429s, as a range; or that they did not depend on them."""
    found = v.summary.get("range") or {}
    if not found:
        return ""
    sentences: list[str] = found.get("sentences") or []
    totals = found.get("totals") or {}
    for key, noun in (("rejected", "rejections"), ("upstream_429", "upstream 429s")):
        numbers = totals.get(key) or {}
        if numbers and numbers.get("min") != numbers.get("max"):
            chosen = next((s for s in sentences if f" {noun} in all " in s), "")
            text = f"How OpenAI counts matters for {v.name}: {chosen}"
            domains = found.get("domains") or {}
            detail = [
                f"{name} {_count(n[key]['min'])} to {_count(n[key]['max'])}"
                for name, n in domains.items()
                if key in n and n[key]["min"] != n[key]["max"]
            ]
            if len(detail) > 1:
                text += f"; by domain: {', '.join(detail)}"
            return text + "."
    rules = ", ".join(found.get("varied") or []) or "the rules simulated"
    return f"For {v.name}, rejections and 429s are the same whichever way OpenAI counts ({rules})."


def _count(value: float) -> str:
    return f"{value:,.0f}"
