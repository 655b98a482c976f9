"""Headroom: grown traffic keeps the shape and nests; the search finds an edge within its
precision in bounded steps; a real search on a small clinic is consistent."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypolicy.policy import load_policy
from keypolicy.sim.headroom import (
    COPY_SPREAD_S,
    FactorSearch,
    GrownTraffic,
    critical_classes,
    headroom,
    probe_run,
)
from keypolicy.sim.traffic import Traffic, load_traffic

DATA = Path(__file__).parent / "data"
POLICIES = Path(__file__).parents[2] / "policies"


@pytest.fixture(scope="module")
def day() -> Traffic:
    return load_traffic(DATA / "mini-day.yaml")


def _key(a: object) -> tuple[object, ...]:
    return (a.domain, a.prompt_tokens, a.max_output_tokens, a.completion_tokens)  # type: ignore[attr-defined]


def test_critical_classes_are_the_top_one_and_those_with_a_reserve() -> None:
    clinic = load_policy(POLICIES / "clinic-separate.yaml").policy
    assert critical_classes(clinic) == ("critical", "clinical")


def test_factor_one_is_the_traffic_itself(day: Traffic) -> None:
    assert list(GrownTraffic(day, 1.0).arrivals(3)) == list(day.arrivals(3))


@settings(max_examples=25)  # each example draws two days of arrivals
@given(low=st.floats(0.1, 3.0), more=st.floats(0.0, 2.0), seed=st.integers(0, 5))
def test_grown_traffic_is_sorted_keeps_the_smaller_and_has_factor_times_as_many(
    low: float, more: float, seed: int
) -> None:
    day = load_traffic(DATA / "mini-day.yaml")
    small = list(GrownTraffic(day, low).arrivals(seed))
    large = list(GrownTraffic(day, low + more).arrivals(seed))
    for arrivals in (small, large):
        times = [a.time for a in arrivals]
        assert times == sorted(times)
        assert all(0 <= t < day.duration_s for t in times)
    # every arrival of the smaller factor is in the larger one (same time, same request)
    remaining = {}
    for a in large:
        remaining[(a.time, *_key(a))] = remaining.get((a.time, *_key(a)), 0) + 1
    for a in small:
        assert remaining.get((a.time, *_key(a)), 0) > 0
        remaining[(a.time, *_key(a))] -= 1
    base = len(list(day.arrivals(seed)))
    assert abs(len(large) - (low + more) * base) < 5 * ((low + more) * base) ** 0.5 + 2


def test_copies_come_within_a_minute_of_their_original(day: Traffic) -> None:
    originals: dict[tuple[object, ...], list[float]] = {}
    for a in day.arrivals(1):
        originals.setdefault(_key(a), []).append(a.time)
    for a in GrownTraffic(day, 2.5).arrivals(1):
        assert any(0 <= a.time - t < COPY_SPREAD_S + 1e-9 for t in originals[_key(a)])


@given(edge=st.floats(1.05, 7.0), precision=st.sampled_from([0.02, 0.05, 0.1]))
def test_the_growth_search_brackets_a_monotone_edge_within_its_precision(
    edge: float, precision: float
) -> None:
    search = FactorSearch("growth", precision, max_steps=30, bound=8.0)
    while (factor := search.next_factor()) is not None:
        search.record(factor, 0 if factor < edge else 3)
    assert search.safe is not None
    assert search.unsafe is not None
    assert search.safe < edge <= search.unsafe
    assert search.unsafe / search.safe <= 1 + precision
    assert search.steps <= 4 + 12  # stepping out, then bisecting


@given(edge=st.floats(0.15, 0.95))
def test_the_limits_search_brackets_a_monotone_edge(edge: float) -> None:
    search = FactorSearch("limits", 0.05, max_steps=30, bound=8.0)
    while (factor := search.next_factor()) is not None:
        search.record(factor, 0 if factor > edge else 1)
    assert search.safe is not None
    assert search.unsafe is not None
    assert search.unsafe <= edge < search.safe <= search.unsafe * 1.05


def test_searches_stop_at_their_bound_and_their_step_budget() -> None:
    never = FactorSearch("growth", 0.05, max_steps=30, bound=8.0)
    while (factor := never.next_factor()) is not None:
        never.record(factor, 0)
    assert (never.safe, never.unsafe) == (8.0, None)
    short = FactorSearch("growth", 0.001, max_steps=5, bound=8.0)
    while (factor := short.next_factor()) is not None:
        short.record(factor, 0 if factor < 1.7 else 1)
    assert short.steps == 5
    refused = FactorSearch("limits", 0.05, max_steps=30, bound=8.0)
    refused.record(refused.next_factor() or 0.0, 2)
    assert refused.next_factor() is None
    assert refused.safe is None


def test_headroom_on_a_small_clinic_is_consistent_with_its_probes(day: Traffic) -> None:
    # Only the clinical domains, so that today is safe and growth finds an edge.
    mini = load_policy(DATA / "mini.yaml").policy
    room = headroom(mini, day, [0], critical=["interactive"], precision=0.1, max_steps=5)
    assert room.critical == ("interactive",)
    assert room.growth is not None
    assert room.growth >= 1
    if room.growth_fails_at is not None:
        assert room.growth_fails_at > room.growth
        assert probe_run(mini, day, 0, room.growth_fails_at, 1.0, ("interactive",)) > 0
    assert probe_run(mini, day, 0, room.growth, 1.0, ("interactive",)) == 0
    assert room.simulations <= 2 * 5
    assert "traffic can grow" in room.describe()


def test_headroom_refuses_a_class_the_policy_does_not_have(day: Traffic) -> None:
    mini = load_policy(DATA / "mini.yaml").policy
    with pytest.raises(ValueError, match="not priority classes"):
        headroom(mini, day, [0], critical=["urgent"])
