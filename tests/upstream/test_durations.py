"""Go duration strings as OpenAI writes them."""

from __future__ import annotations

import math

import pytest

from keypolicy.upstream import go_duration, milliseconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (-1.0, "0s"),
        (0.0843, "84ms"),
        (0.002, "2ms"),
        (0.0001, "1ms"),
        (0.9995, "1s"),
        (1.5, "1.5s"),
        (8.64, "8.64s"),
        (17.28, "17.28s"),
        (86.4, "1m26.4s"),
        (360.0, "6m0s"),
        (86794.0, "24h6m34s"),
        (3600.0, "1h0m0s"),
        (59.9999, "1m0s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_rounding_is_to_the_nearest_millisecond() -> None:
    assert milliseconds(0.0844) == 84
    assert milliseconds(0.0845) == 85
    assert milliseconds(0.084 * 1) == 84  # float noise (84.00000000000001) is not a millisecond


def test_infinite_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="infinite"):
        go_duration(math.inf)
