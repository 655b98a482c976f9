"""The engine, driven by hand on a fake clock: one behaviour per test."""

from __future__ import annotations

import json

import pytest

from keypolicy.core import Alert, Complete, Defer, Failed, Reject, Retry, Send
from keypolicy.core.events import Cancel

from .conftest import SMALL, T0, Driver, engine_for


def _only(actions: list[object], kind: type) -> list:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, kind)]


def _body(message: str, type_: str = "tokens", code: str = "rate_limit_exceeded") -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": type_, "param": None, "code": code}}
    ).encode()


def test_admits_at_once_when_there_is_room(small: Driver) -> None:
    rid, got = small.submit("urgent")
    assert got == [Send(rid, "k1", "p", "gpt-4o-mini", 1, 0.0, 200)]
    assert small.engine.next_wake is None or small.engine.next_wake >= T0


def test_lower_class_leaves_the_reserve_to_the_higher(small: Driver) -> None:
    # low may draw p's 6,000 TPM down to 3,000 (high reserves 50%): 15 requests of 200 tokens.
    for _ in range(20):
        small.submit("routine")
    assert len(small.sends()) == 15
    assert len(small.engine.waiting()) == 5
    _, got = small.submit("urgent")
    assert _only(got, Send), "the higher class may use the reserve at once"


def test_higher_class_goes_first_when_capacity_frees(small: Driver) -> None:
    for _ in range(30):
        small.submit("urgent")  # 30 x 200 tokens: p's TPM bucket is empty
    low, _ = small.submit("routine")
    high, _ = small.submit("urgent")
    assert small.engine.waiting() == [low, high]
    small.advance(2.0)  # 200 tokens refilled: enough for one high request, not for low
    assert [s.request_id for s in small.sends()[-1:]] == [high]
    assert small.engine.waiting() == [low]
    small.advance(31.9)
    assert small.engine.waiting() == [low]  # 3,190 < 3,000 reserve + 200
    small.advance(0.1)
    assert small.sends()[-1].request_id == low


def test_fifo_within_a_class(small: Driver) -> None:
    for _ in range(30):
        small.submit("urgent")
    first, _ = small.submit("urgent", out=300)
    second, _ = small.submit("urgent", out=1)  # smaller, but later: it must not overtake
    small.advance(1.0)  # 100 tokens: second (101) would not fit either
    small.advance(2.0)  # 300 tokens: still short of first's 400
    assert small.engine.waiting() == [first, second]
    small.advance(1.0)  # 400: first goes, then second waits for its own 101
    assert [s.request_id for s in small.sends()[30:]] == [first]


def test_request_larger_than_any_limit_is_refused_at_once(small: Driver) -> None:
    rid, got = small.submit("urgent", prompt=6000, out=100)
    assert got == [
        Reject(
            rid,
            "too_large",
            "request needs 6,100 tokens but the tpm limit of p "
            "for gpt-4o-mini leaves class 'high' at most 6,000",
        )
    ]
    rid, got = small.submit("routine", prompt=3000, out=100)
    assert got[0].reason == "too_large"
    assert "at most 3,000" in got[0].message


def test_past_max_wait_is_rejected(small: Driver) -> None:
    for _ in range(30):
        small.submit("urgent")
    rid, _ = small.submit("urgent", prompt=4000, out=1000)  # needs 50s of refill, max_wait 10s
    small.advance(9.9)
    assert small.engine.waiting() == [rid]
    got = small.advance(0.2)
    assert got == [Reject(rid, "max_wait", "waited 10.1s for capacity, past its max_wait")]
    assert small.engine.next_wake is None or small.engine.next_wake > small.now


