"""The simulator models the limiters' character estimate, as the live provider and runtime do."""

from __future__ import annotations

from pathlib import Path

import pytest

from keypolicy.estimate import CHARS_PER_TOKEN
from keypolicy.fidelity.window import TrafficWindow
from keypolicy.policy import load_policy
from keypolicy.records import UsageRecord
from keypolicy.sim.driver import RUNTIME_CHARS_PER_TOKEN, char_estimate
from keypolicy.sim.run import run_once
from keypolicy.sim.traffic import load_traffic
from keypolicy.upstream import Provider, ProviderLimits, request_from_body, split_extension

ROOT = Path(__file__).resolve().parents[2]


def test_the_simulator_divides_as_the_runtime_does() -> None:
    assert RUNTIME_CHARS_PER_TOKEN == CHARS_PER_TOKEN
    assert char_estimate(1000, 5.5, 4.0) == 1375  # 37.5% above the exact count
    assert char_estimate(1001, 4.0, 4.0) == 1001


def test_the_mock_charges_the_estimate_when_told_and_reports_the_exact_count() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "x" * 5500}],
        "max_tokens": 100,
        "keypolicy": {"prompt_tokens": 1000, "charge": "estimate"},
    }
    rest, exact = split_extension(body)
    request = request_from_body("chat", "chat.completions", rest, exact)
    assert request.prompt_tokens == 1000
    assert request.rate_prompt_tokens == 1375
    policy = load_policy(ROOT / "policies" / "azure-two-domains.yaml").policy
    provider = Provider(ProviderLimits.from_policy(policy))
    assert provider.charge(request) == 1375 + 100
    plain = request_from_body("chat", "chat.completions", rest, split_extension(
        {**body, "keypolicy": {"prompt_tokens": 1000}}
    )[1])  # fmt: skip
    assert plain.rate_prompt_tokens is None
    assert provider.charge(plain) == 1000 + 100


def run(chars_per_token: dict[str, float] | None) -> list[UsageRecord]:
    policy = load_policy(ROOT / "policies" / "azure-two-domains.yaml").policy
    traffic = TrafficWindow(load_traffic(ROOT / "simulations" / "azure-traces.yaml"), 0, 600.0)
    records: list[UsageRecord] = []
    run_once(policy, traffic, 1, on_record=records.append, chars_per_token=chars_per_token)
    return records


def test_without_ratios_nothing_changes_and_longer_text_meets_the_limits_sooner() -> None:
    plain, four = run(None), run({"coding": 4.0, "chat": 4.0})
    assert [(r.outcome, r.wait_s, r.cost_usd) for r in plain] == [
        (r.outcome, r.wait_s, r.cost_usd) for r in four
    ]  # four characters a token: the estimate is the exact count
    long = run({"coding": 5.5, "chat": 5.5})
    rejected = [sum(r.outcome == "rejected" for r in rs) for rs in (plain, long)]
    assert rejected[1] > rejected[0]
    assert sum(r.cost_usd for r in long) < sum(r.cost_usd for r in plain)
    assert sum(r.prompt_tokens for r in long if r.outcome == "ok") == pytest.approx(
        sum(r.requested_prompt_tokens for r in long if r.outcome == "ok")
    )  # billed at the exact count all the same
