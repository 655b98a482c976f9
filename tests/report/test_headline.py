"""The headline table (the numbers that decide, a column per option) and the one-option
paragraph, from hand-made summaries."""

from __future__ import annotations

from typing import Any

import pytest

from keypolicy.policy.model import Policy
from keypolicy.report.facts import Variant
from keypolicy.report.headline import answer, headline_table
from keypolicy.report.tables import Table, compare_table
from tests.report.builders import multi_run, row, summary

CHAT_OUT = "2026-11-18T19:51:00-05:00"


def troubled_day(name: str = "clinic-separate") -> dict[str, Any]:
    """clinic-separate's domains: x-ray rejects, chat's budget runs out, scheduling waits."""
    return summary(
        name,
        {
            "diagnosis": row(1000, cost=100.0),
            "xray": row(500, rejected=20, p95=3.0, p99=4.5, cost=50.0),
            "treatment": row(400, cost=40.0),
            "chat": row(
                2000,
                rejected=300,
                cost=40.0,
                exhausted=CHAT_OUT,
                outcomes={"ok": 1700, "budget_exhausted": 300},
            ),
            "scheduling": row(1500, p95=60.0, p99=120.0, cost=10.0),
            "financial": row(800, deferred=800, batch=800, cost=4.0),
        },
    )


def clean_day(name: str = "clinic-merged") -> dict[str, Any]:
    """The same requests, every one served at once."""
    return summary(
        name,
        {
            "diagnosis": row(1000, cost=100.0),
            "xray": row(500, cost=52.0),
            "treatment": row(400, cost=40.0),
            "chat": row(2000, cost=38.0),
            "scheduling": row(1500, cost=10.0),
            "financial": row(800, deferred=800, batch=800, cost=4.0),
        },
    )


def _rows(table: Table) -> dict[str, list[tuple[str, str, bool]]]:
    """Each row's cells as (text, detail, starred)."""
    return {r.label: [(c.text, c.sub, c.best) for c in r.cells] for r in table.rows}


def test_the_numbers_of_a_troubled_day(clinic: dict[str, Policy]) -> None:
    v = Variant("clinic-separate", troubled_day(), clinic["clinic-separate"])
    rows = _rows(headline_table([v]))
    assert rows["Critical requests refused"] == [("20", "of 1,900 (xray 20)", False)]
    assert rows["Requests refused"] == [("320", "5% of 6,200", False)]
    assert rows["Worst p99 wait against max_wait"] == [
        ("4.5 s of 5 s", "xray, 90% of its max_wait", False)
    ]
    assert "Upstream 429s" not in rows  # none anywhere: a number that cannot differ
    assert rows["Cost per 1,000 served requests"] == [("$41.50", "5,880 served", False)]
    assert rows["Cost per month (30 days)"] == [("$7,320", "$244.00 a day", False)]
    assert rows["Budget runway (shortest)"] == [
        ("83% of a day", "chat-daily: runs out at 19:51", False)
    ]
    assert rows["Headroom"] == [("not computed", "see the note below", False)]


def test_several_runs_carry_intervals(clinic: dict[str, Policy]) -> None:
    v = Variant("clinic-separate", multi_run(troubled_day()), clinic["clinic-separate"])
    table = headline_table([v])
    cells = {r.label: r.cells[0] for r in table.rows}
    assert (cells["Requests refused"].text, cells["Requests refused"].ci) == ("320", "± 32")
    assert cells["Cost per month (30 days)"].ci == "± $732"
    assert cells["Budget runway (shortest)"].sub == "chat-daily: runs out at 19:51, in 2 of 3 runs"


def test_without_a_policy_nothing_is_guessed() -> None:
    v = Variant("records.csv", troubled_day(), None)
    rows = _rows(headline_table([v]))
    assert rows["Critical requests refused"] == [("–", "no priority classes known", False)]
    assert rows["Worst p99 wait against max_wait"] == [("–", "no max_wait known", False)]
    assert rows["Budget runway (shortest)"] == [("–", "no policy given", False)]


