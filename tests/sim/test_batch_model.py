"""Batch-deferred requests in the simulator: the provider's queue limit, drawn times, expiry.

A tier-1 organization may hold 90,000 gpt-4o prompt tokens enqueued in the Batch API
(``keypolicy.catalog.TIERS``): requests of 20,000 tokens fit four at a time, and the rest end as
errors the summary counts by reason (``batch_queue_full``, ``batch_expired``).

Each request here is a batch of its own (``batch_gathering=None``): the provider model's rules
one by one. The simulator's default gathers requests into files and holds them until the queue
has room, as the runtime's worker does (``tests/jobs/test_sim_batches.py``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from keypolicy.policy import load_policy_text
from keypolicy.records import UsageRecord
from keypolicy.sim.arrival import Arrival
from keypolicy.sim.driver import Simulation
from keypolicy.upstream import BatchSettings, ProviderSettings

HOUR = 3600.0
START = datetime(2026, 11, 18, tzinfo=UTC).timestamp()

POLICY = """\
version: 1
name: batch-sim
organization:
  id: org-batchsim
  tier: 1
projects:
  p:
    models:
      gpt-4o: {rpm: 500, tpm: 30000}
keys:
  k: {project: p, env: K}
pools:
  a: {keys: [k]}
priorities:
  - {name: background, deferrable: true}
domains:
  nightly:
    pool: a
    priority: background
    model: gpt-4o
    defer: {mode: batch, deadline: 24h}
"""


def simulate(
    arrivals: Iterable[Arrival], batch: BatchSettings | None = None, seed: int = 3
) -> tuple[dict[str, Any], list[UsageRecord]]:
    """The ``nightly`` domain's summary, and every record."""
    records: list[UsageRecord] = []
    sim = Simulation(
        load_policy_text(POLICY, "batch-sim.yaml").policy,
        iter(arrivals),
        START,
        seed,
        provider_settings=ProviderSettings(batch=batch or BatchSettings()),
        on_record=records.append,
        batch_gathering=None,
    )
    summary = sim.run().summary()
    return summary["domains"]["nightly"], records


def wave(at: float, count: int, tokens: int = 20_000) -> list[Arrival]:
    """``count`` requests one second apart from ``at`` (seconds)."""
    return [Arrival(at + i, "nightly", tokens, 100, 50) for i in range(count)]


def test_a_full_queue_refuses_batches_until_it_clears() -> None:
    # Ten at once: four fit (80,000 tokens), six find the queue full. A day later the four
    # have ended (completed or expired within 24 h) and the next four fit again.
    domain, records = simulate([*wave(0.0, 10), *wave(25 * HOUR, 4)])
    assert domain["requests"] == 14
    assert domain["batch"] == 14
    assert domain["reasons"]["batch_queue_full"] == 6
    assert domain["outcomes"]["ok"] + domain["reasons"].get("batch_expired", 0) == 8
    refused = [r for r in records if r.reason.startswith("batch_queue_full")]
    assert len(refused) == 6
    for r in refused:
        assert r.outcome == "error"
        assert r.submitted < 10.0 + START
        assert r.finished == r.submitted  # refused at creation
        assert r.cost_usd == 0.0
        assert "Enqueued token limit reached for gpt-4o in organization org-batchsim. " in r.reason
        assert "Limit: 90,000 enqueued tokens." in r.reason


def test_completion_times_are_drawn_within_the_window() -> None:
    # Small requests, never near the queue limit, one every five minutes for a day.
    arrivals = [Arrival(300.0 * i, "nightly", 200, 100, 50) for i in range(288)]
    domain, records = simulate(arrivals)
    took = [r.finished - r.started for r in records if r.outcome == "ok" and r.started]
    expired = [r for r in records if r.reason.startswith("batch_expired")]
    assert len(took) + len(expired) == 288
    assert domain["reasons"].get("batch_queue_full", 0) == 0
    assert all(0 < t < 24 * HOUR for t in took)
    assert len(set(took)) == len(took)  # drawn for each, not a fixed turnaround
    assert 0.5 * HOUR < statistics.median(took) < 2 * HOUR  # the default median: 1 h
    assert len(expired) <= 6  # about 0.6% of batches run past the window by default
    assert domain["cost_usd"] > 0


def test_a_batch_past_the_window_expires_as_an_error() -> None:
    domain, records = simulate(wave(0.0, 5), BatchSettings(delay=30 * HOUR))
    assert domain["outcomes"] == {"error": 5}
    assert domain["reasons"] == {"batch_expired": 4, "batch_queue_full": 1}
    expired = [r for r in records if r.reason.startswith("batch_expired")]
    for r in expired:
        assert r.started is not None
        assert r.finished - r.started == 24 * HOUR
        assert r.cost_usd == 0.0  # nothing was done: nothing is paid
        assert r.reason == (
            "batch_expired: the batch failed: "
            "This request could not be executed before the completion window expired."
        )
