"""The simulator's way of driving the model: SimPy virtual time, no wall clock."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from keypolicy.upstream import LatencySettings
from tests.upstream.conftest import T0, provider, req


def simulate(seed: int) -> list[tuple[str, float]]:
    """Forty requests a quarter second apart through a 30,000 TPM project, with real latency."""
    env = simpy.Environment(initial_time=T0)
    model = provider(seed, latency=LatencySettings())
    seen: list[tuple[str, float]] = []

    def client(i: int) -> Generator[Any, Any, None]:
        yield env.timeout(i * 0.25)
        out = model.submit(req("gpt-4o", "beta", prompt=1000, max_output=2000), env.now)
        yield env.timeout(out.timing.total)
        if out.ticket is not None:
            model.settle(out.ticket, env.now)
        seen.append((out.kind, round(env.now - T0, 6)))

    for i in range(40):
        env.process(client(i))
    env.run()
    assert model.open_tickets == 0
    return seen


def test_simpy_drives_the_model_in_virtual_time() -> None:
    seen = simulate(1)
    kinds = [kind for kind, _ in seen]
    assert kinds.count("ok") >= 10
    assert "rate_limited" in kinds  # 3,000 tokens charged each, 30,000 a minute
    assert max(at for _, at in seen) > 9.75  # later than the last arrival: latency counted
    assert simulate(1) == seen
    assert simulate(2) != seen
