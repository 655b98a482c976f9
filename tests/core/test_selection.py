"""The key order of a pool: turns, and the shortcut the admission takes when every key is open."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keypolicy.core.selection import Selector


@given(
    n=st.integers(1, 8),
    strategy=st.sampled_from(("round_robin", "least_loaded")),
    picks=st.lists(st.integers(0, 7), max_size=20),
)
def test_rotated_is_the_turn_of_every_key(n: int, strategy: str, picks: list[int]) -> None:
    keys = [10 + i for i in range(n)]
    selector = Selector(strategy, keys, [1.0] * n)
    for pick in picks:
        assert selector.rotated(list(keys)) == selector.turn(list(keys))
        assert selector.rotated(list(keys)) == selector.order(list(keys), lambda _: 0.5)
        selector.chosen(keys[pick % n])


def test_rotated_needs_one_item_per_key() -> None:
    with pytest.raises(ValueError, match="one item per key"):
        Selector("round_robin", [1, 2, 3], [1.0] * 3).rotated([1, 2])
