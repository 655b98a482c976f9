"""``keypolicy simulate`` and ``keypolicy compare`` as a user runs them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.commands import run_keypolicy

ROOT = Path(__file__).parents[2]
POLICIES = [ROOT / "policies" / f"clinic-{v}.yaml" for v in ("separate", "merged", "single")]
SMALL = """\
version: 1
name: tiny-day
description: two hours of the clinic's chat and x-ray, for fast tests
start: 2026-11-18T08:00:00-05:00
duration: 2h
domains:
  chat:
    rate: 600/h
    prompt_tokens: {fixed: 800}
    max_tokens: {fixed: 300}
    completion_tokens: {fixed: 150}
  xray:
    rate: 300/h
    prompt_tokens: {fixed: 1500}
    max_tokens: {fixed: 500}
    completion_tokens: {fixed: 250}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SMALL)
    return path


def test_simulate_writes_summary_and_records(tiny: Path, tmp_path: Path) -> None:
    summary_path, records_path = tmp_path / "s.json", tmp_path / "r.csv"
    result = run_keypolicy(
        "simulate",
        POLICIES[1],
        "--traffic",
        tiny,
        "--json",
        summary_path,
        "--records",
        records_path,
        "--seed",
        "3",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["policy"] == "clinic-merged"
    assert summary["seed"] == 3
    assert set(summary["domains"]) == {"chat", "xray"}
    chat = summary["domains"]["chat"]
    assert {
        "requests",
        "ok",
        "upstream_429",
        "retries",
        "rejected",
        "deferred",
        "wait_p50_s",
        "wait_p95_s",
        "wait_p99_s",
        "cost_usd",
        "budget_exhausted_at",
    } <= set(chat)
    with records_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == summary["totals"]["requests"]
    assert {r["key"] for r in rows} <= {"diagnosis", "xray", "treatment", "chat"}
    assert "chat" in result.stdout  # the table


def test_compare_runs_every_variant_on_the_same_arrivals(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    result = run_keypolicy("compare", *POLICIES, "--traffic", tiny, "--json", out)
    assert result.returncode == 0, result.stderr
    variants = json.loads(out.read_text())["variants"]
    assert list(variants) == ["clinic-separate", "clinic-merged", "clinic-single"]
    assert {v["runs"] for v in variants.values()} == {3}  # compare runs 3 seeds by default
    counts = {name: v["totals"]["requests"]["mean"] for name, v in variants.items()}
    assert len(set(counts.values())) == 1  # common random numbers: the same arrivals


def test_runs_report_intervals(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    result = run_keypolicy("simulate", POLICIES[0], "--traffic", tiny, "--runs", "3", "--json", out)
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.read_text())
    assert summary["runs"] == 3
    assert "ci95" in summary["domains"]["chat"]["requests"]


def test_bad_inputs_exit_2_without_traceback(tiny: Path, tmp_path: Path) -> None:
    bad_profile = tmp_path / "bad.yaml"
    bad_profile.write_text(SMALL.replace("rate: 600/h", "rate: lots"))
    for args in (
        ["simulate", POLICIES[0], "--traffic", bad_profile],
        ["simulate", POLICIES[0]],
        ["simulate", tmp_path / "missing.yaml", "--traffic", tiny],
        ["compare", POLICIES[0], POLICIES[0], "--traffic", tiny],
    ):
        result = run_keypolicy(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_reports_from_simulate_compare_and_records(tiny: Path, tmp_path: Path) -> None:
    single, both, records = tmp_path / "s.html", tmp_path / "c.html", tmp_path / "r.csv"
    result = run_keypolicy(
        "simulate", POLICIES[1], "--traffic", tiny, "--out", single, "--records", records
    )
    assert result.returncode == 0, result.stderr
    result = run_keypolicy("compare", POLICIES[0], POLICIES[1], "--traffic", tiny, "--out", both)
    assert result.returncode == 0, result.stderr
    rebuilt = tmp_path / "rebuilt.html"
    result = run_keypolicy("report", records, "--policy", POLICIES[1], "--out", rebuilt)
    assert result.returncode == 0, result.stderr
    for path in (single, both, rebuilt):
        html = path.read_text()
        assert html.startswith("<!DOCTYPE html>") or html.lstrip().lower().startswith("<!doctype")
        assert "clinic-merged" in html
        assert "http://" not in html
        assert "https://" not in html
    assert "clinic-separate" in both.read_text()


def test_report_refuses_unreadable_records(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,records,file\n1,2,3,4\n")
    result = run_keypolicy("report", bad, "--out", tmp_path / "x.html")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.html").exists()


def test_compare_in_several_processes_says_the_same(tiny: Path, tmp_path: Path) -> None:
    outputs = []
    for jobs in ("1", "3"):
        path = tmp_path / f"jobs{jobs}.json"
        result = run_keypolicy(
            "compare", *POLICIES, "--traffic", tiny, "--json", path, "--jobs", jobs
        )
        assert result.returncode == 0, result.stderr
        data = json.loads(path.read_text())
        for variant in data["variants"].values():
            variant["about"].pop("generated")
        outputs.append(data)
    assert outputs[0] == outputs[1]


def test_records_that_cannot_be_written_exit_2_without_traceback(tiny: Path) -> None:
    result = run_keypolicy("simulate", POLICIES[1], "--traffic", tiny, "--records", "/dev/full")
    assert result.returncode == 2, result.stderr
    assert "--records /dev/full: cannot write the records" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("completion_tokens", "write FIELD=COLUMN"),
        ("=GeneratedTokens", "write FIELD=COLUMN"),
        ("completion_tokens=", "write FIELD=COLUMN"),
    ],
)
def test_a_column_option_that_maps_nothing_is_an_error_not_ignored(
    tmp_path: Path, column: str, message: str
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp,prompt_tokens\n1795000000,10\n1795000001,12\n")
    out = tmp_path / "r.json"
    result = run_keypolicy(
        "simulate",
        POLICIES[1],
        "--trace",
        trace,
        "--domain",
        "chat",
        "--column",
        column,
        "--json",
        out,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_outputs_that_cannot_be_written_are_refused_before_simulating(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = run_keypolicy(
        "simulate",
        POLICIES[1],
        "--traffic",
        ROOT / "simulations" / "clinic-day.yaml",
        "--json",
        missing / "s.json",
        "--out",
        missing / "r.html",
        "--records",
        tmp_path,
    )
    assert result.returncode == 2
    assert f"--json {missing / 's.json'}: the folder {missing} does not exist" in result.stderr
    assert f"--out {missing / 'r.html'}: the folder {missing} does not exist" in result.stderr
    assert f"--records {tmp_path}: is a folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_traffic_the_policy_cannot_take_leaves_no_records_file(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(
        "timestamp,prompt_tokens,completion_tokens\n1795000000,10,5\n1795000001,12,6\n"
    )
    records = tmp_path / "records.csv"
    result = run_keypolicy(
        "simulate", POLICIES[1], "--trace", trace, "--domain", "nobody", "--records", records
    )
    assert result.returncode == 2
    assert "the traffic has domains the policy 'clinic-merged' does not: nobody" in result.stderr
    assert not records.exists()


def test_compare_headroom_and_prefer(tiny: Path, tmp_path: Path) -> None:
    out, html = tmp_path / "c.json", tmp_path / "c.html"
    result = run_keypolicy(
        "compare", *POLICIES[1:], "--traffic", tiny, "--runs", "1", "--headroom",
        "--prefer", "clinic-single", "--json", out, "--out", html,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    variants = json.loads(out.read_text())["variants"]
    for v in variants.values():
        assert [s["label"] for s in v["sensitivity"]] == [
            "Traffic +25%",
            "Traffic +50%",
            "Limits -20%",
        ]
        assert v["headroom"]["growth"] is None or v["headroom"]["growth"] > 0
        assert v["headroom"]["seeds"] == [0]
    assert "clinic-single (the option preferred for this report)" in html.read_text()


def test_compare_refuses_to_prefer_an_option_it_does_not_compare(
    tiny: Path, tmp_path: Path
) -> None:
    result = run_keypolicy(
        "compare", *POLICIES[1:], "--traffic", tiny, "--runs", "1", "--prefer", "clinic-x"
    )
    assert result.returncode == 2
    assert "--prefer 'clinic-x': not one of the policies compared" in result.stderr
    assert "Traceback" not in result.stderr
