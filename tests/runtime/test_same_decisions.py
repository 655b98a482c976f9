"""The runtime makes the decisions the simulator predicts: one traffic, two drivers, one engine.

The same arrivals go through the simulator (SimPy's clock, the provider model) and through the
runtime (a fake clock, the real openai client, the mock server serving the same provider model
with no latency). Time is stepped from event to event as SimPy steps it: to the next arrival or
the engine's next wake, whichever comes first. Every request must end the same way, on the same
key, after the same wait.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import openai

from keypolicy import PolicyRejected, load_policy
from keypolicy.core import Advance
from keypolicy.records import UsageRecord
from keypolicy.runtime import FakeClock
from keypolicy.sim.arrival import Arrival
from keypolicy.sim.driver import Simulation
from keypolicy.upstream import ProviderSettings
from keypolicy.upstream.latency import LatencySettings
from tests.runtime.conftest import Start, ledger_rows, wait_until

START = 1_795_000_000.0
# A tight pool (5 requests a minute) shared by a critical and a background domain: bursts queue,
# the critical class goes first, some wait past max_wait (5 s critical, 30 s background).
# No arrival coincides with a wake of the engine (a refill, an expiry): two events at one instant
# may be taken in either order, by SimPy as by the runtime's threads.
TRAFFIC = [
    *[(0.0, "urgent")] * 3,
    *[(0.0, "burst")] * 4,
    (4.5, "urgent"),
    (9.5, "burst"),
    (13.5, "urgent"),
    (30.5, "burst"),
    *[(61.25, "urgent")] * 2,
    (62.75, "burst"),
    (121.5, "burst"),
]


def _simulated(policy_path: Path) -> list[UsageRecord]:
    policy = load_policy(policy_path).policy
    arrivals = iter(Arrival(t, domain, 12, 5, 3, "gpt-4o-mini") for t, domain in TRAFFIC)
    records: list[UsageRecord] = []
    settings = ProviderSettings(latency=LatencySettings.instant())
    Simulation(
        policy, arrivals, START, 0, provider_settings=settings, on_record=records.append
    ).run()
    return sorted(records, key=lambda r: int(r.request_id[1:]))


def _settled(runtime: Any) -> bool:
    """Every open call is parked in the engine (queued or delayed): nothing is on its way."""
    waiters = list(runtime._conductor._waiters)
    parked = sum(runtime.engine.request_state(rid) in ("queued", "delayed") for rid in waiters)
    return bool(runtime.pending_calls == parked)


def test_the_runtime_decides_as_the_simulator_predicts(start: Start, policy_path: Path) -> None:
    clock = FakeClock(START)
    runtime, _ = start(clock=clock)
    clients = {d: runtime.openai(d) for d in ("urgent", "burst")}
    threads: list[threading.Thread] = []

    def call(domain: str) -> None:
        with contextlib.suppress(PolicyRejected, openai.OpenAIError):
            clients[domain].chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], max_tokens=5
            )

    pending = list(TRAFFIC)
    while pending or runtime.pending_calls:
        wake = runtime.engine.next_wake
        due = START + pending[0][0] if pending else float("inf")
        at = min(due, wake if wake is not None else float("inf"))
        if at > clock.now():
            clock.advance(at - clock.now())
            # The timer thread would deliver this Advance too; delivered here, it comes before
            # the arrivals due now, as SimPy orders them (a second Advance at one time is a no-op).
            runtime._conductor.handle(Advance(clock.now()))
        while pending and START + pending[0][0] <= clock.now():
            _, domain = pending.pop(0)
            calls = runtime._context.open_calls
            begun = calls.begun
            thread = threading.Thread(target=call, args=(domain,))
            thread.start()
            threads.append(thread)
            wait_until(lambda b=begun, c=calls: c.begun > b, "the call to begin")
            wait_until(lambda: _settled(runtime), "the call to settle")
        wait_until(lambda: _settled(runtime), "calls to settle")
    for thread in threads:
        thread.join(10)

    simulated = _simulated(policy_path)
    live = ledger_rows(runtime)
    live = live.assign(n=live.request_id.str.rsplit("-", n=1).str[1].astype(int)).sort_values("n")
    assert len(live) == len(simulated) == len(TRAFFIC)
    got = [(r.domain, r.outcome, r.key, round(r.wait_s, 6)) for r in live.itertuples()]
    want = [(r.domain, r.outcome, r.key, round(r.wait_s, 6)) for r in simulated]
    assert got == want
    assert {"ok", "rejected"} <= {o for _, o, _, _ in got}  # the traffic did meet the limit
