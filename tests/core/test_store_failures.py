"""A store call that raises in the middle of an event (a shared store's server gone) must not
leave the engine half-changed: every request ends exactly once (``Complete`` or ``Reject``) or is
still pending, nothing is corrected twice, and the actions decided for others are not lost.
(``Engine.handle`` states the contract.)"""

from __future__ import annotations

import heapq
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keypolicy.core import (
    Action,
    Advance,
    Cancel,
    Complete,
    Defer,
    Engine,
    Event,
    Failed,
    Reject,
    Send,
    Settled,
    StoreFault,
    Submit,
)
from keypolicy.core.store import BucketRef, Store
from keypolicy.policy import load_policy, load_policy_text
from keypolicy.policy.compile import compile_policy
from keypolicy.state import MemoryStore

from .conftest import SMALL as PLAIN
from .conftest import T0, Driver
from .test_stalls import _answer

# These tests follow capacity given back at settlement: the provider gives unused tokens back.
SMALL = PLAIN + "provider: {refund_unused: true}\n"

ROOT = Path(__file__).resolve().parents[2]


class OutageError(Exception):
    """What the failing store raises."""


class FailingStore(Store):
    """The memory store, failing on purpose: calls number ``fail_from`` to ``fail_from + span
    - 1`` (counted from 1 over every method) raise before doing anything. ``adjusts`` logs the
    adjustments that were applied (bucket name, delta)."""

    def __init__(self, fail_from: int = 0, span: int = 1, only: str = "") -> None:
        self.memory = MemoryStore()
        self.calls = 0
        self.fail_from, self.span, self.only = fail_from, span, only
        self.adjusts: list[tuple[str, float]] = []

    def _call(self, method: str) -> None:
        if self.only and method != self.only:
            return
        self.calls += 1
        if self.fail_from <= self.calls < self.fail_from + self.span:
            raise OutageError(f"store down ({method}, call {self.calls})")

    def acquire(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
    ) -> float:
        self._call("acquire")
        return self.memory.acquire(buckets, amounts, floors, now)

    def adjust(self, bucket: BucketRef, delta: float, now: float) -> float:
        self._call("adjust")
        self.adjusts.append((bucket.name, delta))
        return self.memory.adjust(bucket, delta, now)

    def clamp(self, bucket: BucketRef, level: float, now: float) -> None:
        self._call("clamp")
        self.memory.clamp(bucket, level, now)

    def levels(self, buckets: Sequence[BucketRef], now: float) -> list[float]:
        self._call("levels")
        return self.memory.levels(buckets, now)

    def set_cooldown(self, name: str, until: float) -> None:
        self._call("set_cooldown")
        self.memory.set_cooldown(name, until)

    def cooldown(self, name: str) -> float:
        self._call("cooldown")
        return self.memory.cooldown(name)


def _engine(text: str, store: Store) -> Engine:
    return Engine(compile_policy(load_policy_text(text, "test.yaml").policy), store)


def _only(actions: Sequence[object], kind: type) -> list:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, kind)]


BUDGETS = (
    SMALL
    + """\
budgets:
  daily: {applies_to: {domain: urgent}, usd: 1.0, per: day}
"""
)


# ---------------------------------------------------------------------------- one case each


def test_a_failure_while_admitting_from_the_queue_rejects_that_request_only() -> None:
    store = FailingStore()
    d = Driver(_engine(SMALL, store))
    first, _ = d.submit("urgent", prompt=1500, out=1500)  # 3000 of 6000 tokens
    d.submit("urgent", prompt=1500, out=1400)  # 2900 more: nearly full
    queued = [d.submit("urgent", prompt=400, out=400)[0] for _ in range(3)]
    assert d.engine.waiting() == queued
    # The answer gives back 2,000 tokens: room for two of the queued. The second acquire fails.
    store.fail_from, store.only, store.calls = 2, "acquire", 0
    got = d.settle(first, prompt=500, completion=500)
    assert [type(a).__name__ for a in got] == ["Complete", "Send", "StoreFault", "Reject"]
    assert got[1].request_id == queued[0]  # decided before the failure: not lost
    reject = got[3]
    assert (reject.request_id, reject.reason) == (queued[1], "store_error")
    assert "nothing was sent" in reject.message
    assert "OutageError: store down" in reject.message
    assert d.engine.request_state(queued[1]) is None
    assert d.engine.waiting() == [queued[2]]  # behind it: still queued, tried again soon
    assert d.engine.next_wake is not None
    assert d.engine.next_wake <= d.now + 1.0
    assert d.engine.store_errors == 1
    d.advance(0.1)
    assert d.sends()[-1].request_id == queued[2]


