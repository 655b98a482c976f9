"""The monthly usage limit in a simulation: the provider refuses every call once the month's
spend reaches it (the engine gives up at once, the summary says why), a new month serves again,
and a projection past the limit is a warning in the summary."""

from __future__ import annotations

from datetime import UTC, datetime

from keypolicy.policy import load_policy_text
from keypolicy.sim.run import simulate_policy
from tests.sim.test_driver import ONE, Poisson

# gpt-4o-mini: 100 prompt and 5 completion tokens cost $0.000018 a request.
COST = 100 * 0.15e-6 + 5 * 0.60e-6


def _policy(org: str) -> object:
    text = ONE.format(rpm="1M", max_wait="1h", quantum="")
    return load_policy_text(text.replace("projects:", org + "projects:"), "one.yaml").policy


def test_calls_past_the_usage_limit_are_refused_as_quota() -> None:
    policy = _policy("organization: {usage_limit: $0.02}\n")
    result = simulate_policy(policy, Poisson(5.0, 600.0), [0])  # type: ignore[arg-type]
    totals = result["totals"]
    served = round(0.02 / COST)  # the month's spend reaches $0.02 after this many requests
    assert abs(totals["ok"] - served) <= 1
    refused = totals["requests"] - totals["ok"]
    assert refused > 0
    # Each refused call ends at once as an error (quota is never retried) after one 429.
    assert totals["outcomes"]["error"] == refused == totals["upstream_429"]
    assert totals["reasons"] == {"quota": refused}
    assert abs(totals["cost_usd"] - 0.02) <= COST
    quota = result["about"]["usage_limit"]
    assert quota["usd"] == 0.02
    assert quota["lasts_days"] is not None
    warnings = result["about"]["warnings"]
    assert f"one: {refused:,} calls were refused with insufficient_quota" in warnings[-1]
    assert "monthly usage limit ($0.02) was reached within the traffic itself" in warnings[-1]


def test_a_month_that_will_not_last_is_a_warning() -> None:
    policy = _policy("organization: {usage_limit: $5}\n")  # a day of this costs $7.78
    result = simulate_policy(policy, Poisson(5.0, 600.0), [0])  # type: ignore[arg-type]
    assert result["totals"]["reasons"] == {}
    warning = result["about"]["warnings"][-1]
    assert warning.startswith("one: the spend projected for a month ($")
    assert "passes the organization's monthly usage limit ($5.00, organization.usage_limit)" in (
        warning
    )


def test_a_new_month_serves_again() -> None:
    policy = _policy("organization: {usage_limit: $0.01}\n")
    # Half an hour before December begins (UTC), for an hour.
    traffic = Poisson(1.0, 3600.0, start=datetime(2026, 11, 30, 23, 30, tzinfo=UTC))
    result = simulate_policy(policy, traffic, [0])  # type: ignore[arg-type]
    per_month = round(0.01 / COST)
    assert abs(result["totals"]["ok"] - 2 * per_month) <= 2


def test_no_warning_when_the_month_fits() -> None:
    policy = _policy("organization: {tier: 5}\n")
    result = simulate_policy(policy, Poisson(1.0, 600.0), [0])  # type: ignore[arg-type]
    quota = result["about"]["usage_limit"]
    assert quota["usd"] == 200_000
    assert quota["tier"] == 5
    assert quota["lasts_days"] is None
    assert quota["projected_month_usd"] > 0
    assert result["totals"]["rejected"] == 0
    assert not any("usage limit" in w for w in result["about"]["warnings"])


def test_no_batch_is_created_once_the_month_is_spent() -> None:
    """Batch requests bill the month too (at half price) and, once it is spent, are refused at
    creation as every other call is."""
    text = (
        ONE.format(rpm="1M", max_wait="1h", quantum="")
        .replace("model: gpt-4o-mini}", "model: gpt-4o-mini, defer: batch}")
        .replace("max_wait: 1h}", "max_wait: 1h, deferrable: true}")
    )
    org = "organization: {usage_limit: $0.0001}\n"
    policy = load_policy_text(text.replace("projects:", org + "projects:"), "one.yaml").policy
    result = simulate_policy(policy, Poisson(0.05, 12 * 3600.0), [0])  # type: ignore[arg-type]
    totals = result["totals"]
    assert totals["batch"] == totals["requests"]
    assert totals["reasons"].get("quota", 0) > 0
    # Billed when they complete: batches created before the month was spent still count.
    served = (
        totals["requests"] - totals["reasons"]["quota"] - totals["reasons"].get("batch_expired", 0)
    )
    assert abs(totals["cost_usd"] - served * COST / 2) < 1e-9
