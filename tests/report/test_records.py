"""Summaries rebuilt from usage records match what the simulation that wrote them measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keypolicy.policy.model import Policy
from keypolicy.records import FIELDS
from keypolicy.report import records_summary, render_html

Tiny = tuple[dict[str, Any], Path, Policy]


def test_same_shape_and_numbers_as_the_simulation(tiny: Tiny) -> None:
    simulated, records, policy = tiny
    rebuilt = records_summary(records, policy)
    assert set(simulated) <= set(rebuilt)
    for section in ("domains", "pools", "projects", "keys"):
        assert set(rebuilt[section]) == set(simulated[section])
    for field in ("requests", "ok", "rejected", "deferred", "batch", "prompt_tokens"):
        assert rebuilt["totals"][field] == simulated["totals"][field], field
    assert rebuilt["totals"]["cost_usd"] == pytest.approx(simulated["totals"]["cost_usd"])
    assert rebuilt["domains"]["chat"]["wait_p95_s"] == simulated["domains"]["chat"]["wait_p95_s"]
    assert (
        rebuilt["domains"]["chat"]["budget_exhausted_at"]
        == simulated["domains"]["chat"]["budget_exhausted_at"]
        is not None
    )
    assert rebuilt["about"]["start"] == "2026-11-18T08:00:00-05:00"
    assert rebuilt["about"]["duration_s"] == 7200.0
    assert rebuilt["domain_priority"] == {"chat": "interactive", "triage": "critical"}
    series = rebuilt["series"]
    assert set(series["spend_usd"]) == {"chat", "triage"}
    assert sum(series["arrivals"]["chat"]) == simulated["domains"]["chat"]["requests"]
    assert set(series["admitted_tokens"]) == {"main/gpt-4o-mini"}


def test_report_from_records_tells_the_budget_story(tiny: Tiny) -> None:
    simulated, records, policy = tiny
    clock = simulated["domains"]["chat"]["budget_exhausted_at"][11:16]
    html = render_html({policy.name: records_summary(records, policy)}, {policy.name: policy})
    assert f"runs out of budget chat-daily at {clock}" in html
    assert "Rebuilt from usage records" in html


def test_without_a_policy_there_are_no_pools(tiny: Tiny) -> None:
    _, records, _ = tiny
    rebuilt = records_summary(records)
    assert rebuilt["policy"] == "records.csv"
    assert rebuilt["pools"] == {}
    assert rebuilt["about"]["timezone"] == "UTC"
    assert "<!DOCTYPE html>" in render_html({rebuilt["policy"]: rebuilt})


def test_a_file_that_is_not_records_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("timestamp,tokens\n1,2\n")
    with pytest.raises(
        ValueError, match=r"not a usage-records file: missing column\(s\) request_id"
    ):
        records_summary(path)


def test_an_empty_or_broken_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(FIELDS) + "\n")
    with pytest.raises(ValueError, match="no usage records"):
        records_summary(empty)
    broken = tmp_path / "broken.csv"
    values = [
        "r1",
        "chat",
        "m",
        "k",
        "p",
        "c",
        "soon",
        "",
        "2",
        "0",
        "1",
        "ok",
        "",
        "1",
        "0",
        "1",
        "0.1",
        "False",
        "False",
        "",
        "1",
        "0",
        "False",
    ]
    broken.write_text(",".join(FIELDS) + "\n" + ",".join(values) + "\n")
    with pytest.raises(
        ValueError,
        match=r"broken.csv:2:17: column 'submitted': 'soon' is not a number "
        r"\(fix it, or delete line 2\)",
    ):
        records_summary(broken)
