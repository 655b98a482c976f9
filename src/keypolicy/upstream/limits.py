"""The limits the provider enforces: per organization and per project, per model.

By default they are the ones a policy declares (``organization.models`` and
``projects.<name>.models``). A provider whose real limits differ from the declared ones is modelled
by scaling them all (``factor``) or by replacing some (``overrides``), so a simulation or the mock
server can show what happens when the policy's belief is wrong.

Override specifications read ``PROJECT/MODEL:rpm=500,tpm=200k,quantum=1s``; the project ``*``
stands for the organization. Fields not named keep the declared value.

How the provider counts against the limits (:class:`~keypolicy.upstream.settings.Accounting`)
travels with them: by default the rules the policy assumes, or others given in their place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from keypolicy.catalog import family, model_info
from keypolicy.policy.model import Limits, Policy
from keypolicy.policy.units import parse_count, parse_duration
from keypolicy.upstream.accounting import Accounting
from keypolicy.upstream.quota import Price

__all__ = [
    "DEFAULT_ORGANIZATION_ID",
    "DIMENSIONS",
    "ORGANIZATION",
    "Dimension",
    "ModelLimits",
    "ProviderLimits",
    "parse_limit_override",
]

Dimension = Literal["rpm", "tpm", "rpd", "tpd"]
DIMENSIONS: Final[tuple[Dimension, ...]] = ("rpm", "tpm", "rpd", "tpd")
WINDOW: Final[dict[Dimension, float]] = {"rpm": 60.0, "tpm": 60.0, "rpd": 86400.0, "tpd": 86400.0}
"""Seconds each dimension's limit is counted over."""

ORGANIZATION: Final = "*"
"""The scope name of organization-wide limits (no project may be called ``*``)."""

DEFAULT_ORGANIZATION_ID: Final = "org-keypolicy-mock"
"""Organization id written in 429 messages when the policy names none."""


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """One model's limits in one scope: requests and tokens per minute and per day.

    ``None`` means no limit in that dimension. ``quantum`` (seconds) slices the per-minute limits.
    """

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    tpd: int | None = None
    quantum: float | None = None

    @classmethod
    def from_policy(cls, limits: Limits) -> ModelLimits:
        """The limits a policy declares for one model."""
        return cls(limits.rpm, limits.tpm, limits.rpd, limits.tpd, limits.quantum)

    def get(self, dimension: Dimension) -> int | None:
        """The limit in ``dimension`` (requests or tokens per window), or ``None``."""
        value: int | None = getattr(self, dimension)
        return value

    def scaled(self, factor: float) -> ModelLimits:
        """Every limit multiplied by ``factor`` (rounded to whole units)."""

        def scale(value: int | None) -> int | None:
            return None if value is None else max(0, round(value * factor))

        return replace(
            self,
            rpm=scale(self.rpm),
            tpm=scale(self.tpm),
            rpd=scale(self.rpd),
            tpd=scale(self.tpd),
        )

    def updated(self, other: ModelLimits) -> ModelLimits:
        """These limits with every field ``other`` sets replaced by ``other``'s."""
        values = {
            name: getattr(other, name)
            for name in ("rpm", "tpm", "rpd", "tpd", "quantum")
            if getattr(other, name) is not None
        }
        return replace(self, **values)


