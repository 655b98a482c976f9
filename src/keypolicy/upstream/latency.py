"""How long the provider takes: time to first token plus output tokens at a rate, with noise.

Each model has a :class:`ModelSpeed`; both parts are multiplied by independent log-normal noise
(``exp(N(0, jitter))``, median 1) drawn from the generator passed in. The built-in speeds are rough
figures for orientation, not measurements: set them for the account being modelled.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from keypolicy.upstream.outcome import Timing

__all__ = ["DEFAULT_SPEEDS", "LatencySettings", "ModelSpeed"]


@dataclass(frozen=True, slots=True)
class ModelSpeed:
    """``ttft``: seconds to the first token; ``tokens_per_second``: output rate (inf: instant)."""

    ttft: float
    tokens_per_second: float = math.inf


DEFAULT_SPEEDS: Final[dict[str, ModelSpeed]] = {
    "gpt-5": ModelSpeed(3.0, 60.0),
    "gpt-5-mini": ModelSpeed(1.5, 90.0),
    "gpt-5-nano": ModelSpeed(1.0, 130.0),
    "gpt-4.1": ModelSpeed(0.5, 75.0),
    "gpt-4.1-mini": ModelSpeed(0.4, 100.0),
    "gpt-4.1-nano": ModelSpeed(0.3, 150.0),
    "gpt-4o": ModelSpeed(0.45, 80.0),
    "gpt-4o-mini": ModelSpeed(0.35, 90.0),
    "o3": ModelSpeed(4.0, 60.0),
    "o4-mini": ModelSpeed(2.0, 100.0),
    "text-embedding-3-small": ModelSpeed(0.1),
    "text-embedding-3-large": ModelSpeed(0.15),
}
"""Rough speeds per model (seconds to first token, output tokens per second)."""


@dataclass(frozen=True)
class LatencySettings:
    """Speeds per model (``default`` for the rest), noise, and a factor on all of it.

    ``jitter`` is the standard deviation of the log of the noise factor; ``scale`` multiplies every
    duration (0 answers instantly, which is what benchmarks use).
    """

    models: Mapping[str, ModelSpeed] = field(default_factory=lambda: dict(DEFAULT_SPEEDS))
    default: ModelSpeed = ModelSpeed(0.5, 80.0)
    jitter: float = 0.25
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.jitter < 0 or self.scale < 0:
            raise ValueError("latency jitter and scale cannot be negative")

    @classmethod
    def instant(cls) -> LatencySettings:
        """No latency at all: every answer at once."""
        return cls(jitter=0.0, scale=0.0)

    def speed(self, model: str) -> ModelSpeed:
        """The speed of ``model``."""
        return self.models.get(model, self.default)

    def timing(self, model: str, output_tokens: int, rng: random.Random) -> Timing:
        """When an answer of ``output_tokens`` tokens starts and ends (seconds after arrival)."""
        if self.scale == 0:
            return Timing(0.0, 0.0)
        speed = self.speed(model)
        first = speed.ttft * self._noise(rng)
        generation = 0.0
        if output_tokens > 0 and math.isfinite(speed.tokens_per_second):
            generation = output_tokens / speed.tokens_per_second * self._noise(rng)
        return Timing(first * self.scale, (first + generation) * self.scale)

    def _noise(self, rng: random.Random) -> float:
        return lognormal(rng, self.jitter) if self.jitter > 0 else 1.0


_NV_MAGIC: Final = 4 * math.exp(-0.5) / math.sqrt(2.0)


def lognormal(rng: random.Random, sigma: float) -> float:
    """``rng.lognormvariate(0.0, sigma)``, the same draws and the same value, in compiled code:
    CPython's Kinderman-Monahan ratio of uniforms, which ``random`` runs as interpreted Python
    (the latency of every simulated answer draws twice)."""
    draw = rng.random
    while True:
        u1 = draw()
        u2 = 1.0 - draw()
        z = _NV_MAGIC * (u1 - 0.5) / u2
        if z * z / 4.0 <= -math.log(u2):
            return math.exp(z * sigma)
