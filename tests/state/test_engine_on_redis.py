"""An engine on the Redis store decides exactly as one on the memory store.

Random event sequences (submissions on every domain, answers: successes with and without the
provider's rate-limit headers, 429s, 5xx, quota refusals; wake-ups; cancels; a clock that now and
then steps back) are fed to two engines in lockstep, one on a shared :class:`MemoryStore` (one
that says other engines use it too, as the Redis store says), one on a :class:`RedisStore`; every
event must give the same actions, and the stores must end with the same levels and cooldowns.
Both engines therefore lease their budget holds and claim their alerts (``core/budgets.py``).
(An exclusive memory store lets the engine keep stall marks, and skip claims and leases:
``tests/core/test_stalls.py`` and ``tests/core/test_fleet_state.py`` show what that changes.)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keypolicy.core import Advance, Cancel, Engine, Event, Failed, Send, Settled, Submit
from keypolicy.core.budgets import BudgetBook
from keypolicy.core.config import EngineConfig
from keypolicy.core.store import BucketRef, Store
from keypolicy.policy import load_policy, load_policy_text
from keypolicy.policy.compile import compile_policy
from keypolicy.state import MemoryStore

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_795_000_000.0

# Tight limits (a sliced one among them), an organization over the projects, reserves, a
# deferrable class, calendar and rolling budgets that alert, defer and downgrade.
TIGHT = """\
version: 1
name: tight
timezone: UTC
organization:
  id: org-test
  models:
    gpt-4o-mini: {rpm: 90, tpm: 9000}
    gpt-4o: {rpm: 30, tpm: 8000}
projects:
  p: {models: {gpt-4o-mini: {rpm: 60, tpm: 6000}, gpt-4o: {rpm: 20, tpm: 5000}}}
  q: {models: {gpt-4o-mini: {rpm: 60, tpm: 6000, quantum: 10s}}}
keys:
  k1: {project: p, env: K1}
  k2: {project: p, env: K2}
  k3: {project: q, env: K3}
pools:
  one: {keys: [k1]}
  both: {keys: [k1, k3], strategy: least_loaded}
  all: {keys: [k1, k2, k3], strategy: round_robin}
priorities:
  - {name: high, reserve: 30%, max_wait: 10s}
  - {name: mid, reserve: 10%, max_wait: 30s}
  - {name: low, max_wait: 60s, deferrable: true}
domains:
  urgent: {pool: one, priority: high, model: gpt-4o-mini}
  routine: {pool: one, priority: low, model: gpt-4o-mini}
  spread: {pool: both, priority: high, model: gpt-4o-mini}
  chat: {pool: all, priority: low, model: gpt-4o-mini, defer: queue}
  smart: {pool: one, priority: mid, model: gpt-4o}
budgets:
  daily: {applies_to: all, usd: $0.005, per: day, alert_at: [50%, 90%]}
  chatty: {applies_to: {domain: chat}, usd: $0.004, per: 20s, on_exhausted: defer}
  smartish:
    applies_to: {domain: smart}
    usd: $0.01
    per: 30s
    on_exhausted: {downgrade: gpt-4o-mini}
