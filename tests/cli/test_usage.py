"""``keypolicy usage`` and ``keypolicy report`` on a ledger, and the usage table behind them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keypolicy import load_policy
from keypolicy.ledger import Ledger, iter_records, read_ledger
from keypolicy.usage import usage_table
from tests.commands import run_keypolicy
from tests.usage_records import make_record

ROOT = Path(__file__).parents[2]
MERGED = ROOT / "policies" / "clinic-merged.yaml"
T0 = 1_795_000_000.0
SHORT = """\
version: 1
name: short
description: twenty minutes of chat and x-ray
start: 2026-11-18T08:00:00-05:00
duration: 20m
domains:
  chat: {rate: 600/h, prompt_tokens: {fixed: 800}, max_tokens: {fixed: 300}}
  xray: {rate: 300/h, prompt_tokens: {fixed: 1500}, max_tokens: {fixed: 500}}
"""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """Six records checked by hand below: chat on two keys, one xray."""
    path = tmp_path / "small.sqlite"
    with Ledger(path) as ledger:
        for record in (
            make_record("a", key="k1", wait_s=0.0, cost_usd=0.01, finished=T0 + 10),
            make_record("b", key="k1", wait_s=2.0, cost_usd=0.02, attempts=3, finished=T0 + 20),
            make_record("c", key="k2", outcome="upstream_429", wait_s=9.0, attempts=2,
                        prompt_tokens=0, completion_tokens=0, cost_usd=0.0, finished=T0 + 30),
            make_record("d", key="k2", outcome="rejected", reason="max_wait", wait_s=5.0,
                        prompt_tokens=0, completion_tokens=0, cost_usd=0.0, finished=T0 + 40),
            make_record("e", domain="xray", key="k3", model="gpt-4o", wait_s=1.0, cost_usd=0.5,
                        prompt_tokens=1500, cached_tokens=1000, completion_tokens=250,
                        usage_estimated=True, finished=T0 + 3600),
            make_record("f", key="k1", outcome="deferred", started=None, wait_s=0.0,
                        prompt_tokens=0, completion_tokens=0, cost_usd=0.0, finished=T0 + 3700),
        ):
            ledger.write(record)
    return path


def test_usage_table_numbers_by_hand(small: Path) -> None:
    table = usage_table(read_ledger(small))
    assert table["domain"].tolist() == ["chat", "xray", "total"]
    chat, xray, total = (row for _, row in table.iterrows())
    assert (chat["requests"], chat["ok"], chat["upstream_429"], chat["rejected"]) == (5, 2, 1, 1)
    assert (chat["deferred"], chat["budget_exhausted"], chat["error"]) == (1, 0, 0)
    assert chat["retries"] == 2 + 1
    assert chat["share"] == pytest.approx(5 / 6)
    assert chat["cost_usd"] == pytest.approx(0.03)
    assert chat["prompt_tokens"] == 1600
    # waits of the two answered chat requests, 0 and 2: linear quantiles
    assert (chat["wait_p50_s"], chat["wait_p95_s"], chat["wait_max_s"]) == (1.0, 1.9, 2.0)
    assert (xray["requests"], xray["cached_tokens"], xray["estimated"]) == (1, 1000, 1)
    assert total["requests"] == 6
    assert total["cost_usd"] == pytest.approx(0.53)
    assert total["wait_max_s"] == 2.0
    assert total["share"] == 1.0


def test_usage_table_by_key_since_and_pool(small: Path) -> None:
    frame = read_ledger(small)
    by_key = usage_table(frame, by="key")
    assert by_key["key"].tolist() == ["k1", "k2", "k3", "total"]  # most used first
    recent = usage_table(frame, by="key", since_s=200, now=T0 + 3750)
    assert recent["key"].tolist() == ["k1", "k3", "total"]
    assert recent["requests"].tolist() == [1, 1, 2]
    assert usage_table(frame, since_s=1, now=T0 + 10_000).empty
    policy = load_policy(MERGED).policy
    by_pool = usage_table(frame, by="pool", policy=policy)
    pools = {policy.domains["chat"].pool, policy.domains["xray"].pool}
    assert set(by_pool["pool"]) == pools | {"total"}
    with pytest.raises(ValueError, match=r"grouping by pool needs the policy \(--policy P\)"):
        usage_table(frame, by="pool")
    with pytest.raises(ValueError, match="cannot group by 'colour'"):
        usage_table(frame, by="colour")


def test_usage_command_answers_the_monitoring_questions(small: Path) -> None:
    result = run_keypolicy("usage", small, "--by", "key")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "usage by key" in out
    assert "Most used key: k1 (3 of 6 requests, 50%)." in out
    assert "Most expensive: k3 ($0.5000 of $0.5300)." in out
    assert "Gave up on upstream 429s: 1; rejected by the policy: 1;" in out
    assert "deferred: 1;" in out
    assert "Usage of 1 request(s) is keypolicy's estimate" in out


def test_usage_csv_and_json(small: Path) -> None:
    result = run_keypolicy("usage", small, "--format", "json", "--by", "model")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["model"] for r in rows] == ["gpt-4o-mini", "gpt-4o", "total"]
    assert rows[-1]["requests"] == 6
    result = run_keypolicy("usage", small, "--format", "csv", "--by", "pool", "--policy", MERGED)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("pool,requests,share,ok,upstream_429")
    assert lines[-1].startswith("total,6,1.0,")


def test_usage_since_counts_back_from_now(small: Path) -> None:
    # the records finished in 2026; "the last 24h" before now has none of them
    result = run_keypolicy("usage", small, "--since", "24h")
    assert result.returncode == 0, result.stderr
    assert "no usage records finished in the last 24h" in result.stdout
    assert "6 older; the newest finished at 2026-" in result.stdout


def test_usage_of_an_empty_ledger(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    Ledger(path).close()
    result = run_keypolicy("usage", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"no usage records in {path}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing.sqlite",), "missing.sqlite: no ledger there (the file does not exist)"),
        (("notes.txt",), "a ledger's file name must end in .sqlite"),
        (("SMALL", "--since", "yesterday"), "--since: 'yesterday' is not a duration"),
        (("SMALL", "--by", "pool"), "grouping by pool needs the policy (--policy P)"),
        (("SMALL", "--by", "colour"), "Invalid value for '--by'"),
    ],
)
def test_usage_errors_are_one_clear_line(
    small: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    resolved = [
        str(small) if a == "SMALL" else str(tmp_path / a) if "." in a and "-" not in a else a
        for a in args
    ]
    result = run_keypolicy("usage", *resolved)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_report_on_a_runtime_ledger(tmp_path: Path) -> None:
    traffic, records = tmp_path / "short.yaml", tmp_path / "records.csv"
    traffic.write_text(SHORT)
    result = run_keypolicy(
        "simulate", MERGED, "--traffic", traffic, "--records", records, "--seed", "2"
    )
    assert result.returncode == 0, result.stderr
    written = list(iter_records(records))
    for suffix in (".sqlite", ".jsonl"):
        ledger_path = tmp_path / f"ledger{suffix}"
        with Ledger(ledger_path) as ledger:
            for record in written:
                ledger.write(record)
        out = tmp_path / f"report{suffix}.html"
        result = run_keypolicy("report", ledger_path, "--policy", MERGED, "--out", out)
        assert result.returncode == 0, result.stderr
        html = out.read_text()
        assert "clinic-merged" in html
        assert "Rebuilt from usage records" in html
        assert f"{len(written):,} usage records read from ledger{suffix}" in html
    result = run_keypolicy("usage", tmp_path / "ledger.sqlite", "--by", "domain")
    assert result.returncode == 0, result.stderr
    assert f"of {len(written):,} requests" in result.stdout


def test_report_on_a_broken_ledger_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database\n" * 50)
    result = run_keypolicy("report", bad, "--out", tmp_path / "x.html")
    assert result.returncode == 2
    assert "not a SQLite ledger" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.html").exists()
