"""Prompt caching in simulated traffic: a domain's shared prefix (its system prompt) is served from
the provider model's cache by OpenAI's rules, and the cached tokens are billed as cached."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypolicy.catalog import CATALOG
from keypolicy.policy import load_policy_text
from keypolicy.policy.model import Policy
from keypolicy.records import UsageRecord
from keypolicy.sim.arrival import Arrival
from keypolicy.sim.profile import Profile
from keypolicy.sim.run import simulate_policy
from keypolicy.sim.traffic import SyntheticTraffic
from keypolicy.upstream import (
    Provider,
    ProviderLimits,
    ProviderSettings,
    UpstreamRequest,
    validation,
)

POLICY = """\
version: 1
name: roomy
projects:
  p: {models: {gpt-4o-mini: {rpm: 10000, tpm: 100M}}}
keys:
  k: {project: p, env: K}
pools:
  a: {keys: [k]}
priorities:
  - {name: only, max_wait: 1h}
domains:
  d: {pool: a, priority: only, model: gpt-4o-mini}
  e: {pool: a, priority: only, model: gpt-4o-mini}
"""


def _policy() -> Policy:
    return load_policy_text(POLICY, "roomy.yaml").policy


def _profile(**domain: Any) -> SyntheticTraffic:
    """An hour of one domain at a steady 30 requests a minute, fixed sizes."""
    sizes = {"rate": "30/min", "max_tokens": 100, "completion_tokens": 100, **domain}
    spec = {"version": 1, "name": "steady", "duration": "1h", "domains": {"d": sizes}}
    return SyntheticTraffic(Profile.model_validate(spec))


def test_a_system_prompt_is_cached_and_billed_at_the_cached_price() -> None:
    # The same prompts (2,000 tokens of system prompt, then 500), declared as a shared prefix
    # or not: only the cached tokens differ.
    cached = simulate_policy(_policy(), _profile(shared_prefix=2000, prompt_tokens=500), [1])
    plain = simulate_policy(_policy(), _profile(prompt_tokens=2500), [1])
    d, without = cached["domains"]["d"], plain["domains"]["d"]
    n = d["requests"]
    assert n == d["ok"] == without["requests"] > 1500
    assert d["prompt_tokens"] == without["prompt_tokens"] == n * 2500
    # Whole 128-token blocks of the prefix: 15 x 128 = 1,920, for every request but the first.
    assert d["cached_tokens"] == (n - 1) * 1920
    assert cached["totals"]["cached_tokens"] == d["cached_tokens"]
    assert without["cached_tokens"] == 0
    price = CATALOG["gpt-4o-mini"]
    full = (2500 * price.input + 100 * price.output) / 1e6
    hit = ((2500 - 1920) * price.input + 1920 * price.cached_input + 100 * price.output) / 1e6
    assert without["cost_usd"] == pytest.approx(n * full, rel=1e-9)
    assert d["cost_usd"] == pytest.approx(full + (n - 1) * hit, rel=1e-9)
    # By hand: (580 x 0.15 + 1,920 x 0.075 + 100 x 0.60) / (2,500 x 0.15 + 100 x 0.60) = 291 / 435
    assert d["cost_usd"] / without["cost_usd"] == pytest.approx(291 / 435, rel=1e-3)


def test_the_prefix_comes_before_the_drawn_prompt() -> None:
    arrivals = list(_profile(shared_prefix=1500, prompt_tokens={"uniform": [1, 9]}).arrivals(3))
    assert arrivals
    assert all(a.shared_prefix == 1500 and 1501 <= a.prompt_tokens <= 1509 for a in arrivals)


@pytest.mark.parametrize(
    ("prefix", "cached"), [(1000, 0), (1023, 0), (1024, 1024), (1151, 1024), (1152, 1152)]
)
def test_only_whole_blocks_from_1024_tokens_are_cached(prefix: int, cached: int) -> None:
    s = simulate_policy(_policy(), _profile(shared_prefix=prefix, prompt_tokens=800), [1])
    d = s["domains"]["d"]
    assert d["cached_tokens"] == (d["requests"] - 1) * cached


@dataclass
class _Given:
    """A test traffic: the arrivals given, at their times."""

    given: list[Arrival]
    duration_s: float = 3600.0
    name: str = "given"
    description: str = "test traffic"
    start: datetime = field(default_factory=lambda: datetime(2026, 11, 18, tzinfo=UTC))

    def arrivals(self, seed: int) -> Iterator[Arrival]:
        return iter(self.given)

    def domains(self) -> set[str]:
        return {a.domain for a in self.given}

    def models(self) -> dict[str, set[str]]:
        return {}


def _cached(arrivals: list[Arrival]) -> list[int]:
    """Cached tokens of each request, in the order they arrived."""
    records: list[UsageRecord] = []
    simulate_policy(_policy(), _Given(arrivals), [1], on_record=records.append)
    by_arrival = sorted(records, key=lambda r: r.submitted)
    assert all(r.outcome == "ok" for r in by_arrival)
    return [r.cached_tokens for r in by_arrival]


def test_a_gap_longer_than_the_ttl_misses() -> None:
    # The provider keeps a prefix 300 s (ProviderSettings.cache_ttl) after its last use.
    times = [0.0, 299.0, 598.0, 899.0, 900.0]
    arrivals = [Arrival(t, "d", 2500, 100, 100, None, 2000) for t in times]
    assert _cached(arrivals) == [0, 1920, 1920, 0, 1920]


def test_prefixes_are_per_domain() -> None:
    arrivals = [
        Arrival(0.0, "d", 2500, 100, 100, None, 2000),
        Arrival(1.0, "e", 2500, 100, 100, None, 2000),  # another system prompt: a miss
        Arrival(2.0, "e", 2500, 100, 100, None, 2000),
        Arrival(3.0, "d", 2500, 100, 100, None, 0),  # no prefix declared: nothing cached
    ]
    assert _cached(arrivals) == [0, 0, 1920, 0]


def test_text_caching_stays_off_for_requests_that_name_no_prefix() -> None:
    provider = Provider(ProviderLimits.from_policy(_policy()), ProviderSettings())
    text = "x" * 20_000
    unnamed = UpstreamRequest("p", "gpt-4o-mini", prompt_tokens=5000, max_output=10)
    prefixed = UpstreamRequest(
        "p", "gpt-4o-mini", prompt_tokens=5000, max_output=10, prompt=text,
        shared_prefix="d", shared_prefix_tokens=2000,
    )  # fmt: skip
    for now in (0.0, 1.0):
        provider.usage(prefixed, now)
        assert provider.usage(unnamed, now).cached_tokens == 0
        plain = UpstreamRequest("p", "gpt-4o-mini", prompt_tokens=5000, max_output=10, prompt=text)
        assert provider.usage(plain, now).cached_tokens == 0  # prompt_caching is off
    assert provider.usage(prefixed, 2.0).cached_tokens == 1920


_requests = st.lists(
    st.tuples(
        st.floats(0.0, 700.0),  # seconds since the previous request
        st.sampled_from(["d", "e", "f"]),
        st.sampled_from(["gpt-4o-mini", "gpt-4o"]),
        st.integers(0, 6000),  # declared prefix
        st.integers(0, 9000),  # prompt tokens
    ),
    max_size=40,
)


@given(_requests)
def test_cached_tokens_never_exceed_the_prompt_nor_the_prefix(
    requests: list[tuple[float, str, str, int, int]],
) -> None:
    provider = Provider(ProviderLimits.from_policy(_policy()), ProviderSettings())
    now = 0.0
    for gap, name, model, prefix, prompt in requests:
        now += gap
        request = UpstreamRequest(
            "p", model, prompt_tokens=prompt, max_output=10,
            shared_prefix=name, shared_prefix_tokens=prefix,
        )  # fmt: skip
        cached = provider.usage(request, now).cached_tokens
        assert cached <= prompt
        assert cached <= prefix
        assert cached % 128 == 0
        assert cached == 0 or cached >= 1024


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.0, 400.0), st.integers(0, 3000)), min_size=1),
    st.integers(0, 4000),
)
def test_simulated_cached_tokens_never_exceed_the_prompt_nor_the_prefix(
    draws: list[tuple[float, int]], prefix: int
) -> None:
    t, arrivals = 0.0, []
    for gap, rest in draws:
        t += gap
        arrivals.append(Arrival(t, "d", prefix + rest, 100, 50, None, prefix))
    for arrival, cached in zip(arrivals, _cached(arrivals), strict=True):
        assert cached <= arrival.prompt_tokens
        assert cached <= prefix


def test_a_dated_snapshot_keeps_its_prefix_and_shares_its_familys_cache() -> None:
    request = UpstreamRequest(
        "p", "gpt-4o-mini-2024-07-18", prompt_tokens=2500, max_output=10,
        shared_prefix="d", shared_prefix_tokens=2000,
    )  # fmt: skip
    family = validation.as_family(request)
    for f in dataclasses.fields(UpstreamRequest):
        if f.name != "model":
            assert getattr(family, f.name) == getattr(request, f.name), f.name
    provider = Provider(ProviderLimits.from_policy(_policy()), ProviderSettings())
    first, second = provider.submit(request, 0.0), provider.submit(request, 1.0)
    assert first.usage is not None
    assert second.usage is not None
    assert (first.usage.cached_tokens, second.usage.cached_tokens) == (0, 1920)
