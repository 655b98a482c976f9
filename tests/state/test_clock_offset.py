"""Clock skew between a replica and Redis: measured against Redis's ``TIME`` (round trips
compensated, the median of several samples), and a warning from the runtime at start past
50 ms."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from keypolicy.policy import load_policy_text
from keypolicy.runtime.runtime import policy_store
from keypolicy.state import StoreUnavailable
from keypolicy.state.redis import SKEW_WARNING_S, RedisStore, clock_offset
from tests.services import free_port
from tests.state.conftest import RedisStores

POLICY = """\
version: 1
name: skew
organization: {id: org-skew}
state: {url: memory}
projects:
  p: {models: {gpt-4o-mini: {rpm: 100, tpm: 100_000}}}
keys:
  k: {project: p, env: SKEW_TEST_KEY}
pools:
  one: {keys: [k]}
priorities:
  - {name: only}
domains:
  chat: {pool: one, priority: only, model: gpt-4o-mini}
"""


def test_the_offset_from_redis_on_this_machine_is_tiny(redis_stores: RedisStores) -> None:
    measured = clock_offset(redis_stores(), samples=9)
    assert measured.samples == 9
    assert 0.0 < measured.rtt < 1.0  # loopback (loose: a loaded machine is slow)
    # One machine, one clock: Redis's TIME is ours, within the round trip (and microseconds).
    assert abs(measured.offset) <= measured.rtt + 1e-3


@pytest.mark.parametrize("skew", [2.5, -0.2, 0.06])
def test_a_clock_off_by_some_seconds_is_measured_so(redis_stores: RedisStores, skew: float) -> None:
    measured = clock_offset(redis_stores(), clock=lambda: time.time() + skew)
    assert measured.offset == pytest.approx(-skew, abs=measured.rtt + 2e-3)


class Scripted:
    """A virtual Redis and caller: true time advances by each round trip; Redis reads its clock
    (``ahead`` seconds ahead of the caller's) at ``where`` (0..1) through each trip."""

    def __init__(self, ahead: float, trips: list[tuple[float, float]]) -> None:
        self.now = 1_795_000_000.0
        self.ahead = ahead
        self.trips = iter(trips)
        self.pending = 0.0

    def clock(self) -> float:
        self.now += self.pending
        self.pending = 0.0
        return self.now

    def server_time(self) -> tuple[int, int]:
        trip, where = next(self.trips)
        read = self.now + trip * where + self.ahead
        self.pending = trip
        return int(read), round((read - int(read)) * 1e6)


def test_round_trips_are_compensated_and_a_slow_sample_does_not_count() -> None:
    trips = [(0.5, 0.0)] + [(0.002, 0.5)] * 3 + [(0.9, 0.0)] + [(0.002, 0.5)] * 3
    fake = Scripted(0.3, trips)
    measured = clock_offset(fake, samples=7, clock=fake.clock)  # type: ignore[arg-type]
    assert measured.offset == pytest.approx(0.3, abs=1e-5)
    assert measured.rtt == pytest.approx(0.002, abs=1e-6)


def test_an_unreachable_redis_raises_store_unavailable() -> None:
    pytest.importorskip("redis")
    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.2)
    with pytest.raises(StoreUnavailable, match="could not read its clock"):
        clock_offset(store)
    with pytest.raises(ValueError, match="at least one sample"):
        clock_offset(store, samples=0)


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="keypolicy.runtime"):
        yield caplog


def _skew_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]


def test_the_runtime_warns_at_start_past_fifty_ms(
    redis_url: str, warnings_logged: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = load_policy_text(POLICY, "skew.yaml").policy
    store = policy_store(policy, {"KEYPOLICY_STATE": redis_url})
    assert isinstance(store, RedisStore)
    assert _skew_warnings(warnings_logged) == []  # one machine: no skew
    store.close()

    real = RedisStore.server_time

    def ahead(self: RedisStore) -> tuple[int, int]:  # Redis's clock 120 ms ahead of ours
        seconds, micros = real(self)
        micros += 120_000
        return seconds + micros // 1_000_000, micros % 1_000_000

    monkeypatch.setattr(RedisStore, "server_time", ahead)
    policy_store(policy, {"KEYPOLICY_STATE": redis_url}).close()  # type: ignore[attr-defined]
    (warning,) = _skew_warnings(warnings_logged)
    assert "clock is 120 ms behind the state store's" in warning
    assert f"within {SKEW_WARNING_S * 1000:.0f} ms" in warning


def test_the_runtime_says_so_when_it_cannot_measure(
    warnings_logged: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("redis")
    policy = load_policy_text(POLICY, "skew.yaml").policy
    url = f"redis://127.0.0.1:{free_port()}/0"
    store = policy_store(policy, {"KEYPOLICY_STATE": url})  # made all the same: calls will fail
    assert isinstance(store, RedisStore)
    (warning,) = _skew_warnings(warnings_logged)
    assert "could not compare this clock with the state store's" in warning
