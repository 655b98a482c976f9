"""Groupings: every set partition once, constraints honoured, bad constraints refused."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keypolicy.advise.partitions import (
    ConstraintError,
    Constraints,
    bell,
    count_groupings,
    groupings,
)

NAMES = [f"d{i}" for i in range(6)]


def _all_partitions(items: list[str]) -> list[frozenset[frozenset[str]]]:
    """Every set partition, the slow obvious way (a reference)."""
    if not items:
        return [frozenset()]
    first, rest = items[0], items[1:]
    out = []
    for smaller in _all_partitions(rest):
        out.append(smaller | {frozenset([first])})
        for block in smaller:
            out.append((smaller - {block}) | {block | {first}})
    return out


@pytest.mark.parametrize("n", range(1, 8))
def test_unconstrained_groupings_are_the_bell_numbers(n: int) -> None:
    names = NAMES[:n] if n <= 6 else [*NAMES, "d6"]
    found = list(groupings(names))
    assert len(found) == bell(n) == [1, 2, 5, 15, 52, 203, 877][n - 1]
    assert len({frozenset(g) for g in found}) == len(found)  # each once


def test_six_domains_make_203_and_the_first_keeps_each_alone() -> None:
    found = list(groupings(NAMES))
    assert len(found) == 203
    assert found[0] == tuple(frozenset([d]) for d in NAMES)


groups = st.lists(st.lists(st.sampled_from(NAMES), min_size=2, max_size=3, unique=True), max_size=2)


@given(apart=groups, together=groups, max_pools=st.none() | st.integers(1, 6))
def test_groupings_are_exactly_the_partitions_that_honour_the_constraints(
    apart: list[list[str]], together: list[list[str]], max_pools: int | None
) -> None:
    rules = Constraints(
        tuple(frozenset(a) for a in apart), tuple(frozenset(t) for t in together), max_pools
    )
    try:
        rules.check(NAMES)
    except ConstraintError:
        return  # contradictory: refused before any enumeration (tested below)
    found = [frozenset(g) for g in groupings(NAMES, rules)]
    expected = [p for p in _all_partitions(NAMES) if rules.allows(tuple(p))]
    assert sorted(map(sorted_blocks, found)) == sorted(map(sorted_blocks, expected))
    assert count_groupings(NAMES, rules) == len(expected)
    for grouping in found:
        assert sorted(itertools.chain.from_iterable(grouping)) == sorted(NAMES)


def sorted_blocks(p: frozenset[frozenset[str]]) -> list[list[str]]:
    return sorted(sorted(b) for b in p)


def test_bad_constraints_say_what_is_wrong() -> None:
    with pytest.raises(ConstraintError, match="unknown domain nope"):
        Constraints(apart=(frozenset({"d0", "nope"}),)).check(NAMES)
    with pytest.raises(ConstraintError, match="contradicts --together"):
        Constraints(apart=(frozenset({"d0", "d1"}),), together=(frozenset({"d0", "d1"}),)).check(
            NAMES
        )
    with pytest.raises(ConstraintError, match="contradicts --together"):  # transitively
        Constraints(
            apart=(frozenset({"d0", "d2"}),),
            together=(frozenset({"d0", "d1"}), frozenset({"d1", "d2"})),
        ).check(NAMES)
    with pytest.raises(ConstraintError, match="at least 3 pools"):
        Constraints(apart=(frozenset({"d0", "d1", "d2"}),), max_pools=2).check(NAMES)


def test_counting_stops_past_a_cap() -> None:
    assert count_groupings(NAMES, stop_at=10) == 11
