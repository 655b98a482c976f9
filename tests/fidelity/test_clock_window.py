"""The replay's clock (scaled wall time) and traffic windows (the same arrivals, cut)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from keypolicy.fidelity.clock import ReplayClock
from keypolicy.fidelity.window import TrafficWindow, only_domains
from keypolicy.sim.traffic import TrafficError, load_traffic

DAY = Path(__file__).resolve().parents[2] / "simulations" / "clinic-day.yaml"


class Hand:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_clock_runs_speed_times_faster_from_its_origin() -> None:
    hand = Hand()
    clock = ReplayClock(60.0, origin=1_795_000_000.0, monotonic=hand)
    assert clock.now() == 1_795_000_000.0
    hand.t += 2.0
    assert clock.now() == 1_795_000_120.0  # two wall seconds: two model minutes
    assert clock.real_delay(1_795_000_180.0) == pytest.approx(1.0)  # a model minute: 1 s
    assert clock.real_delay(1_795_000_000.0) == 0.0  # past: at once
    assert clock.wall_at(60.0) == pytest.approx(101.0)


def test_a_clock_needs_a_positive_speed() -> None:
    with pytest.raises(ValueError, match="speed must be above 0"):
        ReplayClock(0.0)


def test_a_window_has_exactly_the_arrivals_of_its_span_shifted_to_its_start() -> None:
    day = load_traffic(DAY)
    window = TrafficWindow(day, 7 * 3600.0, 7.25 * 3600.0)
    whole = [a for a in day.arrivals(3) if 7 * 3600.0 <= a.time < 7.25 * 3600.0]
    cut = list(window.arrivals(3))
    assert len(cut) == len(whole) > 100
    assert [a.time + 7 * 3600.0 for a in cut] == pytest.approx([a.time for a in whole])
    assert [a.prompt_tokens for a in cut] == [a.prompt_tokens for a in whole]
    assert window.start == day.start + timedelta(hours=7)
    assert window.duration_s == 900.0


def test_a_window_may_keep_some_domains_only() -> None:
    day = load_traffic(DAY)
    kept = only_domains(day, {"chat", "xray"})
    assert kept.domains() == {"chat", "xray"}
    assert set(kept.models()) == {"chat", "xray"}
    assert {a.domain for a in TrafficWindow(day, 0, 3600.0, {"chat"}).arrivals(1)} == {"chat"}


def test_a_window_must_run_forward() -> None:
    day = load_traffic(DAY)
    with pytest.raises(TrafficError, match="a window runs from a time to a later one"):
        TrafficWindow(day, 600.0, 60.0)