def test_stars_only_where_options_differ_beyond_rounding(clinic: dict[str, Policy]) -> None:
    noisy = clean_day("clinic-single")
    noisy["totals"]["cost_usd"] += 0.000001  # rounding noise: no star
    variants = [
        Variant("clinic-separate", troubled_day(), clinic["clinic-separate"]),
        Variant("clinic-merged", clean_day(), clinic["clinic-merged"]),
        Variant("clinic-single", noisy, clinic["clinic-single"]),
    ]
    rows = _rows(headline_table(variants))
    assert [best for *_, best in rows["Critical requests refused"]] == [False, True, True]
    # separate serves fewer requests for its money: per served request, it is not cheaper
    assert [best for *_, best in rows["Cost per 1,000 served requests"]] == [False, True, True]
    # a month's cost is never starred: the option that refuses spends less by serving fewer
    assert not any(best for *_, best in rows["Cost per month (30 days)"])


def test_stars_need_a_difference_beyond_the_runs_noise(clinic: dict[str, Policy]) -> None:
    a, b = multi_run(troubled_day()), multi_run(troubled_day())
    b["domains"]["xray"]["rejected"] = {"mean": 25.0, "ci95": 4.0, "min": 21, "max": 29}
    variants = [
        Variant("clinic-separate", a, clinic["clinic-separate"]),
        Variant("clinic-merged", b, clinic["clinic-merged"]),
    ]
    rows = _rows(headline_table(variants))
    assert not any(best for *_, best in rows["Critical requests refused"])  # 20 ± 2 vs 25 ± 4
    b["domains"]["xray"]["rejected"] = {"mean": 40.0, "ci95": 4.0, "min": 36, "max": 44}
    rows = _rows(headline_table(variants))
    assert [best for *_, best in rows["Critical requests refused"]] == [True, False]


def test_answer_for_one_variant_names_what_goes_wrong(clinic: dict[str, Policy]) -> None:
    v = Variant("clinic-separate", troubled_day(), clinic["clinic-separate"])
    assert answer([v]) == (
        "clinic-separate serves 5,880 of 6,200 requests but refuses 320 requests "
        "(chat 300, xray 20), makes scheduling wait 2 min at p99 and runs out of budget "
        "chat-daily at 19:51. The day costs $244.00."
    )


def test_answer_for_a_clean_day(clinic: dict[str, Policy]) -> None:
    v = Variant("clinic-merged", clean_day(), clinic["clinic-merged"])
    assert answer([v]) == (
        "clinic-merged serves all 6,200 requests with no upstream 429s and every budget "
        "lasting its period; critical requests wait 0 s at p95. The day costs $244.00."
    )


@pytest.mark.parametrize("lasts", [True, False])
def test_a_clean_day_claims_budgets_last_only_when_they_do(
    clinic: dict[str, Policy], lasts: bool
) -> None:
    day = clean_day()
    if not lasts:  # $12,500 a month at $500 a day lasts 25 of the month's 30 days
        day["domains"]["diagnosis"]["cost_usd"] = 356.0
        day["totals"]["cost_usd"] = 500.0
    text = answer([Variant("clinic-merged", day, clinic["clinic-merged"])])
    assert ("every budget lasting its period" in text) is lasts
    assert ("runs out of budget clinic-monthly on day 26 of 30" in text) is not lasts


def test_the_side_by_side_table_stars_only_real_differences(clinic: dict[str, Policy]) -> None:
    merged, single = clean_day(), clean_day("clinic-single")
    single["domains"]["diagnosis"]["cost_usd"] = 100.000001  # rounding noise: the same text
    single["domains"]["xray"]["cost_usd"] = 60.0  # a real difference
    single["totals"]["cost_usd"] += 8.000001
    table = compare_table(
        [
            Variant("clinic-merged", merged, clinic["clinic-merged"]),
            Variant("clinic-single", single, clinic["clinic-single"]),
        ]
    )
    cost = [r for r in table.rows if r.group == "cost" or r.label in ("xray", "all")]
    labels = [r.label for r in table.rows]
    assert "diagnosis" not in labels  # equal as shown: no row, no star
    xray = next(r for r in cost if r.label == "xray")
    assert [(c.text, c.best) for c in xray.cells] == [("$52.00", True), ("$60.00", False)]
    assert "The same in every option, for every function:" in table.note
