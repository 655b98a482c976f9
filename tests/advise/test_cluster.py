"""Runs on a Dask cluster (a local one, started here, on loopback) give what runs here give:
``simulate --runs`` and ``compare`` through ``simulate_variants``, and the advisor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keypolicy.advise import Settings, advise
from keypolicy.policy import load_policy
from keypolicy.sim.cluster import InlineExecutor, open_executor
from keypolicy.sim.run import simulate_variants
from keypolicy.sim.traffic import load_traffic
from tests.commands import run_keypolicy

distributed = pytest.importorskip("distributed")

DATA = Path(__file__).parent / "data"
POLICIES = Path(__file__).parents[2] / "policies"


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """Two worker processes of one thread each, on 127.0.0.1, no dashboard; closed after."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address


def _without_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_clock(v) for k, v in value.items() if k != "generated"}
    if isinstance(value, list):
        return [_without_clock(v) for v in value]
    return value


def test_variants_on_the_cluster_equal_those_run_here(scheduler: str) -> None:
    policies = [load_policy(DATA / "mini.yaml").policy]
    merged = policies[0].model_copy(update={"name": "mini-again"})
    traffic = load_traffic(DATA / "mini-day.yaml")
    here_records: list[Any] = []
    there_records: list[Any] = []
    here = simulate_variants(
        [*policies, merged], traffic, [3, 4], jobs=1, on_record=here_records.append
    )
    there = simulate_variants(
        [*policies, merged], traffic, [3, 4], cluster=scheduler, on_record=there_records.append
    )
    assert _without_clock(there) == _without_clock(here)
    assert there_records == here_records  # the first run's records, written here as always


def test_the_advisor_on_the_cluster_equals_the_advisor_here(scheduler: str) -> None:
    policy = load_policy(DATA / "mini.yaml").policy
    traffic = load_traffic(DATA / "mini-day.yaml")
    rules = Settings(headroom=True, headroom_steps=2)
    here = advise(policy, traffic, [0, 1], InlineExecutor(), rules)
    with open_executor(cluster=scheduler) as executor:
        there = advise(policy, traffic, [0, 1], executor, rules)
    assert there.front == here.front
    assert there.scores == here.scores
    assert there.screened == here.screened
    assert there.headroom == here.headroom


def test_simulate_runs_on_the_cluster_from_the_command_line(scheduler: str, tmp_path: Path) -> None:
    args = [DATA / "mini.yaml", "--traffic", DATA / "mini-day.yaml", "--runs", "2"]
    here = run_keypolicy("simulate", *args, "--jobs", "1", "--json", tmp_path / "here.json")
    there = run_keypolicy(
        "simulate", *args, "--cluster", scheduler, "--json", tmp_path / "there.json"
    )
    assert here.returncode == there.returncode == 0, there.stderr
    import json

    assert _without_clock(json.loads((tmp_path / "there.json").read_text())) == _without_clock(
        json.loads((tmp_path / "here.json").read_text())
    )
