"""The engine refuses what the provider would refuse as invalid, and serves dated snapshots as
their family: allowed where it is, on its limits, at its prices, sent under their own name."""

from __future__ import annotations

import pytest

from keypolicy.core import Complete, Reject, Send
from keypolicy.core.pricing import actual_cost

from .conftest import Driver, engine_for

POLICY = """\
version: 1
name: validation
timezone: UTC
projects:
  p:
    models:
      gpt-4o: {rpm: 600, tpm: 10_000_000}
      gpt-4o-mini: {rpm: 600, tpm: 10_000_000}
      text-embedding-3-small: {rpm: 600, tpm: 10_000_000}
      house-model: {rpm: 600, tpm: 10_000_000}
keys:
  k: {project: p, env: K}
pools:
  one: {keys: [k]}
priorities:
  - {name: normal, max_wait: 10s}
domains:
  chat: {pool: one, priority: normal, model: gpt-4o, models: [text-embedding-3-small, house-model]}
  pinned: {pool: one, priority: normal, model: gpt-4o-mini-2024-07-18}
pricing:
  overrides:
    house-model: {input: 1.0, output: 2.0}
"""


@pytest.fixture
def d() -> Driver:
    return Driver(engine_for(POLICY))


def _reject(actions: list[object]) -> Reject:
    assert len(actions) == 1
    assert isinstance(actions[0], Reject)
    return actions[0]


@pytest.mark.parametrize(
    ("prompt", "out", "says"),
    [
        (100, 20_000, "max_tokens 20,000 is above gpt-4o's output cap of 16,384 tokens"),
        (120_000, 10_000, "the prompt (120,000 tokens) plus max_tokens (10,000) is 130,000 tokens"),
        (130_000, None, "the prompt (130,000 tokens) is above gpt-4o's context window of 128,000"),
        (100, -5, "max_tokens is -5: it must be at least 1"),
    ],
)
def test_invalid_requests_are_refused_before_sending(
    d: Driver, prompt: int, out: int | None, says: str
) -> None:
    _, actions = d.submit("chat", prompt=prompt, out=out)  # type: ignore[arg-type]
    reject = _reject(actions)
    assert reject.reason == "invalid_request"
    assert says in reject.message
    assert (reject.attempts, reject.status) == (0, None)
    assert d.engine.waiting() == []
    assert d.engine.next_wake is None


def test_a_maximum_of_0_is_not_refused_here(d: Driver) -> None:
    """0 is how a driver says a request writes no output; a chat body's ``max_tokens: 0`` gets
    the provider's own 400, never retried."""
    _, actions = d.submit("chat", prompt=100, out=0)
    assert [type(a) for a in actions] == [Send]


def test_the_largest_valid_request_goes(d: Driver) -> None:
    _, at_cap = d.submit("chat", prompt=128_000 - 16_384, out=16_384)
    _, no_max = d.submit("chat", prompt=128_000, out=None)  # type: ignore[arg-type]
    assert [type(a) for a in at_cap + no_max] == [Send, Send]


def test_models_without_known_caps_or_output_are_not_checked(d: Driver) -> None:
    _, house = d.submit("chat", prompt=1_000_000, out=500_000, model="house-model")
    _, embed = d.submit("chat", prompt=100_000, out=0, model="text-embedding-3-small")
    assert [type(a) for a in house + embed] == [Send, Send]
    _, negative = d.submit("chat", prompt=10, out=-1, model="house-model")
    assert _reject(negative).reason == "invalid_request"


def test_a_snapshot_goes_out_under_its_name_on_its_familys_limits_and_prices(d: Driver) -> None:
    rid, actions = d.submit("chat", prompt=1_000, out=100, model="gpt-4o-2024-08-06")
    (send,) = actions
    assert isinstance(send, Send)
    assert send.model == "gpt-4o-2024-08-06"
    family_route = d.engine.config.routes[(0, "gpt-4o")]
    taken = [d.engine.bucket(b).name for b in family_route.buckets]
    assert taken == ["limit:project:p/gpt-4o/rpm", "limit:project:p/gpt-4o/tpm"]
    (done,) = d.settle(rid, prompt=1_000, completion=50)
    assert isinstance(done, Complete)
    assert done.model == "gpt-4o-2024-08-06"
    price = d.engine.config.prices["gpt-4o"]
    assert done.cost_usd == pytest.approx(actual_cost(price, 1_000, 0, 50, False, 0.5))
    _, too_long = d.submit("chat", prompt=10, out=16_385, model="gpt-4o-2024-11-20")
    assert "above gpt-4o's output cap" in _reject(too_long).message


def test_a_snapshot_is_allowed_only_where_its_family_is(d: Driver) -> None:
    _, other = d.submit("chat", model="gpt-4.1-2025-04-14")
    reject = _reject(other)
    assert reject.reason == "model_not_allowed"
    assert "may not call 'gpt-4.1-2025-04-14'" in reject.message
    _, unknown_date = d.submit("chat", model="gpt-4o-2099-01-01")
    assert _reject(unknown_date).reason == "model_not_allowed"


def test_a_domain_may_name_a_snapshot_and_call_its_family(d: Driver) -> None:
    _, default = d.submit("pinned", out=100)
    _, family = d.submit("pinned", out=100, model="gpt-4o-mini")
    sends = [a for a in default + family if isinstance(a, Send)]
    assert [s.model for s in sends] == ["gpt-4o-mini-2024-07-18", "gpt-4o-mini"]
    assert d.engine.config.domains["pinned"].models == ("gpt-4o-mini",)


def test_a_downgrade_to_a_snapshot_goes_out_under_its_name() -> None:
    from .test_engine import BUDGETS

    text = BUDGETS.replace(
        "gpt-4o-mini: {rpm: 60, tpm: 6000}}}",
        "gpt-4o-mini: {rpm: 60, tpm: 6000}, gpt-4.1-nano: {rpm: 60, tpm: 6000}}}",
    )
    text = text.replace(
        "on_exhausted: reject", "on_exhausted: {downgrade: gpt-4.1-nano-2025-04-14}"
    )
    d = Driver(engine_for(text))
    for _ in range(13):
        d.submit("urgent")  # $0.000975 held: $0.000025 left
    rid, got = d.submit("urgent", prompt=100, out=30)
    (send,) = [a for a in got if isinstance(a, Send)]
    assert send.model == "gpt-4.1-nano-2025-04-14"
    route = d.engine.config.routes[(0, "gpt-4.1-nano")]
    assert [d.engine.bucket(b).model for b in route.buckets] == ["gpt-4.1-nano"] * 2
    (done,) = [a for a in d.settle(rid, prompt=100, completion=30) if isinstance(a, Complete)]
    assert done.model == "gpt-4.1-nano-2025-04-14"
