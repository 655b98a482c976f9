"""How many store calls an admission makes: on a shared store (a round trip each, on Redis) a
head's cooldowns are read in one call, whatever the number of keys it may take; on an exclusive
store one call per name (cheaper in process); the decisions are the same either way."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from keypolicy.core import Action, Engine, Send, Submit
from keypolicy.core.store import BucketRef, Store
from keypolicy.policy import load_policy_text
from keypolicy.policy.compile import compile_policy
from keypolicy.state import MemoryStore
from tests.core.conftest import SMALL, T0


class Counting(Store):
    """The memory store (shared or not), counting the calls made of it by method."""

    def __init__(self, shared: bool) -> None:
        self.memory = MemoryStore(shared=shared)
        self.calls: Counter[str] = Counter()

    def acquire(
        self,
        buckets: Sequence[BucketRef],
        amounts: Sequence[float],
        floors: Sequence[float],
        now: float,
    ) -> float:
        self.calls["acquire"] += 1
        return self.memory.acquire(buckets, amounts, floors, now)

    def adjust(self, bucket: BucketRef, delta: float, now: float) -> float:
        self.calls["adjust"] += 1
        return self.memory.adjust(bucket, delta, now)

    def clamp(self, bucket: BucketRef, level: float, now: float) -> None:
        self.calls["clamp"] += 1
        self.memory.clamp(bucket, level, now)

    def levels(self, buckets: Sequence[BucketRef], now: float) -> list[float]:
        self.calls["levels"] += 1
        return self.memory.levels(buckets, now)

    def set_cooldown(self, name: str, until: float) -> None:
        self.calls["set_cooldown"] += 1
        self.memory.set_cooldown(name, until)

    def cooldown(self, name: str) -> float:
        self.calls["cooldown"] += 1
        return self.memory.cooldown(name)

    def cooldowns(self, names: Sequence[str]) -> list[float]:
        self.calls["cooldowns"] += 1
        return self.memory.cooldowns(names)

    def exclusive(self) -> bool:
        return self.memory.exclusive()


def _engine(store: Store) -> Engine:
    return Engine(compile_policy(load_policy_text(SMALL, "small.yaml").policy), store, 0)


def _admit(store: Counting) -> tuple[list[Action], Counter[str]]:
    engine = _engine(store)
    actions: list[Action] = []
    for i, domain in enumerate(["spread", "urgent", "spread", "routine"]):
        actions += engine.handle(Submit(f"r{i}", domain, T0 + i, 100, 50))
    return actions, store.calls


def test_a_shared_store_reads_a_heads_cooldowns_in_one_call() -> None:
    store = Counting(shared=True)
    actions, calls = _admit(store)
    assert sum(isinstance(a, Send) for a in actions) == 4
    # One cooldowns call and one acquire per admission; no cooldown read one by one.
    assert calls["cooldowns"] == 4
    assert calls["cooldown"] == 0
    assert calls["acquire"] == 4


def test_an_exclusive_store_reads_them_by_name_and_decides_alike() -> None:
    shared_actions, _ = _admit(Counting(shared=True))
    actions, calls = _admit(Counting(shared=False))
    assert calls["cooldowns"] == 0
    assert calls["cooldown"] == 2 * (2 + 1 + 2 + 1)  # a key's and its project's, per route
    assert actions == shared_actions


def test_a_rested_key_is_seen_through_the_batched_read() -> None:
    # Pool "both" (k1 on project p, k3 on project q): with k1's project resting, a shared
    # store's one read must send the request on k3, as the exclusive store's reads do.
    for shared in (True, False):
        store = Counting(shared=shared)
        engine = _engine(store)
        store.set_cooldown("project:p/gpt-4o-mini", T0 + 60)
        actions = engine.handle(Submit("r", "spread", T0, 100, 50))
        (send,) = [a for a in actions if isinstance(a, Send)]
        assert send.key == "k3"
