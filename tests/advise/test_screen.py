"""The screen's parts: domains that share no bucket, cut apart; many candidates, few parts."""

from __future__ import annotations

from pathlib import Path

from keypolicy.advise.candidates import build_candidate
from keypolicy.advise.partitions import groupings
from keypolicy.advise.screen import components, part_key, part_policy
from keypolicy.policy import load_policy

POLICIES = Path(__file__).parents[2] / "policies"


def test_the_clinic_falls_into_its_gpt_4o_and_gpt_4o_mini_domains() -> None:
    clinic = load_policy(POLICIES / "clinic-separate.yaml").policy
    assert components(clinic) == [
        frozenset({"chat", "financial", "scheduling"}),
        frozenset({"diagnosis", "treatment", "xray"}),
    ]


def test_203_candidates_make_ten_parts_each_a_valid_policy_of_its_domains() -> None:
    clinic = load_policy(POLICIES / "clinic-separate.yaml").policy
    groups = components(clinic)
    parts = {}
    for i, grouping in enumerate(groupings(sorted(clinic.domains))):
        candidate = build_candidate(clinic, grouping, i)
        for domains in groups:
            part = part_policy(candidate, domains)
            assert set(part.domains) == domains
            for name, spec in part.domains.items():
                assert candidate.policy.domains[name].pool == spec.pool
                pool = part.pools[spec.pool]
                assert all(part.keys[k].project in part.projects for k in pool.keys)
            parts.setdefault(part_key(candidate, domains), grouping)
    assert len(parts) == 5 + 5  # the three domains of each component, grouped B(3) = 5 ways


def test_a_domain_calling_two_models_joins_their_components() -> None:
    clinic = load_policy(POLICIES / "clinic-separate.yaml").policy
    chat = clinic.domains["chat"].model_copy(update={"models": ["gpt-4o"]})
    linked = clinic.model_copy(update={"domains": {**clinic.domains, "chat": chat}})
    assert components(linked) == [frozenset(clinic.domains)]
