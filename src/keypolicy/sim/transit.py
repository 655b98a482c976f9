"""How long a request takes between the engine's decision and the provider, each way.

The simulator's engine and its provider model otherwise meet at the same instant: a request the
engine admits is charged by the provider at the very time the engine charged it. Live, the
request travels first (the runtime's own work, the HTTP client, the network, the server's
queue), and not for the same time twice. When the engine admits requests back to back on a full
bucket (each at the moment its view of the bucket has room), a request that travels faster than
the one before reaches a provider that has refilled less than the engine counted, and is refused
with a 429: about one in two such requests with any jitter at all, whatever its size
(``benchmarks/fidelity.py`` measured it on one-second token slices). :class:`Transit` models
that: a log-normal time, drawn per request and per direction, from a generator of its own (a run
without it is the run it was).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Transit"]

_Z95 = 1.6448536269514722  # the standard normal's 95th percentile


@dataclass(frozen=True)
class Transit:
    """A request's time in transit each way, in seconds: log-normal, ``median_s`` and ``p95_s``
    (``p95_s`` equal to the median: always the median)."""

    median_s: float
    p95_s: float

    def __post_init__(self) -> None:
        if not (0 < self.median_s <= self.p95_s and math.isfinite(self.p95_s)):
            raise ValueError(
                f"transit: a median above 0 and a 95th percentile at least as large, not "
                f"{self.median_s} and {self.p95_s} seconds"
            )

    def draw(self, rng: random.Random) -> float:
        """One time in transit (seconds)."""
        sigma = math.log(self.p95_s / self.median_s) / _Z95
        return self.median_s * math.exp(sigma * rng.gauss(0.0, 1.0)) if sigma else self.median_s
