"""Invariants of the provider model, for any traffic Hypothesis can think of."""

from __future__ import annotations

import heapq
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypolicy.upstream import Accounting, ModelLimits, Provider
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


Record = tuple[float, str, float, str]  # time, dimension, units (net), what: admit/refused/refund

rules = st.builds(
    Accounting,
    refund_unused=st.booleans(),
    count_failed=st.booleans(),
    quantum_requests=st.sampled_from([None, 1.0, 10.0]),
    quantum_tokens=st.sampled_from([None, 1.0, 10.0]),
)


def _replay(traffic: list[Arrival], rule: Accounting) -> tuple[list[Record], Provider]:
    """Feed the traffic through a provider counting by ``rule``; return the ledger the rule
    implies, kept here from what the provider answered (one request and prompt + max_output
    tokens per admission, one request per minute per refusal where failures count, the unused
    tokens back at settlement where they come back), and the provider."""
    p = provider(overrides={"alpha/m": ModelLimits(rpm=5, tpm=5000)}, accounting=rule)
    seq = itertools.count()
    events: list[tuple[float, int, str, object]] = []
    now = T0
    for gap, prompt, most, share, latency in traffic:
        now += gap
        heapq.heappush(events, (now, next(seq), "arrive", (prompt, most, share, latency)))
    records: list[Record] = []
    while events:
        at, _, kind, data = heapq.heappop(events)
        if kind == "settle":
            ticket, delta = data  # type: ignore[misc]
            p.settle(ticket, at)
            if rule.refund_unused:
                records.append((at, "tpm", delta, "refund"))
            continue
        prompt, most, share, latency = data  # type: ignore[misc]
        used = round(most * share)
        out = p.submit(req("m", prompt=prompt, max_output=most, completion_tokens=used), at)
        if out.ticket is not None:
            records += [(at, "rpm", 1, "admit"), (at, "tpm", prompt + most, "admit")]
            heapq.heappush(events, (at + latency, next(seq), "settle", (out.ticket, used - most)))
        elif out.kind == "rate_limited" and rule.count_failed:
            records.append((at, "rpm", 1, "refused"))
    return records, p


@settings(max_examples=200, deadline=None)
@given(arrivals, rules)
def test_no_window_admits_more_than_the_rule_allows(
    traffic: list[Arrival], rule: Accounting
) -> None:
    """Over any run of the ledger that ends with an admission, what was counted is at most
    what the bucket holds (or the one request larger than a slice it let through once the
    slice was unused) plus what refilled meanwhile: the provider never admits more than the
    chosen rule allows, and it counts what the rule says it counts."""
    records, p = _replay(traffic, rule)
    for dim in ("rpm", "tpm"):
        bucket = p.bucket("alpha", "m", dim, T0)  # type: ignore[arg-type]
        assert bucket is not None
        quantum = rule.quantum_requests if dim == "rpm" else rule.quantum_tokens
        if quantum is not None:  # a slice of the limit (a request bucket holds one at least)
            assert bucket.capacity == pytest.approx(
                max(bucket.limit * quantum / 60, 1.0 if dim == "rpm" else 0.0)
            )
        ledger = [r for r in records if r[1] == dim]
        for j, (end, _, _, what) in enumerate(ledger):
            if what != "admit":
                continue
            net = most = 0.0
            for start, _, amount, kind in reversed(ledger[: j + 1]):
                net += amount
                if kind == "admit":
                    most = max(most, amount)
                room = max(bucket.capacity, most)
                assert net <= room + bucket.rate * (end - start) + 1e-6 * max(1.0, bucket.rate)


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
