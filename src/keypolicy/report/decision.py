"""The decision: which option to take, why (in numbers), its risks, what changes, what it rests on.

The measures of :data:`keypolicy.report.measures.CRITERIA` decide in their order: an option
stays in the running while it is as good as the best (within rounding and noise) on every
measure so far. Options still tied after the last measure are decided by the tie-break rule,
which the report states: an option the reader prefers (``prefer``), else the option that puts
fewer functions of different priority classes in one project (a shared project lets one
function's burst, a lowered limit or a project-wide incident reach the others), else the order
in which the options were given. The first option given is taken as today's: the operational
changes are the steps from it to the recommendation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from keypolicy.policy.model import Policy
from keypolicy.report.accounting import assumed_rules
from keypolicy.report.demand import limit_use
from keypolicy.report.facts import Variant
from keypolicy.report.governance import shape
from keypolicy.report.headline import problems
from keypolicy.report.limits import domains_on
from keypolicy.report.measures import CRITERIA, Criterion, Value, equal, worst_wait
from keypolicy.report.runway import runways
from keypolicy.report.sensitivity import headroom_of
from keypolicy.report.values import count, money, percent, seconds

__all__ = ["Decision", "decide", "tie_rule"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the decision section says. ``recommended`` is None for a single option."""

    recommended: str | None
    current: str
    reasons: list[str] = field(default_factory=list)
    tie: str = ""
    rule: str = ""
    risks: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    depends: list[str] = field(default_factory=list)


def tie_rule(prefer: str | None) -> str:
    """The tie-break rule as the report states it."""
    first = f"{prefer} (the option preferred for this report), then " if prefer else ""
    return (
        "Options are compared on critical requests refused, then a budget that stops traffic "
        "before its period ends, requests refused, the worst p99 wait against its max_wait, "
        "headroom (when computed), upstream 429s and cost per served request, in that order; "
        "differences within rounding (half a request, a tenth of a max_wait, 10% of headroom, "
        "1% of cost) or within the runs' 95% intervals "
        f"count as ties. A tie is broken by {first}the option that puts fewer functions of "
        "different priority classes in one project, then the order the options were given in. "
        "Pass another preference to decide ties differently (keypolicy compare --prefer NAME)."
    )


