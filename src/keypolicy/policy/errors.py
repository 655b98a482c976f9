"""Errors about policies, shaped for people: where (file:line:col), what, and what to do."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Issue", "Location", "PolicyError", "redact"]

_SECRET = re.compile(r"sk-[A-Za-z0-9_\-]{4,}")


def redact(text: str) -> str:
    """Mask anything that looks like an OpenAI key, so that no message can carry one."""
    return _SECRET.sub("sk-***", text)


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a policy file; ``line`` and ``column`` count from 1."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding about a policy: an error, or a lint warning.

    ``path`` is the dotted field path (``domains.chat.pool``); ``hint`` says what to do.
    """

    location: Location | None
    path: str
    message: str
    hint: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        path = f"{self.path}: " if self.path else ""
        text = f"{where}{path}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return redact(text)

    def sort_key(self) -> tuple[str, int, int, str]:
        """Order issues by file, line, column, then path, as a reader scans a file."""
        loc = self.location
        if loc is None:
            return ("", 0, 0, self.path)
        return (loc.file, loc.line, loc.column, self.path)


@dataclass
class PolicyError(Exception):
    """A policy could not be loaded; ``issues`` lists every problem found, not only the first."""

    issues: list[Issue] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in the policy"
        return head + ":\n" + "\n".join(f"  {issue}" for issue in self.issues)
