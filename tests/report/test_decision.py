"""The decision: which option, why in numbers, the tie-break rule, risks, changes; and the
runway, one answer for every place that speaks of budgets."""

from __future__ import annotations

from typing import Any

import pytest

from keypolicy.policy.model import Policy
from keypolicy.report.decision import changes, decide
from keypolicy.report.facts import Variant
from keypolicy.report.render import build_context
from keypolicy.report.runway import runways
from keypolicy.report.sensitivity import headroom_cell, sensitivity_table
from tests.report.builders import multi_run, row, summary
from tests.report.test_headline import clean_day, troubled_day


def _three(clinic: dict[str, Policy], merged: dict[str, Any] | None = None) -> list[Variant]:
    return [
        Variant("clinic-separate", troubled_day(), clinic["clinic-separate"]),
        Variant("clinic-merged", merged or clean_day(), clinic["clinic-merged"]),
        Variant("clinic-single", clean_day("clinic-single"), clinic["clinic-single"]),
    ]


def test_critical_refusals_decide_and_the_tie_is_broken_by_separation(
    clinic: dict[str, Policy],
) -> None:
    decision = decide(_three(clinic))
    assert decision.recommended == "clinic-merged"
    assert decision.current == "clinic-separate"
    assert decision.reasons[1] == (
        "Critical requests refused: 0 with clinic-merged and clinic-single, against 20 (xray 20) "
        "with clinic-separate."
    )
    assert decision.tie == (
        "clinic-merged and clinic-single tie on every measure; the tie-break picks "
        "clinic-merged: clinic-merged keeps chat, scheduling and financial out of the project "
        "of the critical diagnosis, xray and treatment, where clinic-single puts them together."
    )
    assert "then the order the options were given in" in decision.rule


def test_the_tie_break_can_be_overridden(clinic: dict[str, Policy]) -> None:
    decision = decide(_three(clinic), prefer="clinic-single")
    assert decision.recommended == "clinic-single"
    assert (
        decision.tie
        == "clinic-merged and clinic-single tie on every measure; clinic-single is preferred."
    )
    assert decision.rule.startswith("Options are compared")
    assert "clinic-single (the option preferred for this report)" in decision.rule


def test_a_preference_does_not_beat_a_real_difference(clinic: dict[str, Policy]) -> None:
    assert decide(_three(clinic), prefer="clinic-separate").recommended == "clinic-merged"


def test_an_unknown_preference_is_an_error(clinic: dict[str, Policy]) -> None:
    results = {"clinic-merged": clean_day()}
    with pytest.raises(ValueError, match="prefer='nope' is not one of the options"):
        build_context(results, clinic, prefer="nope")


def test_without_a_tie_there_is_no_tie_sentence(clinic: dict[str, Policy]) -> None:
    dear = clean_day("clinic-single")
    dear["totals"]["cost_usd"] = 300.0  # 22% dearer per served request
    variants = [
        Variant("clinic-merged", clean_day(), clinic["clinic-merged"]),
        Variant("clinic-single", dear, clinic["clinic-single"]),
    ]
    decision = decide(variants)
    assert decision.recommended == "clinic-merged"
    assert decision.tie == ""
    assert decision.reasons[1] == (
        "Cost per served request: $39.35 per 1,000 with clinic-merged, against $48.39 per "
        "1,000 with clinic-single."
    )


@pytest.mark.parametrize(("xray", "tie"), [(22.0, True), (40.0, False)])
def test_differences_within_the_runs_noise_are_ties(
    clinic: dict[str, Policy], xray: float, tie: bool
) -> None:
    a, b = multi_run(troubled_day()), multi_run(troubled_day("clinic-merged"))
    b["domains"]["xray"]["rejected"] = {"mean": xray, "ci95": 4.0, "min": 0, "max": 0}
    variants = [
        Variant("clinic-separate", a, clinic["clinic-separate"]),
        Variant("clinic-merged", b, clinic["clinic-merged"]),
    ]
    decision = decide(variants)
    # a tie goes to the option that mixes fewer classes in a project; a difference, to the
    # option with fewer critical refusals: clinic-separate either way, for different reasons
    assert decision.recommended == "clinic-separate"
    assert bool(decision.tie) is tie
    assert (
        any(r.startswith("Critical requests refused: 20 (xray 20)") for r in decision.reasons)
        is not tie
    )


