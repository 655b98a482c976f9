"""Limits from a policy, scaled or overridden to model a provider that differs from it."""

from __future__ import annotations

import pytest

from keypolicy.policy import Policy, load_policy_text
from keypolicy.upstream import ModelLimits, ProviderLimits, parse_limit_override
from tests.upstream.conftest import POLICY


def _policy() -> Policy:
    return load_policy_text(POLICY, "test.yaml").policy


def test_limits_come_from_projects_and_organization() -> None:
    limits = ProviderLimits.from_policy(_policy())
    assert limits.organization_id == "org-test"
    assert limits.limits("alpha", "gpt-4o-mini") == ModelLimits(3, 200_000, 5, 1_000_000)
    assert limits.limits("*", "gpt-4o") == ModelLimits(10_000, 50_000)
    big = limits.limits("alpha", "big")
    assert big is not None
    assert big.quantum == 1.0
    assert limits.declares("beta", "gpt-4o")
    assert not limits.declares("beta", "gpt-4o-mini")
    assert limits.models("beta") == ["gpt-4o"]


def test_factor_and_overrides() -> None:
    overrides = dict(
        [parse_limit_override("beta/gpt-4o:tpm=1k"), parse_limit_override("*/x:rpm=7")]
    )
    limits = ProviderLimits.from_policy(
        _policy(), factor=0.5, overrides=overrides, organization_id="org-other"
    )
    assert limits.organization_id == "org-other"
    assert limits.limits("alpha", "gpt-4o-mini") == ModelLimits(2, 100_000, 2, 500_000)
    assert limits.limits("beta", "gpt-4o") == ModelLimits(5000, 1000)
    assert limits.limits("*", "x") == ModelLimits(rpm=7)


def test_override_of_unknown_project_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown project 'nope'"):
        ProviderLimits.from_policy(_policy(), overrides={"nope/gpt-4o": ModelLimits(rpm=1)})


def test_parse_limit_override() -> None:
    assert parse_limit_override("p/gpt-4o:rpm=500,tpm=200k,quantum=1s") == (
        "p/gpt-4o",
        ModelLimits(rpm=500, tpm=200_000, quantum=1.0),
    )
    for bad in ("p:rpm=1", "p/m", "p/m:rpx=1", "p/m:rpm"):
        with pytest.raises(ValueError, match=r"override|use rpm"):
            parse_limit_override(bad)
