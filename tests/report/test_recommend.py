"""Recommendations: each sentence derived from the numbers, checked word for word."""

from __future__ import annotations

from typing import Any

import pytest

from keypolicy.policy.model import Policy
from keypolicy.report.facts import Variant
from keypolicy.report.limits import limit_findings
from keypolicy.report.recommend import contrasts, recommendations
from tests.report.builders import multi_run, row, summary
from tests.report.test_headline import clean_day, troubled_day


def _monthly_budget(policy: Policy, usd: float) -> Policy:
    """``policy`` with its clinic-monthly budget set to ``usd``."""
    budget = policy.budgets["clinic-monthly"].model_copy(update={"usd": usd})
    return policy.model_copy(update={"budgets": {**policy.budgets, "clinic-monthly": budget}})


def test_one_variant_in_full(clinic: dict[str, Policy]) -> None:
    policy = _monthly_budget(clinic["clinic-separate"], 6_000)
    v = Variant("clinic-separate", troubled_day(), policy)
    assert recommendations([v]) == [
        "chat-daily ($40.00 a day) runs out at 19:51; after that, requests of chat are "
        "rejected (300 in the day).",
        "At $244.00 a day, clinic-monthly ($6,000 a month) lasts 24.6 of its 30 days: raise it "
        "to about $7,320 or cut spend.",
        "20 xray requests (4%) are rejected: 20 by the policy (no capacity in time, max_wait 5 s).",
        "300 chat requests (15%) are rejected: 300 after a budget ran out.",
        "scheduling queues for spare capacity: p99 wait 2 min, within its max_wait of 15 min; "
        "deferral works.",
        "financial defers to the Batch API: all 800 requests at half price ($4.00 for the "
        "day, $4.00 less than at real-time prices), none left undone.",
        "No upstream 429s: the policy keeps every project within its limits.",
        "Key chat carries most traffic: 2,000 requests (32% of all), $40.00 a day.",
    ]


def test_several_runs_say_how_often_a_budget_runs_out(clinic: dict[str, Policy]) -> None:
    v = Variant("clinic-separate", multi_run(troubled_day()), clinic["clinic-separate"])
    assert recommendations([v])[0] == (
        "chat-daily ($40.00 a day) runs out at 19:51 in 2 of 3 runs; after that, requests of "
        "chat are rejected (300 in the day)."
    )


def test_waits_close_to_max_wait_are_flagged(clinic: dict[str, Policy]) -> None:
    day = clean_day()
    day["domains"]["treatment"] = row(400, p95=12.0, p99=21.0, cost=40.0)
    v = Variant("clinic-merged", day, clinic["clinic-merged"])
    assert (
        "treatment's p99 wait (21 s) is 70% of its max_wait (30 s): little room before "
        "requests are rejected."
    ) in recommendations([v])


def test_comparison_says_contrasts_and_shared_findings_once(clinic: dict[str, Policy]) -> None:
    variants = [
        Variant("clinic-separate", troubled_day(), clinic["clinic-separate"]),
        Variant("clinic-merged", clean_day(), clinic["clinic-merged"]),
        Variant("clinic-single", clean_day("clinic-single"), clinic["clinic-single"]),
    ]
    found = recommendations(variants)
    assert found[:3] == [
        "clinic-separate rejects 300 chat requests (15%); clinic-merged and clinic-single reject "
        "none.",
        "clinic-separate rejects 20 xray requests (4%); clinic-merged and clinic-single reject "
        "none.",
        "clinic-separate makes scheduling wait 2 min at p99 while clinic-merged and "
        "clinic-single do not.",
    ]
    assert (
        "In every option, no upstream 429s: the policy keeps every project within its limits."
    ) in found
    assert (
        "In every option, financial defers to the Batch API: all 800 requests at half price "
        "($4.00 for the day, $4.00 less than at real-time prices), none left undone."
    ) in found
    assert (
        "clinic-separate: Key chat carries most traffic: 2,000 requests (32% of all), $40.00 a day."
    ) in found


def test_contrast_names_every_variant_on_each_side() -> None:
    variants = [
        Variant(n, summary(n, {"xray": row(1000, rejected=r)}), None)
        for n, r in (("a", 30), ("b", 30), ("c", 0))
    ]
    assert contrasts(variants) == ["a and b reject 30 xray requests (3%); c rejects none."]


def test_contrast_keeps_the_better_wait() -> None:
    slow = summary("a", {"chat": row(100, p99=30.0)})
    quick = summary("b", {"chat": row(100, p99=4.0)})
    assert contrasts([Variant("a", slow, None), Variant("b", quick, None)]) == [
        "a makes chat wait 30 s at p99 while b keeps it to 4 s."
    ]


def _minutes(values: dict[str, list[float]]) -> dict[str, Any]:
    width = len(next(iter(values.values())))
    return {
        "minutes": width,
        "admitted_tokens": values,
        "admitted_requests": {k: [1.0] * width for k in values},
    }


