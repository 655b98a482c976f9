"""Compiling a validated policy into the engine's plain configuration.

Resolves, once, everything a decision needs: the buckets each key draws on for each model
(project and organization limits), each class's floor on each bucket, which budgets cover each
domain and key, prices per token.

Floors: a class must leave, on each bucket, the reserves of the classes above it **that also draw
on that bucket** (through some domain's pool and models). A project no critical domain uses keeps
no critical reserve: reserving headroom nobody can use would only waste it.

Models: a dated snapshot a domain names stands for its family (:func:`keypolicy.catalog.family`):
what domains may call, routes, prices and caps are by family, and the engine resolves a snapshot
a caller names to its family through ``EngineConfig.families``.
"""

from __future__ import annotations

from keypolicy.catalog import BATCH_DISCOUNT, SNAPSHOTS, family, model_info
from keypolicy.core.config import (
    AccountingDef,
    BucketDef,
    BudgetDef,
    DomainDef,
    EngineConfig,
    KeyDef,
    Price,
    RetryDef,
    Route,
)
from keypolicy.policy.model import Limits, Policy, ProviderAccounting

__all__ = ["compile_policy"]

DEFAULT_DEFER_DEADLINE_S = 86400.0
_WINDOWS = {"rpm": 60.0, "tpm": 60.0, "rpd": 86400.0, "tpd": 86400.0}


def _slice(limits: Limits, dim: str, accounting: ProviderAccounting) -> float | None:
    """Seconds the per-minute limit ``dim`` is enforced in, or ``None`` (the whole minute):
    the model's own ``quantum``, else the provider's for requests or tokens."""
    if dim not in ("rpm", "tpm"):
        return None
    if limits.quantum is not None:
        return limits.quantum
    return accounting.quantum_requests if dim == "rpm" else accounting.quantum_tokens


def _buckets_for(
    scope: str, owner: str, model: str, limits: Limits, accounting: ProviderAccounting
) -> list[BucketDef]:
    out = []
    for dim, window in _WINDOWS.items():
        limit = getattr(limits, dim)
        if limit is None:
            continue
        rate = limit / window
        capacity = float(limit)
        quantum = _slice(limits, dim, accounting)
        sliced = quantum is not None and quantum < window
        if sliced:
            assert quantum is not None
            # A request bucket holds at least one request (as the provider model's does).
            capacity = limit * quantum / window
            if dim == "rpm":
                capacity = max(capacity, min(float(limit), 1.0))
        out.append(
            BucketDef(
                f"limit:{scope}:{owner}/{model}/{dim}",
                capacity,
                rate,
                dim.startswith("t"),
                scope,
                owner,
                model,
                dim,
                sliced,
            )
        )
    return out


def _models_used(policy: Policy) -> set[str]:
    """The model families domains may call, fallbacks of budgets included."""
    models = {m for d in policy.domains.values() for m in d.allowed_models()}
    models |= {b.on_exhausted.model for b in policy.budgets.values() if b.on_exhausted.model}
    return {family(m) for m in models}


def compile_policy(policy: Policy) -> EngineConfig:
    """The engine configuration for ``policy``."""
    buckets: list[BucketDef] = []
    index: dict[tuple[str, str, str], list[int]] = {}  # (scope, owner, model) -> bucket indices
    org = policy.organization
    sources = [("project", name, p.models) for name, p in policy.projects.items()]
    if org is not None:
        sources.append(("organization", org.id or "org", org.models))
    for scope, owner, declared in sources:
        for model, limits in declared.items():
            for bucket in _buckets_for(scope, owner, model, limits, policy.provider):
                index.setdefault((scope, owner, model), []).append(len(buckets))
                buckets.append(bucket)
    keys = tuple(KeyDef(a, k.project, k.env, k.weight) for a, k in policy.keys.items())
    key_index = {k.alias: i for i, k in enumerate(keys)}
    org_owner = (org.id or "org") if org is not None else ""
    models = sorted(_models_used(policy))

    def key_buckets(key: KeyDef, model: str) -> tuple[int, ...]:
        return (
            *index.get(("project", key.project, model), []),
            *index.get(("organization", org_owner, model), []),
        )

    users = _bucket_users(policy, keys, key_index, models, key_buckets)
    reserves = [p.reserve for p in policy.priorities]
    routes: dict[tuple[int, str], Route] = {}
    for k, key in enumerate(keys):
        for model in models:
            ids = key_buckets(key, model)
            floors = tuple(
                tuple(min(1.0, sum(reserves[c] for c in users.get(b, ()) if c < rank)) for b in ids)
                for rank in range(len(reserves))
            )
            routes[(k, model)] = Route(k, model, ids, floors, len(routes))
    budgets, domain_budgets, key_budgets = _budgets(policy, keys)
    return EngineConfig(
        name=policy.name,
        timezone=policy.timezone,
        buckets=tuple(buckets),
        keys=keys,
        pools={n: tuple(key_index[a] for a in p.keys) for n, p in policy.pools.items()},
        strategies={n: p.strategy for n, p in policy.pools.items()},
        classes=tuple(p.name for p in policy.priorities),
        class_max_wait=tuple(p.max_wait for p in policy.priorities),
        domains=_domains(policy, domain_budgets),
        routes=routes,
        budgets=budgets,
        key_budgets=key_budgets,
        prices=_prices(policy, models),
        max_output={m: info.max_output for m in models if (info := model_info(m)) is not None},
        retry=_retry(policy),
        batch_discount=BATCH_DISCOUNT,
        context_window={
            m: info.context_window for m in models if (info := model_info(m)) is not None
        },
        families=dict(SNAPSHOTS),
        accounting=AccountingDef(policy.provider.refund_unused, policy.provider.count_failed),
    )


