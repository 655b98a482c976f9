"""The simulator's aggregates: percentiles over compactly kept waits."""

from __future__ import annotations

import math
from array import array

from hypothesis import given
from hypothesis import strategies as st

from keypolicy.sim.metrics import percentile


def _reference(values: list[float], q: float) -> float:
    """Linear interpolation over the sorted values, as a textbook writes it."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@given(
    st.lists(st.floats(min_value=1e-9, max_value=1e6), max_size=60),
    st.integers(min_value=0, max_value=60),
    st.sampled_from([0.0, 0.5, 0.95, 0.99, 1.0]),
)
def test_zero_waits_kept_as_a_count_give_the_same_percentiles(
    nonzero: list[float], zeros: int, q: float
) -> None:
    expected = _reference(nonzero + [0.0] * zeros, q)
    assert percentile(array("d", nonzero), q, zeros) == expected


def test_no_values_at_all() -> None:
    assert percentile(array("d"), 0.99) == 0.0
    assert percentile(array("d"), 0.99, zeros=3) == 0.0
