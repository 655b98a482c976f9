"""The headline's five numbers and its paragraph, from hand-made summaries."""

from __future__ import annotations

from typing import Any

import pytest

from keypolicy.policy.model import Policy
from keypolicy.report.facts import Variant
from keypolicy.report.headline import answer, headline_numbers, rank
from tests.report.builders import multi_run, row, summary

CHAT_OUT = "2026-11-18T19:51:00-05:00"


def troubled_day() -> dict[str, Any]:
    """clinic-separate's domains: x-ray rejects, chat's budget runs out, scheduling waits."""
    return summary(
        "clinic-separate",
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


def _texts(v: Variant) -> list[tuple[str, str, str]]:
    return [(n.label, n.text, n.detail) for n in headline_numbers(v)]


def test_five_numbers_of_a_troubled_day(clinic: dict[str, Policy]) -> None:
    v = Variant("clinic-separate", troubled_day(), clinic["clinic-separate"])
    assert _texts(v) == [
        ("Critical p95 wait", "3 s", "worst of diagnosis, xray"),
        ("Upstream 429s", "0", "0 retries"),
        ("Rejected", "320", "5% of 6,200 requests"),
        ("Cost per day", "$244.00", "$244.00 over 24 h simulated"),
        ("First budget out", "19:51", "chat-daily"),
    ]


def test_five_numbers_of_several_runs_carry_intervals(clinic: dict[str, Policy]) -> None:
    v = Variant("clinic-separate", multi_run(troubled_day()), clinic["clinic-separate"])
    assert _texts(v) == [
        ("Critical p95 wait", "3 s ± 0.3 s", "worst of diagnosis, xray"),
        ("Upstream 429s", "0", "0 retries"),
        ("Rejected", "320 ± 32", "5% of 6,200 requests"),
        ("Cost per day", "$244.00 ± $24.40", "$244.00 over 24 h simulated"),
        ("First budget out", "19:51", "chat-daily, in 2 of 3 runs"),
    ]


def test_without_a_policy_the_wait_is_everyone_s() -> None:
    v = Variant("records.csv", troubled_day(), None)
    wait, *_, budget = headline_numbers(v)
    assert (wait.label, wait.text, wait.detail) == (
        "p95 wait, all requests",
        "60 s",
        "no priority classes known",
    )
    assert (budget.text, budget.detail) == ("19:51", "chat's budget")


def test_answer_for_one_variant_names_what_goes_wrong(clinic: dict[str, Policy]) -> None:
    v = Variant("clinic-separate", troubled_day(), clinic["clinic-separate"])
    assert answer([v]) == (
        "clinic-separate serves 5,880 of 6,200 requests but rejects 320 requests "
        "(chat 300, xray 20), makes scheduling wait 2 min at p99 and runs out of chat-daily at "
        "19:51. The day costs $244.00."
    )


def test_answer_for_a_clean_day(clinic: dict[str, Policy]) -> None:
    v = Variant("clinic-merged", clean_day(), clinic["clinic-merged"])
    assert answer([v]) == (
        "clinic-merged serves all 6,200 requests with no upstream 429s and no budget running "
        "out; critical requests wait 0 s at p95. The day costs $244.00."
    )


def test_answer_for_a_comparison_picks_the_best(clinic: dict[str, Policy]) -> None:
    variants = [
        Variant("clinic-separate", troubled_day(), clinic["clinic-separate"]),
        Variant("clinic-merged", clean_day(), clinic["clinic-merged"]),
    ]
    assert [v.name for v in rank(variants)] == ["clinic-merged", "clinic-separate"]
    assert answer(variants) == (
        "clinic-merged does best: it serves all 6,200 requests with no upstream 429s and no "
        "budget running out; critical requests wait 0 s at p95. clinic-separate rejects 320 "
        "requests (chat 300, xray 20), makes scheduling wait 2 min at p99 and runs out of "
        "chat-daily at 19:51. The day costs about the same in each: $244.00."
    )


def test_answer_for_equals_says_how_they_differ(clinic: dict[str, Policy]) -> None:
    variants = [
        Variant("clinic-merged", clean_day(), clinic["clinic-merged"]),
        Variant("clinic-single", clean_day("clinic-single"), clinic["clinic-single"]),
    ]
    assert answer(variants) == (
        "clinic-merged and clinic-single do equally well on this day: each serves all 6,200 "
        "requests with no upstream 429s and no budget running out; critical requests wait 0 s "
        "at p95. They differ in shape: clinic-merged has 3 projects, 3 pools and 6 keys; "
        "clinic-single has 1 project, 1 pool and 6 keys. The day costs about the same in each: "
        "$244.00."
    )


@pytest.mark.parametrize("shape", ["one run", "three runs"])
def test_cheaper_because_it_rejects(clinic: dict[str, Policy], shape: str) -> None:
    cheap = troubled_day()
    cheap["totals"]["cost_usd"] = 200.0
    if shape == "three runs":
        cheap = multi_run(cheap)
    variants = [
        Variant("clinic-separate", cheap, clinic["clinic-separate"]),
        Variant("clinic-merged", clean_day(), clinic["clinic-merged"]),
    ]
    assert answer(variants).endswith(
        "The day costs $200.00 with clinic-separate and $244.00 with clinic-merged "
        "(clinic-separate is cheaper because rejected requests cost nothing)."
    )
