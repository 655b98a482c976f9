"""Findings about limits: which project's model reaches its TPM limit, and whether capacity
stands idle elsewhere meanwhile (the question of merging keys turns on it).

Demand here is what was charged at admission (prompt + max_tokens) per minute, against the
project's TPM limit; the organization's use is the sum over its projects.
"""

from __future__ import annotations

from keypolicy.report.demand import Use, limit_use
from keypolicy.report.facts import Variant
from keypolicy.report.values import count, percent, seconds

__all__ = ["domains_on", "limit_findings"]

FULL = 1.0  # a minute at or above the limit
IDLE = 0.6  # a sibling that never passes this share has room to spare


def _clock(v: Variant, minute: int) -> str:
    about = v.summary.get("about", {})
    start = str(about.get("start", ""))
    try:
        hour, mins = int(start[11:13]), int(start[14:16])
    except ValueError:
        hour, mins = 0, 0
    total = hour * 60 + mins + minute
    return f"{total // 60 % 24:02d}:{total % 60:02d}"


def domains_on(v: Variant, project: str) -> list[str]:
    """The domains whose pool draws on a key of ``project`` (none without a policy)."""
    if v.policy is None:
        return []
    keys = {k for k, key in v.policy.keys.items() if key.project == project}
    return [
        d
        for d, spec in v.policy.domains.items()
        if spec.pool in v.policy.pools and set(v.policy.pools[spec.pool].keys) & keys
    ]


def _consequence(v: Variant, project: str) -> str:
    """What the full minutes did: requests rejected, requests queued, or nothing at all."""
    domains = domains_on(v, project)
    if not domains:
        return ""
    rejected = sum(v.value("domains", d, "rejected") for d in domains)
    which = "" if set(domains) == set(v.rows("domains")) else f" of {', '.join(domains)}"
    if rejected >= 0.5:
        return f"; {count(rejected)} requests{which} are rejected"
    waited = v.longest_wait(domains)
    if waited >= 0.005:
        return (
            f"; the queue absorbs it: requests{which} wait up to {seconds(waited)}, none rejected"
        )
    return (
        f"; no request{which} waited or was rejected: capacity saved in quieter minutes absorbed it"
    )


def _share_at(use: Use, minute: int) -> float:
    """Tokens reserved in ``minute`` as a share of the TPM limit."""
    shares, _ = use.shares()
    return shares[minute] if 0 <= minute < len(shares) else 0.0


def _full(use: Use) -> tuple[int, int, float]:
    """Minutes at or above the TPM limit, the first of them, and the highest share."""
    shares, _ = use.shares()
    over = [i for i, s in enumerate(shares) if s >= FULL]
    return len(over), (over[0] if over else -1), max(shares, default=0.0)


def limit_findings(v: Variant) -> list[str]:
    """A sentence per project model that reaches its TPM limit, naming idle siblings."""
    series = v.summary.get("series") or {}
    uses = [
        u
        for u in limit_use(
            series.get("admitted_tokens", {}), series.get("admitted_requests", {}), v.policy
        )
        if u.tpm
    ]
    projects = [u for u in uses if not u.key.startswith("organization/")]
    orgs = {u.key.partition("/")[2]: u for u in uses if u.key.startswith("organization/")}
    found = []
    for use in projects:
        minutes, first, _ = _full(use)
        if not minutes:
            continue
        project, _, model = use.key.partition("/")
        idle = [
            (u.key, share)
            for u in projects
            if u is not use
            and u.key.endswith(f"/{model}")
            and (share := _share_at(u, first)) < IDLE
        ]
        text = (
            f"Reservations (prompt + max_tokens) on {use.key} reach its TPM limit "
            f"({use.tpm:,.0f}) in {minutes} "
            f"minute{'' if minutes == 1 else 's'}, "
            f"first at {_clock(v, first)}{_consequence(v, project)}"
        )
        if idle:
            peaks = " and ".join(f"{k} at {percent(s)}" for k, s in idle)
            text += (
                f"; at that minute {peaks} of {'their own limits' if len(idle) > 1 else 'its own'}"
            )
            org = orgs.get(model)
            if org is not None and _full(org)[0] == 0:
                text += (
                    f", and the organization's {model} use stays below its limit: fixed slices "
                    "strand capacity a shared project would use"
                )
        found.append(text + ".")
    if not found and projects:
        busiest = max(projects, key=lambda u: _full(u)[2])
        shares, _ = busiest.shares()
        at = max(range(len(shares)), key=lambda i: shares[i]) if shares else 0
        found.append(
            f"No project's reservations reach a TPM limit; the busiest is {busiest.key} at "
            f"{percent(_full(busiest)[2])} of its limit ({_clock(v, at)})."
        )
    return found
