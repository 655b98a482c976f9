"""Settings of the provider model where OpenAI's behaviour is unknown or varies.

Each default follows what OpenAI documents or what captured responses show; where nothing is
known, the default is a plain choice, named here so a simulation can state it and vary it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from keypolicy.upstream.batches import BatchSettings
from keypolicy.upstream.faults import FaultSettings
from keypolicy.upstream.latency import LatencySettings

__all__ = ["ProviderSettings"]


@dataclass(frozen=True)
class ProviderSettings:
    """How the provider model charges, answers and fails.

    - ``chars_per_token``: the limiter's prompt estimate is ceil(characters / this).
    - ``default_max_output``: tokens per choice charged at admission, and the bound of the
      completion draw, for a request that names no ``max_tokens`` (OpenAI does not document it).
    - ``completion_shape``: completion tokens per choice are ``max(1, round(max_output * f))``
      with ``f ~ Beta(a, b)`` (mean a / (a + b)), unless the request states exact counts.
    - ``prompt_caching`` / ``cache_ttl`` (seconds): report repeated prompt prefixes as cached.
    - ``retry_after``: add ``retry-after`` (whole seconds, rounded up) to rate-limit 429s; OpenAI
      mostly sends none.
    - ``undeclared_models``: a model with limits in neither the project nor the organization is
      refused as ``model_not_found`` (404) or served without limits (``unlimited``).
    - ``project_in_message``: 429 messages of a project's bucket say "in project NAME" instead
      of "in organization ORG".
    - ``batch``: how long Batch API batches take and when they expire (log-normal, median 1 h,
      95th percentile 8 h, 24 h window: :class:`~keypolicy.upstream.batches.BatchSettings`, whose
      docstring gives the sources).
    """

    chars_per_token: float = 4.0
    default_max_output: int = 512
    completion_shape: tuple[float, float] = (2.0, 3.0)
    prompt_caching: bool = False
    cache_ttl: float = 300.0
    retry_after: bool = False
    undeclared_models: Literal["not_found", "unlimited"] = "not_found"
    project_in_message: bool = False
    latency: LatencySettings = field(default_factory=LatencySettings)
    faults: FaultSettings = field(default_factory=FaultSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)

    def __post_init__(self) -> None:
        if self.chars_per_token <= 0:
            raise ValueError("chars_per_token must be positive")
        if self.default_max_output < 0:
            raise ValueError("default_max_output cannot be negative")
        if min(self.completion_shape) <= 0:
            raise ValueError("completion_shape takes two positive Beta parameters")
