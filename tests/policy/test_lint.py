"""Lint warnings: valid policies that are probably not what their authors meant."""

from __future__ import annotations

import pytest

from keypolicy.policy import PolicyError, load_policy_text

BASE = """\
version: 1
name: lint
projects:
  p: {models: {gpt-4o: {rpm: 500, tpm: 30000}}}
keys:
  k: {project: p, env: KEY}
pools:
  a: {keys: [k]}
priorities:
  - {name: high, reserve: 10%}
  - {name: low}
domains:
  d: {pool: a, priority: low, model: gpt-4o}
"""


def _warnings(text: str) -> list[str]:
    return [str(w) for w in load_policy_text(text, "p.yaml").warnings]


def test_clean_policy_has_no_warnings() -> None:
    assert _warnings(BASE) == []


def test_reserves_that_leave_a_class_nothing() -> None:
    text = BASE.replace("reserve: 10%", "reserve: 100%")
    found = _warnings(text)
    assert any("reserve 100% of every limit, which leaves this class nothing" in w for w in found)
    assert any("max_wait" not in w for w in found)


def test_reserve_on_lowest_class() -> None:
    found = _warnings(BASE.replace("{name: low}", "{name: low, reserve: 5%}"))
    assert found == [
        "p.yaml:11:26: priorities[1].reserve: 'low' is the lowest class: its reserve "
        "protects nothing (set it to 0, or move it to a higher class)"
    ]


def test_limits_above_published_tiers() -> None:
    found = _warnings(BASE.replace("rpm: 500,", "rpm: 50000,"))
    assert found == [
        "p.yaml:4:30: projects.p.models.gpt-4o.rpm: rpm 50,000 is above the highest "
        "published tier for gpt-4o (10,000) (check the number against your "
        "account's limits page)"
    ]


def test_budget_smaller_than_one_request() -> None:
    text = BASE + "budgets:\n  tiny: {applies_to: {domain: d}, usd: $0.10}\n"
    found = _warnings(text)
    assert len(found) == 1
    assert "$0.1 is less than one request of domain 'd' can cost ($0.48" in found[0]


def test_max_wait_shorter_than_one_refill() -> None:
    text = BASE.replace("model: gpt-4o}", "model: gpt-4o, max_wait: 50ms}")
    (found,) = _warnings(text)
    assert "max_wait 50ms is shorter than the 133ms one request needs" in found


def test_model_without_limits_in_its_project() -> None:
    text = BASE.replace("model: gpt-4o}", "model: gpt-4o, models: [gpt-4o-mini]}")
    (found,) = _warnings(text)
    assert "project 'p' (key 'k') declares no limits for gpt-4o-mini" in found


def test_literal_secret_in_a_comment_is_found() -> None:
    text = BASE + "# old key: sk-proj-canaryABCDEF0123456789\n"
    (found,) = _warnings(text)
    assert found.startswith("p.yaml:14:12: this looks like a literal API key")
    assert "canary" not in found


def test_strict_makes_warnings_errors() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(
            BASE.replace("{name: low}", "{name: low, reserve: 5%}"), "p.yaml", strict=True
        )
    assert [i.severity for i in info.value.issues] == ["error"]


def test_a_domain_may_name_a_snapshot_of_a_model_with_limits() -> None:
    assert _warnings(BASE.replace("model: gpt-4o}", "model: gpt-4o-2024-08-06}")) == []


def test_limits_declared_for_a_snapshot_pace_nothing() -> None:
    text = BASE.replace(
        "p: {models: {gpt-4o: {rpm: 500, tpm: 30000}}}",
        "p: {models: {gpt-4o: {rpm: 500, tpm: 30000}, gpt-4o-2024-11-20: {rpm: 5}}}",
    )
    (found,) = _warnings(text)
    assert "projects.p.models.gpt-4o-2024-11-20" in found
    assert "gpt-4o-2024-11-20 is a dated snapshot of gpt-4o" in found
    assert "declare the limits for gpt-4o" in found


def test_budgets_above_the_monthly_usage_limit() -> None:
    org = "organization: {tier: 1}\n"
    budgets = (
        "budgets:\n"
        "  month: {applies_to: all, usd: $150, per: month}\n"
        "  day: {applies_to: all, usd: $4, per: day}\n"
        "  fine: {applies_to: all, usd: $3, per: day}\n"
    )
    found = _warnings(BASE.replace("projects:", org + "projects:") + budgets)
    assert found == [
        "p.yaml:16:33: budgets.month.usd: $150 a month is above the organization's monthly "
        "usage limit (tier 1's $100): OpenAI refuses every call with insufficient_quota before "
        "this budget is spent (keep the budget below the usage limit, or state the "
        "organization's real limit (organization.usage_limit) or tier)",
        "p.yaml:17:31: budgets.day.usd: $4 per day allows up to $124 in a month, above the "
        "organization's monthly usage limit (tier 1's $100): OpenAI refuses every call with "
        "insufficient_quota before this budget is spent (keep the budget below the usage "
        "limit, or state the organization's real limit (organization.usage_limit) or tier)",
    ]


def test_a_stated_usage_limit_wins_over_the_tier() -> None:
    org = 'organization: {tier: 1, usage_limit: "$2,000"}\n'
    budgets = "budgets:\n  month: {applies_to: all, usd: $1500, per: month}\n"
    assert _warnings(BASE.replace("projects:", org + "projects:") + budgets) == []
    org = "organization: {usage_limit: $1000}\n"
    found = _warnings(BASE.replace("projects:", org + "projects:") + budgets)
    assert len(found) == 1
    assert "(organization.usage_limit $1,000)" in found[0]


def test_no_tier_no_usage_limit_finding() -> None:
    budgets = "budgets:\n  month: {applies_to: all, usd: $1000000, per: month}\n"
    assert _warnings(BASE + budgets) == []


def test_weekly_and_rolling_budgets_count_every_period_a_month_can_hold() -> None:
    org = "organization: {tier: 3}\n"  # $1,000 a month
    budgets = (
        "budgets:\n"
        "  weekly: {applies_to: all, usd: $170, per: week}\n"  # 6 weeks: $1,020
        "  rolling: {applies_to: all, usd: $31, per: 24h}\n"  # 1 + 31 windows: $992
    )
    found = _warnings(BASE.replace("projects:", org + "projects:") + budgets)
    assert len(found) == 1
    assert "budgets.weekly.usd: $170 per week allows up to $1,020 in a month" in found[0]