def test_a_failure_on_submission_rejects_it_and_changes_nothing() -> None:
    store = FailingStore(fail_from=1, only="acquire")
    d = Driver(_engine(BUDGETS, store))
    rid, got = d.submit("urgent")
    assert [type(a).__name__ for a in got] == ["StoreFault", "Reject"]
    assert got[1].reason == "store_error"
    assert d.engine.request_state(rid) is None
    assert _only(d.submit("urgent")[1], Send)  # the store is back: as if nothing happened


def test_settled_completes_despite_the_store_and_corrects_nothing_twice() -> None:
    store = FailingStore()
    d = Driver(_engine(BUDGETS, store))
    rid, _ = d.submit("urgent")
    # The tokens' correction fails (the first: the limits are corrected before the budget)
    store.fail_from, store.only, store.calls = 1, "adjust", 0
    got = d.settle(rid, prompt=100, completion=50)
    assert [type(a).__name__ for a in got] == ["StoreFault", "Complete"]
    assert got[1].cost_usd == pytest.approx(100 * 0.15e-6 + 50 * 0.60e-6)
    assert got[0].request_id == rid
    assert "token charges" in got[0].doing
    applied = list(store.adjusts)
    assert d.settle(rid, prompt=100, completion=50) == []  # given again: already complete
    assert store.adjusts == applied


def test_failed_retries_despite_the_store_and_releases_nothing_twice() -> None:
    store = FailingStore()
    d = Driver(_engine(BUDGETS, store))
    rid, _ = d.submit("urgent")
    store.fail_from, store.only, store.calls = 1, "adjust", 0  # releasing the hold fails
    failed = Failed(rid, d.now, 503, attempt=1)
    got = d.feed(failed)
    assert [type(a).__name__ for a in got] == ["StoreFault", "Retry"]
    assert d.engine.request_state(rid) == "delayed"
    assert d.feed(failed) == []  # given again: that attempt is over
    assert store.adjusts == []  # the hold stays held: never given back twice
    d.advance(30.0)
    assert d.sends()[-1].attempt == 2


def test_cancel_ends_the_request_even_if_the_hold_cannot_be_given_back() -> None:
    store = FailingStore()
    d = Driver(_engine(BUDGETS, store))
    rid, _ = d.submit("urgent")
    store.fail_from, store.only, store.calls = 1, "adjust", 0
    got = d.feed(Cancel(rid, d.now))
    assert [type(a).__name__ for a in got] == ["StoreFault", "Reject"]
    assert got[1].reason == "cancelled"
    assert d.engine.request_state(rid) is None


def test_a_failure_handing_a_request_to_the_batch_api_rejects_it() -> None:
    text = SMALL.replace(
        "spread: {pool: both, priority: high, model: gpt-4o-mini}",
        "spread: {pool: both, priority: high, model: gpt-4o-mini}\n"
        "  nightly: {pool: one, priority: low, model: gpt-4o-mini, defer: {mode: batch}}",
    )
    text += "budgets:\n  all: {applies_to: all, usd: 5.0, per: day}\n"
    store = FailingStore(fail_from=1, only="acquire")
    d = Driver(_engine(text, store))
    _rid, got = d.submit("nightly")
    assert [(type(a).__name__, getattr(a, "reason", "")) for a in got] == [
        ("StoreFault", ""),
        ("Reject", "store_error"),
    ]
    assert store.adjusts == []  # nothing held, nothing given back
    _, got = d.submit("nightly")
    assert _only(got, Defer)[0].mode == "batch"


