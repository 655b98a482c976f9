"""The policy language, version 1, as frozen pydantic models.

Units are parsed on the way in (see :mod:`keypolicy.policy.units`): every duration is held in
seconds, every share as a fraction, money in US dollars, counts as integers. Unknown fields are
refused everywhere, so a misspelt field is an error at its line, not a silently ignored setting.
Cross references (pools, keys, projects, priorities, models) are checked by
:mod:`keypolicy.policy.references`, after each section has validated on its own.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from keypolicy.catalog import TIERS
from keypolicy.policy.units import (
    parse_count,
    parse_duration,
    parse_money,
    parse_share,
)
from keypolicy.urls import mask_url

__all__ = [
    "AppliesTo",
    "Backoff",
    "Budget",
    "Defer",
    "Domain",
    "Key",
    "Limits",
    "OnExhausted",
    "Organization",
    "Policy",
    "Pool",
    "PriceOverride",
    "Pricing",
    "Priority",
    "Project",
    "ProviderAccounting",
    "Retry",
]


def _unit(parser: Any, description: str, example: str) -> Any:
    schema = {
        "anyOf": [{"type": "number"}, {"type": "string"}],
        "description": description,
        "examples": [example],
    }
    return (BeforeValidator(parser), WithJsonSchema(schema))


Seconds = Annotated[
    float, *_unit(parse_duration, "A duration: 500ms, 5s, 1m30s, 6h, or seconds.", "5s")
]
Count = Annotated[int, *_unit(parse_count, "A count: 800000, 800_000, 800k, 2M.", "800_000")]
Usd = Annotated[float, *_unit(parse_money, "US dollars: $20, 20, 0.5.", "$20")]
Share = Annotated[float, *_unit(parse_share, "A share of a limit or budget: 20% or 0.2.", "20%")]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"'{value}' is not a usable name: use letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return value


def _check_env(value: str) -> str:
    if value.startswith("sk-") or not _ENV_NAME.match(value):
        raise ValueError(
            "'env' takes the NAME of an environment variable (such as OPENAI_API_KEY_CHAT), "
            "never the key itself"
        )
    return value


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder: OSError
        raise ValueError(
            f"unknown time zone '{value}': use an IANA name such as UTC or Europe/Berlin"
        ) from None
    return value


def _check_window(value: str) -> str:
    match = _WINDOW.match(value.strip())
    if not match:
        raise ValueError(f"'{value}' is not a time window such as 19:00-07:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(f"'{value}' has an impossible time of day")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
EnvName = Annotated[str, AfterValidator(_check_env)]
TimeZone = Annotated[str, AfterValidator(_check_zone)]
Window = Annotated[str, AfterValidator(_check_window)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=False)


class Limits(_Model):
    """One model's limits in one project (or the organization): per minute and per day."""

    rpm: Count | None = Field(None, description="Requests per minute.")
    rpd: Count | None = Field(None, description="Requests per day.")
    tpm: Count | None = Field(None, description="Tokens per minute.")
    tpd: Count | None = Field(None, description="Tokens per day.")
    quantum: Seconds | None = Field(
        None,
        description="Enforce this model's per-minute limits (requests and tokens) in slices "
        "of this length, instead of the provider's quantum_requests / quantum_tokens "
        "(60,000 RPM with quantum 1s is 1,000 per second).",
    )

    @model_validator(mode="after")
    def _some_limit(self) -> Limits:
        if self.quantum is not None and not 0 < self.quantum <= 60:
            raise ValueError("quantum must lie between 0 and 60s")
        return self


class Organization(_Model):
    """Organization-wide limits, which every project's traffic counts against as well."""

    id: str | None = Field(None, description="The organization id, for reports only.")
    tier: int | None = Field(None, ge=1, le=5, description="OpenAI usage tier (1-5).")
    usage_limit: Usd | None = Field(
        None,
        description="The most the organization may spend in a calendar month (UTC), past which "
        "OpenAI refuses every call with insufficient_quota. Unset: the tier's published limit.",
    )
    models: dict[str, Limits] = Field(default_factory=dict)

    def monthly_usage_limit(self) -> float | None:
        """The organization's monthly usage limit (USD): its own, else its tier's, else none."""
        if self.usage_limit is not None:
            return self.usage_limit
        info = TIERS.get(self.tier) if self.tier is not None else None
        return None if info is None else info.usage_limit


