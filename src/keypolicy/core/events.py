"""What drivers tell the engine. Every event carries its time ``now`` (epoch seconds).

Times must not go backwards; an event stamped earlier than the last one is taken as happening at
the last one's time (a wall clock may step back; decisions must not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Advance", "Cancel", "Event", "Failed", "Settled", "Submit"]


@dataclass(frozen=True, slots=True)
class Submit:
    """A request wants to go out.

    ``prompt_tokens`` is the exact count (tokenizer) used for budget estimates;
    ``rate_prompt_tokens`` is the provider's own estimate used for the rate-limit charge (it
    estimates from characters; ``None`` means the same as ``prompt_tokens``). ``max_output_tokens``
    is per choice (``None``: the model's maximum); ``n`` choices. ``model`` ``None`` means the
    domain's default.
    """

    request_id: str
    domain: str
    now: float
    prompt_tokens: int
    max_output_tokens: int | None = None
    n: int = 1
    model: str | None = None
    rate_prompt_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    """An attempt succeeded; its actual usage (tokens) and the response's headers.

    ``attempt`` (from the Send action) guards against a late answer to an attempt that was
    already given up on; ``None`` skips the check.
    """

    request_id: str
    now: float
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """An attempt failed: HTTP ``status`` (``None`` for a timeout or a dropped connection)."""

    request_id: str
    now: float
    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | None = None
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """The caller gave up on a request (it releases whatever the request held)."""

    request_id: str
    now: float


@dataclass(frozen=True, slots=True)
class Advance:
    """Time passed; the engine may admit, expire or wake what was waiting."""

    now: float


Event = Submit | Settled | Failed | Cancel | Advance
