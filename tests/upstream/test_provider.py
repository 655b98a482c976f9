"""Admission, charge, settlement, refusals and headers of the provider model, on a fake clock."""

from __future__ import annotations

import math

import pytest

from keypolicy.upstream import Accounting, ModelLimits, UpstreamRequest
from tests.upstream.conftest import PURE, REFUNDING, T0, provider, req

LEARN = "Visit https://platform.openai.com/account/rate-limits to learn more."


def test_admission_charges_prompt_plus_max_output_times_n() -> None:
    p = provider()
    out = p.submit(req(prompt=100, max_output=50, n=3), T0)
    assert out.ok
    assert out.status == 200
    tpm = p.bucket("alpha", "gpt-4o-mini", "tpm", T0)
    rpm = p.bucket("alpha", "gpt-4o-mini", "rpm", T0)
    assert tpm is not None
    assert rpm is not None
    assert tpm.used(T0) == 100 + 50 * 3
    assert rpm.used(T0) == 1
    assert p.charge(req(prompt=100, max_output=None)) == 100 + 512  # default_max_output


def test_settlement_corrects_the_charge_to_actual_usage_where_unused_tokens_come_back() -> None:
    p = provider(accounting=REFUNDING)
    out = p.submit(req(prompt=100, max_output=1000, completion_tokens=40), T0)
    assert out.usage is not None
    assert out.usage.completion_tokens == 40
    tpm = p.bucket("alpha", "gpt-4o-mini", "tpm", T0)
    tpd = p.bucket("alpha", "gpt-4o-mini", "tpd", T0)
    assert tpm is not None
    assert tpd is not None
    assert tpm.used(T0) == 1100
    assert out.ticket is not None
    p.settle(out.ticket, T0)
    assert tpm.used(T0) == 140
    assert tpd.used(T0) == 140
    p.settle(out.ticket, T0)  # twice does nothing
    assert tpm.used(T0) == 140
    assert p.open_tickets == 0


def test_settlement_keeps_the_admission_charge_by_default() -> None:
    p = provider()
    out = p.submit(req(prompt=100, max_output=1000, completion_tokens=40), T0)
    assert out.ticket is not None
    p.settle(out.ticket, T0)
    tpm = p.bucket("alpha", "gpt-4o-mini", "tpm", T0)
    assert tpm is not None
    assert tpm.used(T0) == 1100
    assert p.open_tickets == 0


def test_completion_draw_stays_within_max_tokens() -> None:
    p = provider(seed=3)
    for _ in range(3):
        out = p.submit(req(prompt=1, max_output=20, n=2), T0)
        assert out.usage is not None
        assert len(out.usage.choices) == 2
        assert all(1 <= c <= 20 for c in out.usage.choices)
        assert out.usage.completion_tokens == sum(out.usage.choices)


ROOMY_RPM = {"alpha/gpt-4o-mini": ModelLimits(rpm=1000)}
"""Room for the requests that stand for one prompt above gpt-4o-mini's context window (a 400):
only its tokens per minute are tested."""


