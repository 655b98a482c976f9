"""An engine on a shared store (leasing its holds, claiming its alerts, keeping no stall marks)
decides as one on an exclusive store: the same actions but for alerts, of which it announces
no more (a threshold once per period, where one process alone may announce one again when a
settlement carries spend back across it). Its leases all end with their requests."""

from __future__ import annotations

import math
import random

import pytest

from keypolicy.core import (
    Action,
    Advance,
    Alert,
    Cancel,
    Defer,
    Engine,
    Event,
    Send,
    Settled,
    Submit,
)
from keypolicy.core.budgets import BudgetBook
from keypolicy.state import MemoryStore
from tests.state.test_engine_on_redis import CONFIGS, T0, _answer, random_step


class Pair:
    """An engine on an exclusive memory store and one on a shared one, fed the same events."""

    def __init__(self, which: int, seed: int) -> None:
        config = CONFIGS[which]
        self.shared = MemoryStore(shared=True)
        self.engines = [Engine(config, MemoryStore(), seed), Engine(config, self.shared, seed)]
        self.domains = sorted(config.domains)
        self.now = T0
        self.flying: list[Send] = []
        self.batches: list[str] = []  # handed to the Batch API, not answered yet
        self.alerts: tuple[list[Alert], list[Alert]] = ([], [])
        self.count = 0

    def feed(self, event: Event) -> None:
        alone, shared = (engine.handle(event) for engine in self.engines)
        for got, into in ((alone, self.alerts[0]), (shared, self.alerts[1])):
            into += [a for a in got if isinstance(a, Alert)]
        assert _without_alerts(shared) == _without_alerts(alone), event
        self.flying += [a for a in alone if isinstance(a, Send)]
        self.batches += [a.request_id for a in alone if isinstance(a, Defer) and a.mode == "batch"]


def _without_alerts(actions: list[Action]) -> list[Action]:
    return [a for a in actions if not isinstance(a, Alert)]


@pytest.mark.parametrize("which", range(len(CONFIGS)))
@pytest.mark.parametrize("seed", range(6))
def test_a_shared_store_changes_only_the_alerts(which: int, seed: int) -> None:
    pair = Pair(which, seed)
    rng = random.Random(seed)
    for _ in range(400):
        step = random_step(rng, (0.02, 0.2, 1.0)[seed % 3])
        kind = step[0]
        if kind == "submit":
            _, domain, prompt, out, dt = step
            pair.now += dt
            pair.count += 1
            name = pair.domains[domain % len(pair.domains)]
            pair.feed(Submit(f"r{pair.count}", name, pair.now, prompt, out))
        elif kind == "answer" and pair.flying:
            _, pick, how, dt = step
            pair.now += dt
            pair.feed(_answer(pair.flying.pop(pick % len(pair.flying)), how, pair.now))
        elif kind in ("advance", "wake", "back"):
            pair.now += step[1] if kind == "advance" else 0.0
            pair.feed(Advance(pair.now))
        elif kind == "cancel" and pair.count:
            pair.feed(Cancel(f"r{1 + step[1] % pair.count}", pair.now))
    while pair.flying or pair.batches:
        pair.now += 0.5
        if pair.flying:
            pair.feed(_answer(pair.flying.pop(), "ok", pair.now))
        else:
            pair.feed(Settled(pair.batches.pop(), pair.now, 100, 50))
    alone, shared = pair.alerts
    assert {(a.budget, a.threshold, a.at) for a in shared} <= {
        (a.budget, a.threshold, a.at) for a in alone
    }
    # Shared: a calendar budget's threshold once per period, a rolling one's once per window.
    config = CONFIGS[which]
    book = BudgetBook(config.budgets, MemoryStore())
    last: dict[tuple[str, float], float] = {}
    seen: set[tuple[str, float]] = set()
    for alert in shared:
        index = next(i for i, b in enumerate(config.budgets) if b.name == alert.budget)
        budget = config.budgets[index]
        if budget.period == "rolling":
            before = last.get((alert.budget, alert.threshold), -math.inf)
            assert alert.at >= before + budget.window_s
            last[(alert.budget, alert.threshold)] = alert.at
        else:
            period = (book.bucket(index, alert.at).name, alert.threshold)
            assert period not in seen
            seen.add(period)
    # Every hold the shared engine took was settled or given back: no lease is left open.
    assert pair.shared.reap(pair.now + 1e9, 10_000) == 0
