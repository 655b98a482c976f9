"""Edge cases found in review: each test pins one behaviour that was once wrong."""

from __future__ import annotations

import json

import pytest

from keypolicy.core import Alert, Complete, Defer, Failed, Reject, Retry, Send, Settled, Submit
from keypolicy.core.events import Cancel

from .conftest import SMALL, T0, Driver, engine_for


def _kinds(actions: list[object]) -> list[str]:
    return [type(a).__name__ for a in actions]


def _rate_limited(delay: str = "20s") -> bytes:
    return json.dumps(
        {
            "error": {
                "message": f"Please try again in {delay}.",
                "type": "tokens",
                "code": "rate_limit_exceeded",
            }
        }
    ).encode()


def test_a_request_waiting_for_a_cooldown_holds_nothing_back(small: Driver) -> None:
    rid, _ = small.submit("spread")  # k1 (project p)
    small.feed(Failed(rid, small.now, 401, {}, b""))  # k1 rests 10 minutes; retried on k3
    waiting, _ = small.submit("urgent")  # pool 'one' is only k1: waits for the key to rest
    assert small.engine.waiting() == [waiting]
    _, got = small.submit("routine")  # lower class, same pool: waits too (k1 rests)...
    text = (
        SMALL.replace("k2: {project: p, env: K2}", "k2: {project: p, env: K2}")
        + "  other: {pool: both, priority: low, model: gpt-4o-mini}\n"
    )
    d = Driver(engine_for(text))
    rid, _ = d.submit("spread")
    d.feed(Failed(rid, d.now, 401, {}, b""))
    d.submit("urgent")  # waits for k1
    _, got = d.submit("other")  # may go on k3 at once: the waiting request needs k1, not q
    assert [a.key for a in got if isinstance(a, Send)] == ["k3"]


def test_a_spent_key_budget_sends_on_another_key() -> None:
    text = SMALL + "budgets:\n  p-only: {applies_to: {project: p}, usd: 0.00001, per: day}\n"
    d = Driver(engine_for(text))
    _, got = d.submit("spread")  # $0.000075 does not fit p's budget; k3 (project q) has none
    assert [a.key for a in got if isinstance(a, Send)] == ["k3"]


def test_a_batch_request_parked_by_its_budget_comes_back_as_a_batch() -> None:
    text = SMALL + (
        "  billing: {pool: one, priority: low, model: gpt-4o-mini, "
        "defer: {mode: batch, deadline: 24h}}\n"
        "budgets:\n  b: {applies_to: {domain: billing}, usd: 0.0001, per: day, "
        "on_exhausted: defer}\n"
    )
    d = Driver(engine_for(text))
    d.submit("billing")  # $0.0000375 at batch price
    d.submit("billing")
    rid, got = d.submit("billing")  # the third does not fit today
    assert got[0].mode == "queue"
    midnight = 1_795_046_400.0
    got = d.advance(midnight - d.now)
    assert [(a.request_id, a.mode) for a in got if isinstance(a, Defer)] == [(rid, "batch")]


def test_a_deferral_past_its_deadline_is_rejected_at_once() -> None:
    text = SMALL + (
        "  nightly: {pool: one, priority: low, model: gpt-4o-mini, "
        "defer: {mode: queue, windows: ['19:00-07:00'], deadline: 2h}}\n"
    )
    d = Driver(engine_for(text))
    d.now = 1_795_003_200.0  # 09:20 UTC: the window opens at 19:00, after the 2h deadline
    _rid, got = d.submit("nightly")
    assert _kinds(got) == ["Reject"]
    assert got[0].reason == "deadline"


def test_a_queued_request_re_parks_when_its_window_closes() -> None:
    text = SMALL + (
        "  nightly: {pool: one, priority: low, model: gpt-4o-mini, "
        "defer: {mode: queue, windows: ['19:00-07:00'], deadline: 24h}}\n"
    )
    d = Driver(engine_for(text))
    d.now = 1_795_071_570.0  # 06:59:30 UTC, inside the window
    for _ in range(30):
        d.submit("urgent")  # p's tokens are gone for a while
    rid, _ = d.submit("nightly", prompt=2000, out=900)
    got = d.advance(60.0)  # 07:00:30: the window closed before it fit
    assert [(a.request_id, a.until) for a in got if isinstance(a, Defer)] == [
        (rid, 1_795_114_800.0)
    ]  # 19:00 the same day


def test_learning_a_lower_limit_rejects_a_queued_request_that_no_longer_fits(small: Driver) -> None:
    for _ in range(30):
        small.submit("urgent")
    big, _ = small.submit("urgent", prompt=4000, out=500)  # 4,500 of 6,000: waits
    first = small.sends()[0].request_id
    got = small.settle(first, headers={"x-ratelimit-limit-tokens": "3000"})
    assert [(a.request_id, a.reason) for a in got if isinstance(a, Reject)] == [(big, "too_large")]