class Project(_Model):
    """One provider quota: every key of the project shares these limits."""

    description: str = ""
    tier: int | None = Field(None, ge=1, le=5, description="Usage tier the limits come from.")
    models: dict[str, Limits] = Field(default_factory=dict)


class Key(_Model):
    """An API key, known by alias; the secret lives in the environment variable ``env``."""

    project: str
    env: EnvName = Field(description="Name of the environment variable holding the secret.")
    weight: float = Field(1.0, gt=0, description="Share of traffic under the weighted strategy.")


class Pool(_Model):
    """Keys that serve the same domains, and how requests are spread over them."""

    keys: list[str] = Field(min_length=1)
    strategy: Literal["round_robin", "least_loaded", "weighted"] = "least_loaded"


class Priority(_Model):
    """A priority class. Classes are listed from the most to the least urgent."""

    name: Name
    reserve: Share = Field(
        0.0, description="Share of every limit that only this class and higher ones may use."
    )
    max_wait: Seconds | None = Field(None, description="Longest a request may queue.")
    deferrable: bool = Field(False, description="Whether requests of this class may be deferred.")


class Defer(_Model):
    """What happens to a domain's requests that cannot go now."""

    mode: Literal["never", "queue", "batch"] = "never"
    windows: list[Window] = Field(
        default_factory=list,
        description="Times of day (policy time zone) when queued requests may run, 19:00-07:00.",
    )
    deadline: Seconds | None = Field(None, description="Longest a deferred request may be held.")

    @model_validator(mode="before")
    @classmethod
    def _from_word(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Defer:
        if self.mode != "queue" and self.windows:
            raise ValueError("'windows' only applies to mode: queue")
        if self.mode == "batch" and self.deadline is not None and self.deadline > 86400:
            raise ValueError("the Batch API completes within 24h: deadline must be 24h or less")
        return self

    def window_minutes(self) -> list[tuple[int, int]]:
        """Windows as (start, end) minutes after midnight; end < start wraps past midnight."""
        spans = []
        for window in self.windows:
            match = _WINDOW.match(window.strip())
            assert match is not None  # validated on the way in
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            spans.append((h1 * 60 + m1, h2 * 60 + m2))
        return spans


class Domain(_Model):
    """An application function: which pool it uses, how urgent it is, which models it may call."""

    description: str = ""
    pool: str
    priority: str
    model: str = Field(description="Default model.")
    models: list[str] = Field(
        default_factory=list, description="Other models the domain may call (besides `model`)."
    )
    max_wait: Seconds | None = Field(None, description="Longest a request may queue.")
    defer: Defer = Field(default_factory=Defer)

    def allowed_models(self) -> list[str]:
        """The default model first, then the others, each once."""
        return list(dict.fromkeys([self.model, *self.models]))


class AppliesTo(_Model):
    """What a budget counts: everything, or one domain, pool, key or project."""

    scope: Literal["all", "domain", "pool", "key", "project"]
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value == "all":
            return {"scope": "all"}
        if isinstance(value, dict) and len(value) == 1:
            ((scope, name),) = value.items()
            if scope in {"domain", "pool", "key", "project"}:
                return {"scope": scope, "name": name}
        if isinstance(value, str):
            raise ValueError(
                "write 'all', or one of {domain: NAME}, {pool: NAME}, {key: NAME}, {project: NAME}"
            )
        return value

    @model_validator(mode="after")
    def _named(self) -> AppliesTo:
        if (self.scope == "all") != (self.name is None):
            raise ValueError("'all' takes no name; domain, pool, key and project each need one")
        return self


class OnExhausted(_Model):
    """What happens to requests once a budget is spent."""

    action: Literal["reject", "defer", "downgrade"] = "reject"
    model: str | None = Field(None, description="The model to fall back to, for downgrade.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value == "downgrade":
                raise ValueError("downgrade needs a model: on_exhausted: {downgrade: gpt-4o-mini}")
            return {"action": value}
        if isinstance(value, dict) and set(value) == {"downgrade"}:
            return {"action": "downgrade", "model": value["downgrade"]}
        return value

    @model_validator(mode="after")
    def _model_iff_downgrade(self) -> OnExhausted:
        if (self.action == "downgrade") != (self.model is not None):
            raise ValueError("a model is given with downgrade, and only with downgrade")
        return self


def _check_period(value: Any) -> Any:
    if value in ("day", "week", "month"):
        return value
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(
            "per is day, week or month (calendar, in the budget's time zone) "
            "or a rolling duration such as 24h"
        ) from None
    if seconds <= 0:
        raise ValueError("a rolling budget period must be longer than zero")
    return seconds


Period = Annotated[
    Literal["day", "week", "month"] | float,
    BeforeValidator(_check_period),
    WithJsonSchema(
        {
            "anyOf": [{"enum": ["day", "week", "month"]}, {"type": "number"}, {"type": "string"}],
            "description": "Calendar period, or a rolling duration such as 24h.",
        }
    ),
]


class Budget(_Model):
    """A spending limit over a period, with alerts and what to do once it is spent."""

    applies_to: AppliesTo
    usd: Usd
    per: Period = "day"
    timezone: TimeZone | None = Field(None, description="Defaults to the policy's time zone.")
    alert_at: list[Share] = Field(default_factory=lambda: [0.8, 1.0])
    on_exhausted: OnExhausted = Field(default_factory=OnExhausted)


class Backoff(_Model):
    """Exponential backoff between attempts when the provider gives no better hint."""

    initial: Seconds = 0.5
    max: Seconds = 20.0
    multiplier: float = Field(2.0, ge=1.0)
    jitter: Literal["full", "equal", "none"] = "full"


class Retry(_Model):
    """When and how failed calls are tried again."""

    max_attempts: int = Field(3, ge=1, le=20, description="Attempts in all, the first included.")
    backoff: Backoff = Field(default_factory=Backoff)
    honor_retry_after: bool = True
    honor_reset_headers: bool = True
    other_key: bool = Field(
        True, description="Retry a 429 on another key of the pool if one has room."
    )


class PriceOverride(_Model):
    """A model's price in US dollars per million tokens, replacing the catalog's."""

    input: Usd
    cached_input: Usd | None = None
    output: Usd = 0.0


class Pricing(_Model):
    """The built-in dated catalog plus the policy's own prices."""

    catalog: Literal["builtin"] = "builtin"
    overrides: dict[str, PriceOverride] = Field(default_factory=dict)


def _check_slice(value: float | None) -> float | None:
    if value is not None and not 0 < value <= 60:
        raise ValueError("a slice of a per-minute limit lies between 0 and 60s")
    return value


Slice = Annotated[Seconds | None, AfterValidator(_check_slice)]


class ProviderAccounting(_Model):
    """How the provider counts against its per-minute limits, where OpenAI does not say.

    The engine's own view of the limits and the simulated provider both follow these, so that
    they agree on what the user assumes; ``simulate --assume`` shows what changes if OpenAI
    counts otherwise. policies/README.md gives each rule's source.
    """

    refund_unused: bool = Field(
        False,
        description="Whether the unused part of max_tokens is given back to the token limits "
        "when a response completes (undocumented; default: not given back).",
    )
    count_failed: bool = Field(
        True,
        description="Whether a request refused with a 429 still counts one request against "
        "the per-minute request limits (OpenAI: failed requests count toward per-minute "
        "limits).",
    )
    quantum_requests: Slice = Field(
        None,
        description="Enforce per-minute request limits in slices of this length: at most "
        "limit * slice / 60 at once (60,000 RPM with 1s: 1,000 a second). Default: none.",
    )
    quantum_tokens: Slice = Field(
        None,
        description="The same for per-minute token limits; a request larger than one slice "
        "still goes, once the slice is unused. Default: none.",
    )


_STATE_SCHEMES = ("memory", "redis", "rediss", "unix")


class State(_Model):
    """Where the limits' and budgets' state lives: in the process, or shared in Redis.

    ``memory`` (the default) keeps it in the process: right for one process, and for the
    simulator. ``redis://HOST:PORT/DB`` shares it between every process (and replica) that runs
    the policy, so that they hold the provider's limits and the budgets together. A URL with a
    password is refused here: put it in an environment variable and name it with ``url_env``.
    """

    url: str = Field(
        "memory", description="memory, or redis://HOST:PORT/DB (rediss:// for TLS, unix://)."
    )
    url_env: EnvName | None = Field(
        None, description="Environment variable holding the URL (for one with a password)."
    )
    namespace: str | None = Field(
        None,
        description="Prefix of the keys in Redis. Unset: the organization's id, else the "
        "policy's name: policies on the same provider organization share its limits.",
    )
    on_error: Literal["fail_closed", "local"] = Field(
        "fail_closed",
        description="When the shared store fails: fail_closed refuses calls until it answers; "
        "local goes on with this replica's share (1/replicas) of every limit and budget.",
    )
    replicas: int | None = Field(
        None,
        ge=1,
        description="How many replicas share the state (on_error: local gives each 1/replicas).",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_word(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_url(self) -> State:
        if mask_url(self.url) != self.url:  # checked first: a password is never echoed
            raise ValueError(
                "the state URL holds a password: never write a secret in a policy; put the URL "
                "in an environment variable and name it with url_env"
            )
        scheme = self.url.split("://", 1)[0] if "://" in self.url else self.url
        if scheme not in _STATE_SCHEMES:
            raise ValueError(f"state is 'memory' or a redis://HOST:PORT/DB URL, not {self.url!r}")
        if self.on_error == "local" and self.replicas is None:
            raise ValueError(
                "state.on_error: local needs state.replicas, how many replicas share the state "
                "(each goes on with 1/replicas of every limit and budget while it is down)"
            )
        return self


class Policy(_Model):
    """A whole keypolicy policy (language version 1)."""

    version: Literal[1]
    name: Name
    description: str = ""
    extends: str | None = Field(None, description="A base policy this one overrides, by path.")
    timezone: TimeZone = "UTC"
    base_url: str | None = Field(
        None,
        description="The provider's API base URL, such as http://127.0.0.1:8000/v1 for "
        "`keypolicy mock-server`. Unset: $OPENAI_BASE_URL, else OpenAI's own.",
        pattern=r"^https?://\S+$",
    )
    organization: Organization | None = None
    projects: dict[str, Project] = Field(min_length=1)
    keys: dict[str, Key] = Field(min_length=1)
    pools: dict[str, Pool] = Field(min_length=1)
    priorities: list[Priority] = Field(min_length=1)
    domains: dict[str, Domain] = Field(min_length=1)
    budgets: dict[str, Budget] = Field(default_factory=dict)
    retry: Retry = Field(default_factory=Retry)
    pricing: Pricing = Field(default_factory=Pricing)
    provider: ProviderAccounting = Field(
        default_factory=ProviderAccounting,
        description="How the provider counts against its limits where that is not documented.",
    )
    state: State = Field(
        default_factory=State,
        description="Where the runtime keeps limits and budgets: memory, or a shared Redis.",
    )

    def priority_index(self, name: str) -> int:
        """Rank of a priority class: 0 is the most urgent."""
        return [p.name for p in self.priorities].index(name)

    def floor(self, priority: str) -> float:
        """The share of every limit that a class must leave untouched for the classes above it."""
        rank = self.priority_index(priority)
        return sum(p.reserve for p in self.priorities[:rank])
