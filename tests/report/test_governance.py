"""Governance rows: functions per key and project, revocation, attribution at the provider."""

from __future__ import annotations

from keypolicy.policy.model import Policy
from keypolicy.report.facts import Variant
from keypolicy.report.governance import governance_rows, shape
from keypolicy.report.recommend import key_findings
from tests.report.builders import row, summary


def test_the_clinic_options_side_by_side(clinic: dict[str, Policy]) -> None:
    rows = dict(governance_rows(dict(clinic)))
    assert rows["Keys and projects"] == [
        "6 keys, 6 projects",
        "6 keys, 3 projects",
        "6 keys, 1 project",
    ]
    assert rows["Functions per project"] == [
        "1 per project",
        "up to 3: project clinical carries diagnosis, xray, treatment; project back-office "
        "carries scheduling, financial",
        "up to 6: project clinic carries all 6 functions",
    ]
    assert rows["Revoking one key"] == [
        "stops its own function only",
        "chat stops chat; the other 5 stop nothing (their pools have other keys)",
        "stops nothing: every pool has other keys (of the same project: no capacity lost)",
    ]
    visible = rows["Spend per function visible at the provider"]
    assert visible[0].startswith("yes: each key carries one function")
    assert visible[1].startswith(
        "no: keys diagnosis, treatment, xray each carry diagnosis, xray, treatment; keys "
        "scheduling, financial each carry scheduling, financial."
    )
    assert visible[2].startswith("no: all 6 keys each carry all 6 functions.")


def test_without_a_policy_the_cells_are_empty(clinic: dict[str, Policy]) -> None:
    rows = dict(governance_rows({"records": None, "clinic-merged": clinic["clinic-merged"]}))
    assert rows["Keys and projects"] == ["–", "6 keys, 3 projects"]


def test_mixing_counts_pairs_of_classes_in_one_project(clinic: dict[str, Policy]) -> None:
    assert shape(clinic["clinic-separate"]).mixing == 0
    assert shape(clinic["clinic-merged"]).mixing == 2  # treatment with diagnosis, with xray
    assert shape(clinic["clinic-single"]).mixing == 13


def test_an_even_spread_over_shared_keys_is_not_sold_as_a_plus(clinic: dict[str, Policy]) -> None:
    keys = {k: row(1000) for k in clinic["clinic-single"].keys}
    day = summary("clinic-single", {"chat": row(6000)}, keys=keys)
    [single] = key_findings(Variant("clinic-single", day, clinic["clinic-single"]))
    assert single.startswith("Traffic is spread evenly over the 6 keys: about 1,000 requests each.")
    assert "the provider's per-key usage no longer shows any one function's spend" in single
    [separate] = key_findings(Variant("clinic-separate", day, clinic["clinic-separate"]))
    assert "no longer shows" not in separate
