"""The policy's ``provider:`` section: how it assumes the provider counts, compiled and shown."""

from __future__ import annotations

import pytest

from keypolicy.policy import PolicyError, load_policy_text
from keypolicy.policy.compile import compile_policy
from keypolicy.policy.loader import LoadedPolicy
from keypolicy.policy.summary import summarize
from keypolicy.upstream import Accounting, ProviderLimits

BASE = """\
version: 1
name: p
projects:
  a: {models: {gpt-4o-mini: {rpm: 600, tpm: 60k}}}
  b: {models: {gpt-4o-mini: {rpm: 600, tpm: 60k, quantum: 10s}}}
keys:
  k: {project: a, env: K}
  j: {project: b, env: J}
pools:
  one: {keys: [k, j]}
priorities:
  - name: only
domains:
  d: {pool: one, priority: only, model: gpt-4o-mini}
"""


def test_defaults_are_the_cautious_choices() -> None:
    policy = load_policy_text(BASE, "p.yaml").policy
    rules = policy.provider
    assert (rules.refund_unused, rules.count_failed) == (False, True)
    assert (rules.quantum_requests, rules.quantum_tokens) == (None, None)
    config = compile_policy(policy)
    assert (config.accounting.refund_unused, config.accounting.count_failed) == (False, True)
    assert Accounting.from_policy(policy) == Accounting()


def test_slices_compile_for_engine_and_provider_alike() -> None:
    text = BASE + "provider: {refund_unused: true, quantum_requests: 1s, quantum_tokens: 2s}\n"
    policy = load_policy_text(text, "p.yaml").policy
    config = compile_policy(policy)
    limits = ProviderLimits.from_policy(policy)
    assert limits.accounting == Accounting(True, True, 1.0, 2.0)
    for bucket in config.buckets:
        scope = bucket.owner
        quantum = limits.quantum(scope, "gpt-4o-mini", bucket.dimension)  # type: ignore[arg-type]
        expected = 10.0 if scope == "b" else {"rpm": 1.0, "tpm": 2.0}[bucket.dimension]
        assert quantum == expected  # a model's own quantum comes first
        assert bucket.sliced
        assert bucket.capacity == pytest.approx(bucket.limit * expected / 60)
        assert bucket.limit == pytest.approx({"rpm": 600, "tpm": 60_000}[bucket.dimension])


@pytest.mark.parametrize(
    "line",
    [
        "provider: {refund_unused: maybe}",
        "provider: {quantum_tokens: 2m}",
        "provider: {quantum_requests: 0s}",
        "provider: {refunds: true}",
    ],
)
def test_bad_rules_are_errors(line: str) -> None:
    with pytest.raises(PolicyError):
        load_policy_text(BASE + line + "\n", "p.yaml")


def test_check_shows_the_rules() -> None:
    loaded: LoadedPolicy = load_policy_text(
        BASE + "provider: {refund_unused: true, quantum_tokens: 1s}\n", "p.yaml"
    )
    text = "\n".join(summarize(loaded))
    assert "unused max_tokens given back at completion: yes (refund_unused: true)" in text
    assert "refused requests count against RPM: yes (count_failed: true)" in text
    assert "request limits spent per whole minute (quantum_requests)" in text
    assert "token limits spent in 1s slices (quantum_tokens)" in text
