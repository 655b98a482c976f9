"""The simulator against known answers: no load, overload, a queueing formula, determinism."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from keypolicy.policy import load_policy_text
from keypolicy.records import UsageRecord
from keypolicy.sim.driver import Simulation
from keypolicy.sim.run import simulate_policy
from keypolicy.sim.traffic import Arrival

ONE = """\
version: 1
name: one
projects:
  p: {{models: {{gpt-4o-mini: {{rpm: {rpm}, tpm: 10M{quantum}}}}}}}
keys:
  k: {{project: p, env: K}}
pools:
  a: {{keys: [k]}}
priorities:
  - {{name: only, max_wait: {max_wait}}}
domains:
  d: {{pool: a, priority: only, model: gpt-4o-mini}}
"""


@dataclass
class Poisson:
    """A test traffic: Poisson arrivals of one domain at ``rate`` per second."""

    rate: float
    duration_s: float
    name: str = "poisson"
    description: str = "test traffic"
    start: datetime = field(default_factory=lambda: datetime(2026, 11, 18, tzinfo=UTC))

    def arrivals(self, seed: int) -> Iterator[Arrival]:
        rng = random.Random(seed)
        t = rng.expovariate(self.rate)
        while t < self.duration_s:
            yield Arrival(t, "d", 100, 10, 5)
            t += rng.expovariate(self.rate)

    def domains(self) -> set[str]:
        return {"d"}


def _policy(rpm: int, max_wait: str = "1h", quantum: str = "") -> object:
    text = ONE.format(
        rpm=rpm, max_wait=max_wait, quantum=f", quantum: {quantum}" if quantum else ""
    )
    return load_policy_text(text, "one.yaml").policy


def test_demand_under_capacity_gives_no_429_and_no_wait() -> None:
    s = simulate_policy(_policy(600), Poisson(2.0, 3600), [1])  # 120/min against 600 RPM
    d = s["domains"]["d"]
    assert d["requests"] == d["ok"] > 6000
    assert d["upstream_429"] == 0
    assert d["wait_p99_s"] == 0.0


def test_demand_at_twice_the_limit_is_admitted_at_exactly_the_limit() -> None:
    s = simulate_policy(_policy(60, max_wait="10m"), Poisson(2.0, 3600), [2])  # 2/s against 1/s
    d = s["domains"]["d"]
    per_minute = s["series"]["admitted_requests"]["p/gpt-4o-mini"]
    # Once the backlog has formed (after the first minutes drained the bucket's 60), exactly the
    # refill goes out: 60 a minute, never more, never less.
    assert per_minute[5:55] == [60] * 50
    assert d["upstream_429"] == 0  # the engine paces; the provider never has to say no


def test_single_bucket_matches_the_m_d_1_queue() -> None:
    # RPM 60 enforced per second (capacity 1, one token a second): a Poisson stream at 0.5/s
    # waits as in an M/D/1 queue: W = rho / (2 mu (1 - rho)) = 0.5 s.
    records: list[UsageRecord] = []
    simulate_policy(_policy(60, quantum="1s"), Poisson(0.5, 40_000), [3], on_record=records.append)
    waits = [r.wait_s for r in records if r.outcome == "ok"]
    assert len(waits) > 19_000
    assert sum(waits) / len(waits) == pytest.approx(0.5, rel=0.08)


def test_same_seed_same_records_different_seed_different() -> None:
    def run(seed: int) -> list[UsageRecord]:
        out: list[UsageRecord] = []
        simulate_policy(
            _policy(60, max_wait="30s"), Poisson(1.5, 1800), [seed], on_record=out.append
        )
        return out

    first = run(5)
    assert first == run(5)
    assert first != run(6)
    assert {r.outcome for r in first} == {"ok", "rejected"}  # overloaded: max_wait bites


def test_runs_give_means_with_intervals() -> None:
    s = simulate_policy(_policy(60, max_wait="30s"), Poisson(1.5, 1800), [0, 1, 2])
    ok = s["domains"]["d"]["ok"]
    assert s["runs"] == 3
    assert set(ok) == {"mean", "ci95", "min", "max"}
    assert ok["min"] <= ok["mean"] <= ok["max"]
    assert ok["ci95"] > 0


def test_engine_converges_on_a_provider_stricter_than_declared() -> None:
    # The policy says 60 RPM; the provider allows half. The first answers' x-ratelimit headers
    # teach the engine the real limit: after that it paces at 30 a minute and the provider
    # never has to refuse.
    s = simulate_policy(_policy(60, max_wait="10m"), Poisson(2.0, 1800), [4], provider_factor=0.5)
    per_minute = s["series"]["admitted_requests"]["p/gpt-4o-mini"]
    assert per_minute[3:28] == [30] * 25
    assert s["domains"]["d"]["upstream_429"] <= 30  # only the opening burst, before it learnt


def test_the_driver_reads_simpys_clock_as_env_now_states_it() -> None:
    sim = Simulation(_policy(rpm=60), Poisson(1.0, 120.0).arrivals(0), 1_795_000_000.0, 0)
    seen: list[tuple[float, float]] = []

    def watch() -> Iterator[object]:
        for _ in range(50):
            yield sim.env.timeout(2.37)
            seen.append((sim._clock(), sim.env.now))

    sim.env.process(watch())
    sim.run()
    assert len(seen) == 50
    assert all(ours == theirs for ours, theirs in seen)
