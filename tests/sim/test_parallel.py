"""Runs in several processes: the same results as in one, and Ctrl-C still ends them cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from keypolicy.policy import load_policy
from keypolicy.records import UsageRecord
from keypolicy.sim.run import simulate_variants
from keypolicy.sim.traffic import Arrival, Traffic, load_traffic
from tests.sim.test_cli import POLICIES, SMALL


def _without_clock(value: Any) -> Any:
    """A result without the wall-clock time it was generated at."""
    if isinstance(value, dict):
        return {k: _without_clock(v) for k, v in value.items() if k != "generated"}
    if isinstance(value, list):
        return [_without_clock(v) for v in value]
    return value


@pytest.fixture
def tiny(tmp_path: Path) -> Traffic:
    path = tmp_path / "tiny.yaml"
    path.write_text(SMALL)
    return load_traffic(path)


def test_worker_processes_give_the_same_results_and_records(tiny: Traffic) -> None:
    policies = [load_policy(p).policy for p in POLICIES]
    alone: list[UsageRecord] = []
    together: list[UsageRecord] = []
    one = simulate_variants(policies, tiny, [5, 6], jobs=1, on_record=alone.append)
    seen: set[tuple[int, int]] = set()
    three = simulate_variants(
        policies,
        tiny,
        [5, 6],
        jobs=3,
        on_record=together.append,
        on_progress=lambda p, r, _now: seen.add((p, r)),
    )
    assert list(three) == [p.name for p in policies]
    assert _without_clock(three) == _without_clock(one)
    assert alone
    assert together == alone  # the first policy's first run, written here
    assert seen == {(p, r) for p in range(3) for r in range(2)}  # workers report progress


def test_ctrl_c_ends_every_run_and_keeps_what_was_simulated(tiny: Traffic) -> None:
    policies = [load_policy(p).policy for p in POLICIES[:2]]

    def interrupt(p: int, _r: int, now: float) -> None:
        if p == 0 and now > 1800:  # half an hour into the first run, here
            raise KeyboardInterrupt

    results = simulate_variants(policies, tiny, [1], jobs=2, on_progress=interrupt)
    assert results["clinic-separate"]["partial"]
    assert 0 < results["clinic-separate"]["totals"]["requests"] < 900
    # The other run, in a worker, stopped early too (or never started): never a full run.
    other = results.get("clinic-merged")
    assert other is None or other["partial"]


@dataclass
class Faulty:
    """Traffic whose arrivals fail for one seed: a bug in a worker's run."""

    inner: Traffic
    bad_seed: int

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # pickling looks up special names: not the inner traffic's
            raise AttributeError(name)
        return getattr(self.inner, name)

    def arrivals(self, seed: int) -> Iterator[Arrival]:
        if seed == self.bad_seed:
            raise ValueError(f"a bug in the traffic for seed {seed}")
        return self.inner.arrivals(seed)


def test_a_failing_worker_run_is_reported_not_hung_on(tiny: Traffic) -> None:
    policies = [load_policy(POLICIES[1]).policy]
    faulty = cast(Traffic, Faulty(tiny, bad_seed=3))
    with pytest.raises(ValueError, match="a bug in the traffic for seed 3"):
        simulate_variants(policies, faulty, [1, 2, 3, 4], jobs=3)
