"""Replaying a trace from the command line: the options that say how to read it, traffic the
policy cannot take refused before any work, rows skipped or sorted said out loud, a sparse
trace of years, and Ctrl-C."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands import run_keypolicy

ROOT = Path(__file__).parents[2]
MERGED = ROOT / "policies" / "clinic-merged.yaml"
HEADER = "timestamp,prompt_tokens,completion_tokens\n"


def _trace(tmp_path: Path, rows: str, name: str = "t.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text(header + rows)
    return path


def _summary(tmp_path: Path, *args: str | Path) -> dict:
    out = tmp_path / "s.json"
    result = run_keypolicy("simulate", MERGED, *args, "--json", out)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def test_speedup_replays_the_same_requests_in_less_time(tmp_path: Path) -> None:
    trace = _trace(tmp_path, "".join(f"{1795000000 + 60 * i},100,20\n" for i in range(10)))
    plain = _summary(tmp_path, "--trace", trace, "--domain", "chat")
    fast = _summary(tmp_path, "--trace", trace, "--domain", "chat", "--speedup", "10")
    assert plain["about"]["duration_s"] == 541
    assert fast["about"]["duration_s"] == pytest.approx(54.1)
    assert fast["totals"]["requests"] == plain["totals"]["requests"] == 10
    assert "replayed 10 times faster" in fast["about"]["traffic_description"]


def test_time_zone_reads_date_times_written_without_one(tmp_path: Path) -> None:
    trace = _trace(tmp_path, "2026-11-18 08:00:00,100,20\n2026-11-18 08:00:05,100,20\n")
    utc = _summary(tmp_path, "--trace", trace, "--domain", "chat")
    paris = _summary(tmp_path, "--trace", trace, "--domain", "chat", "--time-zone", "Europe/Paris")
    assert utc["about"]["start"] == "2026-11-18T08:00:00+00:00"
    assert paris["about"]["start"] == "2026-11-18T08:00:00+01:00"


def test_an_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    trace = _trace(tmp_path, "2026-11-18 08:00:00,100,20\n")
    result = run_keypolicy(
        "simulate", MERGED, "--trace", trace, "--domain", "chat", "--time-zone", "Mars/Base"
    )
    assert result.returncode == 2
    assert "unknown time zone 'Mars/Base'" in result.stderr
    assert "Traceback" not in result.stderr


def test_max_tokens_fills_in_for_a_trace_without_answers(tmp_path: Path) -> None:
    trace = _trace(tmp_path, "1795000000,100\n1795000001,120\n", header="timestamp,prompt_tokens\n")
    refused = run_keypolicy("simulate", MERGED, "--trace", trace, "--domain", "chat")
    assert refused.returncode == 2
    assert "no column for max_tokens or completion_tokens" in refused.stderr
    summary = _summary(tmp_path, "--trace", trace, "--domain", "chat", "--max-tokens", "300")
    assert summary["totals"]["requests"] == 2


def test_a_model_the_policy_does_not_allow_is_refused_before_simulating(tmp_path: Path) -> None:
    trace = _trace(
        tmp_path,
        "1795000000,100,20,gpt-9\n1795000001,100,20,gpt-4o-mini\n",
        header="timestamp,prompt_tokens,completion_tokens,model\n",
    )
    records = tmp_path / "records.csv"
    result = run_keypolicy(
        "simulate", MERGED, "--trace", trace, "--domain", "chat", "--records", records
    )
    assert result.returncode == 2
    assert (
        "the traffic's chat requests name 'gpt-9', which the policy 'clinic-merged' does not "
        "let chat call (it may call gpt-4o-mini): add it to the domain's models, or replay "
        "the trace with --model"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert not records.exists()
    # --model replaces the column: every row asks for the model given
    summary = _summary(tmp_path, "--trace", trace, "--domain", "chat", "--model", "gpt-4o-mini")
    assert summary["totals"]["outcomes"] == {"ok": 2}


def test_trace_options_with_a_profile_are_refused(tmp_path: Path) -> None:
    result = run_keypolicy(
        "simulate",
        MERGED,
        "--traffic",
        ROOT / "simulations" / "clinic-day.yaml",
        "--speedup",
        "2",
        "--model",
        "gpt-4o",
    )
    assert result.returncode == 2
    assert "--model, --speedup: for --trace files; a --traffic profile says these itself" in (
        result.stderr
    )


def test_skipped_and_unsorted_rows_are_reported_in_console_json_and_report(
    tmp_path: Path,
) -> None:
    trace = _trace(tmp_path, "1795000005,100,20\n1795000000,oops,20\n1795000001,100,20\n")
    out, report = tmp_path / "s.json", tmp_path / "r.html"
    result = run_keypolicy(
        "simulate",
        MERGED,
        "--trace",
        trace,
        "--domain",
        "chat",
        "--skip-bad-rows",
        "--json",
        out,
        "--out",
        report,
    )
    assert result.returncode == 0, result.stderr
    skipped = "1 unreadable trace row skipped (33.3% of the rows): the results leave them out"
    unsorted = f"{trace} is not sorted by time: its rows were sorted before the replay"
    assert f"warning: {skipped}" in result.stderr
    assert f"warning: {unsorted}" in result.stderr
    assert json.loads(out.read_text())["about"]["warnings"] == [skipped, unsorted]
    html = report.read_text()
    assert skipped in html
    assert "is not sorted by time" in html


def test_a_sparse_trace_of_ten_years_replays_without_per_minute_series(tmp_path: Path) -> None:
    """Three rows ten years apart: the gaps cost nothing (the memory this takes is measured in
    benchmarks/sparse_trace.py); the per-minute series, years of them, are left out, saying so.
    """
    trace = _trace(tmp_path, "1600000000,100,20\n1750000000,100,20\n1915000000,100,20\n")
    out = tmp_path / "s.json"
    result = run_keypolicy(
        "simulate",
        MERGED,
        "--trace",
        trace,
        "--domain",
        "chat",
        "--time-unit",
        "seconds",
        "--json",
        out,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.read_text())
    assert summary["totals"]["outcomes"] == {"ok": 3}
    assert summary["series"]["minutes"] == 0
    assert "the traffic spans 3,646 days" in summary["series"]["omitted"]
    assert "warning: no charts over time: the traffic spans 3,646 days" in result.stderr


def test_ctrl_c_keeps_what_was_simulated_marked_partial_and_exits_130(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    terminal, stderr = pty.openpty()  # a terminal, so that the progress bar shows
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keypolicy",
            "simulate",
            MERGED,
            "--traffic",
            ROOT / "simulations" / "clinic-day.yaml",
            "--runs",
            "50",
            "--jobs",
            "1",
            "--json",
            out,
        ],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, "COLUMNS": "200"},
        # as a shell would: Ctrl-C not ignored, whatever the test runner does with it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    os.close(stderr)
    seen = b""
    while b"h simulated" not in seen:  # the progress bar: the simulation is under way
        chunk = _read(terminal)
        assert chunk, f"the simulation ended before it showed progress: {seen!r}"
        seen += chunk
    process.send_signal(signal.SIGINT)
    rest = b""
    while chunk := _read(terminal):
        rest += chunk
    os.close(terminal)
    assert process.wait(timeout=60) == 130
    text = rest.decode(errors="replace")
    assert "interrupted: the results above are partial" in text
    assert "Traceback" not in text
    summary = json.loads(out.read_text())
    assert summary["partial"] is True
    assert summary["runs"] < 50


def _read(fd: int) -> bytes:
    """What the terminal has (waiting for it); b"" once the other end is closed."""
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: every writer has closed it
        return b""


def test_files_on_different_clocks_are_refused(tmp_path: Path) -> None:
    start = _trace(tmp_path, "0,10,5\n3600,10,5\n", name="from-start.csv")
    epoch = _trace(tmp_path, "1700000000,10,5\n1700003600,10,5\n", name="epoch.csv")
    later = _trace(tmp_path, "1800000000,10,5\n1800003600,10,5\n", name="later.csv")
    mixed = run_keypolicy(
        "simulate", MERGED, "--trace", start, "--trace", epoch, "--domain", "chat"
    )
    assert mixed.returncode == 2
    assert f"{start} count time from their start and {epoch} in epoch time" in mixed.stderr
    apart = run_keypolicy(
        "simulate", MERGED, "--trace", later, "--trace", epoch, "--domain", "chat"
    )
    assert apart.returncode == 2
    assert "the trace files together span 1,157 days, though none spans more than a year" in (
        apart.stderr
    )


def test_doubtful_time_units_are_warnings(tmp_path: Path) -> None:
    # 500 rows over 8 minutes in milliseconds from the start read as 5.6 days of seconds
    short = _trace(tmp_path, "".join(f"{i * 976},100,20\n" for i in range(1, 501)))
    summary = _summary(tmp_path, "--trace", short, "--domain", "chat")
    assert summary["about"]["warnings"] == [
        f"{short}: column timestamp: timestamps from 976 to 488000, counted from its start, "
        "read as seconds: they span 5.64 days (as milliseconds they would span 8.12 min: if "
        "so, --time-unit milliseconds)"
    ]
    epoch = _trace(tmp_path, "1700000000,10,5\n1700003600,10,5\n", name="epoch.csv")
    summary = _summary(
        tmp_path, "--trace", epoch, "--domain", "chat", "--time-unit", "milliseconds"
    )
    assert summary["about"]["warnings"] == [
        f"{epoch}: column timestamp read as milliseconds, as asked, though it looks like "
        "seconds (--time-unit auto decides from the whole column)"
    ]


def test_a_column_named_twice_is_refused(tmp_path: Path) -> None:
    trace = _trace(
        tmp_path,
        "1700000000,10,20,5\n",
        header="timestamp,prompt_tokens,prompt_tokens,completion_tokens\n",
    )
    result = run_keypolicy("simulate", MERGED, "--trace", trace, "--domain", "chat")
    assert result.returncode == 2
    assert (
        f"{trace}:1:1: the column 'prompt_tokens' for prompt_tokens appears 2 times in the "
        "header (columns 2, 3)"
    ) in result.stderr


def test_outputs_through_symlinks_replace_the_target_and_devices_are_refused(
    tmp_path: Path,
) -> None:
    trace = _trace(tmp_path, "1700000000,10,5\n")
    target = tmp_path / "target.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    result = run_keypolicy("simulate", MERGED, "--trace", trace, "--domain", "chat", "--json", link)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink()
    assert json.loads(target.read_text())["totals"]["requests"] == 1
    device = run_keypolicy(
        "simulate", MERGED, "--trace", trace, "--domain", "chat", "--json", "/dev/null"
    )
    assert device.returncode == 2
    assert "--json /dev/null: not a regular file" in device.stderr


def test_report_refuses_a_missing_folder_like_simulate(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "r.html"
    result = run_keypolicy("report", tmp_path / "records.csv", "--out", missing)
    assert result.returncode == 2
    assert f"--out {missing}: the folder {missing.parent} does not exist" in result.stderr
    assert not missing.parent.exists()
