"""The language of synthetic traffic profiles (``simulations/*.yaml``), as frozen pydantic models.

A profile gives, per domain, a rate shaped over the day, an arrival process, token-size
distributions, an optional model and scheduled bursts. Units are parsed on the way in (rates to
requests per second, durations to seconds, counts to tokens) and unknown fields are refused, so a
misspelt field is an error at its line. :class:`keypolicy.sim.traffic.SyntheticTraffic` turns a
profile into arrivals; the models here only know how to draw sizes and intervals.
"""

from __future__ import annotations

import math
import re
from contextlib import suppress
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from keypolicy.policy.model import Name, TimeZone
from keypolicy.policy.references import did_you_mean
from keypolicy.policy.units import parse_count, parse_duration, parse_rate

__all__ = [
    "SHAPES",
    "Burst",
    "Distribution",
    "DomainTraffic",
    "LogNormal",
    "Process",
    "Profile",
    "Sizes",
]

# A table, kept as one (hours 0-11 on the first line of a shape, 12-23 on the second):
# fmt: off
SHAPES: dict[str, tuple[float, ...]] = {
    # Multipliers of the rate for each local hour 0..23; each named shape peaks at 1.0, so a
    # domain's `rate` is its peak-hour rate.
    "flat": (1.0,) * 24,
    # Office work: nothing at night, a morning peak, a lunch dip, done by 18:00.
    "business_hours": (0.03, 0.03, 0.03, 0.03, 0.03, 0.05, 0.1, 0.35, 0.8, 1.0, 1.0, 0.95,
                       0.75, 0.9, 0.95, 0.9, 0.75, 0.4, 0.15, 0.08, 0.05, 0.04, 0.03, 0.03),
    # Hospital clinical work: wards and the emergency department never stop (a fifth of the
    # peak at night), ward rounds peak at 9-11, outpatient clinics fill the afternoon.
    "clinic": (0.2, 0.18, 0.16, 0.15, 0.15, 0.2, 0.35, 0.6, 0.85, 1.0, 1.0, 0.95,
               0.75, 0.85, 0.9, 0.85, 0.75, 0.55, 0.45, 0.4, 0.35, 0.3, 0.25, 0.22),
    # People at home: a modest day and the peak after dinner, 19:00-22:00.
    "evening_peak": (0.12, 0.07, 0.05, 0.04, 0.04, 0.06, 0.12, 0.25, 0.35, 0.4, 0.42, 0.45,
                     0.5, 0.45, 0.42, 0.42, 0.45, 0.55, 0.7, 0.9, 1.0, 0.9, 0.6, 0.3),
    # Batch jobs that run while people sleep, 01:00-05:00.
    "overnight": (0.5, 1.0, 1.0, 1.0, 1.0, 0.5, 0.1, 0.02, 0.02, 0.02, 0.02, 0.02,
                  0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.05, 0.1, 0.2),
}
# fmt: on
DEFAULT_START = datetime.fromisoformat("2026-11-18T00:00:00-05:00")
"""A fixed Wednesday, so that a profile without ``start`` gives the same day every time."""

_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_Z95 = 1.6448536269514722  # the standard normal's 95th percentile


def _shape(value: Any) -> tuple[float, ...]:
    if isinstance(value, str):
        if value not in SHAPES:
            raise ValueError(f"'{value}' is not a shape: {did_you_mean(value, SHAPES)}")
        return SHAPES[value]
    if not isinstance(value, list | tuple) or len(value) != 24:
        raise ValueError(
            "a shape is a name (flat, business_hours, clinic, evening_peak, "
            "overnight) or a list of 24 hourly multipliers"
        )
    if any(isinstance(v, bool) or not isinstance(v, int | float) or v < 0 for v in value):
        raise ValueError("hourly multipliers are numbers of 0 or more")
    if not any(value):
        raise ValueError("a shape needs at least one hour above 0")
    return tuple(float(v) for v in value)


def _time_of_day(value: Any) -> float:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            "write the time of day in quotes, such as '17:00' "
            "(YAML reads 17:00 unquoted as the number 1020)"
        )
    match = _TIME.match(str(value).strip())
    hours, minutes, seconds = (int(g or 0) for g in match.groups()) if match else (99, 0, 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"'{value}' is not a time of day such as '17:00'")
    return hours * 3600.0 + minutes * 60.0 + seconds


def _aware(value: Any) -> Any:
    moment = value
    if isinstance(value, str):
        with suppress(ValueError):
            moment = datetime.fromisoformat(value)
    if isinstance(moment, datetime) and moment.tzinfo is None:
        raise ValueError(f"'{value}' needs its UTC offset, such as 2026-11-18T00:00:00-05:00")
    return value