def _bucket_users(
    policy: Policy,
    keys: tuple[KeyDef, ...],
    key_index: dict[str, int],
    models: list[str],
    key_buckets: object,
) -> dict[int, set[int]]:
    """Bucket index -> ranks of the classes whose domains can draw on it."""
    assert callable(key_buckets)
    fallbacks = {b.on_exhausted.model for b in policy.budgets.values() if b.on_exhausted.model}
    users: dict[int, set[int]] = {}
    for domain in policy.domains.values():
        rank = policy.priority_index(domain.priority)
        called = {family(m) for m in (*domain.allowed_models(), *fallbacks)}
        for alias in policy.pools[domain.pool].keys:
            key = keys[key_index[alias]]
            for model in called & set(models):
                for b in key_buckets(key, model):
                    users.setdefault(b, set()).add(rank)
    return users


def _domains(policy: Policy, domain_budgets: dict[str, tuple[int, ...]]) -> dict[str, DomainDef]:
    out = {}
    for name, d in policy.domains.items():
        fallbacks = [b.on_exhausted.model for b in policy.budgets.values() if b.on_exhausted.model]
        out[name] = DomainDef(
            name=name,
            pool=d.pool,
            rank=policy.priority_index(d.priority),
            model=d.model,  # the name a call without a model goes out under (maybe a snapshot)
            models=tuple(dict.fromkeys(family(m) for m in [*d.allowed_models(), *fallbacks])),
            max_wait=d.max_wait,
            defer=d.defer.mode,
            windows=tuple(d.defer.window_minutes()),
            defer_deadline=d.defer.deadline or DEFAULT_DEFER_DEADLINE_S,
            budgets=domain_budgets.get(name, ()),
        )
    return out


def _budgets(
    policy: Policy, keys: tuple[KeyDef, ...]
) -> tuple[tuple[BudgetDef, ...], dict[str, tuple[int, ...]], dict[int, tuple[int, ...]]]:
    defs = []
    by_domain: dict[str, list[int]] = {}
    by_key: dict[int, list[int]] = {}
    for i, (name, b) in enumerate(policy.budgets.items()):
        rolling = not isinstance(b.per, str)
        defs.append(
            BudgetDef(
                name=name,
                usd=b.usd,
                period="rolling" if rolling else str(b.per),
                window_s=float(b.per) if rolling else 0.0,
                timezone=b.timezone or policy.timezone,
                alert_at=tuple(sorted(b.alert_at)),
                action=b.on_exhausted.action,
                fallback=b.on_exhausted.model,
                scope=b.applies_to.scope,
                target=b.applies_to.name,
            )
        )
        scope, target = b.applies_to.scope, b.applies_to.name
        for dname, d in policy.domains.items():
            if (
                scope == "all"
                or (scope == "domain" and target == dname)
                or (scope == "pool" and target == d.pool)
            ):
                by_domain.setdefault(dname, []).append(i)
        for k, key in enumerate(keys):
            if (scope == "key" and target == key.alias) or (
                scope == "project" and target == key.project
            ):
                by_key.setdefault(k, []).append(i)
    return (
        tuple(defs),
        {d: tuple(v) for d, v in by_domain.items()},
        {k: tuple(v) for k, v in by_key.items()},
    )


def _prices(policy: Policy, models: list[str]) -> dict[str, Price]:
    prices = {}
    for model in models:
        override = policy.pricing.overrides.get(model)
        if override is not None:
            cached = override.cached_input if override.cached_input is not None else override.input
            prices[model] = Price(override.input / 1e6, cached / 1e6, override.output / 1e6)
        else:
            info = model_info(model)
            assert info is not None, model  # the loader refuses a model with no price
            prices[model] = Price(info.input / 1e6, info.cached_input / 1e6, info.output / 1e6)
    return prices


def _retry(policy: Policy) -> RetryDef:
    r = policy.retry
    return RetryDef(
        r.max_attempts,
        r.backoff.initial,
        r.backoff.max,
        r.backoff.multiplier,
        r.backoff.jitter,
        r.honor_retry_after,
        r.honor_reset_headers,
        r.other_key,
    )
