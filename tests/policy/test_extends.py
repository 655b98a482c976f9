"""extends: how a variant merges onto its base, and where errors point afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from keypolicy.policy import PolicyError, load_policy

BASE = """\
version: 1
name: base
description: the base
projects:
  p: {models: {gpt-4o: {rpm: 500, tpm: 30000}}}
  q: {models: {gpt-4o: {rpm: 500, tpm: 30000}}}
keys:
  k: {project: p, env: KEY_K}
  j: {project: q, env: KEY_J, weight: 2}
pools:
  a: {keys: [k, j], strategy: weighted}
priorities:
  - {name: high, reserve: 10%}
  - {name: low}
domains:
  d: {pool: a, priority: high, model: gpt-4o, models: [gpt-4o-mini]}
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_maps_merge_lists_replace_null_removes(tmp_path: Path) -> None:
    _write(tmp_path, "base.yaml", BASE)
    variant = _write(
        tmp_path,
        "variant.yaml",
        """\
version: 1
extends: base.yaml
projects:
  q: null
  p: {models: {gpt-4o: {tpm: 60000}}}
keys:
  j: null
pools:
  a: {keys: [k]}
domains:
  d: {models: [gpt-4o]}
""",
    )
    loaded = load_policy(variant)
    p = loaded.policy
    assert p.name == "variant"  # not inherited: the file's own name
    assert p.description == ""
    assert set(p.projects) == {"p"}
    assert p.projects["p"].models["gpt-4o"].rpm == 500  # kept from the base
    assert p.projects["p"].models["gpt-4o"].tpm == 60000  # overridden
    assert set(p.keys) == {"k"}
    assert p.pools["a"].keys == ["k"]  # lists replace whole
    assert p.pools["a"].strategy == "weighted"  # siblings kept
    assert p.domains["d"].models == ["gpt-4o"]
    assert loaded.files == (str(tmp_path / "base.yaml"), str(variant))


def test_error_in_base_points_into_the_base_file(tmp_path: Path) -> None:
    _write(tmp_path, "base.yaml", BASE.replace("priority: high", "priority: hihg"))
    variant = _write(tmp_path, "variant.yaml", "version: 1\nextends: base.yaml\nname: v\n")
    with pytest.raises(PolicyError) as info:
        load_policy(variant)
    (issue,) = info.value.issues
    assert issue.location is not None
    assert issue.location.file.endswith("base.yaml")
    assert issue.location.line == 16
    assert "did you mean 'high'?" in str(issue)


def test_error_in_variant_points_into_the_variant(tmp_path: Path) -> None:
    _write(tmp_path, "base.yaml", BASE)
    variant = _write(
        tmp_path,
        "variant.yaml",
        "version: 1\nextends: base.yaml\nname: v\ndomains:\n  d: {pool: b}\n",
    )
    with pytest.raises(PolicyError) as info:
        load_policy(variant)
    (issue,) = info.value.issues
    assert str(issue) == f"{variant}:5:13: domains.d.pool: unknown pool 'b' (known: a)"


def test_cycles_are_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "version: 1\nname: a\nextends: b.yaml\n")
    _write(tmp_path, "b.yaml", "version: 1\nname: b\nextends: a.yaml\n")
    with pytest.raises(PolicyError, match=r"cycle: a.yaml -> b.yaml -> a.yaml"):
        load_policy(tmp_path / "a.yaml")


def test_missing_base_is_reported_at_the_extends_line(tmp_path: Path) -> None:
    variant = _write(tmp_path, "v.yaml", "version: 1\nname: v\nextends: nowhere.yaml\n")
    with pytest.raises(PolicyError) as info:
        load_policy(variant)
    (issue,) = info.value.issues
    assert issue.location is not None
    assert issue.location.line == 3
    assert "base policy 'nowhere.yaml' not found" in issue.message


def test_shipped_variants_differ_only_where_they_say() -> None:
    root = Path(__file__).parents[2] / "policies"
    separate = load_policy(root / "clinic-separate.yaml").policy
    merged = load_policy(root / "clinic-merged.yaml").policy
    assert merged.priorities == separate.priorities
    assert merged.budgets == separate.budgets
    assert merged.retry == separate.retry
    assert len(merged.projects) == 3
    assert len(separate.projects) == 6
    for name, domain in merged.domains.items():
        assert domain.model == separate.domains[name].model
        assert domain.defer == separate.domains[name].defer