def test_queue_deferral_keeps_the_request_past_max_wait() -> None:
    text = (
        SMALL + "  later: {pool: one, priority: low, model: gpt-4o-mini, max_wait: 30s, "
        "defer: {mode: queue, deadline: 1h}}\n"
    )
    d = Driver(engine_for(text))
    for _ in range(30):
        d.submit("urgent")
    rid, _ = d.submit("later", prompt=2000, out=900)  # 2,900 above the 3,000 floor: 59s
    got = d.advance(30.5)
    assert _only(got, Defer) == [
        Defer(rid, "queue", None, "waited 30.5s, past max_wait: deferred", "gpt-4o-mini")
    ]
    assert d.engine.next_wake == pytest.approx(T0 + 59.0)
    got = d.advance(d.engine.next_wake - d.now)
    assert [s.request_id for s in _only(got, Send)] == [rid]


def test_batch_domain_goes_through_the_batch_api_at_half_price() -> None:
    text = SMALL + "  billing: {pool: one, priority: low, model: gpt-4o-mini, defer: batch}\n"
    d = Driver(engine_for(text))
    rid, got = d.submit("billing", prompt=1000, out=100)
    assert got == [
        Defer(
            rid, "batch", T0 + 86400, "the domain runs through the Batch API", "gpt-4o-mini", "k1"
        )
    ]
    d.now += 3600
    (done,) = d.settle(rid, prompt=1000, completion=100)
    assert isinstance(done, Complete)
    assert done.batch
    assert (done.key, done.project) == ("k1", "p")
    assert done.cost_usd == pytest.approx((1000 * 0.15 + 100 * 0.60) / 1e6 / 2)


def test_deferral_windows_hold_requests_until_the_window_opens() -> None:
    text = SMALL + (
        "  nightly: {pool: one, priority: low, model: gpt-4o-mini, "
        "defer: {mode: queue, windows: ['19:00-07:00'], deadline: 24h}}\n"
    )
    d = Driver(engine_for(text))
    d.now = 1_795_003_200.0  # 2026-11-18 09:20 UTC: outside the window
    rid, got = d.submit("nightly")
    opens = 1_795_028_400.0  # 19:00 the same day
    assert got == [Defer(rid, "queue", opens, "outside its deferral windows", "gpt-4o-mini")]
    assert d.engine.next_wake == opens
    d.advance(opens - d.now)
    assert d.sends()[-1].request_id == rid


BUDGETS = (
    SMALL
    + """\
budgets:
  daily:
    applies_to: {domain: urgent}
    usd: 0.001
    per: day
    alert_at: [50%, 100%]
    on_exhausted: reject
"""
)


def test_budget_holds_estimates_and_rejects_when_exhausted() -> None:
    d = Driver(engine_for(BUDGETS))
    # Each urgent request is estimated at 100 x 0.15 + 100 x 0.60 per 1M = $0.000075.
    for _ in range(13):
        d.submit("urgent")
    assert len(d.sends()) == 13  # 13 x 0.000075 = 0.000975
    rid, got = d.submit("urgent")
    assert got == [
        Reject(
            rid,
            "budget",
            "budget 'daily' ($0.000975 of $0.001 spent or held) cannot cover $0.000075",
        )
    ]


def test_budget_settles_to_actual_cost_and_alerts_once_per_threshold() -> None:
    d = Driver(engine_for(BUDGETS))
    alerts = []
    for _ in range(13):
        rid, _ = d.submit("urgent")
        alerts += _only(d.settle(rid, prompt=100, completion=50), Alert)
    # actual: 100 x 0.15 + 50 x 0.60 = $0.000045 each; 50% is crossed by the 12th
    assert [(a.budget, a.threshold) for a in alerts] == [("daily", 0.5)]
    assert alerts[0].spent_usd == pytest.approx(12 * 0.000045)


def test_budget_resets_with_the_calendar_day() -> None:
    d = Driver(engine_for(BUDGETS))
    for _ in range(13):
        d.submit("urgent")
    assert d.submit("urgent")[1][0].reason == "budget"
    d.now = 1_795_046_400.0  # next midnight UTC
    assert _only(d.submit("urgent")[1], Send)


