"""``keypolicy check`` and ``keypolicy schema`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.commands import run_keypolicy

ROOT = Path(__file__).parents[2]
POLICIES = [ROOT / "policies" / f"clinic-{v}.yaml" for v in ("separate", "merged", "single")]
INVALID = ROOT / "tests" / "policy" / "corpus" / "invalid"


def test_check_valid_policies_prints_summary_and_exits_0() -> None:
    result = run_keypolicy("check", *POLICIES)
    assert result.returncode == 0, result.stderr
    assert "clinic-merged: valid" in result.stdout
    assert (
        "diagnosis [critical, gpt-4o] -> pool clinical (least_loaded) -> keys diagnosis, "
        "xray, treatment -> project clinical"
    ) in result.stdout
    assert "chat-daily: $40.00 per day (America/New_York) on domain chat" in result.stdout
    assert result.stderr == ""


def test_check_invalid_policy_exits_2_with_located_errors_and_no_traceback() -> None:
    path = INVALID / "typo_pool.yaml"
    result = run_keypolicy("check", path)
    assert result.returncode == 2
    assert (
        f"{path}:15:34: domains.chat.pool: unknown pool 'clincal' (did you mean 'clinical'?)"
    ) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_check_reports_every_file_and_fails_if_any_is_invalid() -> None:
    result = run_keypolicy(
        "check", "-q", POLICIES[0], INVALID / "references.yaml", INVALID / "missing.yaml"
    )
    assert result.returncode == 2
    assert result.stderr.count(": invalid") == 2
    assert result.stdout == ""


def test_check_never_prints_a_secret() -> None:
    result = run_keypolicy("check", INVALID / "secret.yaml")
    assert result.returncode == 2
    assert "canaryZZ9" not in result.stdout + result.stderr


def test_check_missing_file() -> None:
    result = run_keypolicy("check", "no/such/policy.yaml")
    assert result.returncode == 2
    assert "no/such/policy.yaml: no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_strict_turns_warnings_into_errors(tmp_path: Path) -> None:
    text = POLICIES[0].read_text().replace("max_wait: 15m", "max_wait: 15m\n    reserve: 5%")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert run_keypolicy("check", path).returncode == 0
    strict = run_keypolicy("check", "--strict", path)
    assert strict.returncode == 2
    assert "its reserve protects nothing" in strict.stderr


def test_resolved_output_loads_back(tmp_path: Path) -> None:
    result = run_keypolicy("check", "--resolved", POLICIES[1])
    assert result.returncode == 0
    out = tmp_path / "resolved.yaml"
    out.write_text(result.stdout)
    assert run_keypolicy("check", "-q", out).returncode == 0


def test_schema_is_json_schema_of_the_language(tmp_path: Path) -> None:
    result = run_keypolicy("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "keypolicy policy, version 1"
    assert {"projects", "keys", "pools", "priorities", "domains", "budgets"} <= set(
        schema["properties"]
    )
    target = tmp_path / "schema.json"
    assert run_keypolicy("schema", "--out", target).returncode == 0
    assert json.loads(target.read_text()) == schema


def test_unknown_command_is_a_usage_error() -> None:
    result = run_keypolicy("frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