@dataclass(frozen=True)
class ProviderLimits:
    """Every limit the provider enforces, by scope (a project name or ``*``) and model, and
    the rules it counts by."""

    organization_id: str = DEFAULT_ORGANIZATION_ID
    scopes: Mapping[str, Mapping[str, ModelLimits]] = field(default_factory=dict)
    accounting: Accounting = field(default_factory=Accounting)
    tier: int | None = None
    """The organization's usage tier (the Batch API's queue limits depend on it)."""
    usage_limit: float | None = None
    """The most (USD) the organization may spend in a calendar month; ``None``: no limit."""
    prices: Mapping[str, Price] = field(default_factory=dict)
    """USD per token by model, where they differ from the catalog's (the policy's overrides)."""

    @classmethod
    def from_policy(
        cls,
        policy: Policy,
        *,
        factor: float = 1.0,
        overrides: Mapping[str, ModelLimits] | None = None,
        organization_id: str | None = None,
        accounting: Accounting | None = None,
    ) -> ProviderLimits:
        """The policy's declared limits, scaled by ``factor``, then ``overrides`` applied.

        ``overrides`` maps ``"PROJECT/MODEL"`` (``"*/MODEL"`` for the organization) to the
        limits that replace the declared ones, field by field. ``accounting``: the rules the
        provider counts by, if not those the policy assumes.
        """
        scopes: dict[str, dict[str, ModelLimits]] = {
            name: {m: ModelLimits.from_policy(lim) for m, lim in project.models.items()}
            for name, project in policy.projects.items()
        }
        org = policy.organization
        if org is not None:
            scopes[ORGANIZATION] = {m: ModelLimits.from_policy(x) for m, x in org.models.items()}
        scaled = {s: {m: lim.scaled(factor) for m, lim in ms.items()} for s, ms in scopes.items()}
        for target, limits in (overrides or {}).items():
            scope, _, model = target.partition("/")
            if scope != ORGANIZATION and scope not in policy.projects:
                raise ValueError(f"limit override for unknown project '{scope}' ({target})")
            current = scaled.setdefault(scope, {}).get(model, ModelLimits())
            scaled[scope][model] = current.updated(limits)
        org_id = organization_id or (org.id if org is not None and org.id else None)
        rules = accounting if accounting is not None else Accounting.from_policy(policy)
        prices = {
            model: Price.per_million(o.input, o.cached_input, o.output)
            for model, o in policy.pricing.overrides.items()
        }
        return cls(
            org_id or DEFAULT_ORGANIZATION_ID,
            scaled,
            rules,
            org.tier if org is not None else None,
            org.monthly_usage_limit() if org is not None else None,
            prices,
        )

    def price(self, model: str) -> Price | None:
        """What ``model`` costs per token: the policy's price, else the catalog's (its family's
        for a dated snapshot); ``None`` for a model neither knows."""
        own = self.prices.get(model) or self.prices.get(family(model))
        if own is not None:
            return own
        info = model_info(model)
        if info is None:
            return None
        return Price.per_million(info.input, info.cached_input, info.output)

    def quantum(self, scope: str, model: str, dimension: Dimension) -> float | None:
        """The slice (seconds) ``dimension`` of ``model`` in ``scope`` is enforced in, if any:
        the model's own ``quantum``, else the accounting's for requests or tokens."""
        if dimension not in ("rpm", "tpm"):
            return None
        limits = self.limits(scope, model)
        if limits is not None and limits.quantum is not None:
            return limits.quantum
        return self.accounting.quantum(dimension)

    def limits(self, scope: str, model: str) -> ModelLimits | None:
        """The limits of ``model`` in ``scope`` (a project or ``*``), if any are declared."""
        return self.scopes.get(scope, {}).get(model)

    def declares(self, project: str, model: str) -> bool:
        """Whether ``model`` has limits in ``project`` or in the organization."""
        return (
            self.limits(project, model) is not None or self.limits(ORGANIZATION, model) is not None
        )

    def models(self, project: str | None = None) -> list[str]:
        """Models with declared limits (in ``project`` and the organization, or anywhere)."""
        scopes = self.scopes if project is None else (project, ORGANIZATION)
        names = (m for scope in scopes for m in self.scopes.get(scope, {}))
        return sorted(set(names))


def parse_limit_override(spec: str) -> tuple[str, ModelLimits]:
    """Parse ``PROJECT/MODEL:rpm=500,tpm=200k,quantum=1s`` into ``("PROJECT/MODEL", limits)``."""
    target, sep, fields = spec.partition(":")
    scope, slash, model = target.strip().partition("/")
    if not sep or not slash or not scope or not model:
        raise ValueError(
            f"'{spec}' is not a limit override: write PROJECT/MODEL:rpm=500,tpm=200k "
            "(PROJECT * for the organization)"
        )
    counts: dict[str, int] = {}
    quantum: float | None = None
    for item in fields.split(","):
        name, eq, value = item.strip().partition("=")
        if not eq or (name not in DIMENSIONS and name != "quantum"):
            raise ValueError(
                f"'{item.strip()}' in '{spec}': use rpm=, tpm=, rpd=, tpd= or quantum="
            )
        if name == "quantum":
            quantum = parse_duration(value)
        else:
            counts[name] = parse_count(value)
    limits = ModelLimits(
        counts.get("rpm"), counts.get("tpm"), counts.get("rpd"), counts.get("tpd"), quantum
    )
    return f"{scope}/{model}", limits
