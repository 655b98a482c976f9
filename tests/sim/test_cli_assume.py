"""``simulate --assume`` and ``compare --assume``: the provider counting otherwise, as a range."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands import run_keypolicy
from tests.sim.test_cli import SMALL

ROOT = Path(__file__).parents[2]
SEPARATE = ROOT / "policies" / "clinic-separate.yaml"


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SMALL)
    return path


def test_simulate_under_both_refund_rules_records_the_range(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    result = run_keypolicy(
        "simulate", SEPARATE, "--traffic", tiny, "--assume", "refund_unused=both", "--json", out
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.read_text())
    provider = summary["about"]["provider"]
    assert provider["assumed"] == provider["simulated"]  # the result is the policy's own rules
    assert provider["assumed"] == {
        "refund_unused": False,
        "count_failed": True,
        "quantum_requests": None,
        "quantum_tokens": None,
    }
    found = summary["range"]
    assert [s["label"] for s in found["scenarios"]] == [
        "refund_unused=false",
        "refund_unused=true",
    ]
    assert set(found["domains"]) == {"chat", "xray"}
    assert "clinic-separate, depending on how the provider counts:" in result.stdout
    assert "whichever way (whether OpenAI gives unused max_tokens back)" in result.stdout


def test_compare_takes_assumptions_for_every_variant(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    merged = ROOT / "policies" / "clinic-merged.yaml"
    result = run_keypolicy(
        "compare",
        SEPARATE,
        merged,
        "--traffic",
        tiny,
        "--assume",
        "quantum_tokens=none,1s",
        "--json",
        out,
    )
    assert result.returncode == 0, result.stderr
    variants = json.loads(out.read_text())["variants"]
    for name in ("clinic-separate", "clinic-merged"):
        labels = [s["label"] for s in variants[name]["range"]["scenarios"]]
        assert labels == ["quantum_tokens=none", "quantum_tokens=1s"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("refunds=both", "not an assumption"),
        ("refund_unused=maybe", "refund_unused takes true, false or both"),
        ("quantum_tokens=2m", "quantum_tokens must lie between 0 and 60s"),
        ("quantum_tokens=soon", "quantum_tokens takes a duration"),
    ],
)
def test_a_bad_assumption_is_an_error(tiny: Path, spec: str, message: str) -> None:
    result = run_keypolicy("simulate", SEPARATE, "--traffic", tiny, "--assume", spec)
    assert result.returncode == 2
    assert "--assume: " in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_one_other_rule_is_said_without_a_range(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    result = run_keypolicy(
        "simulate", SEPARATE, "--traffic", tiny, "--assume", "quantum_tokens=1s", "--json", out
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.read_text())
    assert "range" not in summary
    assert summary["about"]["provider"]["simulated"]["quantum_tokens"] == 1.0
    assert summary["about"]["provider"]["assumed"]["quantum_tokens"] is None
    assert (
        "clinic-separate: the simulated provider counted with quantum_tokens=1s (the policy "
        "assumes otherwise)"
    ) in result.stdout
