"""Requests' time in transit, modelled in the simulator: drawn as stated, and off by default."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest

from keypolicy.fidelity.window import TrafficWindow
from keypolicy.policy import load_policy
from keypolicy.records import UsageRecord
from keypolicy.sim.run import run_once
from keypolicy.sim.traffic import load_traffic
from keypolicy.sim.transit import Transit
from keypolicy.upstream import Accounting

ROOT = Path(__file__).resolve().parents[2]


def test_a_transit_is_drawn_log_normal_with_its_median_and_p95() -> None:
    rng = random.Random(7)
    draws = sorted(Transit(0.1, 0.3).draw(rng) for _ in range(20_000))
    assert statistics.median(draws) == pytest.approx(0.1, rel=0.03)
    assert draws[int(0.95 * len(draws))] == pytest.approx(0.3, rel=0.05)
    assert Transit(0.2, 0.2).draw(rng) == 0.2


@pytest.mark.parametrize(("median", "p95"), [(0.0, 1.0), (0.3, 0.1), (0.1, float("inf"))])
def test_a_transit_needs_a_median_above_zero_and_a_larger_p95(median: float, p95: float) -> None:
    with pytest.raises(ValueError, match="transit: a median above 0"):
        Transit(median, p95)


def run(transit: Transit | None, quantum_tokens: float | None) -> list[UsageRecord]:
    """The clinic's x-ray worklist run under separate keys, the provider spending its tokens
    per minute in slices of ``quantum_tokens`` seconds that the policy does not expect."""
    policy = load_policy(ROOT / "policies" / "clinic-separate.yaml").policy
    day = load_traffic(ROOT / "simulations" / "clinic-day.yaml")
    traffic = TrafficWindow(day, 6.9 * 3600, 7.2 * 3600, {"xray", "diagnosis", "treatment"})
    rules = Accounting.from_policy(policy).with_rule("quantum_tokens", quantum_tokens)
    records: list[UsageRecord] = []
    run_once(policy, traffic, 1, on_record=records.append, accounting=rules, transit=transit)
    return records


def retried(records: list[UsageRecord]) -> int:
    return sum(max(r.attempts - 1, 0) for r in records)


def test_without_transit_the_run_is_the_run_it_was() -> None:
    plain = run(None, None)
    assert retried(plain) == 0
    again = run(None, None)
    assert [(r.outcome, r.wait_s, r.cost_usd) for r in plain] == [
        (r.outcome, r.wait_s, r.cost_usd) for r in again
    ]


def test_jitter_in_transit_turns_back_to_back_admissions_into_429s() -> None:
    """The engine admits on a full bucket the moment its view has room; a request that travels
    faster than the one before finds the provider a little emptier: a 429."""
    assert retried(run(None, 1.0)) <= 5  # in step, the engine learns the slices from headers
    jittered = retried(run(Transit(0.12, 0.36), 1.0))
    assert jittered > 50
    assert retried(run(Transit(0.12, 0.36), None)) <= 5  # whole minutes: room to spare
