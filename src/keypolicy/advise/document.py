"""The advice as one JSON document (``--json``) and as lines for the console."""

from __future__ import annotations

from typing import Any

from keypolicy.advise.pareto import dominates
from keypolicy.advise.scores import METRICS
from keypolicy.advise.search import Advice
from keypolicy.sim.headroom import Headroom
from keypolicy.summary import DAYS_A_MONTH

__all__ = ["advice_document", "console_lines", "current_place"]


def _headroom(room: Headroom | None) -> dict[str, Any] | None:
    if room is None:
        return None
    return {
        "growth": room.growth,
        "growth_fails_at": room.growth_fails_at,
        "limits": room.limits,
        "limits_fail_at": room.limits_fail_at,
        "shrink": room.shrink,
        "precision": room.precision,
        "simulations": room.simulations,
        "sentence": room.describe(),
    }


def current_place(advice: Advice) -> str:
    """Where the current grouping stands, in a sentence."""
    current = advice.current
    label = advice.candidates[current].label
    if current in advice.front:
        place = advice.front.index(current) + 1
        if place == 1:
            return f"The current grouping ({label}) is the best found: keep it."
        return (
            f"The current grouping ({label}) is on the front, ranked {place} of "
            f"{len(advice.front)}."
        )
    grids = {i: advice.settings.objectives.grid(s) for i, s in advice.scores.items()}
    beaten_by = [i for i in advice.front if dominates(grids[i], grids[current])]
    names = ", ".join(f"#{advice.front.index(i) + 1}" for i in beaten_by[:5])
    return (
        f"The current grouping ({label}) is not on the front: {names or 'others'} "
        f"{'does' if len(beaten_by) == 1 else 'do'} at least as well on every score and "
        "better on one."
    )


def advice_document(advice: Advice, traffic: str) -> dict[str, Any]:
    """Everything the search found, for scripts."""
    settings = advice.settings
    candidates = []
    for c in advice.candidates:
        full = advice.scores.get(c.index)
        screened = advice.screened.get(c.index)
        candidates.append(
            {
                "index": c.index,
                "label": c.label,
                "pools": {p: sorted(d) for p, d in c.pools.items()},
                "current": c.index == advice.current,
                "simulated": "full" if full else "screened",
                "on_front": c.index in advice.front,
                "rank": advice.front.index(c.index) + 1 if c.index in advice.front else None,
                "scores": full.as_dict() if full else None,
                "screened": screened.as_dict() if screened else None,
                "cost_per_month": round(full.mean("cost") * DAYS_A_MONTH, 2) if full else None,
                "headroom": _headroom(advice.headroom.get(c.index)),
            }
        )
    screen = advice.screen
    return {
        "base": advice.base.name,
        "traffic": traffic,
        "seeds": list(advice.seeds),
        "critical_classes": list(advice.critical),
        "rule": settings.rule,
        "objectives": list(settings.objectives.names),
        "resolution": dict(settings.objectives.resolution),
        "grid_origin": dict(settings.objectives.origin),
        "rank_order": list(settings.order),
        "metrics": {n: {"title": m.title, "unit": m.unit} for n, m in METRICS.items()},
        "candidates_total": len(advice.candidates),
        "simulated_in_full": len(advice.scores),
        "screen": None
        if screen is None
        else {
            "components": screen.components,
            "skipped": screen.skipped,
            "parts_simulated_apart": screen.pools,
            "runs": screen.runs,
            "margins": screen.margins,
            "simulated_in_full": screen.simulated,
            "dropped": screen.dropped,
            "rounds": screen.rounds,
        },
        "front": [advice.candidates[i].label for i in advice.front],
        "front_indices": list(advice.front),
        "recommended": advice.front[0],
        "current": advice.current,
        "current_place": current_place(advice),
        "runs": advice.runs,
        "seconds": round(advice.seconds, 1),
        "candidates": candidates,
    }


def _fmt(advice: Advice, i: int, name: str) -> str:
    estimate = advice.scores[i].values[name]
    if name == "wait":
        text = f"{estimate.mean:.2f}"
    elif name == "cost":
        text = f"${estimate.mean:,.2f}"
    else:
        text = f"{estimate.mean:,.1f}".removesuffix(".0")
    return text + (f" ±{estimate.ci95:,.1f}" if estimate.ci95 >= 0.05 else "")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def console_lines(advice: Advice) -> list[str]:
    """The front as plain lines, best first, and how the search went."""
    lines = []
    screen = advice.screen
    if screen is None or screen.skipped:
        why = " (no screen: every domain shares the organization's limits)" if screen else ""
        lines.append(
            f"{len(advice.candidates)} groupings, every one simulated in full{why} "
            f"({len(advice.seeds)} seeds, {advice.runs:,} runs, {advice.seconds:,.0f} s)"
        )
    else:
        lines.append(
            f"{len(advice.candidates)} groupings: screened by simulating their {screen.pools} "
            f"distinct parts apart ({screen.components} components, {screen.runs} runs); "
            f"{screen.simulated} candidates simulated in full, {screen.dropped} dropped as "
            f"beaten beyond the screen's error margin ({len(advice.seeds)} seeds, "
            f"{advice.runs:,} runs in all, {advice.seconds:,.0f} s)"
        )
    lines.append(
        f"critical classes: {', '.join(advice.critical)}; ranked by "
        f"{', '.join(advice.settings.order)}"
    )
    lines.append("")
    for place, i in enumerate(advice.front, 1):
        c = advice.candidates[i]
        tag = "  (current)" if i == advice.current else ""
        lines.append(f"#{place} {c.label}{tag}")
        lines.append(
            "   critical refused "
            + _fmt(advice, i, "critical")
            + ", p99/max_wait "
            + _fmt(advice, i, "wait")
            + ", refused "
            + _fmt(advice, i, "refused")
            + ", 429s "
            + _fmt(advice, i, "throttled")
            + ", late "
            + _fmt(advice, i, "late")
        )
        cost = advice.scores[i].mean("cost")
        projects = len(set(c.projects.values()))
        lines.append(
            f"   cost {_fmt(advice, i, 'cost')}/day (${cost * DAYS_A_MONTH:,.0f}/month), "
            f"{_count(c.blast_radius, 'domain')} per pool at most, "
            f"{_count(projects, 'project')}, {_count(c.key_count, 'key')}"
        )
        room = advice.headroom.get(i)
        if room is not None:
            lines.append(f"   headroom: {room.describe()}")
    lines.append("")
    lines.append(current_place(advice))
    return lines
