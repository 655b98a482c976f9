"""The mission's first question in numbers: separate keys strand headroom that merged pools use.

The clinic's 07:00 x-ray worklist run (``simulations/clinic-day.yaml``) needs more gpt-4o tokens
a minute than x-ray's slice in ``clinic-separate.yaml`` (350,000 TPM), while the organization's
800,000 TPM has room. Simulated over 06:30-08:00 (seed 0): separate keys reject urgent x-ray and
treatment requests that the merged clinical pool serves, and the merged pool sends more gpt-4o
tokens in the burst minutes, which is exactly the headroom separate keys leave unused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from keypolicy.policy import load_policy
from keypolicy.sim.run import simulate_policy
from keypolicy.sim.traffic import Arrival, Traffic, load_traffic

ROOT = Path(__file__).parents[2]
BURST = range(7 * 60, 7 * 60 + 10)  # minutes of the day: the worklist run, 07:00-07:10


@dataclass
class Window:
    """The arrivals of ``inner`` between ``t0`` and ``t1`` seconds, at their own times."""

    inner: Traffic
    t0: float
    t1: float
    name: str = "clinic-morning"
    description: str = "the clinic day, 06:30-08:00"

    @property
    def start(self) -> datetime:
        return self.inner.start

    @property
    def duration_s(self) -> float:
        return self.t1

    def arrivals(self, seed: int) -> Iterator[Arrival]:
        return (a for a in self.inner.arrivals(seed) if self.t0 <= a.time < self.t1)

    def domains(self) -> set[str]:
        return self.inner.domains()


@pytest.fixture(scope="module")
def morning() -> dict[str, dict[str, Any]]:
    window = Window(load_traffic(ROOT / "simulations" / "clinic-day.yaml"), 6.5 * 3600, 8 * 3600)
    return {
        variant: simulate_policy(
            load_policy(ROOT / "policies" / f"clinic-{variant}.yaml").policy,
            window,
            [0],
            extra_s=3600,
        )
        for variant in ("separate", "merged")
    }


def _gpt4o_tokens_in_burst(result: dict[str, Any]) -> float:
    tokens = result["series"]["admitted_tokens"]
    return float(sum(v[m] for k, v in tokens.items() if k.endswith("/gpt-4o") for m in BURST))


def test_separate_keys_reject_what_merged_pools_serve(morning: dict[str, dict[str, Any]]) -> None:
    separate, merged = morning["separate"]["domains"], morning["merged"]["domains"]
    assert separate["xray"]["requests"] == merged["xray"]["requests"] > 900  # same arrivals
    assert separate["xray"]["rejected"] >= 100
    assert separate["treatment"]["rejected"] > 0
    assert merged["xray"]["rejected"] == merged["treatment"]["rejected"] == 0
    assert morning["merged"]["totals"]["rejected"] == 0


def test_merged_pool_uses_the_headroom_separate_keys_strand(
    morning: dict[str, dict[str, Any]],
) -> None:
    separate = _gpt4o_tokens_in_burst(morning["separate"])
    merged = _gpt4o_tokens_in_burst(morning["merged"])
    # Seed 0: about 6.6M tokens admitted with separate keys, 8.3M with the merged pool.
    assert merged > 1.2 * separate  # at least a fifth more of the organization's gpt-4o used
