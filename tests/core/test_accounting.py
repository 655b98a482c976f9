"""The engine's view of how the provider counts: slices, refunds, and what a 429 teaches."""

from __future__ import annotations

import json

import pytest

from keypolicy.core import Failed, Reject, Send

from .conftest import SMALL, Driver, engine_for

RATE_BODY = json.dumps(
    {
        "error": {
            "message": "Rate limit reached ... Please try again in 1s.",
            "type": "tokens",
            "code": "rate_limit_exceeded",
        }
    }
)


def _tpm(d: Driver) -> float:
    """What the engine believes is left of project p's TPM."""
    index = next(
        i for i, b in enumerate(d.engine.config.buckets) if b.owner == "p" and b.dimension == "tpm"
    )
    return d.engine.store.levels([d.engine.bucket(index)], d.now)[0]


def test_a_request_larger_than_a_slice_goes_once_the_slice_is_unused() -> None:
    # 6,000 TPM in 1 s slices: 100 tokens at once, 100 a second; the request takes 300.
    d = Driver(engine_for(SMALL + "provider: {quantum_tokens: 1s}\n"))
    _, got = d.submit("urgent", prompt=100, out=200)
    assert [type(a) for a in got] == [Send]  # not refused as larger than the limit
    assert _tpm(d) == pytest.approx(-200)  # the slice is 200 tokens in debt
    second, got = d.submit("urgent", prompt=50, out=50)
    assert got == []
    d.advance(2.9)
    assert d.engine.waiting() == [second]
    d.advance(0.1)  # 3 s: the slice is unused again
    assert d.sends()[-1].request_id == second


def test_a_request_larger_than_the_whole_limit_is_still_refused() -> None:
    d = Driver(engine_for(SMALL + "provider: {quantum_tokens: 1s}\n"))
    _, got = d.submit("urgent", prompt=5000, out=1001)  # 6,001 of 6,000 TPM
    assert len(got) == 1
    assert isinstance(got[0], Reject)
    assert "6,000" in got[0].message or "6,001" in got[0].message


def test_a_429_on_tokens_stops_refunds_on_that_route() -> None:
    d = Driver(engine_for(SMALL + "provider: {refund_unused: true}\n"))
    rid, _ = d.submit("urgent", prompt=100, out=1000)
    d.settle(rid, prompt=100, completion=100)
    assert _tpm(d) == pytest.approx(6000 - 200)  # 900 unused tokens given back
    rid, _ = d.submit("urgent", prompt=100, out=1000)
    d.feed(Failed(rid, d.now, 429, {}, RATE_BODY))  # the provider counted more than we did
    d.now += 2.0
    retry = [a for a in d.advance(0.0) if isinstance(a, Send)]
    assert [s.request_id for s in retry] == [rid]
    before = _tpm(d)
    d.settle(rid, prompt=100, completion=100)
    assert _tpm(d) == pytest.approx(before)  # nothing given back any more


def test_a_429_on_requests_keeps_refunding_tokens() -> None:
    d = Driver(engine_for(SMALL + "provider: {refund_unused: true}\n"))
    rid, _ = d.submit("urgent", prompt=100, out=1000)
    body = RATE_BODY.replace('"tokens"', '"requests"')
    d.feed(Failed(rid, d.now, 429, {}, body))
    d.now += 2.0
    d.advance(0.0)
    before = _tpm(d)
    d.settle(rid, prompt=100, completion=100)
    assert _tpm(d) == pytest.approx(min(6000, before + 900))