def test_a_full_slice_next_to_idle_ones_strands_capacity(clinic: dict[str, Policy]) -> None:
    series = _minutes(
        {
            "xray/gpt-4o": [0, 400_000, 360_000, 100_000, 0],
            "diagnosis/gpt-4o": [50_000, 100_000, 80_000, 20_000, 0],
            "treatment/gpt-4o": [10_000, 60_000, 30_000, 0, 0],
        }
    )
    day = summary(
        "clinic-separate",
        {"xray": row(500, rejected=20), "diagnosis": row(900), "treatment": row(300)},
        series=series,
        start="2026-11-18T07:00:00-05:00",
    )
    v = Variant("clinic-separate", day, clinic["clinic-separate"])
    assert limit_findings(v) == [
        "Reservations (prompt + max_tokens) on xray/gpt-4o reach its TPM limit (350,000) in 2 "
        "minutes, first at 07:01; "
        "20 requests of xray are rejected; at that minute diagnosis/gpt-4o at 40% and "
        "treatment/gpt-4o at 30% of their own limits, and the organization's gpt-4o use stays "
        "below its limit: fixed slices strand capacity a shared project would use."
    ]


def test_siblings_are_quoted_at_the_minute_named_not_at_their_peak(
    clinic: dict[str, Policy],
) -> None:
    series = _minutes(
        {
            "xray/gpt-4o": [0, 400_000, 0, 0, 0],
            "diagnosis/gpt-4o": [50_000, 50_000, 80_000, 240_000, 0],  # peaks later, at 96%
            "treatment/gpt-4o": [10_000, 20_000, 30_000, 0, 0],
        }
    )
    day = summary(
        "clinic-separate",
        {"xray": row(500, rejected=20), "diagnosis": row(900), "treatment": row(300)},
        series=series,
        start="2026-11-18T07:00:00-05:00",
    )
    [text] = limit_findings(Variant("clinic-separate", day, clinic["clinic-separate"]))
    assert "first at 07:01" in text
    assert "at that minute diagnosis/gpt-4o at 20% and treatment/gpt-4o at 10%" in text
    assert "96%" not in text


@pytest.mark.parametrize("waited", [0.0, 3.2])
def test_the_queue_absorbs_a_peak_only_when_something_queued(
    clinic: dict[str, Policy], waited: float
) -> None:
    series = _minutes({"clinical/gpt-4o": [100_000, 820_000, 300_000]})
    xray = row(500, p99=waited)
    day = summary(
        "clinic-merged",
        {"xray": xray, "diagnosis": row(900), "treatment": row(300), "chat": row(100)},
        series=series,
        start="2026-11-18T07:00:00-05:00",
    )
    [text] = limit_findings(Variant("clinic-merged", day, clinic["clinic-merged"]))
    assert text.startswith(
        "Reservations (prompt + max_tokens) on clinical/gpt-4o reach its TPM limit (800,000) in "
        "1 minute, first at 07:01; "
    )
    if waited:
        assert text.endswith(
            "the queue absorbs it: requests of diagnosis, xray, treatment wait up to 3.2 s, "
            "none rejected."
        )
    else:
        assert "queue" not in text
        assert text.endswith(
            "no request of diagnosis, xray, treatment waited or was rejected: capacity saved in "
            "quieter minutes absorbed it."
        )


def test_no_limit_reached_names_the_busiest(clinic: dict[str, Policy]) -> None:
    series = _minutes({"clinical/gpt-4o": [100_000, 400_000, 300_000]})
    day = summary("clinic-merged", {"xray": row(500)}, series=series)
    v = Variant("clinic-merged", day, clinic["clinic-merged"])
    assert limit_findings(v) == [
        "No project's reservations reach a TPM limit; the busiest is clinical/gpt-4o at 50% of "
        "its limit "
        "(00:01)."
    ]


def test_even_keys_are_said_to_be_even() -> None:
    keys = {k: row(1000) for k in ("a", "b", "c")}
    v = Variant("v", summary("v", {"chat": row(3000)}, keys=keys), None)
    assert "Traffic is spread evenly over the 3 keys: about 1,000 requests each." in (
        recommendations([v])
    )


def test_deferral_that_does_not_keep_up(clinic: dict[str, Policy]) -> None:
    day = clean_day()
    day["domains"]["scheduling"] = row(1500, rejected=40, p99=1200.0, cost=10.0)
    day["domains"]["financial"] = row(
        800, batch=700, deferred=800, cost=4.0, outcomes={"ok": 700, "deferred": 100}
    )
    found = recommendations([Variant("clinic-merged", multi_run(day), clinic["clinic-merged"])])
    assert (
        "scheduling queues for spare capacity: p99 wait 20 min, over its max_wait of 15 min; "
        "deferral does not keep up (40 rejected)."
    ) in found
    assert (
        "financial defers to the Batch API: 700 of 800 requests at half price ($4.00 for the "
        "day, $4.00 less than at real-time prices), 100 still waiting at the end."
    ) in found


def test_batch_findings_say_what_expired_only_when_something_did() -> None:
    day = troubled_day()
    financial = day["domains"]["financial"]
    financial["reasons"] = {"batch_expired": 6}
    found = recommendations([Variant("clinic-separate", day, None)])
    assert any(
        "none left undone; 6 ran past the 24 h window and expired (batch_expired)." in f
        for f in found
    ), found
    financial["reasons"] = {}
    found = recommendations([Variant("clinic-separate", day, None)])
    assert not any("expired" in f for f in found if f.startswith("financial"))
