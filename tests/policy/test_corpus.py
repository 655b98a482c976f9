"""The policy corpus: valid files load; each invalid file yields exactly the problems it lists.

An invalid file states what it must produce in ``# expect: LINE:COL: path: message`` comments,
so the test and the example live side by side and a changed message shows up as a diff.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from keypolicy.policy import PolicyError, load_policy

CORPUS = Path(__file__).parent / "corpus"
EXPECT = re.compile(r"^# expect: (.*)$", re.MULTILINE)


def _files(kind: str) -> list[Path]:
    return sorted((CORPUS / kind).glob("*.yaml"))


@pytest.mark.parametrize("path", _files("valid"), ids=lambda p: p.stem)
def test_valid_policies_load_without_warnings(path: Path) -> None:
    loaded = load_policy(path)
    assert loaded.warnings == []


@pytest.mark.parametrize("path", _files("invalid"), ids=lambda p: p.stem)
def test_invalid_policy_reports_exact_locations_and_messages(path: Path) -> None:
    expected = EXPECT.findall(path.read_text())
    assert expected, f"{path.name} states no '# expect:' lines"
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    got = [str(issue).removeprefix(f"{path}:") for issue in info.value.issues]
    assert sorted(got) == sorted(expected)


def test_shipped_clinic_policies_are_valid_and_clean() -> None:
    root = Path(__file__).parents[2] / "policies"
    for name in ("clinic-separate", "clinic-merged", "clinic-single"):
        loaded = load_policy(root / f"{name}.yaml", strict=True)
        assert loaded.policy.name == name
        assert set(loaded.policy.domains) == {
            "diagnosis",
            "treatment",
            "xray",
            "chat",
            "scheduling",
            "financial",
        }


def test_units_are_normalized() -> None:
    policy = load_policy(CORPUS / "valid" / "units.yaml").policy
    limits = policy.projects["p"].models["gpt-4o"]
    assert (limits.rpm, limits.rpd, limits.tpm, limits.tpd, limits.quantum) == (
        1500,
        10_000,
        800_000,
        2_000_000,
        1.0,
    )
    assert policy.priorities[0].max_wait == 90.0
    assert policy.priorities[0].reserve == 0.25
    assert policy.domains["now"].max_wait == 2.5
    assert policy.domains["tonight"].defer.window_minutes() == [(19 * 60, 7 * 60), (720, 810)]
    assert policy.budgets["total"].usd == 1000.0
    assert policy.budgets["rolling"].per == 86400.0
    assert policy.budgets["rolling"].on_exhausted.model == "my-finetune"
    assert policy.budgets["weekly"].applies_to.scope == "project"
    assert policy.retry.backoff.max == 60.0


def test_secret_never_appears_in_errors() -> None:
    path = CORPUS / "invalid" / "secret.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    text = str(info.value) + "".join(repr(i) for i in info.value.issues)
    assert "canaryZZ9" not in text


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[2] / "policies").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_shipped_policy_passes_strict_check(path: Path) -> None:
    assert load_policy(path, strict=True).policy.name == path.stem
