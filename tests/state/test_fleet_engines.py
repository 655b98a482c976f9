"""Engines of several replicas sharing one store (a shared memory store, then Redis): what one
process alone never had to think of.

- a budget's alert is announced once per fleet, not once per replica;
- the Batch path holds its budget in one atomic take: two replicas cannot both pass a look and
  overspend;
- a crashed replica's budget holds come back once their leases end, exactly once, and a replica
  that was only slow still pays its cost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from keypolicy.core import (
    Action,
    Advance,
    Alert,
    Cancel,
    Complete,
    Defer,
    Engine,
    Failed,
    Reject,
    Send,
    Settled,
    Submit,
)
from keypolicy.core.budgets import BATCH_LEASE_S, HOLD_LEASE_S, BudgetBook
from keypolicy.core.config import EngineConfig
from keypolicy.core.engine import REAP_EVERY_S
from keypolicy.core.store import BucketRef, Store
from keypolicy.policy import load_policy_text
from keypolicy.policy.compile import compile_policy
from keypolicy.state import MemoryStore

T0 = 1_795_000_000.0  # 2026-11-19 in UTC (mid-day)

FLEET = """\
version: 1
name: fleet
timezone: UTC
organization: {id: org-fleet}
projects:
  p: {models: {gpt-4o-mini: {rpm: 10_000, tpm: 100M}}}
keys:
  k1: {project: p, env: K1}
pools:
  one: {keys: [k1]}
priorities:
  - {name: only, max_wait: 60s}
  - {name: later, max_wait: 60s, deferrable: true}
domains:
  chat: {pool: one, priority: only, model: gpt-4o-mini}
  billing: {pool: one, priority: later, model: gpt-4o-mini, defer: batch}
budgets:
  chat-daily: {applies_to: {domain: chat}, usd: $0.02, per: day, alert_at: [20%, 40%]}
  chat-rolling: {applies_to: {domain: chat}, usd: $1, per: 1h, alert_at: []}
  billing-daily: {applies_to: {domain: billing}, usd: $0.005, per: day}
