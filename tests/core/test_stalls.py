"""A queued request found blocked is not tried again until something could let it through (the
engine's stall marks, used with a store only it changes). That must change no decision: the
same events through an engine that tries every head every time give the very same actions."""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keypolicy.core import Action, Advance, Engine, Event, Failed, Send, Settled, Submit
from keypolicy.core.store import BucketRef, Store
from keypolicy.policy import load_policy
from keypolicy.policy.compile import compile_policy
from keypolicy.state import MemoryStore

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_795_000_000.0


class SharedMemory(Store):
    """The memory store, as if other replicas shared it: the engine keeps no stall marks. (A
    store in plain Python, as anyone may write one.)"""

    def __init__(self) -> None:
        self.memory = MemoryStore()

    def acquire(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
    ) -> float:
        return self.memory.acquire(buckets, amounts, floors, now)

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


def _drive(
    policy: str, seed: int, store: Store, rate: float, n: int, saved: list[int] | None = None
) -> list[Action]:
    """A congested stream: submits over every domain, answers after a few seconds (some of them
    429s with reset headers), wake-ups when the engine asks. Every action, in order."""
    engine = Engine(compile_policy(load_policy(ROOT / "policies" / policy).policy), store, seed)
    domains = sorted(engine.config.domains)
    rng = random.Random(seed)
    answers: list[tuple[float, int, Event]] = []
    actions: list[Action] = []
    now, seq = T0, 0

    def feed(event: Event) -> None:
        nonlocal seq
        for action in engine.handle(event):
            actions.append(action)
            if isinstance(action, Send):
                seq += 1
                at = event.now + rng.uniform(0.2, 6.0)
                answer: Event
                if rng.random() < 0.05:
                    headers = {"x-ratelimit-reset-tokens": "1.5s", "retry-after-ms": "1500"}
                    answer = Failed(action.request_id, at, 429, headers, None, action.attempt)
                else:
                    used = rng.randint(20, 900)
                    answer = Settled(action.request_id, at, used, used // 3, 0, {}, action.attempt)
                heapq.heappush(answers, (at, seq, answer))

    for i in range(n):
        now += rng.expovariate(rate)
        while True:
            wake = engine.next_wake if engine.next_wake is not None else float("inf")
            due = answers[0][0] if answers else float("inf")
            if min(wake, due) > now:
                break
            if due <= wake:
                feed(heapq.heappop(answers)[2])
            else:
                feed(Advance(wake))
        prompt = rng.choice((200, 1_500, 12_000, 60_000))
        feed(Submit(f"r{i}", rng.choice(domains), now, prompt, rng.choice((100, 800, 4_000))))
    if saved is not None:
        saved.append(engine.retries_saved)
    return actions


@pytest.mark.parametrize("policy", ["clinic-separate.yaml", "clinic-merged.yaml"])
def test_stall_marks_change_no_decision_under_heavy_load(policy: str) -> None:
    saved: list[int] = []
    marked = _drive(policy, 7, MemoryStore(), rate=400.0, n=4_000, saved=saved)
    tried = _drive(policy, 7, SharedMemory(), rate=400.0, n=4_000, saved=saved)
    assert sum(isinstance(a, Send) for a in marked) > 400  # enough went out, and much queued
    assert saved[0] > 1_000  # the marks were used, many times
    assert saved[1] == 0  # a shared store: every head tried every time
    assert marked == tried


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), rate=st.sampled_from([5.0, 60.0, 300.0, 1_500.0]))
def test_stall_marks_change_no_decision(seed: int, rate: float) -> None:
    policy = ("clinic-separate.yaml", "clinic-merged.yaml", "clinic-single.yaml")[seed % 3]
    assert _drive(policy, seed, MemoryStore(), rate, 600) == _drive(
        policy, seed, SharedMemory(), rate, 600
    )