# ---------------------------------------------------------------------------- cancel


def _spent(d: Driver, store: Store) -> float:
    bucket = d.engine._budgets.bucket(0, d.now)
    return bucket.capacity - store.levels([bucket], d.now)[0]


def test_cancel_in_flight_gives_back_the_budget_hold_and_keeps_the_charges() -> None:
    store = MemoryStore()
    d = Driver(_engine(BUDGETS, store))
    rid, _ = d.submit("urgent", prompt=100, out=100)
    assert _spent(d, store) == pytest.approx(0.000075)
    tpm = next(
        d.engine.bucket(b)
        for b in d.engine.config.routes[(0, "gpt-4o-mini")].buckets
        if d.engine.bucket(b).tokens and d.engine.bucket(b).owner == "p"
    )
    level = store.levels([tpm], d.now)[0]
    got = d.feed(Cancel(rid, d.now))
    assert got == [Reject(rid, "cancelled", "cancelled by the caller", 1)]
    assert _spent(d, store) == pytest.approx(0.0)  # the hold is given back
    assert store.levels([tpm], d.now)[0] == level  # the provider counted the attempt


def test_cancel_while_backing_off_or_queued_holds_nothing() -> None:
    store = MemoryStore()
    d = Driver(_engine(BUDGETS, store))
    rid, _ = d.submit("urgent")
    d.feed(Failed(rid, d.now, 503, attempt=1))  # backing off: its hold was given back
    assert _spent(d, store) == pytest.approx(0.0)
    assert _only(d.feed(Cancel(rid, d.now)), Reject)[0].reason == "cancelled"
    assert _spent(d, store) == pytest.approx(0.0)
    assert d.advance(60.0) == []  # its retry never comes


def test_cancel_at_the_batch_api_gives_back_the_hold() -> None:
    text = SMALL.replace(
        "spread: {pool: both, priority: high, model: gpt-4o-mini}",
        "spread: {pool: both, priority: high, model: gpt-4o-mini}\n"
        "  nightly: {pool: one, priority: low, model: gpt-4o-mini, defer: {mode: batch}}",
    )
    text += "budgets:\n  all: {applies_to: all, usd: 5.0, per: day}\n"
    store = MemoryStore()
    d = Driver(_engine(text, store))
    rid, _ = d.submit("nightly")
    assert _spent(d, store) > 0
    d.feed(Cancel(rid, d.now))
    assert _spent(d, store) == pytest.approx(0.0)
    assert d.settle(rid) == []  # the batch's late answer: already ended


# ---------------------------------------------------------------------------- any failure


SHIPPED = ("clinic-separate.yaml", "clinic-merged.yaml", "clinic-single.yaml")


