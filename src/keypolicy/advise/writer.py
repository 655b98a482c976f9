"""The recommended candidate written as a policy file: ``extends`` the base, changes only the
projects, keys, pools and domains' pools, and says in comments why it was chosen."""

from __future__ import annotations

import os
import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from keypolicy.advise.search import Advice
from keypolicy.policy.model import Policy
from keypolicy.sim.headroom import Headroom

__all__ = ["policy_text", "write_policy"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _dump(policy: Policy, section: str) -> dict[str, Any]:
    """A section as policy data, without empty descriptions (the default, written or not)."""
    data: dict[str, Any] = policy.model_dump(mode="json", exclude_none=True)[section]
    for value in data.values():
        if isinstance(value, dict) and value.get("description") == "":
            del value["description"]
    return data


def _diff(base: Policy, chosen: Policy) -> dict[str, Any]:
    """The sections that differ, as ``extends`` merges them (``null`` removes a name)."""
    out: dict[str, Any] = {}
    for section in ("projects", "keys", "pools"):
        old, new = _dump(base, section), _dump(chosen, section)
        changes: dict[str, Any] = {name: None for name in old if name not in new}
        for name, value in new.items():
            if old.get(name) == value:
                continue
            kept_key = section == "keys" and name in old  # a kept key: only what changed
            changes[name] = (
                {k: v for k, v in value.items() if old[name].get(k) != v} if kept_key else value
            )
        if changes:
            out[section] = changes
    moved = {
        d: {"pool": spec.pool}
        for d, spec in chosen.domains.items()
        if base.domains[d].pool != spec.pool
    }
    if moved:
        out["domains"] = moved
    return out


def _comment(lines: list[str]) -> str:
    """Comment lines, long ones wrapped at 98 columns (continued indented)."""
    out = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()))
        wrapped = textwrap.wrap(line, 96, initial_indent="", subsequent_indent=indent + "  ")
        out += [f"# {part}".rstrip() for part in wrapped or [""]]
    return "\n".join(out) + "\n"


def _why(advice: Advice, index: int) -> list[str]:
    chosen, current = advice.scores[index], advice.scores[advice.current]
    rows = []
    for name in advice.settings.order:
        if name not in chosen.values:
            continue
        mine, theirs = chosen.values[name], current.values[name]
        spread = f" ± {mine.ci95:.3g}" if mine.ci95 else ""
        rows.append(f"  {name:<10} {mine.mean:>12,.2f}{spread}   (current: {theirs.mean:,.2f})")
    return rows


def _headroom_line(room: Headroom | None) -> str:
    return room.describe() if room is not None else "not searched (--no-headroom)"


def policy_text(advice: Advice, index: int, base_path: Path, out: Path) -> str:
    """The policy file for candidate ``index`` of ``advice``, to be written at ``out``, extending
    the base policy at ``base_path`` (by a path relative to ``out``'s folder)."""
    candidate = advice.candidates[index]
    base = advice.base
    stem = out.stem
    name = stem if _NAME.match(stem) else f"{base.name}-advised"
    extends = os.path.relpath(base_path.resolve(), out.resolve().parent)
    place = advice.front.index(index) + 1 if index in advice.front else None
    rank = f"ranked {place} of {len(advice.front)} on the front" if place else "not on the front"
    new_keys = [
        f"  {alias}: a new key; create it in project {spec.project} and set {spec.env}"
        for alias, spec in candidate.policy.keys.items()
        if alias not in base.keys
    ]
    rule = (
        "each pool's project has the limits of the projects it replaces, added up, capped by "
        "the organization's"
        if advice.settings.rule == "sum"
        else "each pool's project may use up to the organization's limits"
    )
    header = [
        f"Written by `keypolicy advise` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        f"Grouping: {candidate.label}",
        f"Why: of {len(advice.candidates)} groupings of {base.name}'s domains, simulated on "
        f"{len(advice.seeds)} seeds of the same traffic, {rank}, "
        f"by {', '.join(advice.settings.order)} (in that order).",
        "Scores (per day of traffic; mean ± 95% interval over the seeds):",
        *_why(advice, index),
        f"Headroom: {_headroom_line(advice.headroom.get(index))}.",
        f"Limits: {rule}.",
        "Each domain keeps its own key (attribution); priorities, reserves, deferral, budgets",
        "and retries are the base's, unchanged.",
        *(["New keys:", *new_keys] if new_keys else []),
    ]
    body: dict[str, Any] = {
        "version": 1,
        "extends": extends,
        "name": name,
        "description": f"{base.name} regrouped by keypolicy advise: {candidate.label}",
        **_diff(base, candidate.policy),
    }
    text = yaml.safe_dump(body, sort_keys=False, allow_unicode=False, width=100)
    return _comment(header) + text


def write_policy(advice: Advice, index: int, base_path: Path, out: Path) -> None:
    """Write :func:`policy_text` to ``out`` whole (a temporary file renamed over it)."""
    text = policy_text(advice, index, base_path, out)
    target = out.resolve()
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