def test_a_429_on_the_last_attempt_still_rests_the_project() -> None:
    text = SMALL.replace("priorities:", "retry: {max_attempts: 1}\npriorities:")
    d = Driver(engine_for(text))
    rid, _ = d.submit("urgent")
    got = d.feed(Failed(rid, d.now, 429, {}, _rate_limited("20s")))
    assert got[0].reason == "gave_up"
    _, got = d.submit("urgent")
    assert not [a for a in got if isinstance(a, Send)]
    assert d.engine.next_wake == pytest.approx(d.now + 20.0)


def test_a_retry_gets_its_own_max_wait(small: Driver) -> None:
    rid, _ = small.submit("urgent")  # max_wait 10s
    small.now += 12.0  # in flight for 12s, then a server error
    got = small.feed(Failed(rid, small.now, 503))
    assert _kinds(got) == ["Retry"]
    got = small.advance(got[0].at - small.now)
    assert _kinds(got) == ["Send"]


def test_a_late_event_expires_before_it_admits(small: Driver) -> None:
    for _ in range(30):
        small.submit("urgent")
    rid, _ = small.submit("urgent")  # max_wait 10s; room comes back in 2s
    got = small.advance(25.0)  # nobody woke the engine until 25s
    assert [(a.request_id, a.reason) for a in got if isinstance(a, Reject)] == [(rid, "max_wait")]


def test_an_invalid_request_gives_its_charge_back(small: Driver) -> None:
    for _ in range(29):
        small.submit("urgent")
    rid, _ = small.submit("urgent")  # the 30th: p's tokens are now gone
    small.feed(Failed(rid, small.now, 400, {}, b""))  # rejected: the provider counted nothing
    _, got = small.submit("urgent")
    assert _kinds(got) == ["Send"]


def test_downgrades_that_point_at_each_other_end() -> None:
    text = SMALL.replace(
        "gpt-4o-mini: {rpm: 60, tpm: 6000}}}",
        "gpt-4o-mini: {rpm: 60, tpm: 6000}, gpt-4.1-nano: {rpm: 60, tpm: 6000}}}",
    )
    text += (
        "budgets:\n"
        "  a: {applies_to: {domain: urgent}, usd: 0.00001,\n"
        "      on_exhausted: {downgrade: gpt-4.1-nano}}\n"
        "  b: {applies_to: all, usd: 0.00001, on_exhausted: {downgrade: gpt-4o-mini}}\n"
    )
    d = Driver(engine_for(text))
    _rid, got = d.submit("urgent")
    assert [(type(a).__name__, a.reason) for a in got] == [("Reject", "budget")]


def test_a_reused_id_does_not_inherit_a_stale_retry(small: Driver) -> None:
    rid, _ = small.submit("urgent", request_id="same")
    small.feed(Failed(rid, small.now, 503, {"retry-after": "5"}))
    small.feed(Cancel(rid, small.now))
    small.advance(1.0)
    small.submit("urgent", request_id="same")
    small.feed(Failed("same", small.now, 503, {"retry-after": "8"}))
    got = small.advance(4.5)  # the old retry was due now; the new one is not
    assert not [a for a in got if isinstance(a, Send)]


def test_a_late_answer_to_an_abandoned_attempt_is_ignored(small: Driver) -> None:
    rid, _ = small.submit("urgent")
    small.feed(Failed(rid, small.now, None))  # timed out: retried
    small.advance(1.0)
    assert small.sends()[-1].attempt == 2
    got = small.feed(Settled(rid, small.now, 100, 100, attempt=1))  # the first one answers late
    assert got == []
    got = small.feed(Settled(rid, small.now, 100, 100, attempt=2))
    assert _kinds(got) == ["Complete"]


def test_rolling_budget_alerts_again_after_the_window_forgets() -> None:
    text = SMALL + (
        "budgets:\n  r: {applies_to: all, usd: 0.0001, per: 1h, alert_at: [50%], "
        "on_exhausted: reject}\n"
    )
    d = Driver(engine_for(text))
    alerts = []
    for _ in range(2):
        rid, _ = d.submit("urgent")  # $0.000075 held
        alerts += [a for a in d.settle(rid) if isinstance(a, Alert)]
        d.now += 3600  # the window forgets it all
    assert len(alerts) == 2


def test_complete_reports_the_key_and_cost(small: Driver) -> None:
    rid, _ = small.submit("urgent")
    (done,) = small.settle(rid, prompt=100, completion=10, cached_tokens=50)
    assert isinstance(done, Complete)
    assert done.cost_usd == pytest.approx((50 * 0.15 + 50 * 0.075 + 10 * 0.60) / 1e6)


def test_submit_twice_with_a_live_id_is_an_error(small: Driver) -> None:
    small.submit("urgent", request_id="x")
    with pytest.raises(ValueError, match="already in use"):
        small.feed(Submit("x", "urgent", T0, prompt_tokens=1))


def test_retry_action_carries_the_next_attempt(small: Driver) -> None:
    rid, _ = small.submit("urgent")
    got = small.feed(Failed(rid, small.now, 500))
    assert isinstance(got[0], Retry)
    assert got[0].attempt == 2
