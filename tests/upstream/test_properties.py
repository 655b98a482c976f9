"""Invariants of the provider model, for any traffic Hypothesis can think of."""

from __future__ import annotations

import heapq
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from keypolicy.upstream import ModelLimits
from tests.upstream.conftest import T0, provider, req

Arrival = tuple[float, int, int, float, float]  # gap (s), prompt, max_output, used share, latency

arrivals = st.lists(
    st.tuples(
        st.floats(0.0, 20.0),
        st.integers(0, 3000),
        st.integers(0, 2000),
        st.floats(0.0, 1.0),
        st.floats(0.0, 30.0),
    ),
    min_size=1,
    max_size=40,
)


def _replay(
    traffic: list[Arrival], quantum: float | None
) -> tuple[list[tuple[float, str, int]], float, float, float, float]:
    """Feed the traffic through a provider; return (time, dimension, net charge) records and the
    capacity and rate of the RPM and TPM buckets."""
    limits = ModelLimits(rpm=5, tpm=5000, quantum=quantum)
    p = provider(overrides={"alpha/m": limits})
    seq = itertools.count()
    events: list[tuple[float, int, str, object]] = []
    now = T0
    for gap, prompt, most, share, latency in traffic:
        now += gap
        heapq.heappush(events, (now, next(seq), "arrive", (prompt, most, share, latency)))
    records: list[tuple[float, str, int]] = []
    while events:
        at, _, kind, data = heapq.heappop(events)
        if kind == "settle":
            ticket, delta = data  # type: ignore[misc]
            p.settle(ticket, at)
            records.append((at, "tpm", delta))
            continue
        prompt, most, share, latency = data  # type: ignore[misc]
        used = round(most * share)
        out = p.submit(req("m", prompt=prompt, max_output=most, completion_tokens=used), at)
        if out.ticket is not None:
            records += [(at, "rpm", 1), (at, "tpm", prompt + most)]
            heapq.heappush(events, (at + latency, next(seq), "settle", (out.ticket, used - most)))
    rpm, tpm = p.bucket("alpha", "m", "rpm", T0), p.bucket("alpha", "m", "tpm", T0)
    assert rpm is not None
    assert tpm is not None
    return records, rpm.capacity, rpm.rate, tpm.capacity, tpm.rate


@settings(max_examples=150, deadline=None)
@given(arrivals, st.sampled_from([None, 1.0, 10.0]))
def test_no_interval_admits_more_than_capacity_plus_refill(
    traffic: list[Arrival], quantum: float | None
) -> None:
    records, rpm_cap, rpm_rate, tpm_cap, tpm_rate = _replay(traffic, quantum)
    times = sorted({t for t, _, _ in records})
    for dim, cap, rate in (("rpm", rpm_cap, rpm_rate), ("tpm", tpm_cap, tpm_rate)):
        for i, start in enumerate(times):
            for end in times[i:]:
                net = sum(a for t, d, a in records if d == dim and start <= t <= end)
                assert net <= cap + rate * (end - start) + 1e-6 * max(1.0, rate)


@settings(max_examples=50, deadline=None)
@given(arrivals, st.integers(0, 2**32 - 1))
def test_one_seed_one_result(traffic: list[Arrival], seed: int) -> None:
    def run() -> list[object]:
        p = provider(seed)
        now, outcomes = T0, []
        for gap, prompt, most, _, _ in traffic:
            now += gap
            outcomes.append(p.submit(req("gpt-4o", "beta", prompt=prompt, max_output=most), now))
        return outcomes

    assert run() == run()