def test_a_budget_that_stops_traffic_before_its_period_ends_decides(
    clinic: dict[str, Policy],
) -> None:
    costly = clean_day()  # $500 a day: clinic-monthly ($12,500, 30 days) lasts 25 days
    costly["domains"]["diagnosis"]["cost_usd"] = 356.0
    costly["totals"]["cost_usd"] = 500.0
    policy = clinic["clinic-merged"]
    monthly = policy.budgets["clinic-monthly"]
    rejecting = policy.model_copy(update={"budgets": {**policy.budgets, "clinic-monthly": monthly}})
    variants = [
        Variant("clinic-merged", costly, rejecting),
        Variant("clinic-single", clean_day("clinic-single"), clinic["clinic-single"]),
    ]
    decision = decide(variants)
    assert decision.recommended == "clinic-single"
    assert decision.reasons[1] == (
        "A budget stopping traffic before its period ends: every budget lasts with "
        "clinic-single, against clinic-monthly runs out on day 26 of 30 with clinic-merged."
    )


@pytest.mark.parametrize("short", [True, False])
def test_a_banner_when_a_budget_runs_out_inside_its_period(
    clinic: dict[str, Policy], short: bool
) -> None:
    day = clean_day()
    if short:
        day["domains"]["diagnosis"]["cost_usd"] = 356.0
        day["totals"]["cost_usd"] = 500.0
    banners = build_context({"clinic-merged": day}, clinic)["banners"]
    if short:
        assert banners == [
            "Budget clinic-monthly ($12,500 a 30-day period) runs out inside its period: on day "
            "26 of 30 with clinic-merged ($500.00 a day); then it rejects every request of every "
            "function, critical diagnosis, xray, treatment included."
        ]
    else:
        assert banners == []


def test_runway_of_a_budget_that_ran_out_in_the_day(clinic: dict[str, Policy]) -> None:
    v = Variant("clinic-separate", troubled_day(), clinic["clinic-separate"])
    found = {r.budget: r for r in runways(v)}
    chat = found["chat-daily"]
    assert chat.short
    assert chat.text() == "runs out at 19:51"
    monthly = found["clinic-monthly"]
    assert not monthly.short
    assert monthly.text() == "lasts its 30-day period (51.2 days of this traffic)"


def test_the_single_option_decision_has_no_recommendation(clinic: dict[str, Policy]) -> None:
    decision = decide([Variant("clinic-merged", clean_day(), clinic["clinic-merged"])])
    assert decision.recommended is None
    assert decision.reasons[0].startswith("clinic-merged refuses no request of 6,200;")


@pytest.mark.parametrize(("waited", "refused"), [(0.0, 0), (0.4, 0), (4.9, 7)])
def test_a_full_minute_is_a_risk_that_says_what_it_did(
    clinic: dict[str, Policy], waited: float, refused: int
) -> None:
    series = {
        "minutes": 3,
        "admitted_tokens": {"clinical/gpt-4o": [100_000.0, 900_000.0, 0.0]},
        "admitted_requests": {"clinical/gpt-4o": [1.0, 1.0, 1.0]},
    }
    xray = row(10, p99=waited, rejected=refused)
    day = summary("clinic-merged", {"xray": xray, "chat": row(5)}, series=series)
    [risk] = [
        r
        for r in decide([Variant("clinic-merged", day, clinic["clinic-merged"])]).risks
        if r.startswith("clinical/gpt-4o")
    ]
    assert "pass its TPM limit in 1 minute of the day (peak 112%)" in risk
    if refused:
        assert risk.endswith("; 7 requests refused there.")
    elif waited:
        assert risk.endswith("; requests waited up to 0.4 s there, none refused.")
    else:
        assert "; no request waited" in risk
        assert "refused" not in risk