Count = Annotated[int, BeforeValidator(parse_count)]
Start = Annotated[AwareDatetime, BeforeValidator(_aware)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
Shape = Annotated[tuple[float, ...], BeforeValidator(_shape)]
TimeOfDay = Annotated[float, BeforeValidator(_time_of_day)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LogNormal(_Model):
    """A log-normal size given by its median and 95th percentile, optionally capped."""

    median: Count = Field(gt=0)
    p95: Count
    max: Count | None = None

    @model_validator(mode="after")
    def _ordered(self) -> LogNormal:
        if self.p95 <= self.median:
            raise ValueError("p95 must be larger than the median")
        if self.max is not None and self.max < self.median:
            raise ValueError("max must be at least the median")
        return self


class Distribution(_Model):
    """A token count: ``500`` or ``{fixed: 500}``, ``{uniform: [a, b]}`` (inclusive) or
    ``{lognormal: {median: 800, p95: 3000, max: 16000}}``. Draws are whole numbers of tokens,
    at least 1 for a log-normal."""

    fixed: Count | None = None
    uniform: tuple[Count, Count] | None = None
    lognormal: LogNormal | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {"fixed": value}

    @model_validator(mode="after")
    def _one(self) -> Distribution:
        given = [f for f in ("fixed", "uniform", "lognormal") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of fixed, uniform or lognormal")
        if self.uniform is not None and self.uniform[0] > self.uniform[1]:
            raise ValueError("uniform: [low, high] needs low <= high")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        """``n`` draws, in tokens."""
        if self.fixed is not None:
            return np.full(n, self.fixed, dtype=np.int64)
        if self.uniform is not None:
            return rng.integers(self.uniform[0], self.uniform[1], n, endpoint=True)
        law = self.lognormal
        assert law is not None  # exactly one is set, checked on the way in
        sigma = math.log(law.p95 / law.median) / _Z95
        draws = np.rint(rng.lognormal(math.log(law.median), sigma, n))
        return np.clip(draws, 1, law.max or np.inf).astype(np.int64)


class Process(_Model):
    """``poisson``, or ``{bursty: {cv: 2.5}}``: renewal arrivals whose intervals have that
    coefficient of variation (gamma by default, or ``law: hyperexponential``)."""

    cv: float = 1.0
    law: Literal["exponential", "gamma", "hyperexponential"] = "exponential"

    @model_validator(mode="before")
    @classmethod
    def _forms(cls, value: Any) -> Any:
        if value == "poisson":
            return {}
        inner = value.get("bursty") if isinstance(value, dict) and len(value) == 1 else None
        if isinstance(inner, dict):
            if inner.get("law", "gamma") not in ("gamma", "hyperexponential"):
                raise ValueError("a bursty law is gamma or hyperexponential")
            if "cv" not in inner:
                raise ValueError("bursty needs its coefficient of variation: {bursty: {cv: 2}}")
            if not set(inner) <= {"cv", "law"}:
                raise ValueError("bursty takes cv and law (gamma or hyperexponential)")
            return {"law": "gamma", **inner}
        raise ValueError("the arrival process is poisson or {bursty: {cv: 2, law: gamma}}")

    @model_validator(mode="after")
    def _bursty(self) -> Process:
        if self.law != "exponential" and not self.cv > 1:
            raise ValueError("a bursty process has a cv above 1 (1 is poisson)")
        return self

    def intervals(self, rng: np.random.Generator, n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        """``n`` intervals of mean 1 (operational time)."""
        c2 = self.cv * self.cv
        if self.law == "gamma":
            return rng.gamma(1 / c2, c2, n)
        if self.law == "hyperexponential":  # two exponentials with balanced means
            p = 0.5 * (1 + math.sqrt((c2 - 1) / (c2 + 1)))
            means = np.where(rng.random(n) < p, 1 / (2 * p), 1 / (2 * (1 - p)))
            return rng.exponential(1.0, n) * means
        return rng.exponential(1.0, n)


class Sizes(_Model):
    """Token sizes and model of requests; a burst may override its domain's."""

    prompt_tokens: Distribution | None = None
    max_tokens: Distribution | None = None
    completion_tokens: Distribution | None = Field(
        None, description="Omitted: the provider model draws it. Capped at max_tokens."
    )
    model: str | None = Field(None, description="Omitted: the domain's default model.")


class Burst(Sizes):
    """A scheduled run: ``requests`` arrivals spread at random over ``over`` from ``at``."""

    description: str = ""
    at: TimeOfDay = Field(description="Time of day, quoted: '17:00'; every day of the period.")
    requests: Count = Field(ge=1)
    over: Seconds = Field(gt=0)


class DomainTraffic(Sizes):
    """One domain's traffic. ``rate`` is the rate where the shape is 1 (a named shape's peak
    hour); ``per_day`` instead gives the expected requests of a whole day of the shape.

    ``shared_prefix`` is a prompt every request of the domain (its bursts' too) starts with, such
    as a system prompt, in tokens. It comes before the drawn ``prompt_tokens``, which then size
    the rest of the prompt: whatever they draw, a prompt holds its prefix, and a profile written
    without one keeps its sizes. The provider model serves the prefix from its prompt cache
    (OpenAI's rules: whole 128-token blocks, from 1,024 tokens, within a few minutes of the
    domain's last request), and the cached tokens are billed at the cached-input price."""

    description: str = ""
    rate: Rate | None = None
    per_day: Count | None = None
    shape: Shape = SHAPES["flat"]
    process: Process = Field(default_factory=lambda: Process.model_validate("poisson"))
    bursts: list[Burst] = Field(default_factory=list)
    shared_prefix: Count = Field(
        0, ge=0, description="Tokens every prompt starts with (a system prompt), before the rest."
    )

    @model_validator(mode="after")
    def _complete(self) -> DomainTraffic:
        if self.rate is not None and self.per_day is not None:
            raise ValueError("give rate or per_day, not both")
        if self.rate is None and self.per_day is None and not self.bursts:
            raise ValueError("give a rate (1200/h) or per_day, or some bursts")
        if self.prompt_tokens is None or self.max_tokens is None:
            raise ValueError("prompt_tokens and max_tokens are required")
        return self

    def peak_rate(self) -> float:
        """Requests per second where the shape is 1."""
        if self.per_day is not None:
            return self.per_day / (3600 * sum(self.shape))
        return self.rate or 0.0


class Profile(_Model):
    """A synthetic traffic profile (version 1)."""

    version: Literal[1]
    kind: Literal["synthetic"] = "synthetic"
    name: Name
    description: str = ""
    start: Start = DEFAULT_START
    timezone: TimeZone | None = Field(None, description="Default: the start's UTC offset.")
    duration: Seconds = Field(86400.0, gt=0)
    domains: dict[Name, DomainTraffic] = Field(min_length=1)
