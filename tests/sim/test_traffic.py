"""Synthetic traffic: determinism, independence of domains, the rate and shape honoured, bursty
processes, token sizes, bursts, scaling and streaming.

Statistical checks use fixed seeds, so they are deterministic; each tolerance is stated so
that a change of generator that breaks the distribution (not merely the draws) is caught:
counts within 5 standard deviations, medians within 3%, coefficients of variation within 15%.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import statistics
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from itertools import islice, pairwise
from operator import attrgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keypolicy.sim.profile import SHAPES, Profile
from keypolicy.sim.traffic import Arrival, SyntheticTraffic, _merge_when_due, load_traffic

LOGN = {"lognormal": {"median": 800, "p95": 3000}}


def traffic(domains: dict[str, Any], **top: Any) -> SyntheticTraffic:
    """Synthetic traffic from plain data (the YAML, already parsed)."""
    return SyntheticTraffic(
        Profile.model_validate({"version": 1, "name": "t", **top, "domains": domains})
    )


def domain(**fields: Any) -> dict[str, Any]:
    return {"rate": "3600/h", "prompt_tokens": LOGN, "max_tokens": 1000, **fields}


def hours(arrivals: list[Arrival], start: datetime) -> Counter[int]:
    zone = start.tzinfo
    return Counter(datetime.fromtimestamp(start.timestamp() + a.time, zone).hour for a in arrivals)


def test_arrival_is_a_frozen_slotted_dataclass() -> None:
    arrival = Arrival(1.5, "chat", 100, 200, None)
    assert arrival.model is None
    assert not hasattr(arrival, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        arrival.time = 2.0  # type: ignore[misc]


def test_same_seed_same_arrivals_other_seed_other_arrivals() -> None:
    t = traffic(
        {
            "a": domain(process={"bursty": {"cv": 2}}),
            "b": domain(
                completion_tokens=LOGN, bursts=[{"at": "12:00", "requests": 50, "over": "5m"}]
            ),
        },
        duration="6h",
    )
    first, again, other = list(t.arrivals(7)), list(t.arrivals(7)), list(t.arrivals(8))
    assert first == again
    assert first != other
    assert len(first) > 1000


def test_adding_a_domain_or_resizing_one_leaves_the_others_unchanged() -> None:
    base = {"a": domain(), "b": domain(process={"bursty": {"cv": 3}})}
    more = {**base, "c": domain(rate="9000/h")}
    resized = {**base, "b": domain(process={"bursty": {"cv": 3}}, prompt_tokens=50)}

    def of(t: SyntheticTraffic, name: str) -> list[Arrival]:
        return [x for x in t.arrivals(3) if x.domain == name]

    one, two = traffic(base, duration="2h"), traffic(more, duration="2h")
    assert of(one, "a") == of(two, "a")
    assert of(one, "b") == of(two, "b")
    three = traffic(resized, duration="2h")
    assert [x.time for x in of(one, "b")] == [x.time for x in of(three, "b")]
    assert of(one, "a") == of(three, "a")


def test_sorted_within_the_period_and_sizes_consistent() -> None:
    t = traffic(
        {
            "a": domain(
                shape="clinic",
                process={"bursty": {"cv": 4}},
                completion_tokens={"uniform": [1, 5000]},
                model="gpt-4o-mini",
            ),
            "b": domain(
                shape="evening_peak",
                max_tokens={"uniform": [10, 50]},
                completion_tokens=LOGN,
                bursts=[{"at": "23:55", "requests": 400, "over": "10m"}],
            ),
        }
    )
    arrivals = list(t.arrivals(1))
    assert all(x.time <= y.time for x, y in pairwise(arrivals))
    assert arrivals[0].time >= 0
    assert arrivals[-1].time < t.duration_s
    for x in arrivals:
        assert x.completion_tokens is not None
        assert 0 <= x.completion_tokens <= x.max_output_tokens
        assert x.prompt_tokens >= 1
    assert {x.model for x in arrivals if x.domain == "a"} == {"gpt-4o-mini"}
    assert {x.model for x in arrivals if x.domain == "b"} == {None}


def test_rate_and_hourly_shape_are_honoured_within_five_sigma() -> None:
    t = traffic({"a": domain(rate="6000/h", shape="clinic")}, timezone="America/New_York")
    counts = hours(list(t.arrivals(11)), t.start)
    for hour, multiplier in enumerate(SHAPES["clinic"]):
        expected = 6000 * multiplier
        assert abs(counts[hour] - expected) < 5 * math.sqrt(expected), hour
    assert t.expected_requests()["a"] == pytest.approx(6000 * sum(SHAPES["clinic"]))


def test_per_day_gives_the_expected_count_of_a_day() -> None:
    t = traffic(
        {"a": {"per_day": 12_000, "shape": "business_hours", "prompt_tokens": 10, "max_tokens": 10}}
    )
    assert t.expected_requests()["a"] == pytest.approx(12_000)
    assert abs(sum(1 for _ in t.arrivals(0)) - 12_000) < 5 * math.sqrt(12_000)


def test_shape_hours_are_local_hours_across_a_daylight_saving_change() -> None:
    only_noon = [0.0] * 24
    only_noon[12] = 1.0
    zone = ZoneInfo("America/New_York")
    # 2026-11-01: clocks go back at 02:00, so the day has 25 hours; noon is still noon.
    t = traffic(
        {"a": domain(rate="3600/h", shape=only_noon)},
        start="2026-11-01T00:00:00-04:00",
        timezone="America/New_York",
        duration="48h",
    )
    stamps = [datetime.fromtimestamp(t.start.timestamp() + x.time, zone) for x in t.arrivals(2)]
    assert {s.hour for s in stamps} == {12}
    assert {s.day for s in stamps} == {1, 2}
    assert abs(len(stamps) - 7200) < 5 * math.sqrt(7200)


def intervals(arrivals: Iterator[Arrival]) -> list[float]:
    times = [a.time for a in arrivals]
    return [b - a for a, b in pairwise(times)]


def cv(values: list[float]) -> float:
    return statistics.pstdev(values) / statistics.fmean(values)


@pytest.mark.parametrize("law", ["gamma", "hyperexponential"])
def test_bursty_arrivals_have_the_coefficient_of_variation_asked_for(law: str) -> None:
    t = traffic(
        {"a": domain(rate="36000/h", process={"bursty": {"cv": 3, "law": law}})}, duration="1h"
    )
    gaps = intervals(t.arrivals(5))
    assert cv(gaps) == pytest.approx(3, rel=0.15)
    assert abs(len(gaps) - 36000) < 5 * 3 * math.sqrt(36000)  # counts disperse like cv²


def test_poisson_intervals_have_cv_one_and_bursts_stay_bursty_at_night() -> None:
    poisson = traffic({"a": domain(rate="36000/h")}, duration="1h")
    assert cv(intervals(poisson.arrivals(5))) == pytest.approx(1, rel=0.05)
    shaped = traffic({"a": domain(rate="36000/h", shape="clinic", process={"bursty": {"cv": 3}})})
    night = (a for a in shaped.arrivals(5) if 3 * 3600 <= a.time < 4 * 3600)  # multiplier 0.15
    assert cv(intervals(night)) == pytest.approx(3, rel=0.15)


def test_token_distributions_have_their_medians_and_caps() -> None:
    t = traffic(
        {
            "a": domain(
                rate="30000/h",
                prompt_tokens={"lognormal": {"median": 800, "p95": 3000, "max": 5000}},
                max_tokens={"uniform": [1000, 3000]},
                completion_tokens={"lognormal": {"median": 150, "p95": 900}},
            ),
            "b": domain(rate="3000/h", prompt_tokens="2k", max_tokens={"fixed": 64}),
        },
        duration="1h",
    )
    a = [x for x in t.arrivals(9) if x.domain == "a"]
    b = [x for x in t.arrivals(9) if x.domain == "b"]
    prompts = sorted(x.prompt_tokens for x in a)
    assert statistics.median(prompts) == pytest.approx(800, rel=0.03)
    p95 = prompts[int(0.95 * len(prompts))]
    assert p95 in (pytest.approx(3000, rel=0.06), 5000)
    assert max(prompts) == 5000  # capped
    assert min(x.max_output_tokens for x in a) == 1000
    assert max(x.max_output_tokens for x in a) == 3000  # uniform bounds are inclusive
    assert statistics.median(x.completion_tokens or 0 for x in a) == pytest.approx(150, rel=0.03)
    assert all(x.completion_tokens is not None for x in a)
    assert {(x.prompt_tokens, x.max_output_tokens, x.completion_tokens) for x in b} == {
        (2000, 64, None)
    }


def test_completion_is_capped_at_max_tokens() -> None:
    t = traffic(
        {
            "a": domain(
                max_tokens={"uniform": [100, 300]},
                completion_tokens={"lognormal": {"median": 150, "p95": 900}},
            )
        },
        duration="1h",
    )
    pairs = [(x.completion_tokens or 0, x.max_output_tokens) for x in t.arrivals(9)]
    assert all(c <= m for c, m in pairs)
    assert sum(c == m for c, m in pairs) > len(pairs) / 10  # the cap did bite


def test_a_burst_adds_exactly_its_requests_over_its_window_every_day() -> None:
    t = traffic(
        {
            "billing": {
                "prompt_tokens": 100,
                "max_tokens": 50,
                "model": "gpt-4o-mini",
                "bursts": [
                    {
                        "at": "17:00",
                        "requests": 600,
                        "over": "10m",
                        "prompt_tokens": 7,
                        "model": "gpt-4o",
                    }
                ],
            }
        },
        duration="48h",
        timezone="America/New_York",
    )
    arrivals = list(t.arrivals(4))
    assert len(arrivals) == 1200
    local = [datetime.fromtimestamp(t.start.timestamp() + a.time, t.start.tzinfo) for a in arrivals]
    assert {(s.day, s.hour) for s in local} == {(18, 17), (19, 17)}
    assert all(s.minute < 10 for s in local)
    assert {(a.prompt_tokens, a.max_output_tokens, a.model) for a in arrivals} == {
        (7, 50, "gpt-4o")
    }
    first_day = [a.time - 17 * 3600 for a in arrivals[:600]]
    assert statistics.fmean(first_day) == pytest.approx(300, abs=5 * 600 / math.sqrt(12 * 600))
    assert t.expected_requests() == {"billing": 1200}


def test_a_burst_cut_by_the_end_of_the_period_stops_there() -> None:
    t = traffic(
        {
            "a": {
                "prompt_tokens": 1,
                "max_tokens": 1,
                "bursts": [{"at": "23:55", "requests": 1000, "over": "10m"}],
            }
        }
    )
    arrivals = list(t.arrivals(0))
    assert 400 < len(arrivals) < 600
    assert arrivals[-1].time < 86400


def test_scale_multiplies_rates_and_bursts(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nname: p\nduration: 1h\ndomains:\n"
        "  a: {rate: 1000/h, prompt_tokens: 1, max_tokens: 1,\n"
        "      bursts: [{at: '00:30', requests: 100, over: 1m}]}\n"
    )
    one = load_traffic(path)
    ten = load_traffic(path, scale=10)
    assert isinstance(ten, SyntheticTraffic)
    assert ten.expected_requests() == {"a": 11_000}
    assert abs(sum(1 for _ in ten.arrivals(0)) - 11_000) < 5 * math.sqrt(10_000)
    assert one.start == datetime.fromisoformat("2026-11-18T00:00:00-05:00")
    assert one.duration_s == 3600


def test_a_million_arrivals_stream_without_being_held() -> None:
    t = traffic(
        {
            "a": domain(rate="500000/h", completion_tokens={"uniform": [1, 80]}),
            "b": domain(rate="500000/h", process={"bursty": {"cv": 2}}),
        },
        duration="1h",
    )
    # Memory is traced over the start of the stream only (tracing makes every allocation slow):
    # building the day up front, or keeping what was yielded, would show there already.
    tracemalloc.start()
    try:
        stream = t.arrivals(0)
        head = sum(1 for _ in islice(stream, 100_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not isinstance(stream, list | tuple)
    assert peak < 3_000_000, peak  # 100,000 arrivals held take over 10 MB; a million, 100 MB
    count = head + sum(1 for _ in stream)
    assert abs(count - 1_000_000) < 5 * 2 * math.sqrt(1_000_000)


def test_the_first_arrival_comes_without_drawing_the_day() -> None:
    t = traffic({"a": domain(rate="10M/h")}, duration="24h")  # 240 million arrivals
    assert [a.domain for a in islice(t.arrivals(0), 3)] == ["a", "a", "a"]


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=50, allow_nan=False),
            st.lists(st.integers(min_value=0, max_value=20), max_size=6),
        ),
        max_size=6,
    )
)
def test_streams_started_when_due_merge_as_heapq_does(
    specs: list[tuple[float, list[int]]],
) -> None:
    """Equal times included: the order is (time, stream's place), as heapq.merge gives it."""
    built = []
    for index, (earliest, steps) in enumerate(specs):
        times = [earliest + sum(steps[: i + 1]) / 4 for i in range(len(steps))]
        built.append((earliest, [Arrival(t, f"d{index}", 1, 1, None) for t in times]))
    expected = list(heapq.merge(*(a for _, a in built), key=attrgetter("time")))
    merged = list(_merge_when_due([(at, iter(a)) for at, a in built]))
    assert [(a.time, a.domain) for a in merged] == [(a.time, a.domain) for a in expected]


def test_bursts_of_later_days_are_not_drawn_up_front() -> None:
    spec = domain(bursts=[{"at": "07:00", "requests": 50_000, "over": "10m"}])
    t = traffic({"a": spec}, duration="2400h", start="2026-11-18T00:00:00+00:00")
    tracemalloc.start()
    try:
        first = next(t.arrivals(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.time < 3600
    assert peak < 5_000_000, peak  # a hundred days of 50,000-request bursts would take far more
