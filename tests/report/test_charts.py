"""Charts a non-engineer reads: fixed colour-blind-safe colours, limits in a hue no series
uses, used tokens apart from reservations, rows that line up, flat rows said in a sentence,
a tooltip on every chart."""

from __future__ import annotations

import itertools
import re
from typing import Any

from keypolicy.policy.model import Policy
from keypolicy.report.layout import Context
from keypolicy.report.palette import LIMIT, OKABE_ITO, SHARE, class_colors, domain_colors
from keypolicy.report.render import figures, render_html
from tests.report.builders import clinic_like

# Machado, Oliveira & Fernandes (2009), severity 1.0: how the colours look to a reader with
# deuteranopia or protanopia (applied to sRGB values, which is close enough for this test).
DEUTERANOPIA = ((0.367, 0.861, -0.228), (0.280, 0.673, 0.047), (-0.012, 0.043, 0.969))
PROTANOPIA = ((0.152, 1.053, -0.205), (0.115, 0.786, 0.099), (-0.004, -0.048, 1.052))


def _rgb(color: str) -> tuple[float, float, float]:
    return (int(color[1:3], 16) / 255, int(color[3:5], 16) / 255, int(color[5:7], 16) / 255)


def _seen(color: str, matrix: tuple[tuple[float, float, float], ...]) -> tuple[float, ...]:
    rgb = _rgb(color)
    return tuple(
        min(max(sum(m * c for m, c in zip(row, rgb, strict=True)), 0), 1) for row in matrix
    )


def _distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5


def _results(clinic: dict[str, Policy]) -> dict[str, dict[str, Any]]:
    return {name: clinic_like(p, seed) for seed, (name, p) in enumerate(clinic.items())}


def test_six_domains_stay_apart_for_red_green_colour_blind_readers(
    clinic: dict[str, Policy],
) -> None:
    colors = list(domain_colors(_results(clinic)).values())
    assert len(colors) == len(set(colors)) == 6
    for matrix in (DEUTERANOPIA, PROTANOPIA):
        seen = [_seen(c, matrix) for c in colors]
        closest = min(_distance(a, b) for a, b in itertools.combinations(seen, 2))
        assert closest > 0.1, (matrix, closest)


def test_limit_lines_take_a_hue_no_series_uses(clinic: dict[str, Policy]) -> None:
    html = render_html(_results(clinic), clinic)
    limits = set(re.findall(r'<line class="limit"[^>]*stroke="([^"]+)"', html))
    series = set(re.findall(r'<polyline class="line[^"]*" stroke="([^"]+)"', html))
    series |= set(re.findall(r'<rect x=[^>]*fill="([^"]+)"', html))
    assert limits <= {LIMIT, SHARE}  # limits black, a longer budget's daily share grey
    assert not limits & series
    assert LIMIT not in OKABE_ITO


def test_a_class_keeps_its_colour_in_every_figure(clinic: dict[str, Policy]) -> None:
    ctx = Context(_results(clinic), clinic)
    assert ctx.class_colors == class_colors(["critical", "clinical", "interactive", "background"])
    legends = {
        f.key: dict(f.legend)
        for f in figures(_results(clinic), clinic)
        if f.key in ("waits", "queues")
    }
    assert legends["waits"] == legends["queues"] == ctx.class_colors


def test_demand_rows_line_up_by_model_with_used_and_reserved_tokens_apart(
    clinic: dict[str, Policy],
) -> None:
    demand = next(f for f in figures(_results(clinic), clinic) if f.key == "demand")
    assert [[p.caption if p else None for p in row] for row in demand.rows] == [
        ["gpt-4o", "gpt-4o", "gpt-4o"],
        ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini"],
    ]
    separate = demand.rows[0][0]
    assert separate is not None
    assert [label for label, _ in separate.legend] == ["diagnosis", "treatment", "xray"]
    assert "tokens used" in demand.explain
    assert "reserved at admission" in demand.explain
    assert "estimated" in demand.explain  # the summary holds no per-minute use: said so
    svg = str(separate.svg)
    assert svg.count('class="line"') == 3  # used, solid
    assert svg.count('class="line thin" stroke') == 3  # reserved, dashed


def test_rows_where_nothing_waited_are_one_sentence(clinic: dict[str, Policy]) -> None:
    results = _results(clinic)
    for result in results.values():
        result["series"]["max_wait_s"]["interactive"] = [0.0] * result["series"]["minutes"]
    waits = next(f for f in figures(results, clinic) if f.key == "waits")
    assert waits.notes == ["No interactive request waited in any option: nothing to draw."]
    assert [row[0].caption for row in waits.rows if row[0]] == [
        "critical",
        "clinical",
        "background",
    ]
    for result in results.values():
        for values in result["series"]["max_wait_s"].values():
            values[:] = [0.0] * len(values)
    waits = next(f for f in figures(results, clinic) if f.key == "waits")
    assert waits.rows == []
    assert waits.message == "No request waited in any option."


def test_every_chart_has_tooltips_without_script(clinic: dict[str, Policy]) -> None:
    html = render_html(_results(clinic), clinic)
    charts = re.findall(r'<svg class="chart".*?</svg>', html, re.S)
    assert charts
    for svg in charts:
        tips = re.findall(r'<rect class="tip"[^>]*><title>([^<]+)</title></rect>', svg)
        assert tips, svg[:200]
        assert re.match(r"\d\d:\d\d–\d\d:\d\d: ", tips[0])
    assert "<script" not in html


def test_refusals_are_drawn_when_the_summary_has_them(clinic: dict[str, Policy]) -> None:
    results = _results(clinic)
    minutes = results["clinic-separate"]["series"]["minutes"]
    refused = [0.0] * minutes
    refused[420:426] = [10.0] * 6  # a burst at 07:00
    results["clinic-separate"]["series"]["refused"] = {"xray": refused}
    found = next(f for f in figures(results, clinic) if f.key == "refusals")
    assert found.summary
    [row] = found.rows
    assert row[0] is not None
    assert "busiest quarter hour 07:00 (60 refused)" in row[0].note
    assert row[1] is not None
    assert row[1].empty == "No request refused."
    del results["clinic-separate"]["series"]["refused"]
    found = next(f for f in figures(results, clinic) if f.key == "refusals")
    assert found.message.startswith("The summary holds no per-minute series of refusals")