provider: {refund_unused: true}
"""


def _configs() -> list[EngineConfig]:
    return [
        compile_policy(load_policy_text(TIGHT, "tight.yaml").policy),
        compile_policy(load_policy(ROOT / "policies" / "clinic-merged.yaml").policy),
        compile_policy(load_policy(ROOT / "policies" / "clinic-single.yaml").policy),
    ]


CONFIGS = _configs()

KINDS = ("submit", "answer", "advance", "wake", "cancel", "back")
WEIGHTS = (45, 35, 5, 8, 3, 4)


def random_step(rng: random.Random, gap: float) -> tuple[Any, ...]:
    """One step of a random run; ``gap``: mean seconds between submissions."""
    kind = rng.choices(KINDS, WEIGHTS)[0]
    if kind == "submit":
        prompt = rng.choice((50, 200, 1_500, 4_000, 60_000))
        out = rng.choice((None, 100, 800, 3_000))
        return (kind, rng.randrange(100), prompt, out, rng.expovariate(1 / gap))
    if kind == "answer":  # which request in flight, how it went, when
        how = rng.choice(("ok", "ok", "ok", "ok", "headers", "429", "500", "quota"))
        return (kind, rng.randrange(100), how, rng.uniform(0.0, 2 * gap))
    if kind == "advance":
        return (kind, rng.uniform(0.0, 30.0))
    if kind == "cancel":
        return (kind, rng.randrange(100))
    if kind == "back":  # a clock that steps back
        return (kind, rng.uniform(0.0, 2.0))
    return (kind, 0.0)  # wake: to the engine's next_wake


class Lockstep:
    """Two engines fed the same events; each event's actions compared at once."""

    def __init__(self, config: EngineConfig, stores: tuple[Store, Store], seed: int) -> None:
        self.engines = [Engine(config, store, seed) for store in stores]
        self.stores = stores
        self.config = config
        self.domains = sorted(config.domains)
        self.now = T0
        self.flying: list[Send] = []
        self.known: list[str] = []
        self.count = 0
        self.events = 0
        self.sent = 0

    def feed(self, event: Event) -> None:
        memory, redis = (engine.handle(event) for engine in self.engines)
        self.events += 1
        assert redis == memory, f"event {self.events}: {event}"
        for action in memory:
            if isinstance(action, Send):
                self.flying.append(action)
                self.sent += 1

    def step(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        if kind == "submit":
            _, domain, prompt, out, dt = step
            self.now += dt
            self.count += 1
            rid = f"r{self.count}"
            self.known.append(rid)
            name = self.domains[domain % len(self.domains)]
            self.feed(Submit(rid, name, self.now, prompt, out))
        elif kind == "answer" and self.flying:
            _, pick, how, dt = step
            self.now += dt
            send = self.flying.pop(pick % len(self.flying))
            self.feed(_answer(send, how, self.now))
        elif kind == "advance":
            self.now += step[1]
            self.feed(Advance(self.now))
        elif kind == "wake":
            wakes = [e.next_wake for e in self.engines]
            assert wakes[0] == wakes[1]
            if wakes[0] is not None and wakes[0] > self.now:
                self.now = wakes[0]
            self.feed(Advance(self.now))
        elif kind == "cancel" and self.known:
            self.feed(Cancel(self.known[step[1] % len(self.known)], self.now))
        elif kind == "back":
            self.feed(Advance(self.now - step[1]))  # the engine takes it as its last time

    def buckets(self) -> list[BucketRef]:
        """Every limit's bucket, and every budget's for the current period."""
        book = BudgetBook(self.config.budgets, MemoryStore())  # names the periods' buckets
        budgets = [book.bucket(i, self.now) for i in range(len(self.config.budgets))]
        return [*self.config.buckets, *budgets]

    def cooldown_names(self) -> list[str]:
        """Every key's and every project/model's cooldown name (as ``core/admission.py``)."""
        names = [f"key:{k.alias}" for k in self.config.keys]
        return names + [
            f"project:{self.config.keys[r.key].project}/{r.model}"
            for r in self.config.routes.values()
        ]


def _answer(send: Send, how: str, now: float) -> Event:
    rid, attempt = send.request_id, send.attempt
    if how == "429":
        return Failed(rid, now, 429, {"retry-after-ms": "1500"}, None, attempt)
    if how == "500":
        return Failed(rid, now, 500, {}, None, attempt)
    if how == "quota":
        body = '{"error": {"code": "insufficient_quota", "type": "insufficient_quota"}}'
        return Failed(rid, now, 429, {}, body, attempt)
    headers = {}
    if how == "headers":  # the provider says less is left than the engine thinks
        headers = {
            "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-tokens": "1200",
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "7",
            "x-ratelimit-reset-tokens": "4.5s",
        }
    return Settled(rid, now, 180, 60, 0, headers, attempt)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.integers(0, len(CONFIGS) - 1),
    seed=st.integers(0, 2**32),
    steps=st.integers(20, 300),
    gap=st.sampled_from([0.02, 0.2, 1.0, 4.0]),
)
def test_an_engine_on_redis_decides_as_one_on_memory(
    which: int, seed: int, steps: int, gap: float, redis_stores: Callable[[], Store]
) -> None:
    run = Lockstep(CONFIGS[which], (MemoryStore(shared=True), redis_stores()), seed)
    rng = random.Random(seed)
    for _ in range(steps):
        run.step(random_step(rng, gap))
    for _ in range(3):  # let the answers in flight and the queues play out
        while run.flying:
            run.step(("answer", 0, "ok", 1.0))
        run.step(("wake", 0.0))
    memory, redis = run.stores
    refs = run.buckets()
    assert redis.levels(refs, run.now) == memory.levels(refs, run.now)
    names = run.cooldown_names()
    assert [redis.cooldown(n) for n in names] == [memory.cooldown(n) for n in names]


def test_a_busy_clinic_minute_decides_the_same(redis_stores: Callable[[], Store]) -> None:
    # Heavier than the examples above: a few hundred requests a minute on the clinic's policy.
    run = Lockstep(CONFIGS[1], (MemoryStore(shared=True), redis_stores()), 3)
    for i in range(600):
        run.step(("submit", i % 7, (200, 1_500, 12_000)[i % 3], (100, 800)[i % 2], 0.05))
        if i % 3 == 0 and run.flying:
            run.step(("answer", i, ("ok", "ok", "500", "429", "ok")[i % 5], 0.01))
        if i % 50 == 0:
            run.step(("wake", 0.0))
    assert run.sent > 300
    assert run.flying  # answers still out: the engines were busy to the end


@pytest.mark.parametrize("which", range(len(CONFIGS)))
def test_the_policies_here_compile(which: int) -> None:
    assert CONFIGS[which].buckets


def test_an_admission_and_a_settlement_are_one_round_trip_each(
    redis_stores: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Redis, a clinic request that goes out at once costs one round trip to be admitted
    (its cooldowns, once read, are reused) and one to be settled with the provider's headers
    (the limits' corrections carried by the budget's settlement)."""
    store: Any = redis_stores()
    engine = Engine(CONFIGS[1], store, 0)
    trips: list[str] = []
    execute = store._execute

    def counted(*command: Any) -> Any:
        trips.append(str(command[0]))
        return execute(*command)

    monkeypatch.setattr(store, "_execute", counted)
    headers = {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9990",
        "x-ratelimit-limit-tokens": "2000000",
        "x-ratelimit-remaining-tokens": "1990000",
    }
    admitted, settled = [], []
    for i, domain in enumerate(["diagnosis", "xray", "treatment", "chat", "diagnosis"] * 4):
        now = T0 + i
        before = len(trips)
        sends = [
            a for a in engine.handle(Submit(f"r{i}", domain, now, 300, 100)) if isinstance(a, Send)
        ]
        assert sends
        admitted.append(len(trips) - before)
        before = len(trips)
        engine.handle(Settled(f"r{i}", now + 0.5, 300, 80, headers=headers))
        settled.append(len(trips) - before)
    assert settled == [1] * len(settled)
    assert admitted[-10:] == [1] * 10  # once each pool's cooldowns have been read
    assert sum(admitted) <= len(admitted) + 4
