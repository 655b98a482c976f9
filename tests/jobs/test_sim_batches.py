"""The simulator gathering batch requests into files as the runtime's worker does
(``Simulation(..., batch_gathering=Gathering())``): same defaults, the queue limit kept by
waiting rather than failing, the requests of one batch ending together at a time drawn from the
provider model's distribution."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from keypolicy.jobs import JobSettings
from keypolicy.jobs.settings import BATCH_MAX_REQUESTS
from keypolicy.policy import load_policy_text
from keypolicy.records import UsageRecord
from keypolicy.sim.arrival import Arrival
from keypolicy.sim.batching import GATHER_S, MAX_REQUESTS, Gathering
from keypolicy.sim.driver import Simulation
from keypolicy.upstream import BatchSettings, ProviderSettings

HOUR = 3600.0
START = datetime(2026, 11, 18, tzinfo=UTC).timestamp()
POLICY = """\
version: 1
name: batch-sim
organization: {id: org-batchsim, tier: 1}
projects:
  p: {models: {gpt-4o: {rpm: 500, tpm: 30000}}}
keys:
  k: {project: p, env: K}
pools:
  a: {keys: [k]}
priorities:
  - {name: background, deferrable: true}
domains:
  nightly: {pool: a, priority: background, model: gpt-4o, defer: {mode: batch, deadline: 24h}}
"""


def simulate(
    arrivals: Iterable[Arrival], batch: BatchSettings | None = None
) -> tuple[Simulation, list[UsageRecord]]:
    records: list[UsageRecord] = []
    sim = Simulation(
        load_policy_text(POLICY, "batch-sim.yaml").policy,
        iter(arrivals),
        START,
        3,
        provider_settings=ProviderSettings(batch=batch or BatchSettings()),
        on_record=records.append,
        batch_gathering=Gathering(),
    )
    sim.run()
    return sim, records


def test_the_simulator_gathers_with_the_workers_defaults() -> None:
    settings = JobSettings()
    assert GATHER_S == settings.gather_s == Gathering().gather_s
    assert MAX_REQUESTS == BATCH_MAX_REQUESTS == settings.max_batch_requests


def test_requests_wait_for_room_in_the_queue_instead_of_failing() -> None:
    # Tier 1: 90,000 gpt-4o tokens enqueued. Ten of 20,000 arrive within ten seconds: the first
    # file takes four, the rest wait for it to end (the unbatched model failed six of them).
    arrivals = [Arrival(float(i), "nightly", 20_000, 100, 50) for i in range(10)]
    sim, records = simulate(arrivals, BatchSettings(delay=2 * HOUR))
    assert len(records) == 10
    assert all(r.outcome == "ok" and r.batch for r in records)
    assert sim.summary_extra()["batch_files"] == 3  # 4 + 4 + 2
    ends = Counter(round(r.finished - START) for r in records)
    assert sorted(ends.values()) == [2, 4, 4]  # each file's requests end together
    assert min(ends) == GATHER_S + 2 * HOUR  # gathered for a minute, then the batch's time
    assert all(r.cost_usd > 0 for r in records)


def test_small_requests_share_a_file_and_its_drawn_time() -> None:
    # A request a second for ten minutes: a file a minute, each ending at its own drawn time.
    arrivals = [Arrival(float(i), "nightly", 200, 100, 50) for i in range(600)]
    sim, records = simulate(arrivals)
    assert len(records) == 600
    files = sim.summary_extra()["batch_files"]
    assert 9 <= files <= 11
    took = {round(r.finished - r.started, 3) for r in records if r.outcome == "ok" and r.started}
    assert len(took) > files  # waits in a file differ (gathered), the batch time is shared
    ends = Counter(r.finished for r in records)
    assert len(ends) == files  # the requests of one batch end together