def test_budget_downgrade_switches_to_the_fallback_model() -> None:
    text = BUDGETS.replace(
        "gpt-4o-mini: {rpm: 60, tpm: 6000}}}",
        "gpt-4o-mini: {rpm: 60, tpm: 6000}, gpt-4.1-nano: {rpm: 60, tpm: 6000}}}",
    )
    text = text.replace("on_exhausted: reject", "on_exhausted: {downgrade: gpt-4.1-nano}")
    d = Driver(engine_for(text))
    for _ in range(13):
        d.submit("urgent")  # $0.000975 held: $0.000025 left
    # 100 in, 30 out: $0.000033 on gpt-4o-mini does not fit; $0.000022 on gpt-4.1-nano does
    _, got = d.submit("urgent", prompt=100, out=30)
    assert _only(got, Send)[0].model == "gpt-4.1-nano"


def test_budget_defer_parks_until_the_next_period() -> None:
    text = BUDGETS.replace("on_exhausted: reject", "on_exhausted: defer")
    text = text.replace(
        "urgent: {pool: one, priority: high, model: gpt-4o-mini}",
        "urgent: {pool: one, priority: low, model: gpt-4o-mini, "
        "defer: {mode: queue, deadline: 24h}}",
    )
    d = Driver(engine_for(text))
    for _ in range(13):
        d.submit("urgent")
    rid, got = d.submit("urgent")
    assert got[0].mode == "queue"
    assert got[0].until == 1_795_046_400.0
    d.advance(1_795_046_400.0 - d.now)
    assert d.sends()[-1].request_id == rid


def test_rate_limit_429_cools_the_project_and_retries_on_another(small: Driver) -> None:
    rid, got = small.submit("spread")
    assert got[0].key == "k1"
    got = small.feed(
        Failed(
            rid,
            small.now,
            429,
            {"x-ratelimit-reset-tokens": "1s"},
            _body("Rate limit reached ... Please try again in 2.5s."),
        )
    )
    assert _only(got, Retry) == [Retry(rid, small.now, "HTTP 429 rate_limit_exceeded", 2)]
    assert _only(got, Send) == [Send(rid, "k3", "q", "gpt-4o-mini", 2, 0.0, 200)]
    _, got = small.submit("urgent")  # pool 'one' has only k1, whose project cools for 2.5s
    assert not _only(got, Send)
    assert small.engine.next_wake == pytest.approx(small.now + 2.5)
    got = small.advance(2.5)
    assert _only(got, Send)[0].key == "k1"


