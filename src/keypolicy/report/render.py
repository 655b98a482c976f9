"""Rendering the report: summaries in, one self-contained HTML file out.

The templates ship in the package (``templates/*.html.j2``) and are rendered with autoescaping
on: every name that comes from a policy or a summary is escaped, and only the SVG charts (which
escape their own text) are marked safe. The file is written next to its destination and renamed
into place, so a reader never sees half a report.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from keypolicy.policy.dump import dump_policy
from keypolicy.policy.model import Policy
from keypolicy.report.accounting import accounting_rows, range_sentence
from keypolicy.report.burndown import burndown_figure
from keypolicy.report.decision import decide
from keypolicy.report.demand import demand_figure
from keypolicy.report.facts import Variant
from keypolicy.report.glossary import GLOSSARY
from keypolicy.report.governance import governance_rows
from keypolicy.report.headline import answer, headline_table
from keypolicy.report.layout import Context, Figure
from keypolicy.report.policydiff import policy_diff
from keypolicy.report.recommend import recommendations
from keypolicy.report.refusals import refusal_figure
from keypolicy.report.runway import describe_budget, runways
from keypolicy.report.sensitivity import sensitivity_table
from keypolicy.report.tables import compare_table, variant_tables
from keypolicy.report.timelines import cost_figure, queue_figure, rate_limit_figure, wait_figure
from keypolicy.report.values import money, seconds

__all__ = ["build_context", "render_html", "render_report"]


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("keypolicy.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def figures(results: dict[str, dict[str, Any]], policies: dict[str, Policy]) -> list[Figure]:
    """Every figure the summaries can show, in reading order (the key ones marked
    ``summary``: refusals and demand)."""
    ctx = Context(results, policies)
    found = [refusal_figure(ctx), demand_figure(ctx), wait_figure(ctx)]
    queues = queue_figure(ctx)
    if queues is not None:
        found.append(queues)
    found += [rate_limit_figure(ctx), cost_figure(ctx)]
    burn = burndown_figure(ctx)
    if burn is not None:
        found.append(burn)
    return [f for f in found if f.message or f.panels]


def _when(iso: Any) -> str:
    try:
        return datetime.fromisoformat(str(iso)).strftime("%A %d %B %Y, %H:%M")
    except ValueError:
        return str(iso or "–")


def _basis(v: Variant, current: Variant) -> dict[str, Any]:
    """What one variant's numbers rest on, and its policy (as a diff against the current one)."""
    about: dict[str, Any] = v.summary.get("about") or {}
    runs = v.runs
    seed = v.summary.get("seed")
    seeds = str(seed) if runs == 1 else f"{seed} to {int(seed or 0) + runs - 1}"
    if seed is None:
        seeds = "–"
    diff = None
    if v is not current and v.policy is not None and current.policy is not None:
        diff = policy_diff(dump_policy(current.policy), dump_policy(v.policy))
    return {
        "name": v.name,
        "policy_yaml": dump_policy(v.policy) if v.policy is not None else None,
        "diff": diff,
        "description": v.policy.description if v.policy is not None else "",
        "rows": [
            ("Traffic", f"{about.get('traffic', '–')}: {about.get('traffic_description', '')}"),
            ("Starts", _when(about.get("start"))),
            (
                "Recorded" if about.get("source") == "records" else "Simulated",
                seconds(float(about.get("duration_s") or 0)),
            ),
            ("Time zone", str(about.get("timezone") or "–")),
            ("Runs and seeds", f"{runs} run{'s' if runs != 1 else ''}, seed {seeds}"),
            ("Usage tier of the limits", str(about.get("tier") or "not stated")),
            ("Monthly usage limit", _usage_limit(about.get("usage_limit"))),
            *accounting_rows(v),
            ("Provider capacity simulated", _factor(about)),
            ("Pricing catalog", str(about.get("pricing_catalog") or "–")),
            ("keypolicy", str(about.get("keypolicy") or "–")),
            ("Generated", str(about.get("generated") or "–")),
        ],
        "note": str(about.get("records_note") or ""),
        "partial": bool(v.summary.get("partial")),
    }


def _factor(about: dict[str, Any]) -> str:
    factor = about.get("provider_factor")
    if factor is None:
        return "–"
    return (
        "the policy's limits"
        if float(factor) == 1.0
        else f"{float(factor):g} x the policy's limits"
    )


