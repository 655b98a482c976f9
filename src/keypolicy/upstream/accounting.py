"""How the provider counts against its limits where OpenAI does not document it.

Three things decide how much a stream of requests may send, and OpenAI's guide settles none of
them: whether the unused part of ``max_tokens`` is given back when a response completes, whether
a refused request counts, and whether a per-minute limit is spent in slices. A policy states
what it assumes (its ``provider:`` section); the provider model counts by the same rules unless
a simulation is told otherwise (``simulate --assume``), so a prediction can show how much the
answer depends on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Final

from keypolicy.policy.model import Policy
from keypolicy.policy.units import format_duration, parse_duration

__all__ = ["ACCOUNTING_RULES", "Accounting", "parse_assumption"]

ACCOUNTING_RULES: Final = ("refund_unused", "count_failed", "quantum_requests", "quantum_tokens")
"""The accounting rules a simulation may vary (``simulate --assume RULE=VALUES``)."""


@dataclass(frozen=True, slots=True)
class Accounting:
    """How the provider counts against its limits where OpenAI does not document it.

    A policy states what it assumes (its ``provider:`` section, read by :meth:`from_policy`);
    the provider model counts by the same rules unless a simulation says otherwise, so that the
    engine and the provider it is judged by agree on what the user assumes.

    - ``refund_unused``: when an answer is complete, its token charge is corrected to the tokens
      actually used (the unused part of ``max_tokens`` given back). Off: the charge made at
      admission stands (OpenAI's guide says limits count ``max_tokens`` at admission and says
      nothing of a correction; captured headers from 2023 show none).
    - ``count_failed``: a request refused for pace (429) still counts one request against the
      per-minute request limits (the help center: "unsuccessful requests contribute to your
      per-minute limit"). Not its tokens: OpenAI's "try again in" is (used + requested - limit)
      / rate, which would be too short if they counted; nor the daily limits, which nothing
      says they count against.
    - ``quantum_requests`` / ``quantum_tokens`` (seconds, or ``None`` for the whole minute):
      per-minute limits enforced in slices (the guide: 60,000 RPM "may be enforced as 1,000
      requests/second"). At most ``limit * quantum / 60`` is spent at once; a request larger
      than that is not refused, it goes once the slice is unused and leaves it in debt.
      A model's own ``quantum`` (``ModelLimits.quantum``) takes precedence for its limits.
    """

    refund_unused: bool = False
    count_failed: bool = True
    quantum_requests: float | None = None
    quantum_tokens: float | None = None

    def __post_init__(self) -> None:
        for name in ("quantum_requests", "quantum_tokens"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 60:
                raise ValueError(f"{name} must lie between 0 and 60s")

    @classmethod
    def from_policy(cls, policy: Policy) -> Accounting:
        """The rules ``policy`` assumes."""
        p = policy.provider
        return cls(p.refund_unused, p.count_failed, p.quantum_requests, p.quantum_tokens)

    def quantum(self, dimension: str) -> float | None:
        """The slice (seconds) the per-minute ``dimension`` (rpm or tpm) is enforced in."""
        if dimension == "rpm":
            return self.quantum_requests
        if dimension == "tpm":
            return self.quantum_tokens
        return None

    def with_rule(self, rule: str, value: bool | float | None) -> Accounting:
        """These rules with ``rule`` set to ``value``."""
        if rule not in ACCOUNTING_RULES:
            raise ValueError(f"unknown accounting rule {rule!r}: use {', '.join(ACCOUNTING_RULES)}")
        changes: dict[str, Any] = {rule: value}
        return replace(self, **changes)

    def as_dict(self) -> dict[str, bool | float | None]:
        """The rules by name (JSON-ready: seconds for the quanta)."""
        return asdict(self)

    def describe(self, rule: str) -> str:
        """One rule and its value as a person reads it (``refund_unused=false``)."""
        value = getattr(self, rule)
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = "none" if value is None else format_duration(value)
        return f"{rule}={text}"


def parse_assumption(spec: str) -> tuple[str, list[bool | float | None]]:
    """Parse ``RULE=VALUE[,VALUE...]`` (``--assume``) into the rule and its values.

    The two yes/no rules take ``true``, ``false`` or ``both``; the quanta a duration or
    ``none`` (no slices), such as ``quantum_tokens=none,1s``.
    """
    rule, eq, values = (part.strip() for part in spec.partition("="))
    if not eq or rule not in ACCOUNTING_RULES or not values:
        raise ValueError(
            f"'{spec}' is not an assumption: write RULE=VALUE[,VALUE...] with RULE one of "
            f"{', '.join(ACCOUNTING_RULES)} (refund_unused=both, quantum_tokens=none,1s)"
        )
    out: list[bool | float | None] = []
    for word in (v.strip().lower() for v in values.split(",")):
        if rule in ("refund_unused", "count_failed"):
            choices = {"true": [True], "false": [False], "both": [True, False]}
            if word not in choices:
                raise ValueError(f"{rule} takes true, false or both, not '{word}'")
            out += choices[word]
        elif word in ("none", "off", "0"):
            out.append(None)
        else:
            try:
                seconds = parse_duration(word)
            except ValueError:
                raise ValueError(
                    f"{rule} takes a duration such as 1s, or none, not '{word}'"
                ) from None
            if not 0 < seconds <= 60:
                raise ValueError(f"{rule} must lie between 0 and 60s, not '{word}'")
            out.append(seconds)
    return rule, list(dict.fromkeys(out))
