"""A policy as the lines that differ from today's: a unified diff of the two rendered policies."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["DiffLine", "policy_diff"]


@dataclass(frozen=True, slots=True)
class DiffLine:
    """One line of the diff: ``kind`` is "add", "del", "ctx" (unchanged) or "hunk" (a gap)."""

    kind: str
    text: str


def policy_diff(current: str, other: str, context: int = 1) -> list[DiffLine]:
    """The lines of ``other`` that differ from ``current`` (both YAML text), with ``context``
    unchanged lines around each change; empty when they are the same."""
    lines = []
    diff = difflib.unified_diff(current.splitlines(), other.splitlines(), lineterm="", n=context)
    for line in diff:
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            lines.append(DiffLine("hunk", "…"))
        elif line.startswith("+"):
            lines.append(DiffLine("add", line[1:]))
        elif line.startswith("-"):
            lines.append(DiffLine("del", line[1:]))
        else:
            lines.append(DiffLine("ctx", line[1:]))
    return lines
