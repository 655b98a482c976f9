"""Faults on demand and latency, drawn from the seeded generator."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypolicy.upstream import FaultSettings, LatencySettings, ModelSpeed, Timing
from keypolicy.upstream.latency import lognormal
from tests.upstream.conftest import REFUNDING, T0, provider, req


def test_quota_fault_is_a_429_with_openai_body_and_no_charge() -> None:
    p = provider(faults=FaultSettings(insufficient_quota=1.0))
    out = p.submit(req(prompt=100), T0)
    assert (out.kind, out.status, out.ticket) == ("insufficient_quota", 429, None)
    assert out.error is not None
    error = out.error["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "insufficient_quota",
        "insufficient_quota",
        None,
    )
    assert error["message"].startswith("You exceeded your current quota, please check your plan")
    tpm = p.bucket("alpha", "gpt-4o-mini", "tpm", T0)
    assert tpm is not None
    assert tpm.used(T0) == 0


def test_bare_429_has_no_headers_and_no_wait() -> None:
    out = provider(faults=FaultSettings(bare_429=1.0)).submit(req(), T0)
    assert (out.kind, out.status, out.headers) == ("bare_429", 429, {})
    assert out.error is not None
    assert "try again in" not in out.error["error"]["message"]


def test_server_errors_are_charged_requests_settled_at_zero_tokens() -> None:
    p = provider(faults=FaultSettings(server_error=1.0), accounting=REFUNDING)
    statuses = set()
    for i in range(12):
        out = p.submit(req("gpt-4o", "beta", prompt=100), T0 + 30 * i)
        assert out.kind == "server_error"
        assert out.error is not None
        assert out.error["error"]["type"] == "server_error"
        assert out.ticket is not None
        p.settle(out.ticket, T0 + 30 * i)
        statuses.add(out.status)
    assert statuses == {500, 502, 503}
    tpm = p.bucket("beta", "gpt-4o", "tpm", T0 + 330)
    rpm = p.bucket("beta", "gpt-4o", "rpm", T0 + 330)
    assert tpm is not None
    assert rpm is not None
    assert tpm.used(T0 + 330) == 0
    assert rpm.used(T0 + 330) > 0  # the last request still counts


def test_timeout_hangs_for_the_set_delay() -> None:
    p = provider(faults=FaultSettings(timeout=1.0, timeout_delay=42.0))
    out = p.submit(req(), T0)
    assert (out.kind, out.status, out.timing) == ("timeout", 0, Timing(42.0, 42.0))


def test_disconnect_and_malformed() -> None:
    out = provider(faults=FaultSettings(disconnect=1.0)).submit(req(), T0)
    assert (out.kind, out.status) == ("disconnect", 0)
    out = provider(faults=FaultSettings(malformed=1.0)).submit(req(), T0)
    assert (out.kind, out.status) == ("malformed", 200)
    assert out.usage is not None


def test_fault_rates_are_checked() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultSettings(server_error=1.5)
    with pytest.raises(ValueError, match="add up"):
        FaultSettings(server_error=0.6, timeout=0.6)


def test_fault_mix_follows_the_rates() -> None:
    faults = FaultSettings(server_error=0.2, timeout=0.1)
    rng = random.Random(1)
    draws = [faults.draw(rng) for _ in range(10_000)]
    assert draws.count("server_error") == pytest.approx(2000, rel=0.1)
    assert draws.count("timeout") == pytest.approx(1000, rel=0.15)
    assert FaultSettings().draw(rng) is None


def test_no_faults_means_no_draw() -> None:
    rng = random.Random(5)
    state = rng.getstate()
    FaultSettings().draw(rng)
    assert rng.getstate() == state


def test_latency_is_first_token_plus_tokens_at_a_rate() -> None:
    steady = LatencySettings(models={"m": ModelSpeed(0.5, 100.0)}, jitter=0.0)
    assert steady.timing("m", 200, random.Random(0)) == Timing(0.5, 2.5)
    assert steady.timing("other", 80, random.Random(0)) == Timing(0.5, 1.5)  # the default speed
    assert LatencySettings.instant().timing("m", 200, random.Random(0)) == Timing(0.0, 0.0)
    scaled = LatencySettings(models={"m": ModelSpeed(0.5, 100.0)}, jitter=0.0, scale=2.0)
    assert scaled.timing("m", 100, random.Random(0)) == Timing(1.0, 3.0)


def test_latency_noise_is_seeded() -> None:
    noisy = LatencySettings(jitter=0.3)
    first = [noisy.timing("gpt-4o", 100, random.Random(9)) for _ in range(2)]
    assert first[0] == first[1]
    assert noisy.timing("gpt-4o", 100, random.Random(10)) != first[0]
    p = provider(seed=4, latency=noisy)
    out = p.submit(req(max_output=100), T0)
    assert out.timing.total > out.timing.first_token > 0


@settings(max_examples=200)
@given(seed=st.integers(0, 2**32), sigma=st.floats(0.01, 3.0))
def test_lognormal_draws_exactly_what_random_draws(seed: int, sigma: float) -> None:
    ours, theirs = random.Random(seed), random.Random(seed)
    for _ in range(20):
        assert lognormal(ours, sigma) == theirs.lognormvariate(0.0, sigma)
    assert ours.random() == theirs.random()  # and used the stream alike
