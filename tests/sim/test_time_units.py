"""The unit of numeric timestamps comes from the whole column: right, or an error saying why."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keypolicy.sim.time_units import RELATIVE_SPAN_S, TimeUnitError, decide_unit
from tests.commands import run_keypolicy

ROOT = Path(__file__).parents[2]
EPOCHS = st.floats(min_value=1.0e9, max_value=4.0e9)  # 2001 to 2096, in seconds
SPANS = st.floats(min_value=0.0, max_value=365 * 86400.0)
OFFSETS = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30)


def _column(start: float, span: float, offsets: list[float], scale: float) -> list[str]:
    return [repr((start + span * f) * scale) for f in offsets]


@given(start=EPOCHS, span=SPANS, offsets=OFFSETS)
def test_epoch_seconds_and_milliseconds_come_back_as_such(
    start: float, span: float, offsets: list[float]
) -> None:
    assert decide_unit(_column(start, span, offsets, 1.0), "t") == "seconds"
    assert decide_unit(_column(start, span, offsets, 1000.0), "t") == "milliseconds"


@given(
    span=st.floats(min_value=0.0, max_value=86400.0 * 10),  # below epoch seconds in either unit
    offsets=OFFSETS,
    unit=st.sampled_from(["seconds", "milliseconds"]),
)
def test_counts_from_the_start_come_back_right_or_ask(
    span: float, offsets: list[float], unit: str
) -> None:
    scale = 1000.0 if unit == "milliseconds" else 1.0
    values = _column(0.0, span, [0.0, *offsets], scale)
    as_seconds = max(map(float, values)) - min(map(float, values))
    if as_seconds > RELATIVE_SPAN_S:
        with pytest.raises(TimeUnitError, match=r"as seconds they span .* as milliseconds"):
            decide_unit(values, "t")
    elif unit == "seconds" or as_seconds / 1000 < 600:
        # Seconds are right; milliseconds over less than ten minutes cannot be told apart.
        assert decide_unit(values, "t") == "seconds"


@given(start=EPOCHS, offsets=OFFSETS)
def test_a_placeholder_among_epoch_times_is_an_error(start: float, offsets: list[float]) -> None:
    values = ["0", *_column(start, 3600.0, offsets, 1.0)]
    with pytest.raises(TimeUnitError, match="placeholder"):
        decide_unit(values, "t")


def test_dates_and_years_long_spans() -> None:
    assert decide_unit(["2023-11-16 18:17:03.97", "", None], "t") == "datetime"
    with pytest.raises(TimeUnitError, match="span 2 years"):
        decide_unit(["1795000000", str(1795000000 + 2 * 365.25 * 86400)], "t")
    with pytest.raises(TimeUnitError, match="microseconds"):
        decide_unit(["1795000000000000"], "t")


def test_the_command_line_asks_for_the_unit_and_takes_it(tmp_path: Path) -> None:
    trace = tmp_path / "ms.csv"  # one hour, in milliseconds from the start
    trace.write_text(
        "ts,prompt_tokens,completion_tokens\n"
        + "".join(f"{i * 1200},100,20\n" for i in range(3000))
    )
    policy = ROOT / "policies" / "clinic-merged.yaml"
    args = ("simulate", policy, "--trace", trace, "--domain", "chat", "--column", "timestamp=ts")
    asked = run_keypolicy(*args)
    assert asked.returncode == 2
    assert "as seconds they span 41.7 days, as milliseconds 60 min" in asked.stderr
    assert "--time-unit" in asked.stderr
    taken = run_keypolicy(*args, "--time-unit", "milliseconds")
    assert taken.returncode == 0, taken.stderr
    assert "1.0h simulated" in taken.stderr
