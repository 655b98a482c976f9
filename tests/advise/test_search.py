"""The search: the screened front is the exhaustive one, the front is a Pareto front, the
current grouping is placed, and headroom is found for the front."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keypolicy.advise import Advice, Constraints, Settings, advise
from keypolicy.advise.pareto import dominates, front
from keypolicy.policy import load_policy
from keypolicy.sim.cluster import InlineExecutor
from keypolicy.sim.traffic import load_traffic

DATA = Path(__file__).parent / "data"


def _advise(**settings: object) -> Advice:
    policy = load_policy(DATA / "mini.yaml").policy
    traffic = load_traffic(DATA / "mini-day.yaml")
    return advise(policy, traffic, [0, 1], InlineExecutor(), Settings(**settings))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def screened() -> Advice:
    return _advise(headroom=True, headroom_steps=3)


@pytest.fixture(scope="module")
def exhaustive() -> Advice:
    return _advise(screen=False, headroom=False)


def test_the_screened_front_is_the_exhaustive_front(screened: Advice, exhaustive: Advice) -> None:
    assert screened.front == exhaustive.front
    for i in screened.front:
        assert screened.scores[i] == exhaustive.scores[i]  # the same runs, number for number
    assert screened.screen is not None
    assert screened.screen.components == 2  # gpt-4o and gpt-4o-mini domains
    assert screened.screen.pools == 4  # each component's two groupings
    assert screened.screen.simulated + screened.screen.dropped == 15


def test_the_front_is_what_nobody_dominates(exhaustive: Advice) -> None:
    objectives = exhaustive.settings.objectives
    grids = {i: objectives.grid(s) for i, s in exhaustive.scores.items()}
    assert len(grids) == 15
    for i in exhaustive.front:
        assert not any(dominates(grids[j], grids[i]) for j in grids)
    for i in set(grids) - set(exhaustive.front):
        assert any(dominates(grids[j], grids[i]) for j in exhaustive.front)


def test_the_ranking_puts_critical_safety_first(exhaustive: Advice) -> None:
    critical = [exhaustive.scores[i].mean("critical") for i in exhaustive.front]
    assert critical[0] == min(critical)
    best = exhaustive.best
    assert {"diagnosis", "xray"} <= next(p for p in best.grouping if "xray" in p)


def test_the_current_grouping_is_scored_and_the_front_has_headroom(screened: Advice) -> None:
    assert screened.current in screened.scores
    assert screened.candidates[screened.current].is_base
    for i in [*screened.front, screened.current]:
        room = screened.headroom[i]
        assert room.critical == ("critical",)
        assert room.simulations <= 2 * 3 * 2


def test_constraints_shape_the_search() -> None:
    apart = _advise(
        screen=False,
        headroom=False,
        constraints=Constraints(apart=(frozenset({"diagnosis", "xray"}),)),
    )
    assert len(apart.candidates) == 15 - 5  # less the groupings with diagnosis and xray together
    for c in apart.candidates:
        assert not any({"diagnosis", "xray"} <= pool for pool in c.grouping)
    assert all(i in apart.scores for i in apart.front)


@given(st.dictionaries(st.integers(0, 30), st.tuples(*[st.integers(0, 4)] * 3), min_size=1))
def test_front_is_a_pareto_front(grids: dict[int, tuple[int, ...]]) -> None:
    members = front(grids)
    assert members
    for i in members:
        assert not any(dominates(g, grids[i]) for g in grids.values())
    for i in set(grids) - set(members):
        assert any(dominates(grids[j], grids[i]) for j in members)


class _CtrlC(InlineExecutor):
    """Ctrl-C pressed while the fifth run is being simulated."""

    def __init__(self) -> None:
        self.calls = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 5:
            raise KeyboardInterrupt
        return super().submit(fn, *args, **kwargs)


def test_ctrl_c_stops_the_search() -> None:
    policy = load_policy(DATA / "mini.yaml").policy
    traffic = load_traffic(DATA / "mini-day.yaml")
    executor = _CtrlC()
    with pytest.raises(KeyboardInterrupt):
        advise(policy, traffic, [0, 1], executor, Settings())
    assert executor.calls == 5  # nothing more was started


def test_headroom_found_on_the_critical_part_is_the_whole_candidates(screened: Advice) -> None:
    from keypolicy.sim.headroom import headroom

    best = screened.best
    traffic = load_traffic(DATA / "mini-day.yaml")
    whole = headroom(best.policy, traffic, [0, 1], precision=0.1, max_steps=3, max_growth=4.0)
    part = screened.headroom[best.index]
    assert (part.growth, part.growth_fails_at) == (whole.growth, whole.growth_fails_at)
    assert (part.limits, part.limits_fail_at) == (whole.limits, whole.limits_fail_at)
