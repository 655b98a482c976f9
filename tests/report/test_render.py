"""The HTML file: self-contained, escaped, small, complete, written atomically."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from keypolicy.cli import compare
from keypolicy.policy.model import Policy
from keypolicy.report import render_html, render_report
from tests.report.builders import clinic_like, multi_run, row, summary
from tests.report.test_headline import troubled_day

LIMIT_BYTES = 1_500_000


@pytest.fixture(scope="module")
def clinic_compare(clinic: dict[str, Policy]) -> str:
    """The three clinic variants over a full noisy day: every series and chart filled."""
    results = {name: clinic_like(p, seed) for seed, (name, p) in enumerate(clinic.items())}
    return render_html(results, clinic)


def test_nothing_is_fetched_from_anywhere(clinic_compare: str) -> None:
    lowered = clinic_compare.lower()
    for banned in ("http://", "https://", "<script", "<link", "<img", "<iframe", "@import"):
        assert banned not in lowered, banned
    assert not re.search(r"\b(src|href)\s*=\s*[\"'](?!#)", lowered)  # only in-page anchors
    assert "url(" not in lowered


def test_clinic_compare_stays_small(clinic_compare: str) -> None:
    size = len(clinic_compare.encode("utf-8"))
    assert size < LIMIT_BYTES, f"{size:,} bytes"


def test_every_chart_has_a_title_and_a_text_alternative(clinic_compare: str) -> None:
    charts = re.findall(r"<svg\b[^>]*>(.*?)</svg>", clinic_compare, re.S)
    assert len(charts) > 20
    for chart in charts:
        assert re.match(r'<title id="[^"]+">[^<]+</title><desc id="[^"]+">[^<]+</desc>', chart)
    ids = re.findall(r'<title id="([^"]+)"', clinic_compare)
    assert len(ids) == len(set(ids))


def test_tables_are_real_tables_and_print_is_styled(clinic_compare: str) -> None:
    assert clinic_compare.count("<table") >= 4 * 3 + 2
    assert '<th scope="col">' in clinic_compare
    assert "<caption>" in clinic_compare
    assert "@media print" in clinic_compare
    assert "break-inside: avoid" in clinic_compare
    assert 'class="best"' in clinic_compare  # the best value in a row is marked


def test_the_policy_and_what_the_numbers_rest_on(clinic_compare: str) -> None:
    assert clinic_compare.count('<pre class="policy">') == 1  # today's policy in full
    assert clinic_compare.count('<pre class="policy diff">') == 2  # the others as a diff
    assert "env: CLINIC_KEY_XRAY" in clinic_compare  # the variable's name, never a secret
    for label in ("Runs and seeds", "Usage tier of the limits", "Pricing catalog", "keypolicy"):
        assert f"<dt>{label}</dt>" in clinic_compare


def test_names_are_escaped() -> None:
    hostile = "<b>x</b>"
    day = summary(
        '<i>"v"</i>',
        {hostile: row(100, rejected=5, p99=30.0), "chat": row(200)},
        keys={hostile: row(100)},
    )
    day["series"] = {
        "minutes": 3,
        "spend_usd": {hostile: [0.1, 0.2, 0.3]},
        "max_wait_s": {hostile: [0.0, 30.0, 1.0]},
        "rate_limited": {hostile: [1, 0, 2]},
        "admitted_tokens": {f"{hostile}/m": [1.0, 2.0, 3.0]},
    }
    html = render_html({'<i>"v"</i>': day})
    assert hostile not in html
    assert "<i>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "&lt;i&gt;&#34;v&#34;&lt;/i&gt;" in html


def test_several_runs_show_intervals(clinic: dict[str, Policy]) -> None:
    html = render_html(
        {"clinic-separate": multi_run(troubled_day())},
        {"clinic-separate": clinic["clinic-separate"]},
    )
    assert "3 runs (numbers are means, ± 95% interval)" in html
    assert '$7,320 <span class="ci">± $732</span>' in html  # a month's cost
    assert '320 <span class="ci">± 32</span>' in html  # requests refused


def test_render_report_writes_atomically(tmp_path: Path, clinic: dict[str, Policy]) -> None:
    out = tmp_path / "reports" / "day.html"
    results: dict[str, dict[str, Any]] = {"clinic-separate": troubled_day()}
    assert render_report(results, out, policies=clinic) == out
    first = out.read_text(encoding="utf-8")
    assert first.startswith("<!DOCTYPE html>")
    render_report({"clinic-merged": troubled_day()}, out, policies=clinic)
    assert out.read_text(encoding="utf-8") != first  # replaced in one piece
    assert [p.name for p in out.parent.iterdir()] == ["day.html"]  # no temporary file left


def test_nothing_to_report_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to report"):
        render_report({}, tmp_path / "x.html")
    assert not list(tmp_path.iterdir())


def test_a_bare_summary_still_renders() -> None:
    """No series, no policy, an interrupted run: the report says what it can."""
    day = summary("bare", {"chat": row(10, upstream_429=3)})
    day["series"] = None
    day["partial"] = True
    html = render_html({"bare": day})
    assert "Interrupted: these results are partial" in html
    assert "The summaries count 429s but hold no series of them to draw." in html
    assert "<svg" not in html


def test_queues_are_drawn_per_class_only_when_something_waited(
    clinic: dict[str, Policy],
) -> None:
    results = {name: clinic_like(p, seed) for seed, (name, p) in enumerate(clinic.items())}
    html = render_html(results, clinic)
    assert 'id="fig-queues"' in html
    assert "Queues by priority over the day" in html
    assert re.search(r"<title id=\"[^\"]+\">[^<]+: critical requests waiting</title>", html)
    for result in results.values():
        for values in result["series"]["queued"].values():
            values[:] = [0] * len(values)
    assert 'id="fig-queues"' not in render_html(results, clinic)  # a flat line says nothing


def test_a_cost_is_written_the_same_wherever_it_appears(clinic: dict[str, Policy]) -> None:
    results = {name: clinic_like(p, seed) for seed, (name, p) in enumerate(clinic.items())}
    results["clinic-separate"]["domains"]["financial"]["cost_usd"] = 3.8749  # $3.87, not $3.88
    html = render_html(results, clinic)
    assert "$3.87" in html
    assert "$3.88" not in html
    # the charts draw one run's series: their notes quote no total that could disagree
    assert " in all;" not in html


def test_compare_runs_three_seeds_by_default() -> None:
    """The report's intervals need several runs: compare makes three unless told --runs 1."""
    assert inspect.signature(compare).parameters["runs"].default == 3
