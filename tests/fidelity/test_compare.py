"""The fidelity comparison: figures from records or summaries, errors, goals, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keypolicy.fidelity import FidelityInputError, Figures, compare, fidelity_line, read_figures
from keypolicy.fidelity.compare import TOTAL, figures_from_records, relative_error
from keypolicy.records import Outcome, RecordWriter, UsageRecord


def record(
    domain: str = "chat",
    outcome: Outcome = "ok",
    wait: float = 0.0,
    attempts: int = 1,
    cost: float = 0.01,
    deferred: bool = False,
) -> UsageRecord:
    return UsageRecord(
        "r",
        domain,
        "gpt-4o-mini",
        "chat",
        "chat",
        "interactive",
        1_795_000_000.0,
        1_795_000_000.0 + wait,
        1_795_000_001.0 + wait,
        wait,
        attempts,
        outcome,
        "" if outcome == "ok" else "gave_up: 429",
        100,
        0,
        10,
        cost if outcome == "ok" else 0.0,
        False,
        deferred,
        "gpt-4o-mini",
        100,
        200,
    )


def side(total_cost: float = 1.0, n429: int = 0, deferred: int = 0, p95: float = 10.0) -> Figures:
    return Figures(100, {"ok": 100}, n429, deferred, 0.0, p95, total_cost)


def verdicts(predicted: Figures, observed: Figures) -> dict[str, bool | None]:
    checks = compare({"chat": predicted, TOTAL: predicted}, {"chat": observed, TOTAL: observed})
    return {c.metric: c.within for c in checks.checks if c.domain == TOTAL}


def test_figures_from_records_count_outcomes_429s_deferrals_waits_and_cost() -> None:
    records = [
        record(wait=0.0),
        record(wait=2.0, attempts=3),  # two 429s, then answered
        record("xray", "upstream_429", attempts=4),  # four 429s: three retried, the last given up
        record("xray", "deferred", deferred=True, attempts=0),
        record(wait=4.0),
    ]
    figures = figures_from_records(records)
    chat, xray, total = figures["chat"], figures["xray"], figures[TOTAL]
    assert chat.requests == 3
    assert chat.outcomes == {"ok": 3}
    assert chat.upstream_429s == 2
    assert xray.upstream_429s == 4
    assert total.upstream_429s == 6
    assert xray.deferred == 1
    assert total.deferred == 1
    assert chat.wait_p50_s == 2.0
    assert chat.wait_p95_s == pytest.approx(3.8)
    assert total.cost_usd == pytest.approx(0.03)
    assert total.outcomes == {"ok": 3, "upstream_429": 1, "deferred": 1}


def test_cost_within_one_percent_passes_and_beyond_fails() -> None:
    assert verdicts(side(100.0), side(100.9))["cost_usd"] is True
    assert verdicts(side(100.0), side(98.9))["cost_usd"] is False


def test_counts_may_miss_by_five_percent_or_three_requests() -> None:
    assert verdicts(side(n429=10), side(n429=13))["upstream_429s"] is True  # 3 requests
    assert verdicts(side(n429=10), side(n429=14))["upstream_429s"] is False
    assert verdicts(side(deferred=1000), side(deferred=1049))["deferred"] is True  # 4.9%
    assert verdicts(side(deferred=1000), side(deferred=1051))["deferred"] is False


def test_wait_p95_within_ten_percent_or_a_tenth_of_a_second() -> None:
    assert verdicts(side(p95=30.0), side(p95=32.9))["wait_p95_s"] is True
    assert verdicts(side(p95=30.0), side(p95=33.1))["wait_p95_s"] is False
    assert verdicts(side(p95=0.0), side(p95=0.04))["wait_p95_s"] is True  # overhead, not a wait
    assert verdicts(side(p95=0.0), side(p95=0.2))["wait_p95_s"] is False


def test_figures_without_a_goal_are_shown_but_not_judged() -> None:
    result = verdicts(side(), Figures(100, {"ok": 50, "rejected": 50}, 0, 0, 0.0, 10.0, 1.0))
    assert result["ok"] is None
    assert result["rejected"] is None
    assert result["wait_p50_s"] is None


def test_a_domain_on_one_side_only_is_compared_with_zeros_and_named() -> None:
    comparison = compare({"chat": side(), TOTAL: side()}, {"xray": side(), TOTAL: side()})
    assert comparison.only_predicted == ("chat",)
    assert comparison.only_observed == ("xray",)
    assert [c.domain for c in comparison.checks][::11] == ["chat", "xray", TOTAL]
    assert not comparison.within


def test_the_line_has_the_worst_error_of_every_comparison() -> None:
    good = compare({TOTAL: side(100.0)}, {TOTAL: side(100.5)})
    bad = compare({TOTAL: side(100.0, p95=20.0)}, {TOTAL: side(97.0, p95=22.0)})
    assert fidelity_line([good, bad]) == (
        "fidelity cost_rel_err=-0.0300 upstream_429_rel_err=+0.0000 "
        "deferred_rel_err=+0.0000 wait_p95_rel_err=+0.1000"
    )
    assert relative_error("upstream_429s", 0.0, 3.0) == 0.05


def test_the_table_data_and_json_say_what_was_judged(tmp_path: Path) -> None:
    comparison = compare({TOTAL: side(100.0)}, {TOTAL: side(102.0)})
    rows = comparison.table_data()
    cost = next(r for r in rows if r["metric"] == "cost_usd")
    assert cost == {
        "domain": TOTAL,
        "metric": "cost_usd",
        "predicted": 100.0,
        "observed": 102.0,
        "rel_err": pytest.approx(0.02),
        "goal": 0.01,
        "within": False,
    }
    data = comparison.as_dict()
    assert data["within_goals"] is False
    assert data["worst"]["cost_usd"] == pytest.approx(0.02)
    json.dumps(data)  # JSON-ready


def test_records_and_ledgers_and_summaries_are_read(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    with RecordWriter(path) as writer:
        for r in (record(), record(wait=1.0, cost=0.02)):
            writer.write(r)
    assert read_figures(path)[TOTAL].cost_usd == pytest.approx(0.03)
    summary = {
        "domains": {"chat": {"requests": 2, "upstream_429": {"mean": 1.5}, "cost_usd": 0.03}},
        "totals": {"requests": 2, "outcomes": {"ok": 2}, "wait_p95_s": 0.9, "cost_usd": 0.03},
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    figures = read_figures(tmp_path / "summary.json")
    assert figures["chat"].upstream_429s == 2
    assert figures[TOTAL].wait_p95_s == 0.9


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "missing.csv: no such file"),
        ("broken.json", '{"domains": {}\n  "totals"', "broken.json:2:3: not JSON"),
        ("list.json", "[1, 2]", "list.json: not a simulation summary"),
        ("other.json", '{"a": 1}', "other.json: not a simulation summary (no 'domains'"),
        (
            "typed.json",
            '{"domains": {}, "totals": {"cost_usd": "lots"}}',
            "typed.json: totals.cost_usd: a number, not 'lots'",
        ),
        ("empty.csv", None, "empty.csv: holds no records"),
        ("bad.csv", None, "bad.csv:3"),
    ],
)
def test_bad_input_says_what_and_where(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    elif name == "empty.csv":
        RecordWriter(path).close()
    elif name == "bad.csv":
        with RecordWriter(path) as writer:
            writer.write(record())
            writer.write(record())
        lines = path.read_text().splitlines()
        lines[2] = lines[2].replace(",ok,", ",okay,")
        path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FidelityInputError) as caught:
        read_figures(path)
    assert message in str(caught.value)