class Run:
    """Drives an engine on a failing store with random traffic, answers and cancels, and
    checks the contract after every event."""

    def __init__(self, policy: Path, seed: int, store: FailingStore) -> None:
        self.engine = Engine(compile_policy(load_policy(policy).policy), store, seed)
        self.store = store
        self.rng = random.Random(seed)
        self.answers: list[tuple[float, int, Event]] = []
        self.finals: Counter[str] = Counter()
        self.known: set[str] = set()
        self.attempt: dict[str, int] = {}
        # (request, attempt) -> the buckets adjusted for it (settled, released, refunded)
        self.corrected: dict[tuple[str, int], list[str]] = defaultdict(list)
        self.costs = 0.0
        self.faults = 0
        self.seq = 0
        self.now = T0

    def feed(self, event: Event) -> list[Action]:
        before = len(self.store.adjusts)
        self.now = max(self.now, event.now)
        got = self.engine.handle(event)  # never raises for the store
        rid = getattr(event, "request_id", "")
        if isinstance(event, Settled | Failed | Cancel):
            key = (rid, self.attempt.get(rid, 0))
            self.corrected[key] += [name for name, _ in self.store.adjusts[before:]]
        for action in got:
            if isinstance(action, Complete | Reject):
                self.finals[action.request_id] += 1
                if isinstance(action, Complete):
                    self.costs += action.cost_usd
            elif isinstance(action, Send):
                self.attempt[action.request_id] = action.attempt
                self.seq += 1
                at = self.now + self.rng.uniform(0.2, 6.0)
                heapq.heappush(self.answers, (at, self.seq, _answer(self.rng, action, at)))
            elif isinstance(action, Defer) and action.mode == "batch":
                self.seq += 1
                at = self.now + 600.0
                heapq.heappush(
                    self.answers, (at, self.seq, Settled(action.request_id, at, 300, 90))
                )
            elif isinstance(action, StoreFault):
                self.faults += 1
        self.check(got)
        if isinstance(event, Settled | Failed) and _only(got, StoreFault):
            self.feed(event)  # a driver that tries the event again: it must change nothing
        return got

    def check(self, got: list[Action]) -> None:
        for rid in self.known:
            assert self.finals[rid] <= 1, f"{rid} ended twice"
            assert (self.finals[rid] == 1) == (self.engine.request_state(rid) is None), rid
        last = {a.request_id: a for a in got if isinstance(a, Send | Complete | Reject)}
        for rid, action in last.items():
            if isinstance(action, Send):
                assert self.engine.request_state(rid) == "inflight"
        for key, names in self.corrected.items():
            assert len(names) == len(set(names)), f"{key} corrected twice: {names}"

    def drive(self, n: int, rate: float) -> None:
        domains = sorted(self.engine.config.domains)
        now = T0
        for i in range(n):
            now += self.rng.expovariate(rate)
            self.until(now)
            rid = f"r{i}"
            self.known.add(rid)
            prompt = self.rng.choice((200, 1_500, 12_000))
            self.feed(Submit(rid, self.rng.choice(domains), now, prompt, 800))
            if i > 5 and self.rng.random() < 0.05:
                self.feed(Cancel(f"r{self.rng.randrange(i - 5, i)}", now))
        self.until(float("inf"))
        # Nothing left in flight or waiting forever: everything ended exactly once.
        assert self.engine.next_wake is None
        assert self.engine.waiting() == []
        assert all(self.finals[rid] == 1 for rid in self.known)
        assert self.engine.store_errors == self.faults

    def until(self, now: float) -> None:
        for _ in range(100_000):
            wake = self.engine.next_wake if self.engine.next_wake is not None else float("inf")
            due = self.answers[0][0] if self.answers else float("inf")
            if min(wake, due) > now or min(wake, due) == float("inf"):
                return
            if due <= wake:
                self.feed(heapq.heappop(self.answers)[2])
            else:
                self.feed(Advance(wake))
        raise AssertionError("the engine never settles down")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    fail_from=st.integers(1, 3_000),
    span=st.sampled_from([1, 1, 3, 40, 400]),
    only=st.sampled_from(["", "", "acquire", "adjust", "levels", "cooldown", "clamp"]),
    rate=st.sampled_from([5.0, 100.0, 800.0]),
)
def test_any_store_failure_keeps_the_contract(
    seed: int, fail_from: int, span: int, only: str, rate: float
) -> None:
    run = Run(ROOT / "policies" / SHIPPED[seed % 3], seed, FailingStore(fail_from, span, only))
    run.drive(150, rate)
    # Spend never shows less than what completed requests cost: nothing was given back twice.
    config = run.engine.config
    for index, budget in enumerate(config.budgets):
        if budget.period == "rolling" or budget.scope != "all":
            continue
        bucket = run.engine._budgets.bucket(index, run.now)
        spent = bucket.capacity - run.store.memory.levels([bucket], run.now)[0]
        assert spent >= run.costs - 1e-9


def test_the_failing_store_does_fail() -> None:
    # The property above is not vacuous: failures happen, and some end requests.
    run = Run(ROOT / "policies" / "clinic-merged.yaml", 3, FailingStore(200, 300))
    run.drive(400, 100.0)
    assert run.faults > 10
    assert run.engine.store_errors == run.faults
