"""Human units: every form the language documents, and the errors for the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keypolicy.policy.units import (
    format_duration,
    parse_count,
    parse_duration,
    parse_money,
    parse_rate,
    parse_share,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5),
        ("500ms", 0.5),
        ("1m30s", 90),
        ("6h", 21600),
        ("2d", 172800),
        (12, 12),
        ("1.5s", 1.5),
        ("24h6m34s", 86794),
        ("1 min", 60),
        ("1w", 604800),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5", "five seconds", "5x", "", "-5s", True, None, [1]])
def test_bad_durations_say_what_is_expected(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@given(st.floats(min_value=0, max_value=10**7, allow_nan=False).map(lambda x: round(x, 3)))
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        (800000, 800000),
        ("800_000", 800000),
        ("800,000", 800000),
        ("800k", 800000),
        ("2M", 2_000_000),
        ("1.5k", 1500),
    ],
)
def test_counts(text: object, count: int) -> None:
    assert parse_count(text) == count


@pytest.mark.parametrize("bad", ["lots", "1.5", -3, "2G", 1.25])
def test_bad_counts(bad: object) -> None:
    with pytest.raises(ValueError, match="count"):
        parse_count(bad)


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("1200/h", 1 / 3), ("20/min", 1 / 3), ("5/s", 5), ("86.4k/day", 1), (2.5, 2.5)],
)
def test_rates(text: object, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("bad", ["1200", "1200/fortnight", "x/h", -1])
def test_bad_rates(bad: object) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(bad)


@pytest.mark.parametrize(
    ("text", "usd"), [("$20", 20), (20, 20), ("$1,500.50", 1500.5), ("0.5", 0.5)]
)
def test_money(text: object, usd: float) -> None:
    assert parse_money(text) == usd


@pytest.mark.parametrize(("text", "share"), [("20%", 0.2), (0.2, 0.2), ("100%", 1), (0, 0)])
def test_shares(text: object, share: float) -> None:
    assert parse_share(text) == pytest.approx(share)


@pytest.mark.parametrize("bad", ["120%", 1.5, "20", "x%"])
def test_bad_shares(bad: object) -> None:
    with pytest.raises(ValueError, match="share"):
        parse_share(bad)