def test_quota_429_is_never_retried(small: Driver) -> None:
    rid, _ = small.submit("urgent")
    got = small.feed(
        Failed(
            rid,
            small.now,
            429,
            {},
            _body("You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
        )
    )
    assert got == [
        Reject(rid, "quota", "HTTP 429 insufficient_quota: quota or billing, not retried", 1, 429)
    ]


def test_refused_key_is_rested_and_another_key_tried(small: Driver) -> None:
    rid, _ = small.submit("spread")
    got = small.feed(
        Failed(
            rid,
            small.now,
            401,
            {},
            _body("Incorrect API key", "invalid_request_error", "invalid_api_key"),
        )
    )
    assert _only(got, Send)[0].key == "k3"
    _rid2, got = small.submit("urgent")  # pool 'one' = only k1, which is resting
    assert not _only(got, Send)


def test_server_errors_back_off_then_give_up(small: Driver) -> None:
    rid, _ = small.submit("urgent")
    delays = []
    for attempt in (1, 2):
        got = small.feed(Failed(rid, small.now, 503))
        (retry,) = _only(got, Retry)
        delays.append(retry.at - small.now)
        small.advance(retry.at - small.now)
        assert small.sends()[-1].attempt == attempt + 1
    assert 0 <= delays[0] <= 0.5
    assert 0 <= delays[1] <= 1.0
    got = small.feed(Failed(rid, small.now, 503))
    assert got == [Reject(rid, "gave_up", "HTTP 503 on attempt 3 of 3", 3, 503)]


def test_client_errors_are_not_retried(small: Driver) -> None:
    rid, _ = small.submit("urgent")
    got = small.feed(Failed(rid, small.now, 400, {}, _body("bad", "invalid_request_error", "x")))
    assert got == [Reject(rid, "client_error", "HTTP 400 x: not retried", 1, 400)]


REFUNDING = SMALL + "provider: {refund_unused: true}\n"


def test_settlement_gives_back_unused_tokens_where_the_provider_does() -> None:
    small = Driver(engine_for(REFUNDING))
    for _ in range(30):
        small.submit("urgent")  # bucket empty
    rid, _ = small.submit("urgent")
    assert small.engine.waiting() == [rid]
    first = small.sends()[0].request_id
    small.settle(first, prompt=100, completion=0)  # used 100 of 200: 100 back
    small.advance(1.0)  # +100 refilled: 200 available
    assert small.sends()[-1].request_id == rid


def test_settlement_keeps_the_charge_by_default(small: Driver) -> None:
    for _ in range(30):
        small.submit("urgent")
    rid, _ = small.submit("urgent")
    first = small.sends()[0].request_id
    small.settle(first, prompt=100, completion=0)  # the provider keeps all 200
    small.advance(1.0)  # +100 refilled: 100 available, 200 needed
    assert small.engine.waiting() == [rid]
    small.advance(1.0)
    assert small.sends()[-1].request_id == rid


def test_a_refused_request_keeps_its_request_charge_where_failures_count() -> None:
    text = SMALL.replace("rpm: 60, tpm: 6000}}}\n  q", "rpm: 2, tpm: 6000}}}\n  q")
    for count_failed, sent in ((True, 1), (False, 2)):
        d = Driver(engine_for(text + f"provider: {{count_failed: {str(count_failed).lower()}}}\n"))
        first, _ = d.submit("urgent")
        d.feed(Failed(first, d.now, 400, {}, _body("bad", "invalid_request_error", "x")))
        d.submit("urgent")
        d.submit("urgent")  # 2 RPM: a second fits only if the refused one gave its request back
        assert len(d.sends()) == 1 + sent


def test_response_headers_teach_the_real_limit(small: Driver) -> None:
    rid, _ = small.submit("urgent")
    headers = {
        "x-ratelimit-limit-tokens": "3000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-tokens": "30s",
    }
    small.settle(rid, prompt=100, completion=100, headers=headers)
    tpm = next(
        small.engine.bucket(i)
        for i in range(4)
        if small.engine.bucket(i).name == "limit:project:p/gpt-4o-mini/tpm"
    )
    assert (tpm.capacity, tpm.rate) == (3000.0, 50.0)
    _, got = small.submit("urgent")
    assert not _only(got, Send)  # the provider said nothing is left
    assert small.engine.next_wake == pytest.approx(small.now + 4.0)  # 200 tokens at 50/s


def test_cancel_releases_a_queued_request(small: Driver) -> None:
    for _ in range(30):
        small.submit("urgent")
    rid, _ = small.submit("urgent")
    got = small.feed(Cancel(rid, small.now))
    assert got == [Reject(rid, "cancelled", "cancelled by the caller", 0)]
    assert small.engine.waiting() == []


def test_unknown_domain_and_disallowed_model(small: Driver) -> None:
    _, got = small.submit("nope")
    assert got[0].reason == "unknown_domain"
    assert "routine, spread, urgent" in got[0].message
    _rid, got = small.submit("urgent", model="gpt-4o")
    assert got[0].reason == "model_not_allowed"


def test_least_loaded_takes_turns_among_keys_of_one_project() -> None:
    text = SMALL.replace("both: {keys: [k1, k3]}", "both: {keys: [k1, k2]}")
    d = Driver(engine_for(text))
    keys = [d.submit("spread")[1][0].key for _ in range(4)]
    assert keys == ["k1", "k2", "k1", "k2"]


def test_time_never_goes_backwards(small: Driver) -> None:
    small.submit("urgent")
    small.now -= 100  # a wall clock stepped back
    _rid, got = small.submit("urgent")
    assert got[0].waited_s == 0.0