def _banners(variants: list[Variant]) -> list[str]:
    """A banner per budget that runs out inside its period in some option, naming each such
    option with when and at what spend, and what running out does."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for v in variants:
        for r in runways(v):
            if r.short:
                then = r.consequence(v.critical_domains(), v.domains())
                key = (f"Budget {r.budget} ({describe_budget(r)})", then)
                grouped.setdefault(key, []).append(
                    f"{r.when()} with {v.name} ({money(r.per_day_usd)} a day)"
                )
    return [
        f"{budget} runs out inside its period: {'; '.join(where)}; {then}."
        for (budget, then), where in grouped.items()
    ]


def build_context(
    results: dict[str, dict[str, Any]],
    policies: dict[str, Policy] | None = None,
    *,
    prefer: str | None = None,
) -> dict[str, Any]:
    """Everything the template shows, computed from the summaries (and policies, if given).
    ``prefer``: the option that wins a tie (see :mod:`keypolicy.report.decision`)."""
    if not results:
        raise ValueError("nothing to report: no results")
    if prefer is not None and prefer not in results:
        raise ValueError(f"prefer={prefer!r} is not one of the options: {', '.join(results)}")
    known = policies or {}
    variants = [Variant(name, summary, known.get(name)) for name, summary in results.items()]
    first = variants[0]
    about = first.summary.get("about") or {}
    compare = len(variants) > 1
    title = " vs ".join(v.name for v in variants) if compare else first.name
    ranges = [s for s in map(range_sentence, variants) if s]
    return {
        "title": title,
        "compare": compare,
        "recorded": all(
            (v.summary.get("about") or {}).get("source") == "records" for v in variants
        ),
        "traffic": about.get("traffic_description") or about.get("traffic") or "",
        "day": _when(about.get("start")),
        "runs": first.runs,
        "first_seed": first.summary.get("seed"),
        "decision": decide(variants, prefer),
        "answer": "" if compare else answer(variants),
        "ranges": ranges,
        "headline": headline_table(variants),
        "sensitivity": sensitivity_table(variants),
        "banners": _banners(variants),
        "governance": governance_rows({v.name: v.policy for v in variants})
        if any(v.policy is not None for v in variants)
        else [],
        "compare_table": compare_table(variants) if compare else None,
        "recommendations": recommendations(variants),
        "figures": figures(results, known),
        "variants": [
            {"name": v.name, "tables": variant_tables(v), "basis": _basis(v, first)}
            for v in variants
        ],
        "glossary": GLOSSARY,
        "partial": any(v.summary.get("partial") for v in variants),
        "warnings": _warnings(variants),
    }


def _usage_limit(quota: Any) -> str:
    """The organization's monthly usage limit against the month the simulation projects."""
    if not isinstance(quota, dict) or quota.get("usd") is None:
        return "not stated"
    limit, projected = float(quota["usd"]), quota.get("projected_month_usd")
    text = f"${limit:,.0f}"
    if projected is None:
        return text
    text += f"; this traffic would spend ${float(projected):,.0f} in 30 days"
    lasts = quota.get("lasts_days")
    if lasts is not None:
        text += f": over the limit, calls refused after about {float(lasts):.1f} days"
    return text


def _warnings(variants: list[Variant]) -> list[str]:
    """The summaries' warnings (how the traffic was read, what was left out), each once."""
    seen: dict[str, None] = {}
    for v in variants:
        for warning in (v.summary.get("about") or {}).get("warnings") or []:
            seen[str(warning)] = None
    return list(seen)


def render_html(
    results: dict[str, dict[str, Any]],
    policies: dict[str, Policy] | None = None,
    *,
    prefer: str | None = None,
) -> str:
    """The report as HTML text."""
    template = _environment().get_template("report.html.j2")
    return template.render(**build_context(results, policies, prefer=prefer))


def render_report(
    results: dict[str, dict[str, Any]],
    out: Path,
    *,
    policies: dict[str, Policy] | None = None,
    prefer: str | None = None,
) -> Path:
    """Write the report of ``results`` ({policy name: summary}; one entry for ``simulate``,
    several for ``compare``) to ``out`` as one self-contained HTML file; return ``out``.

    ``policies`` ({policy name: Policy}) adds limits, budgets, priority classes and the rendered
    policy; without them the report shows what the summaries alone can tell. ``prefer`` names
    the option that wins a tie in the decision (by default: the one that mixes fewer priority
    classes in a project, then the first given). The first option is taken as today's policy.
    The file is written to a temporary name beside ``out`` and renamed into place.
    """
    out = Path(out)
    text = render_html(results, policies, prefer=prefer)
    out = out.resolve()  # through a symlink to its target, which is what gets replaced
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
