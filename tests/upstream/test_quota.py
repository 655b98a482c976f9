"""The organization's monthly usage limit: the provider bills what it serves and, once a
calendar month's spend reaches the limit, answers every call ``insufficient_quota`` until the
month ends."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from keypolicy.catalog import TIERS, batch_queue_limit
from keypolicy.policy import load_policy_text
from keypolicy.upstream import LatencySettings, Provider, ProviderLimits, ProviderSettings, Usage
from keypolicy.upstream.quota import Price, UsageQuota, month_bounds
from tests.upstream.conftest import POLICY, req


def _epoch(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def test_month_bounds_are_utc_calendar_months() -> None:
    assert month_bounds(_epoch(2026, 11, 29, 23, 59)) == (_epoch(2026, 11, 1), _epoch(2026, 12, 1))
    assert month_bounds(_epoch(2026, 12, 31, 12)) == (_epoch(2026, 12, 1), _epoch(2027, 1, 1))
    assert month_bounds(_epoch(2027, 1, 1)) == (_epoch(2027, 1, 1), _epoch(2027, 2, 1))


def test_price_counts_cached_prompt_tokens_at_the_cached_price() -> None:
    price = Price.per_million(2.50, 1.25, 10.00)  # gpt-4o
    cost = price.cost(
        Usage(prompt_tokens=1_000_000, completion_tokens=100_000, cached_tokens=400_000)
    )
    assert abs(cost - (0.6 * 2.50 + 0.4 * 1.25 + 0.1 * 10.00)) < 1e-9
    assert Price.per_million(1.0, None, 2.0).cached_input == 1.0 / 1e6


def test_tiers_carry_the_published_usage_limits() -> None:
    assert [TIERS[t].usage_limit for t in range(1, 6)] == [100, 500, 1_000, 5_000, 200_000]
    assert batch_queue_limit(1, "gpt-4o-2024-08-06") == 90_000  # a snapshot counts as its family
    assert batch_queue_limit(None, "gpt-4o") is None
    assert batch_queue_limit(3, "o3") is None  # no published figure here: not enforced


def _provider(usage_limit: str, origin: float = 0.0) -> Provider:
    text = POLICY.replace("  id: org-test\n", f"  id: org-test\n  usage_limit: {usage_limit}\n")
    limits = ProviderLimits.from_policy(load_policy_text(text, "t.yaml").policy)
    settings = ProviderSettings(latency=LatencySettings.instant())
    return Provider(limits, settings, random.Random(0), origin=origin)


def test_calls_are_refused_once_the_month_is_spent_and_served_again_next_month() -> None:
    month_end = _epoch(2026, 12, 1)
    provider = _provider("$0.01", origin=month_end - 3600)  # time 0: an hour before December
    # gpt-4o: 10,000 prompt tokens and 100 completion tokens cost $0.026 each: one is enough.
    first = provider.submit(req("gpt-4o", prompt=10_000, max_output=100, completion_tokens=100), 0)
    assert first.kind == "ok"
    assert provider.quota is not None
    assert provider.quota.spent > 0.01
    refused = provider.submit(req("gpt-4o", prompt=10, max_output=1), 60)
    assert (refused.kind, refused.status) == ("insufficient_quota", 429)
    assert refused.error is not None
    assert refused.error["error"]["code"] == "insufficient_quota"
    assert refused.error["error"]["message"].startswith("You exceeded your current quota")
    assert abs(provider.quota.resets_in(60) - 3540) < 1e-6
    again = provider.submit(req("gpt-4o", prompt=10, max_output=1), 3600)  # December 1st
    assert again.kind == "ok"


def test_a_refused_call_charges_nothing_against_the_rate_limits() -> None:
    provider = _provider("$0.01")
    provider.submit(req("gpt-4o", prompt=10_000, max_output=100, completion_tokens=100), 0)
    before = provider.rate_limits("alpha", "gpt-4o", 1)
    provider.submit(req("gpt-4o", prompt=5_000, max_output=100), 1)
    assert provider.rate_limits("alpha", "gpt-4o", 1) == before


def test_batch_requests_are_billed_at_half_price() -> None:
    quota = UsageQuota(100.0, lambda _: Price.per_million(2.0, 1.0, 8.0))
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=0)
    assert quota.bill("m", usage, 0) == 2.0
    assert quota.bill("m", usage, 0, batch=True) == 1.0
    assert quota.spent == 3.0
    assert UsageQuota(1.0, lambda _: None).bill("unpriced", usage, 0) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    limit=st.floats(0.001, 0.5),
    calls=st.lists(
        st.tuples(st.integers(1, 20_000), st.integers(1, 500), st.floats(0, 120)),
        min_size=1,
        max_size=40,
    ),
)
def test_spend_passes_the_limit_by_at_most_the_call_that_reached_it(
    limit: float, calls: list[tuple[int, int, float]]
) -> None:
    """Whatever the calls, nothing is served once the month's spend has reached the limit, so
    the month's spend never exceeds the limit by more than one call's cost."""
    provider = _provider(f"{limit}")
    quota = provider.quota
    assert quota is not None
    now, most = 0.0, 0.0
    for prompt, completion, gap in calls:
        now += gap
        before = quota.spent
        outcome = provider.submit(
            req("gpt-4o", prompt=prompt, max_output=completion, completion_tokens=completion), now
        )
        if before >= limit:
            assert outcome.kind == "insufficient_quota"
        if outcome.kind == "ok":
            most = max(most, quota.spent - before)
        assert quota.spent <= limit + most + 1e-12


def test_a_snapshot_is_billed_at_its_familys_price_override() -> None:
    text = POLICY + "pricing:\n  overrides:\n    gpt-4o: {input: $1, output: $2}\n"
    limits = ProviderLimits.from_policy(load_policy_text(text, "t.yaml").policy)
    assert limits.price("gpt-4o-2024-08-06") == Price.per_million(1.0, None, 2.0)
    assert limits.price("gpt-4o-mini") == Price.per_million(0.15, 0.075, 0.60)  # the catalog's
