"""The compiled form of a policy: plain, frozen data the engine works from.

:func:`keypolicy.policy.compile.compile_policy` builds it from a validated policy. Everything is
resolved ahead of time (which buckets a key draws on for a model, which budgets cover a domain,
each class's floor on each bucket), so a decision is arithmetic on indices, not a walk through the
policy. Units: seconds, tokens, US dollars; prices are USD per token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keypolicy.core.store import BucketRef

__all__ = [
    "AccountingDef",
    "BucketDef",
    "BudgetDef",
    "DomainDef",
    "EngineConfig",
    "KeyDef",
    "Price",
    "RetryDef",
    "Route",
]


@dataclass(frozen=True, slots=True, init=False)
class BucketDef(BucketRef):
    """A continuously refilled bucket: ``capacity`` units, refilled at ``rate`` units a second.

    ``tokens`` tells a token bucket (charged with a request's tokens) from a request bucket
    (charged 1 per request). ``name`` is stable across processes (it keys shared state).
    ``sliced``: a per-minute limit enforced in slices (its capacity is one slice's share of the
    limit): a request larger than what is left of a slice still goes once the slice is unused,
    and leaves the bucket that much in debt; only one larger than the whole limit never can.
    """

    # name, capacity, rate: from BucketRef
    tokens: bool
    scope: str  # "project" or "organization"
    owner: str  # the project's name, or the organization's id
    model: str
    dimension: str  # rpm, rpd, tpm, tpd
    sliced: bool

    def __init__(
        self,
        name: str,
        capacity: float,
        rate: float,
        tokens: bool,
        scope: str,
        owner: str,
        model: str,
        dimension: str,
        sliced: bool = False,
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "capacity", capacity)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "dimension", dimension)
        object.__setattr__(self, "sliced", sliced)

    @property
    def limit(self) -> float:
        """The published limit per window (units): what a request may never exceed."""
        window = 60.0 if self.dimension in ("rpm", "tpm") else 86400.0
        return self.rate * window if self.sliced else self.capacity


@dataclass(frozen=True, slots=True)
class KeyDef:
    """An API key, by alias. The secret is never here: only the environment variable's name."""

    alias: str
    project: str
    env: str
    weight: float


@dataclass(frozen=True, slots=True)
class Route:
    """What a request on one key for one model draws on: bucket indices and class floors.

    ``floors[rank][i]`` is the share of bucket ``buckets[i]``'s capacity that a request of class
    ``rank`` must leave for the classes above it that also draw on that bucket. ``index`` is the
    route's position in :attr:`EngineConfig.routes` (it keys the engine's per-route tables).
    """

    key: int
    model: str
    buckets: tuple[int, ...]
    floors: tuple[tuple[float, ...], ...]
    index: int


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token: input, cached input, output."""

    input: float
    cached_input: float
    output: float


@dataclass(frozen=True, slots=True)
class BudgetDef:
    """A spending limit. ``period`` is ``day``/``week``/``month`` or ``rolling`` over ``window_s``.

    ``action`` on exhaustion is ``reject``, ``defer`` or ``downgrade`` (to ``fallback``).
    """

    name: str
    usd: float
    period: str
    window_s: float
    timezone: str
    alert_at: tuple[float, ...]
    action: str
    fallback: str | None
    scope: str
    target: str | None


@dataclass(frozen=True, slots=True)
class DomainDef:
    """An application function: its pool, class, models and deferral."""

    name: str
    pool: str
    rank: int
    model: str
    models: tuple[str, ...]
    max_wait: float | None
    defer: str  # never, queue, batch
    windows: tuple[tuple[int, int], ...]  # minutes after midnight, policy time zone
    defer_deadline: float
    budgets: tuple[int, ...]  # budgets that cover the domain whatever the key


@dataclass(frozen=True, slots=True)
class RetryDef:
    """When and how failed attempts are retried (seconds)."""

    max_attempts: int = 3
    initial: float = 0.5
    max_delay: float = 20.0
    multiplier: float = 2.0
    jitter: str = "full"
    honor_retry_after: bool = True
    honor_reset_headers: bool = True
    other_key: bool = True


@dataclass(frozen=True, slots=True)
class AccountingDef:
    """How the provider counts against its limits, as the policy assumes (its ``provider:``).

    ``refund_unused``: the unused part of a request's token charge is given back when its
    answer completes (else the charge made at admission stands). ``count_failed``: a request
    the provider refused still counts one request against the per-minute request limits.
    """

    refund_unused: bool = False
    count_failed: bool = True


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs, resolved; see the module docstring."""

    name: str
    timezone: str
    buckets: tuple[BucketDef, ...]
    keys: tuple[KeyDef, ...]
    pools: dict[str, tuple[int, ...]]
    strategies: dict[str, str]
    classes: tuple[str, ...]
    class_max_wait: tuple[float | None, ...]
    domains: dict[str, DomainDef]
    routes: dict[tuple[int, str], Route]  # (key index, model) -> route
    budgets: tuple[BudgetDef, ...]
    key_budgets: dict[int, tuple[int, ...]]  # key index -> budgets by key or project
    prices: dict[str, Price]
    max_output: dict[str, int] = field(default_factory=dict)  # model -> output cap (tokens)
    retry: RetryDef = field(default_factory=RetryDef)
    batch_discount: float = 0.5
    accounting: AccountingDef = field(default_factory=AccountingDef)
    # model -> tokens of prompt plus max output one request may ask for (models the catalog knows)
    context_window: dict[str, int] = field(default_factory=dict)
    # dated snapshot -> its family: called by its own name, drawn on, priced and capped as it
    families: dict[str, str] = field(default_factory=dict)
