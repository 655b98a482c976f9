"""How the provider counts, simulated: the policy's assumption, other rules, ranges, convergence.

One project whose TPM limit holds the requests' actual tokens three times over but not what they
are charged at admission (prompt plus ``max_tokens``): whether unused tokens come back decides
everything, which is what these tests need.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from keypolicy._native import is_compiled
from keypolicy.core.admission import Admission
from keypolicy.policy import load_policy_text
from keypolicy.policy.model import Policy
from keypolicy.sim.ranges import scenarios
from keypolicy.sim.run import simulate_policy, simulate_variants
from keypolicy.sim.traffic import Arrival
from keypolicy.upstream import Accounting

TIGHT = """\
version: 1
name: {name}
projects:
  p: {{models: {{gpt-4o-mini: {{rpm: 1000, tpm: 60k}}}}}}
keys:
  k: {{project: p, env: K}}
pools:
  a: {{keys: [k]}}
priorities:
  - {{name: only, max_wait: 20s}}
domains:
  d: {{pool: a, priority: only, model: gpt-4o-mini}}
provider: {{refund_unused: {refund}}}
"""


@dataclass
class Steady:
    """1.5 requests a second, each charged 1,000 tokens at admission and using 200: 1,500
    tokens a second charged against 1,000 a second of TPM, 300 actually used."""

    duration_s: float = 1800.0
    name: str = "steady"
    description: str = "test traffic"
    start: datetime = field(default_factory=lambda: datetime(2026, 11, 18, tzinfo=UTC))

    def arrivals(self, seed: int) -> Iterator[Arrival]:
        rng = random.Random(seed)
        t = rng.expovariate(1.5)
        while t < self.duration_s:
            yield Arrival(t, "d", 100, 900, 100)
            t += rng.expovariate(1.5)

    def domains(self) -> set[str]:
        return {"d"}


def _policy(refund: bool, name: str = "tight") -> Policy:
    return load_policy_text(TIGHT.format(name=name, refund=str(refund).lower()), "t.yaml").policy


KEEPS = Accounting(refund_unused=False)


def test_engine_and_provider_agree_by_default_and_nothing_is_refused_upstream() -> None:
    for refund in (True, False):
        s = simulate_policy(_policy(refund), Steady(), [1])
        assert s["totals"]["upstream_429"] == 0
        assert s["about"]["provider"]["assumed"] == s["about"]["provider"]["simulated"]
        assert s["about"]["provider"]["assumed"]["refund_unused"] is refund
    kept = simulate_policy(_policy(False), Steady(), [1])
    given = simulate_policy(_policy(True), Steady(), [1])
    assert given["totals"]["rejected"] == 0  # 300 tokens a second used, of 1,000
    assert kept["totals"]["rejected"] > 100  # 1,500 a second charged, of 1,000


def test_a_provider_stricter_than_assumed_costs_a_few_429s() -> None:
    after = simulate_policy(_policy(True), Steady(), [1], accounting=KEEPS)
    assert after["totals"]["upstream_429"] <= 3
    assert after["about"]["provider"]["simulated"]["refund_unused"] is False
    # Converged, it does what a policy assuming the provider's rule does.
    kept = simulate_policy(_policy(False), Steady(), [1])
    assert after["totals"]["rejected"] == pytest.approx(kept["totals"]["rejected"], rel=0.05)


@pytest.mark.skipif(is_compiled(), reason="patches the engine: checked on the plain-Python run")
def test_without_learning_the_same_mismatch_costs_hundreds(monkeypatch: pytest.MonkeyPatch) -> None:
    learn = Admission.after_rate_limit

    def never_learn(self: Admission, *args: Any) -> None:  # the engine before issue 13
        refunds = list(self._refunds)
        learn(self, *args)
        self._refunds[:] = refunds

    monkeypatch.setattr(Admission, "after_rate_limit", never_learn)
    before = simulate_policy(_policy(True), Steady(), [1], accounting=KEEPS)
    assert before["totals"]["upstream_429"] > 200


def test_scenarios_put_the_policys_own_rules_first() -> None:
    policy = _policy(False)
    assert scenarios(policy, None) == [Accounting()]
    both = scenarios(policy, {"refund_unused": [True, False]})
    assert both == [Accounting(), Accounting(refund_unused=True)]
    grid = scenarios(policy, {"refund_unused": [True, False], "quantum_tokens": [None, 1.0]})
    assert len(grid) == 4
    assert grid[0] == Accounting()
    assert scenarios(policy, {"refund_unused": [True]}) == [Accounting(refund_unused=True)]


@pytest.mark.parametrize("jobs", [1, 2])
def test_assumptions_give_a_range(jobs: int) -> None:
    policies = [_policy(True, "refunding"), _policy(False, "keeping")]
    results = simulate_variants(
        policies, Steady(600.0), [1], jobs=jobs, assume={"refund_unused": [True, False]}
    )
    refunding, keeping = results["refunding"], results["keeping"]
    assert refunding["about"]["provider"]["simulated"]["refund_unused"] is True  # its own rule
    found = refunding["range"]
    assert found["varied"] == ["refund_unused"]
    assert [s["label"] for s in found["scenarios"]] == [
        "refund_unused=true",
        "refund_unused=false",
    ]
    rejected = found["domains"]["d"]["rejected"]
    assert rejected["min"] == 0 < rejected["max"]
    assert any("rejections in all depending on" in s for s in found["sentences"])
    # A policy that keeps the charge is as cautious whichever way the provider counts.
    assert keeping["range"]["totals"]["upstream_429"] == {"min": 0.0, "max": 0.0}
    low, high = (keeping["range"]["totals"]["rejected"][k] for k in ("min", "max"))
    assert low == high > 0
    assert any("whichever way" in s for s in keeping["range"]["sentences"])


def test_no_assumption_no_range() -> None:
    results = simulate_variants([_policy(True)], Steady(120.0), [1])
    assert "range" not in results["tight"]


def test_slices_take_a_request_larger_than_one_slice() -> None:
    # 60,000 TPM in 0.5 s slices holds 500 tokens at once; each request is charged 1,000: it
    # goes once the slice is unused, on the engine's side as on the provider's.
    text = TIGHT.format(name="sliced", refund="false").replace(
        "provider: {refund_unused: false}",
        "provider: {refund_unused: false, quantum_tokens: 500ms, quantum_requests: 1s}",
    )
    s = simulate_policy(load_policy_text(text, "t.yaml").policy, Steady(300.0), [1])
    assert s["totals"]["upstream_429"] == 0
    assert s["totals"]["ok"] > 200  # about 1 a second: 1,000 tokens a second of TPM