def test_lost_attribution_is_a_risk_of_the_merged_option_only(clinic: dict[str, Policy]) -> None:
    merged = decide([Variant("clinic-merged", clean_day(), clinic["clinic-merged"])]).risks
    separate = decide([Variant("clinic-separate", clean_day(), clinic["clinic-separate"])]).risks
    lost = "Per-function spend is no longer visible at the provider"
    assert any(r.startswith(lost) and "not a gain" in r for r in merged)
    assert not any(r.startswith(lost) for r in separate)


def test_changes_from_today_s_policy(clinic: dict[str, Policy]) -> None:
    steps = changes(clinic["clinic-separate"], clinic["clinic-merged"])
    assert steps[0] == (
        "Create project clinical and ask OpenAI for its limits: gpt-4o RPM 5,000 · TPM 800,000."
    )
    assert any(s.startswith("Issue new keys in their new projects") for s in steps)
    assert any("Retire projects diagnosis, treatment, xray" in s for s in steps)
    assert changes(clinic["clinic-merged"], clinic["clinic-merged"]) == [
        "None: the recommended option is the current one."
    ]


def _headroom(growth: float | None, fails: float | None, limits: float | None) -> dict[str, Any]:
    return {
        "growth": growth,
        "growth_fails_at": fails,
        "limits": limits,
        "limits_fail_at": None,
        "precision": 0.05,
        "critical": ["critical", "clinical"],
        "seeds": [0, 1, 2],
        "simulations": 30,
    }


@pytest.mark.parametrize(
    ("room", "text", "sub", "risky"),
    [
        (
            _headroom(1.6, 1.7, 0.7),
            "< +70%",
            "none refused at ×1.60 traffic, some at ×1.70; limits may fall 30%",
            False,
        ),
        (
            _headroom(1.0, 1.09, 1.0),
            "< +9%",
            "none refused at ×1.00 traffic, some at ×1.09; no room for lower limits",
            True,
        ),
        (_headroom(8.0, None, 0.2), "≥ +700%", "traffic ×8.00 or more; limits may fall 80%", False),
        (
            _headroom(0.46, 0.5, None),
            "none",
            "critical refusals today; safe at ×0.46 traffic",
            False,
        ),
    ],
)
def test_headroom_when_it_was_computed(
    clinic: dict[str, Policy], room: dict[str, Any], text: str, sub: str, risky: bool
) -> None:
    day = clean_day()
    day["headroom"] = room
    v = Variant("clinic-merged", day, clinic["clinic-merged"])
    cell = headroom_cell(v)
    assert (cell.text, cell.sub) == (text, sub)
    decision = decide([v])
    assert any(r.startswith("Little headroom") for r in decision.risks) is risky
    said = next(d for d in decision.depends if d.startswith(("Traffic staying", "Traffic falling")))
    assert ("×1.60" in said) is (room["growth"] == 1.6)
    if risky:
        assert (
            "Little headroom: with 9% more traffic than this day, critical requests were refused "
            "in the simulation (none at ×1.00)."
        ) in decision.risks


def test_without_headroom_the_report_says_it_is_not_computed(clinic: dict[str, Policy]) -> None:
    v = Variant("clinic-merged", clean_day(), clinic["clinic-merged"])
    assert headroom_cell(v).text == "not computed"
    assert any("not computed for this report" in d for d in decide([v]).depends)


def test_a_sensitivity_table_counts_critical_refusals_by_the_report_s_rule(
    clinic: dict[str, Policy],
) -> None:
    busy = clean_day()
    busy["domains"]["xray"]["rejected"] = 12
    busy["domains"]["treatment"]["rejected"] = 3  # clinical holds a reserve: critical too
    busy["domains"]["chat"]["rejected"] = 40  # interactive: not critical
    busy["totals"]["rejected"] = 55
    day = clean_day()
    day["sensitivity"] = [
        {"label": "Traffic +50%", "traffic": 1.5, "limits": 1.0, **busy},
    ]
    table = sensitivity_table([Variant("clinic-merged", day, clinic["clinic-merged"])])
    assert table is not None
    [row] = table.rows
    assert row.label == "Traffic +50%"
    assert [(c.text, c.sub, c.warn) for c in row.cells] == [("15", "55 refused in all", True)]
    assert sensitivity_table([Variant("clinic-merged", clean_day(), None)]) is None