def _names(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _critical(v: Variant, value: Value) -> str:
    parts = [
        f"{d} {count(n)}"
        for d in v.critical_domains()
        if (n := v.value("domains", d, "rejected")) >= 0.5
    ]
    return f"{count(value.mean)}" + (f" ({', '.join(parts)})" if parts else "")


def _wait(v: Variant, _: Value) -> str:
    worst = worst_wait(v)
    if worst is None:
        return "no max_wait"
    return f"{seconds(worst.p99)} of {seconds(worst.max_wait)} ({worst.domain})"


def _runway(v: Variant, _: Value) -> str:
    short = [r for r in runways(v) if r.short and r.action == "reject"]
    return f"{short[0].budget} {short[0].text()}" if short else "every budget lasts"


_DETAILS: dict[str, Callable[[Variant, Value], str]] = {
    "critical": _critical,
    "refused": lambda v, x: f"{count(x.mean)} of {count(v.total('requests'))}",
    "wait": _wait,
    "cost": lambda v, x: f"{money(x.mean * 1000)} per 1,000",
    "runway": _runway,
    "headroom": lambda v, x: "not computed" if not x.mean else f"×{1 / x.mean:.2f} traffic",
}


def _detail(c: Criterion, v: Variant, value: Value) -> str:
    """A measure's value as a reason quotes it."""
    how = _DETAILS.get(c.key)
    return how(v, value) if how is not None else count(value.mean)


def _side(c: Criterion, side: list[Variant], values: dict[str, Value]) -> str:
    """``0 with a and b`` (one value said once), or ``3 with a; 5 with b``."""
    details = {v.name: _detail(c, v, values[v.name]) for v in side}
    if len(set(details.values())) == 1:
        return f"{next(iter(details.values()))} with {_names(list(details))}"
    return "; ".join(f"{text} with {name}" for name, text in details.items())


def _eliminate(
    variants: list[Variant],
) -> tuple[list[Variant], list[str]]:
    """Run the criteria: the options left, and a reason for each measure that set some apart."""
    left = list(variants)
    reasons = []
    for c in CRITERIA:
        values = {v.name: c.of(v) for v in left}
        best = min(values.values(), key=lambda x: x.mean)
        keep = [v for v in left if equal(c, values[v.name], best)]
        if len(keep) < len(left):
            out = [v for v in left if v not in keep]
            reasons.append(
                f"{c.label.capitalize()}: {_side(c, keep, values)}, against "
                f"{_side(c, out, values)}."
            )
            for v in out:
                also = problems(v)
                if also:
                    reasons.append(f"{v.name} also {_names(also)}.")
        left = keep
    return left, reasons


def _isolation(winner: Variant, others: list[Variant]) -> str:
    """Why the tie-break's separation rule picks ``winner`` over ``others``."""
    assert winner.policy is not None
    mine = shape(winner.policy)
    critical = winner.critical_domains()
    parts = []
    for other in others:
        if other.policy is None:
            continue
        theirs = shape(other.policy)
        apart = [
            d
            for d in theirs.mixed_classes
            if d not in critical
            and set(theirs.mixed_classes[d]) & set(critical)
            and not set(mine.mixed_classes.get(d, [])) & set(critical)
        ]
        if apart:
            parts.append(
                f"{winner.name} keeps {_names(apart)} out of the project of the critical "
                f"{_names(critical)}, where {other.name} puts them together"
            )
        else:
            parts.append(
                f"{winner.name} has {mine.mixing} pairs of functions of different classes in "
                f"one project, {other.name} {theirs.mixing}"
            )
    return "; ".join(parts)


def _tie_break(left: list[Variant], prefer: str | None) -> tuple[Variant, str]:
    """The option the tie-break rule picks among ``left``, and the sentence saying so."""
    names = _names([v.name for v in left])
    preferred = next((v for v in left if v.name == prefer), None)
    if preferred is not None:
        return preferred, f"{names} tie on every measure; {preferred.name} is preferred."
    if all(v.policy is not None for v in left):
        mixing = {v.name: shape(v.policy).mixing for v in left if v.policy is not None}
        low = min(mixing.values())
        calm = [v for v in left if mixing[v.name] == low]
        if len(calm) < len(left):
            winner = calm[0]
            others = [v for v in left if v not in calm]
            return winner, (
                f"{names} tie on every measure; the tie-break picks {winner.name}: "
                f"{_isolation(winner, others)}."
            )
        left = calm
    return left[0], (
        f"{names} tie on every measure and in how they separate priority classes; "
        f"{left[0].name} is picked as the first given."
    )


def _served(v: Variant) -> str:
    requests, ok = v.total("requests"), v.total("ok")
    refused = v.total("rejected")
    worst = worst_wait(v)
    wait = ""
    if worst is not None and worst.p99 >= 0.005:
        wait = (
            f"; its p99 wait closest to a max_wait is {seconds(worst.p99)} ({worst.domain}, "
            f"max_wait {seconds(worst.max_wait)})"
        )
    elif worst is not None:
        wait = "; 99% of requests of every function go out without waiting"
    what = (
        f"refuses no request of {count(requests)}"
        if refused < 0.5
        else f"refuses {count(refused)} of {count(requests)} requests"
    )
    failed = requests - ok - refused
    if failed >= 0.5:
        what += f" ({count(failed)} more end in an error or are still deferred at the end)"
    days = 30
    return (
        f"{v.name} {what}{wait}; it costs {money(v.cost_per_day())} a day, about "
        f"{money(v.cost_per_day() * days)} a month ({count(ok)} served requests)."
    )


def _risks(v: Variant) -> list[str]:
    found = []
    worst = worst_wait(v)
    if worst is not None and worst.share >= 0.5:
        found.append(
            f"{worst.domain}'s p99 wait is {percent(worst.share)} of its max_wait "
            f"({seconds(worst.p99)} of {seconds(worst.max_wait)}): a busier day refuses requests."
        )
    for r in runways(v):
        if r.short:
            found.append(
                f"Budget {r.budget} ({money(r.usd)}) {r.text()} at {money(r.per_day_usd)} a day; "
                f"{r.consequence(v.critical_domains(), v.domains())}."
            )
        elif r.days < r.period_days * 1.1:
            found.append(
                f"Budget {r.budget} lasts {r.days:.1f} days of this traffic, its period "
                f"{r.period_days:g}: traffic {percent(r.days / r.period_days - 1)} heavier and "
                "it runs out before the period ends."
            )
    found += _limit_risks(v)
    room = headroom_of(v) or {}
    growth, fails = room.get("growth"), room.get("growth_fails_at")
    if growth is not None and float(growth) >= 1 and fails is not None and float(fails) < 1.25:
        found.append(
            f"Little headroom: with {percent(float(fails) - 1)} more traffic than this day, "
            f"critical requests were refused in the simulation (none at ×{float(growth):.2f})."
        )
    if v.policy is not None:
        s = shape(v.policy)
        if not s.attribution:
            keys = ", ".join(s.mixed_keys)
            found.append(
                f"Per-function spend is no longer visible at the provider: keys {keys} each carry "
                "several functions, so the provider's usage pages cannot tell them apart; only "
                "keypolicy's records can (a cost of this option, not a gain)."
            )
        shared = [p for p, d in s.domains_by_project.items() if len(d) > 1]
        if shared:
            found.append(
                f"Project{'s' if len(shared) > 1 else ''} {_names(shared)} "
                f"{'are' if len(shared) > 1 else 'is'} shared by several functions: a limit "
                "lowered there, or an incident on it, reaches all of them."
            )
    return found


def _limit_risks(v: Variant) -> list[str]:
    """Projects whose reservations reach their TPM limit in some minute."""
    series = v.summary.get("series") or {}
    found = []
    for use in limit_use(
        series.get("admitted_tokens", {}), series.get("admitted_requests", {}), v.policy
    ):
        if not use.tpm or use.key.startswith("organization/"):
            continue
        shares, _ = use.shares()
        full = sum(1 for s in shares if s >= 1.0)
        if not full:
            continue
        project = use.key.partition("/")[0]
        domains = domains_on(v, project)
        refused = sum(v.value("domains", d, "rejected") for d in domains)
        waited = v.longest_wait(domains)
        if refused >= 0.5:
            effect = f"{count(refused)} requests refused there"
        elif waited >= 0.005:
            effect = f"requests waited up to {seconds(waited)} there, none refused"
        else:
            effect = (
                "no request waited: capacity saved in quieter minutes absorbed them; a longer "
                "burst would make requests wait"
            )
        found.append(
            f"{use.key}: reservations (prompt + max_tokens) pass its TPM limit in {full} "
            f"minute{'' if full == 1 else 's'} of the day (peak {percent(max(shares))}); "
            f"{effect}."
        )
    return found


def _limits(policy: Policy, project: str) -> str:
    models = policy.projects[project].models
    return ", ".join(
        f"{m} RPM {lim.rpm:,.0f} · TPM {lim.tpm:,.0f}"
        if lim.rpm and lim.tpm
        else f"{m} {'RPM ' + format(lim.rpm, ',.0f') if lim.rpm else ''}"
        f"{'TPM ' + format(lim.tpm, ',.0f') if lim.tpm else ''}"
        for m, lim in models.items()
    )


def changes(current: Policy, target: Policy) -> list[str]:
    """The steps from today's policy to ``target``: projects, limits, keys, pools, budgets."""
    if current.name == target.name:
        return ["None: the recommended option is the current one."]
    steps = []
    new = [p for p in target.projects if p not in current.projects]
    gone = [p for p in current.projects if p not in target.projects]
    for p in new:
        steps.append(f"Create project {p} and ask OpenAI for its limits: {_limits(target, p)}.")
    for p in target.projects:
        if p in current.projects and target.projects[p].models != current.projects[p].models:
            steps.append(f"Change project {p}'s limits to {_limits(target, p)}.")
    moved = [
        k
        for k, key in target.keys.items()
        if k in current.keys and current.keys[k].project != key.project
    ]
    if moved:
        steps.append(
            "Issue new keys in their new projects (an OpenAI key belongs to one project): "
            + "; ".join(f"{k} in {target.keys[k].project}" for k in moved)
            + "; then revoke the old ones."
        )
    added = [k for k in target.keys if k not in current.keys]
    dropped = [k for k in current.keys if k not in target.keys]
    if added:
        steps.append(f"Issue keys {_names(added)}.")
    if dropped:
        steps.append(f"Revoke keys {_names(dropped)} once nothing uses them.")
    if gone:
        steps.append(f"Retire project{'s' if len(gone) > 1 else ''} {_names(gone)} afterwards.")
    pools = [
        f"{p} ({', '.join(pool.keys)})"
        for p, pool in target.pools.items()
        if p not in current.pools or current.pools[p].keys != pool.keys
    ]
    if pools:
        steps.append(f"Deploy the policy's pools: {'; '.join(pools)}.")
    if target.budgets != current.budgets:
        steps.append("Review the budgets: they differ from today's policy.")
    return steps


def _depends(v: Variant) -> list[str]:
    about = v.summary.get("about") or {}
    found = []
    rules = assumed_rules(v)
    if rules:
        ranged = " (simulated both ways: see the range below)" if v.summary.get("range") else ""
        found.append(
            f"How OpenAI counts, which its documentation does not settle: simulated with "
            f"{rules}{ranged}. If unused max_tokens are given back, there is more room than "
            "shown; run with --assume refund_unused=both to see both."
        )
    factor = float(about.get("provider_factor") or 1.0)
    if factor != 1.0:
        found.append(f"The provider granting {percent(factor)} of the policy's limits.")
    series = v.summary.get("series") or {}
    busiest = max(
        (
            (max(u.shares()[0], default=0.0), u.key)
            for u in limit_use(
                series.get("admitted_tokens", {}), series.get("admitted_requests", {}), v.policy
            )
            if u.tpm and not u.key.startswith("organization/")
        ),
        default=None,
    )
    traffic = str(about.get("traffic_description") or about.get("traffic") or "the traffic")
    traffic = traffic.rstrip(".")
    burst = (
        f"; its busiest minute reserves {percent(busiest[0])} of {busiest[1]}'s TPM limit"
        if busiest
        else ""
    )
    found.append(f"The traffic's bursts being like this day's ({traffic}){burst}.")
    found.append(_headroom_sentence(v))
    runs = v.runs
    found.append(
        f"{runs} simulated run{'s' if runs != 1 else ''}"
        + (" (one seed: no interval; run with --runs 3 or more)" if runs == 1 else "")
        + "."
    )
    return found


def _headroom_sentence(v: Variant) -> str:
    """How far traffic may grow, and the limits fall, before a critical refusal."""
    found = headroom_of(v)
    if found is None:
        return (
            "How much busier a day it takes before a critical request is refused: not computed "
            "for this report (headroom takes further simulations)."
        )
    growth, limits = found.get("growth"), found.get("limits")
    if growth is None or float(growth) < 1:
        return "Traffic falling: critical requests are refused at this day's traffic already."
    fails = found.get("growth_fails_at")
    edge = f" (refusals from ×{float(fails):.2f})" if fails is not None else " or more"
    text = f"Traffic staying within ×{float(growth):.2f} of this day's{edge}"
    if limits is not None:
        text += f", and the provider granting at least {percent(float(limits))} of the limits"
    return text + f" (headroom, {len(found.get('seeds') or [])} seeds)."


def decide(variants: list[Variant], prefer: str | None = None) -> Decision:
    """The decision for ``variants`` (the first is today's policy)."""
    current = variants[0]
    if len(variants) == 1:
        return Decision(
            None, current.name, [_served(current)], "", "", _risks(current), [], _depends(current)
        )
    left, reasons = _eliminate(variants)
    tie = ""
    best = left[0]
    if len(left) > 1:
        best, tie = _tie_break(left, prefer)
    steps = (
        changes(current.policy, best.policy)
        if current.policy is not None and best.policy is not None
        else []
    )
    return Decision(
        best.name,
        current.name,
        [_served(best), *reasons],
        tie,
        tie_rule(prefer),
        _risks(best),
        steps,
        _depends(best),
    )
