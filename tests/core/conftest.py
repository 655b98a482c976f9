"""Helpers for driving the engine by hand on a fake clock (a float we advance ourselves)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from keypolicy.core import Action, Advance, Engine, Event, Send, Settled, Submit
from keypolicy.policy import load_policy_text
from keypolicy.policy.compile import compile_policy
from keypolicy.state import MemoryStore

T0 = 1_795_000_000.0  # 2026-11-18 UTC; any fixed epoch does

SMALL = """\
version: 1
name: small
timezone: UTC
projects:
  p: {models: {gpt-4o-mini: {rpm: 60, tpm: 6000}}}
  q: {models: {gpt-4o-mini: {rpm: 60, tpm: 6000}}}
keys:
  k1: {project: p, env: K1}
  k2: {project: p, env: K2}
  k3: {project: q, env: K3}
pools:
  one: {keys: [k1]}
  both: {keys: [k1, k3]}
priorities:
  - {name: high, reserve: 50%, max_wait: 10s}
  - {name: low, max_wait: 60s, deferrable: true}
domains:
  urgent: {pool: one, priority: high, model: gpt-4o-mini}
  routine: {pool: one, priority: low, model: gpt-4o-mini}
  spread: {pool: both, priority: high, model: gpt-4o-mini}
"""


def engine_for(text: str, seed: int = 0) -> Engine:
    """An engine for a policy given as YAML text, on a fresh memory store."""
    return Engine(compile_policy(load_policy_text(text, "test.yaml").policy), MemoryStore(), seed)


@dataclass
class Driver:
    """Feeds an engine on a fake clock and keeps every action it returned."""

    engine: Engine
    now: float = T0
    actions: list[Action] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**9)))

    def feed(self, event: Event) -> list[Action]:
        got = self.engine.handle(event)
        self.actions += got
        return got

    def submit(
        self, domain: str, prompt: int = 100, out: int = 100, **kw: object
    ) -> tuple[str, list[Action]]:
        rid = kw.pop("request_id", None) or f"r{next(self._ids)}"
        event = Submit(
            str(rid), domain, self.now, prompt_tokens=prompt, max_output_tokens=out, **kw
        )  # type: ignore[arg-type]
        return str(rid), self.feed(event)

    def settle(
        self, rid: str, prompt: int = 100, completion: int = 100, **kw: object
    ) -> list[Action]:
        return self.feed(Settled(rid, self.now, prompt, completion, **kw))  # type: ignore[arg-type]

    def advance(self, seconds: float) -> list[Action]:
        self.now += seconds
        return self.feed(Advance(self.now))

    def sends(self) -> list[Send]:
        return [a for a in self.actions if isinstance(a, Send)]


@pytest.fixture
def small() -> Driver:
    return Driver(engine_for(SMALL))