"""
CONFIG = compile_policy(load_policy_text(FLEET, "fleet.yaml").policy)
# gpt-4o-mini: $0.15 a million prompt tokens, $0.60 a million completion tokens.
PROMPT, MAX_OUT = 10_000, 5_000  # at most $0.0045 a request; $0.00225 through the Batch API


def cost(completion: int) -> float:
    """What a chat request of ``PROMPT`` tokens answered with ``completion`` tokens costs."""
    return PROMPT * 0.15e-6 + completion * 0.6e-6


def _budget(name: str) -> int:
    return next(i for i, b in enumerate(CONFIG.budgets) if b.name == name)


def _spent(store: Store, name: str, now: float = T0) -> float:
    """USD spent or held in budget ``name``'s period (or window) holding ``now``, read then
    (a calendar budget's level does not move with time: read at T0, it says what it holds)."""
    return BudgetBook(CONFIG.budgets, store).spent(_budget(name), now)


@pytest.fixture
def fleet(
    make_store: Callable[[], Store], twin: Callable[[Store], Store]
) -> Callable[[int], list[Engine]]:
    """``fleet(n)``: ``n`` engines (replicas) on one store, each on a connection of its own."""

    def make(n: int, config: EngineConfig = CONFIG) -> list[Engine]:
        first = make_store()
        if isinstance(first, MemoryStore):
            first = MemoryStore(shared=True)
        stores = [first, *(twin(first) for _ in range(n - 1))]
        return [Engine(config, store, seed=i) for i, store in enumerate(stores)]

    return make


def _of(actions: Sequence[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def _call(engine: Engine, rid: str, now: float, completion: int, domain: str = "chat") -> list[Any]:
    """Submit one chat request and answer it with ``completion`` tokens: every action."""
    out = engine.handle(Submit(rid, domain, now, PROMPT, MAX_OUT))
    assert _of(out, Send), out
    return out + engine.handle(Settled(rid, now + 1.0, PROMPT, completion))


# ---------------------------------------------------------------------- alerts


def test_a_budget_alert_is_announced_once_per_fleet(fleet: Callable[[int], list[Engine]]) -> None:
    a, b, c = fleet(3)
    # chat-daily: $0.02, alerts at 20% ($0.004) and 40% ($0.008).
    assert _of(_call(a, "a1", T0, 1_000), Alert) == []  # $0.0021
    alerts = _of(_call(b, "b1", T0 + 10.0, 5_000), Alert)  # $0.0066: 20% crossed, on B
    assert [(x.budget, x.threshold) for x in alerts] == [("chat-daily", 0.2)]
    # Replica C never announced anything itself: alone, it would announce 20% again.
    alerts = _of(_call(c, "c1", T0 + 20.0, 1_000), Alert)  # $0.0087: 40% crossed, on C
    assert [(x.budget, x.threshold) for x in alerts] == [("chat-daily", 0.4)]
    assert alerts[0].spent_usd == pytest.approx(cost(1_000) * 2 + cost(5_000))
    assert _of(_call(a, "a2", T0 + 30.0, 0), Alert) == []  # both announced already


def test_the_next_period_alerts_again(fleet: Callable[[int], list[Engine]]) -> None:
    a, b = fleet(2)
    for i in range(2):
        _call(a, f"a{i}", T0 + i, 5_000)  # $0.009: both thresholds, announced by A
    tomorrow = T0 + 86_400.0
    assert _of(_call(b, "b0", tomorrow, 1_000), Alert) == []
    alerts = _of(_call(b, "b1", tomorrow + 1.0, 5_000), Alert)  # a new day, a new 20%
    assert [x.threshold for x in alerts] == [0.2]
    alerts = _of(_call(a, "a9", tomorrow + 2.0, 5_000), Alert)  # A: 40% only, not 20% again
    assert [x.threshold for x in alerts] == [0.4]


def test_a_store_that_cannot_claim_announces_per_replica_as_before() -> None:
    # A store written in plain Python without claims (the interface's default grants every
    # claim): each replica announces what it has not announced itself.
    class Plain(Store):
        def __init__(self, memory: MemoryStore) -> None:
            self.memory = memory

        def acquire(self, *args: Any) -> float:
            return self.memory.acquire(*args)

        def adjust(self, bucket: BucketRef, delta: float, now: float) -> float:
            return self.memory.adjust(bucket, delta, now)

        def clamp(self, bucket: BucketRef, level: float, now: float) -> None:
            self.memory.clamp(bucket, level, now)

        def levels(self, buckets: Sequence[BucketRef], now: float) -> list[float]:
            return self.memory.levels(buckets, now)

        def set_cooldown(self, name: str, until: float) -> None:
            self.memory.set_cooldown(name, until)

        def cooldown(self, name: str) -> float:
            return self.memory.cooldown(name)

    memory = MemoryStore()
    a, b = Engine(CONFIG, Plain(memory)), Engine(CONFIG, Plain(memory))
    assert len(_of(_call(a, "a1", T0, 5_000), Alert)) == 1  # $0.0045: 20%
    assert len(_of(_call(a, "a2", T0 + 1.0, 5_000), Alert)) == 1  # $0.009: 40%
    assert len(_of(_call(b, "b1", T0 + 2.0, 0), Alert)) == 2  # both again, by B


# ---------------------------------------------------------------------- the Batch path


def test_the_batch_path_holds_its_budget_in_one_take(
    fleet: Callable[[int], list[Engine]], make_store: Any
) -> None:
    # billing-daily holds $0.005: one batch request ($0.00225) fits twice, not three times.
    rounds = 1 if make_store is MemoryStore else 20
    for r in range(rounds):
        engines = fleet(3)
        if make_store is MemoryStore:  # one object, not locked: the replicas take turns
            results = [e.handle(Submit(f"r{r}", "billing", T0, PROMPT, MAX_OUT)) for e in engines]
        else:  # three replicas at the same moment, each on its own connection
            gate = threading.Barrier(len(engines))

            def submit(engine: Engine, r: int = r, gate: threading.Barrier = gate) -> list[Any]:
                gate.wait()
                return engine.handle(Submit(f"r{r}", "billing", T0, PROMPT, MAX_OUT))

            with ThreadPoolExecutor(len(engines)) as pool:
                results = list(pool.map(submit, engines))
        kinds = sorted(type(out[0]).__name__ for out in results)
        assert kinds == ["Defer", "Defer", "Reject"], results
        rejected = next(out[0] for out in results if isinstance(out[0], Reject))
        assert rejected.reason == "budget"
        assert _spent(engines[0].store, "billing-daily", T0) == pytest.approx(0.0045)


# ---------------------------------------------------------------------- leased holds


def test_a_crashed_replicas_holds_come_back_when_their_leases_end(
    fleet: Callable[[int], list[Engine]],
) -> None:
    a, b = fleet(2)
    assert _of(a.handle(Submit("live", "chat", T0, PROMPT, MAX_OUT)), Send)
    assert _of(a.handle(Submit("batch", "billing", T0, PROMPT, MAX_OUT)), Defer)
    store = b.store
    assert _spent(store, "chat-daily") == pytest.approx(0.0045)
    assert _spent(store, "billing-daily") == pytest.approx(0.00225)
    del a  # replica A dies: nobody will settle its requests
    b.handle(Advance(T0 + HOLD_LEASE_S - 1.0))  # B looks: nothing has ended yet
    assert b.holds_reaped == 0
    assert _spent(store, "chat-daily") == pytest.approx(0.0045)
    b.handle(Advance(T0 + HOLD_LEASE_S))  # within REAP_EVERY_S of its last look: no look
    assert b.holds_reaped == 0
    b.handle(Advance(T0 + HOLD_LEASE_S - 1.0 + REAP_EVERY_S))
    assert b.holds_reaped == 1
    assert _spent(store, "chat-daily") == 0.0
    assert _spent(store, "chat-rolling", T0 + 1.0) == 0.0
    assert _spent(store, "billing-daily") == pytest.approx(0.00225)  # leased for a day
    b.handle(Advance(T0 + BATCH_LEASE_S))  # the Batch API's 24 hours, and an hour
    assert b.holds_reaped == 2
    assert _spent(store, "billing-daily") == 0.0
    assert store.reap(T0 + 1e9, 100) == 0  # each given back once: nothing left


def test_the_first_request_after_the_leases_end_finds_the_holds_back(
    fleet: Callable[[int], list[Engine]],
) -> None:
    a, b = fleet(2)
    for i in range(4):  # $0.018 of chat-daily's $0.02 held: no fifth call fits
        assert _of(a.handle(Submit(f"a{i}", "chat", T0, PROMPT, MAX_OUT)), Send)
    (refused,) = b.handle(Submit("early", "chat", T0 + 1.0, PROMPT, MAX_OUT))
    assert isinstance(refused, Reject)
    assert refused.reason == "budget"
    del a  # dies; B sees nothing more until an hour later
    out = b.handle(Submit("b1", "chat", T0 + HOLD_LEASE_S + 1.0, PROMPT, MAX_OUT))
    assert _of(out, Send)  # the holds came back before it was admitted
    assert b.holds_reaped == 4


def test_a_slow_replica_pays_its_cost_once_after_its_hold_was_reaped(
    fleet: Callable[[int], list[Engine]],
) -> None:
    a, b = fleet(2)
    a.handle(Submit("slow", "chat", T0, PROMPT, MAX_OUT))
    late = T0 + HOLD_LEASE_S + 10.0
    b.handle(Advance(late))  # its lease ended: B gives the hold back
    assert (b.holds_reaped, _spent(b.store, "chat-daily")) == (1, 0.0)
    assert _of(a.handle(Settled("slow", late + 1.0, PROMPT, 1_000)), Complete)
    assert _spent(b.store, "chat-daily") == pytest.approx(cost(1_000))


def test_settled_and_released_holds_leave_no_lease(fleet: Callable[[int], list[Engine]]) -> None:
    (a,) = fleet(1)
    _call(a, "ok", T0, 100)
    a.handle(Submit("cancelled", "chat", T0 + 1.0, PROMPT, MAX_OUT))
    a.handle(Cancel("cancelled", T0 + 2.0))
    a.handle(Submit("failed", "chat", T0 + 3.0, PROMPT, MAX_OUT))
    a.handle(Failed("failed", T0 + 4.0, 400, {}, None))
    assert a.store.reap(T0 + 1e9, 100) == 0
    assert _spent(a.store, "chat-daily") == pytest.approx(cost(100))


def test_two_reapers_at_once_give_each_hold_back_once(
    make_store: Any, twin: Callable[[Store], Store]
) -> None:
    first = MemoryStore(shared=True) if make_store is MemoryStore else make_store()
    budget = BucketRef("budget:b:2026-11", 1_000.0, 0.0)
    first.acquire([budget], [500.0], [0.0], T0)  # settled spend: a double give-back would show
    for _ in range(200):
        first.acquire_leased([budget], [1.0], [0.0], T0, 0, T0 + 10.0)
    stores = [first, *(twin(first) for _ in range(3))]
    gate = threading.Barrier(len(stores))

    def reap(store: Store) -> int:
        if not isinstance(store, MemoryStore):
            gate.wait()
        total = 0
        while reaped := store.reap(T0 + 20.0, 7):  # seven at a time, until none is left
            total += reaped
        return total

    if isinstance(first, MemoryStore):
        reaped = [reap(s) for s in stores]
    else:
        with ThreadPoolExecutor(len(stores)) as pool:
            reaped = list(pool.map(reap, stores))
    assert sum(reaped) == 200
    assert first.levels([budget], T0 + 20.0) == [500.0]


# ---------------------------------------------------------------------- limits learnt


def _burst(engine: Engine, prefix: str, now: float, most: int = 400) -> int:
    """How many of ``most`` chat requests submitted at ``now`` go out at once."""
    sent = 0
    for i in range(most):
        sent += len(_of(engine.handle(Submit(f"{prefix}{i}", "chat", now, 10, 10)), Send))
    return sent


def test_each_replica_learns_a_lower_limit_from_its_own_first_answer(
    fleet: Callable[[int], list[Engine]],
) -> None:
    """The provider allows 600 requests a minute where the policy says 10,000. Limits learnt
    from headers are each engine's own (not shared through the store), so the fleet converges
    as each replica gets its first answer: A learns from its own; until B has its first, B
    refills at the policy's rate from the level A's answer set in the shared bucket (A's
    clamp), so what B alone lets out meanwhile is bounded by (policy rate - real rate) x the
    time to its first answer; from then on, both keep to the provider's limit."""
    a, b = fleet(2)
    headers = {"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "0"}
    out = a.handle(Submit("a0", "chat", T0, 10, 10))
    a.handle(Settled("a0", T0 + 1.0, 10, 10, headers=headers))
    assert _of(out, Send)
    # A learnt 10 a second: at T0+1 the provider had 0 left when it took a0 a second before.
    assert _burst(a, "a-", T0 + 2.0) == 20
    # B has not: it refills at 10,000 / 60 a second from the level A's burst left (0 at T0+2).
    early = _burst(b, "b-", T0 + 2.5)
    assert 0 < early <= 10_000 / 60 * 0.5 + 1
    # B's first answer: learnt. What waits in the queues goes out as room comes (counted).
    then = len(_of(b.handle(Settled("b-0", T0 + 3.0, 10, 10, headers=headers)), Send))
    # Both at 10 a second now: 5 left at T0+3 (B's clamp), 50 more by T0+8, shared.
    assert then + _burst(a, "a+", T0 + 8.0) + _burst(b, "b+", T0 + 8.0) == 55
