"""A grouping made a policy: limits by the documented rule, a key per domain, the rest kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from keypolicy.advise.candidates import BaseError, base_grouping, build_candidate, check_base
from keypolicy.advise.partitions import groupings
from keypolicy.policy import load_policy, load_policy_text
from keypolicy.policy.model import Policy

POLICIES = Path(__file__).parents[2] / "policies"


def _policy(name: str) -> Policy:
    return load_policy(POLICIES / f"clinic-{name}.yaml").policy


def test_every_grouping_of_the_clinic_is_a_valid_policy_keeping_a_key_per_domain() -> None:
    base = _policy("separate")
    for i, grouping in enumerate(groupings(sorted(base.domains))):
        c = build_candidate(base, grouping, i)
        assert set(c.policy.keys) == set(base.domains)  # one key each, kept by its alias
        assert {k: v.env for k, v in c.policy.keys.items()} == {
            k: v.env for k, v in base.keys.items()
        }
        for pool, domains in c.pools.items():
            assert {c.policy.domains[d].pool for d in domains} == {pool}
            assert set(c.policy.pools[pool].keys) == set(domains)
        # unchanged: what the rule says stays
        for section in ("priorities", "budgets", "retry", "pricing", "provider", "organization"):
            assert getattr(c.policy, section) == getattr(base, section)
        assert {d: s.model_copy(update={"pool": ""}) for d, s in c.policy.domains.items()} == {
            d: s.model_copy(update={"pool": ""}) for d, s in base.domains.items()
        }


def test_the_sum_rule_adds_up_the_replaced_projects_and_caps_them_by_the_organization() -> None:
    base = _policy("separate")
    everything = (frozenset(base.domains),)
    one = build_candidate(base, everything, 0).policy
    (project,) = one.projects.values()
    assert project.models["gpt-4o"].rpm == 1_500 + 1_500 + 2_000
    assert project.models["gpt-4o"].tpm == 250_000 + 200_000 + 350_000
    assert project.models["gpt-4o-mini"].tpm == 2_000_000 + 1_000_000 + 1_000_000
    capped = base.model_copy(
        update={
            "organization": base.organization.model_copy(  # type: ignore[union-attr]
                update={"models": {"gpt-4o": base.projects["xray"].models["gpt-4o"]}}
            )
        }
    )
    (project,) = build_candidate(capped, everything, 0).policy.projects.values()
    assert project.models["gpt-4o"].tpm == 350_000  # the organization's


def test_the_organization_rule_gives_every_pool_the_organizations_limits() -> None:
    base = _policy("separate")
    grouping = tuple(frozenset([d]) for d in sorted(base.domains))
    c = build_candidate(base, grouping, 0, rule="organization")
    assert c.policy.projects["xray"].models["gpt-4o"].tpm == 30_000_000
    assert not c.is_base or c.policy.projects != base.projects


def test_a_shared_project_lends_each_domain_an_equal_share_when_split() -> None:
    base = _policy("merged")  # clinical: diagnosis, treatment, xray share 5,000 RPM, 800k TPM
    grouping = (
        frozenset({"chat"}),
        frozenset({"diagnosis"}),
        frozenset({"financial", "scheduling"}),
        frozenset({"treatment", "xray"}),
    )
    c = build_candidate(base, grouping, 0)
    assert c.policy.projects["diagnosis"].models["gpt-4o"].tpm == 800_000 // 3
    assert c.policy.projects["treatment-xray"].models["gpt-4o"].tpm == 800_000 * 2 // 3
    assert c.policy.pools["back-office"] == base.pools["back-office"]  # kept as it was


def test_the_base_grouping_is_a_candidate_equal_to_the_base() -> None:
    for name in ("separate", "merged", "single"):
        base = _policy(name)
        found = [
            build_candidate(base, g, i)
            for i, g in enumerate(groupings(sorted(base.domains)))
            if set(g) == set(base_grouping(base))
        ]
        (c,) = found
        assert c.is_base
        for section in ("projects", "keys", "pools", "domains"):
            assert getattr(c.policy, section) == getattr(base, section), (name, section)


def test_a_base_the_advisor_cannot_regroup_is_refused_with_what_to_do() -> None:
    one = _policy("separate")
    lonely = one.model_copy(update={"domains": {"chat": one.domains["chat"]}})
    with pytest.raises(BaseError, match="one domain"):
        check_base(lonely)
    text = (
        (POLICIES / "clinic-separate.yaml")
        .read_text()
        .replace("\nretry:", "\n  pool-cap:\n    applies_to: {pool: chat}\n    usd: $5\n\nretry:")
    )
    pooled = load_policy_text(text).policy
    with pytest.raises(BaseError, match=r"applies to pool 'chat'.*domain"):
        check_base(pooled)