def test_rate_limited_tpm_body_matches_openai_exactly() -> None:
    p = provider(overrides=ROOMY_RPM)
    # 195,869 tokens in two requests: one prompt that long is above gpt-4o-mini's window (a 400)
    first = p.submit(req(prompt=97_935), T0)
    assert first.ok
    assert p.submit(req(prompt=97_934), T0).ok
    out = p.submit(req(prompt=4412), T0)
    assert out.kind == "rate_limited"
    assert out.status == 429
    assert out.error == {
        "error": {
            "message": "Rate limit reached for gpt-4o-mini in organization org-test on tokens per "
            "min (TPM): Limit 200000, Used 195869, Requested 4412. Please try again in 84ms. "
            + LEARN,
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert out.hit is not None
    assert out.hit.wait == pytest.approx((195_869 + 4412 - 200_000) / (200_000 / 60))


def test_try_again_in_is_the_bucket_arithmetic() -> None:
    p = provider(overrides=ROOMY_RPM)
    p.submit(req(prompt=75_000), T0)
    p.submit(req(prompt=75_000), T0)  # 150,000 (one prompt that long is above the window)
    out = p.submit(req(prompt=80_000), T0 + 3.0)
    assert out.hit is not None
    used = 150_000 - 3.0 * 200_000 / 60  # 140,000 after three seconds of refill
    wait = (used + 80_000 - 200_000) / (200_000 / 60)  # 6 s
    assert out.hit.used == pytest.approx(used)
    assert out.hit.wait == pytest.approx(wait)
    assert out.error is not None
    assert "Used 140000, Requested 80000. Please try again in 6s." in out.error["error"]["message"]


def test_rpm_refusal_has_type_requests() -> None:
    p = provider(accounting=PURE)
    for i in range(3):
        assert p.submit(req(), T0 + i).ok
    out = p.submit(req(), T0 + 3)
    assert out.error is not None
    error = out.error["error"]
    assert error["type"] == "requests"
    # three requests at T0..T0+2 of 3 RPM leak 0.05 a second: used 3 - 0.15 = 2.85 (shown: 3)
    assert error["message"] == (
        "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 17s. " + LEARN
    )
    assert out.hit is not None
    assert out.hit.wait == pytest.approx((2.85 + 1 - 3) / 0.05)


def test_a_refused_request_counts_before_its_wait_is_stated() -> None:
    p = provider()  # failed requests count, by default
    for i in range(3):
        assert p.submit(req(), T0 + i).ok
    out = p.submit(req(), T0 + 3)
    assert out.error is not None
    # 2.85 in use, and the refused request: 3.85 (shown 4); a retry fits (4.85 - 3) / 0.05 later
    assert "Limit 3, Used 4, Requested 1. Please try again in 37s." in out.error["error"]["message"]
    assert out.hit is not None
    assert out.hit.wait == pytest.approx((3.85 + 1 - 3) / 0.05)
    assert p.submit(req(), T0 + 3 + out.hit.wait).ok  # waiting as told is enough


def test_daily_limits_refuse_with_their_names() -> None:
    p = provider()
    for i in range(5):
        assert p.submit(req(), T0 + 60 * i).ok
    out = p.submit(req(), T0 + 300)
    assert out.hit is not None
    assert out.hit.dimension == "rpd"
    assert out.error is not None
    assert "on requests per day (RPD): Limit 5, Used 5" in out.error["error"]["message"]
    q = provider(overrides={"alpha/gpt-4o-mini": ModelLimits(rpd=100)})
    for i in range(10):  # 100,000 each: a prompt of 200,000 is above gpt-4o-mini's window
        assert q.submit(req(prompt=100_000), T0 + 60 * (i // 2)).ok
    out = q.submit(req(prompt=100_000), T0 + 300)
    assert out.error is not None
    # 1,000,000 tokens less 300 s of refill at 1,000,000 / 86,400 per second
    used = math.ceil(1_000_000 - 300 * 1_000_000 / 86_400)
    expected = f"on tokens per day (TPD): Limit 1000000, Used {used}, Requested 100000."
    assert expected in out.error["error"]["message"]


def test_request_too_large_is_refused_outright() -> None:
    p = provider()
    out = p.submit(req("gpt-4o", prompt=40_000, max_output=5000), T0)
    assert out.kind == "too_large"
    assert out.status == 429
    assert out.error == {
        "error": {
            "message": "Request too large for gpt-4o in organization org-test on tokens per min "
            "(TPM): Limit 30000, Requested 45000. The input or output tokens must be reduced in "
            "order to run successfully. " + LEARN,
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert out.ticket is None
    tpm = p.bucket("alpha", "gpt-4o", "tpm", T0)
    assert tpm is not None
    assert tpm.used(T0) == 0  # nothing charged


def test_headers_show_the_per_minute_buckets() -> None:
    p = provider()
    out = p.submit(req("gpt-4o", prompt=1440, max_output=0), T0)
    assert out.headers == {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-reset-requests": "6ms",  # 1 request at 10000/60 per second
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "28560",
        "x-ratelimit-reset-tokens": "2.88s",  # 1440 tokens at 500 per second
    }
    later = p.headers("alpha", "gpt-4o", T0 + 1.0)
    assert later["x-ratelimit-remaining-tokens"] == "29060"
    assert later["x-ratelimit-reset-tokens"] == "1.88s"
    assert later["x-ratelimit-reset-requests"] == "0s"


def test_reset_header_formats_long_waits() -> None:
    p = provider()
    p.submit(req(prompt=90_000), T0)
    p.submit(req(prompt=90_000), T0)  # 180,000 (one prompt that long is above the window)
    assert p.headers("alpha", "gpt-4o-mini", T0)["x-ratelimit-reset-tokens"] == "54s"
    q = provider()
    q.submit(req("gpt-4o", prompt=30_000, project="beta"), T0)
    assert q.headers("beta", "gpt-4o", T0)["x-ratelimit-reset-tokens"] == "1m0s"


def test_organization_bucket_is_shared_by_projects() -> None:
    p = provider()
    assert p.submit(req("gpt-4o", "alpha", prompt=25_000), T0).ok
    assert p.submit(req("gpt-4o", "beta", prompt=25_000), T0).ok
    out = p.submit(req("gpt-4o", "beta", prompt=1000), T0)
    assert out.hit is not None
    assert out.hit.scope == "*"  # beta's own bucket has room; the organization's has not
    assert out.error is not None
    assert (
        "in organization org-test on tokens per min (TPM): Limit 50000, Used 50000"
        in (out.error["error"]["message"])
    )


def test_project_in_message_names_the_project() -> None:
    p = provider(overrides=ROOMY_RPM, project_in_message=True)
    p.submit(req(prompt=100_000), T0)
    p.submit(req(prompt=100_000), T0)  # 200,000 (one prompt that long is above the window)
    out = p.submit(req(prompt=1), T0)
    assert out.error is not None
    assert "for gpt-4o-mini in project alpha on tokens per min" in out.error["error"]["message"]


def test_quantized_limit_admits_a_slice_at_a_time() -> None:
    p = provider(accounting=PURE)
    for _ in range(1000):
        assert p.submit(req("big", prompt=1), T0).ok
    out = p.submit(req("big", prompt=1), T0)
    assert out.error is not None
    expected = "(RPM): Limit 60000, Used 60000, Requested 1. Please try again in 1ms."
    assert expected in out.error["error"]["message"]
    assert p.submit(req("big", prompt=1), T0 + 0.001).ok


def test_a_request_larger_than_a_slice_goes_once_the_slice_is_unused() -> None:
    # 1,000,000 TPM in 1 s slices: 16,667 tokens at once; 20,000 is not too large
    p = provider()
    assert p.submit(req("big", prompt=10_000), T0).ok
    out = p.submit(req("big", prompt=20_000), T0)
    assert out.kind == "rate_limited"
    assert out.hit is not None
    assert out.hit.wait == pytest.approx(10_000 / (1_000_000 / 60))  # until the slice is unused
    assert p.submit(req("big", prompt=20_000), T0 + out.hit.wait).ok
    tpm = p.bucket("alpha", "big", "tpm", T0)
    assert tpm is not None
    assert tpm.used(T0 + out.hit.wait) == pytest.approx(20_000)  # all counts: a slice in debt
    assert not p.submit(req("big", prompt=1), T0 + out.hit.wait).ok
    assert p.submit(req("big", prompt=30_000), T0 + 10).kind != "too_large"
    assert p.submit(req("big", prompt=1_000_001), T0 + 20).kind == "too_large"


def test_the_provider_slices_per_minute_limits_as_its_accounting_says() -> None:
    tokens = provider(accounting=Accounting(quantum_tokens=1.0))
    bucket = tokens.bucket("alpha", "gpt-4o-mini", "tpm", T0)
    assert bucket is not None
    assert bucket.capacity == pytest.approx(200_000 / 60)
    rpm = tokens.bucket("alpha", "gpt-4o-mini", "rpm", T0)
    assert rpm is not None
    assert rpm.capacity == 3  # requests are not sliced unless quantum_requests says so
    requests = provider(accounting=Accounting(quantum_requests=1.0))
    rpm = requests.bucket("alpha", "gpt-4o-mini", "rpm", T0)
    assert rpm is not None
    assert rpm.capacity == 1  # 3 RPM in 1 s slices: at least one request at a time


def test_retry_after_is_a_setting() -> None:
    p = provider(overrides=ROOMY_RPM, retry_after=True)
    p.submit(req(prompt=100_000), T0)
    p.submit(req(prompt=100_000), T0)  # 200,000 (one prompt that long is above the window)
    out = p.submit(req(prompt=5000), T0)
    assert out.headers["retry-after"] == "2"  # 1.5 s, rounded up to whole seconds
    assert "retry-after" not in provider().submit(req(), T0).headers


def test_count_failed_charges_a_refused_request_per_minute_only() -> None:
    for p, counted in (
        (provider(), 4),
        (provider(accounting=PURE), 3),
        (provider(accounting=Accounting(count_failed=True)), 4),
    ):
        for _ in range(3):
            p.submit(req(), T0)
        p.submit(req(), T0)
        rpm = p.bucket("alpha", "gpt-4o-mini", "rpm", T0)
        rpd = p.bucket("alpha", "gpt-4o-mini", "rpd", T0)
        assert rpm is not None
        assert rpd is not None
        assert rpm.used(T0) == counted
        assert rpd.used(T0) == 3


def test_unknown_model_is_not_found_unless_unlimited() -> None:
    out = provider().submit(req("gpt-5"), T0)
    assert out.kind == "model_not_found"
    assert out.status == 404
    assert out.error is not None
    assert out.error["error"]["code"] == "model_not_found"
    free = provider(undeclared_models="unlimited").submit(req("gpt-5"), T0)
    assert free.ok
    assert free.headers == {}


def test_embeddings_charge_the_prompt_only() -> None:
    p = provider()
    request = UpstreamRequest("alpha", "text-embedding-3-small", "embeddings", prompt_tokens=300)
    out = p.submit(request, T0)
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (300, 0)
    assert out.headers["x-ratelimit-remaining-tokens"] == "700"


def test_prompt_cache_reports_repeated_prefixes() -> None:
    p = provider(prompt_caching=True, cache_ttl=300.0)
    text = "x" * 6000  # 1500 tokens; 11 blocks of 128 tokens (512 characters)
    request = UpstreamRequest("alpha", "gpt-4o", prompt_tokens=1500, max_output=0, prompt=text)
    assert p.submit(request, T0).usage == p.submit(request, T0 + 1000).usage  # both uncached
    again = p.submit(request, T0 + 1001)
    assert again.usage is not None
    assert again.usage.cached_tokens == 11 * 128
    short = UpstreamRequest("alpha", "gpt-4o", prompt_tokens=900, max_output=0, prompt=text[:3600])
    out = p.submit(short, T0 + 1002)
    assert out.usage is not None
    assert out.usage.cached_tokens == 0  # under 1024 tokens nothing is cached


def test_exact_cached_tokens_are_taken_as_given() -> None:
    out = provider().submit(req(prompt=2000, cached_tokens=1024), T0)
    assert out.usage is not None
    assert out.usage.cached_tokens == 1024


def test_same_seed_same_answers() -> None:
    def run(seed: int) -> list[object]:
        p = provider(seed)
        return [p.submit(req(prompt=1, max_output=500), T0 + 30 * i).usage for i in range(5)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_wait_is_infinite_free() -> None:
    p = provider()
    out = p.submit(req("gpt-4o", prompt=31_000), T0)
    assert out.hit is not None
    assert math.isinf(out.hit.wait)
