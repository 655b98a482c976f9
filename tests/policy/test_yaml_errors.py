"""YAML syntax errors name where the unclosed bracket or quote began, not only where it broke.

Each case is one edit to a valid policy and the exact message it must produce, checked through
``load_policy``, through ``keypolicy check`` as a user runs it (exit 2, no traceback), and for
traffic profiles, which are read by the same reader.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from keypolicy.policy import PolicyError, load_policy
from keypolicy.sim.traffic import TrafficError, load_traffic
from tests.commands import run_keypolicy

VALID = """\
# A clinic's keys, pools and domains.
version: 1
name: clinic
projects:
  clinical:
    models:
      gpt-4o: {rpm: 500, tpm: 200k}
keys:
  diagnosis:
    project: clinical
    env: OPENAI_KEY_DIAGNOSIS
  xray:
    project: clinical
    env: OPENAI_KEY_XRAY
pools:
  clinical:
    strategy: least_loaded
    keys: [diagnosis, xray]
priorities:
  - name: critical
domains:
  diagnosis:
    pool: clinical
    priority: critical
    model: gpt-4o
    description: "Reads a patient's case"
"""


def edit(**lines: str) -> str:
    """``VALID`` with line N (1-based, given as ``lN``) replaced."""
    out = VALID.splitlines()
    for key, text in lines.items():
        out[int(key[1:]) - 1] = text
    return "\n".join(out) + "\n"


CLOSE_LIST = "close it with ']' where the list ends"
CLOSE_MAPPING = "close it with '}' where the mapping ends"
# case: (policy text, the message after "FILE:")
CASES: dict[str, tuple[str, str]] = {
    "unclosed_bracket": (
        edit(l18="    keys: [diagnosis, xray"),
        "18:11: YAML syntax: the '[' opened here is never closed (noticed at line 19, column 11: "
        f"expected ',' or ']', but got ':'; {CLOSE_LIST})",
    ),
    "unclosed_bracket_at_end": (
        VALID + "extra: [1, 2\n",
        "27:8: YAML syntax: the '[' opened here is never closed (noticed at line 28, column 1: "
        f"expected ',' or ']', but the file ended; {CLOSE_LIST})",
    ),
    "unclosed_brace": (
        edit(l7="      gpt-4o: {rpm: 500, tpm: 200k"),
        "7:15: YAML syntax: the '{' opened here is never closed (noticed at line 8, column 5: "
        f"expected ',' or '}}', but got ':'; {CLOSE_MAPPING})",
    ),
    "bracket_closed_by_brace": (
        edit(l18="    keys: [diagnosis, xray}"),
        "18:11: YAML syntax: the '[' opened here is never closed (noticed at line 18, column 27: "
        f"expected ',' or ']', but got '}}'; {CLOSE_LIST})",
    ),
    "brace_closes_an_open_bracket": (
        edit(l7="      gpt-4o: {rpm: [}"),
        "7:21: YAML syntax: the '[' opened here is never closed (noticed at line 7, column 22: "
        f"expected the node content, but found '}}'; {CLOSE_LIST})",
    ),
    "closed_bracket_missing_comma": (
        edit(l18="    keys: [diagnosis: xray: 1]"),
        "18:27: YAML syntax: expected ',' or ']', but got ':' (inside the '[' opened at line 18, "
        "column 11; separate its items with ',')",
    ),
    "unclosed_double_quote": (
        edit(l26='    description: "Reads a case'),
        "26:18: YAML syntax: the double quote opened here is never closed (noticed at line 27, "
        'column 1: the file ends inside it; close it with " where the text ends)',
    ),
    "unclosed_single_quote": (
        edit(l26="    description: 'Reads a case"),
        "26:18: YAML syntax: the single quote opened here is never closed (noticed at line 27, "
        "column 1: the file ends inside it; close it with ' where the text ends)",
    ),
    "double_quote_closed_by_a_later_one": (
        edit(l3='name: "clinic'),
        "3:7: YAML syntax: the double quote opened here is closed only at line 26, column 18 "
        "(noticed at line 26, column 19: expected <block end>, but found a value; "
        'close it with " where the text ends)',
    ),
    "single_quote_closed_by_an_apostrophe": (
        edit(l3="name: 'clinic"),
        "3:7: YAML syntax: the single quote opened here is closed only at line 26, column 34 "
        "(noticed at line 26, column 35: expected <block end>, but found a value; "
        "close it with ' where the text ends)",
    ),
    "tab_indentation": (
        edit(l10="\tproject: clinical"),
        "10:1: YAML syntax: a tab indents this line "
        "(YAML indents with spaces only; replace the tab with spaces)",
    ),
    "tab_after_a_key": (
        edit(l10="    project:\tclinical"),
        "10:13: YAML syntax: a tab cannot stand here (use spaces instead of the tab)",
    ),
    "indent_between_levels": (
        edit(l24="   priority: critical"),
        "24:4: YAML syntax: this line is indented 3 spaces, which lines up with nothing above it "
        "(indent it like the keys it belongs with: 4 spaces as at line 23, 2 as at line 22, "
        "or 0 as at line 21)",
    ),
    "indent_deeper_than_its_key": (
        edit(l14="      env: OPENAI_KEY_XRAY"),
        "14:7: YAML syntax: this line is indented 6 spaces, deeper than the key above it, so it "
        "reads as more of the value begun at line 13, column 14 (a key cannot start there; "
        "indent it like the keys it belongs with: 4 spaces as at line 13, 2 as at line 12, "
        "or 0 as at line 8)",
    ),
    "key_without_colon": (
        edit(l15="pools"),
        "15:1: YAML syntax: this key has no ':' after it (noticed at line 16, column 11; "
        "write 'key: value', or 'key:' above an indented block)",
    ),
    "line_without_colon": (
        edit(l2="version 1"),
        "2:1: YAML syntax: this line has no ': ', so line 3 reads as more of its text "
        "(noticed at line 3, column 5: mapping values are not allowed here; "
        "if it is a key, write 'key: value')",
    ),
    "closer_without_opener": (
        edit(l19="priorities: ]"),
        "19:13: YAML syntax: this ']' closes no '[' (remove it, or add the '[')",
    ),
    "colon_inside_a_value": (
        edit(l3="name: clinic: north"),
        "3:13: YAML syntax: ': ' cannot stand inside a value "
        "(quote the value begun at line 3, column 7)",
    ),
}


def write_cases(folder: Path) -> dict[str, Path]:
    paths = {}
    for case, (text, _) in CASES.items():
        paths[case] = folder / f"{case}.yaml"
        paths[case].write_text(text, encoding="utf-8")
    return paths


def test_the_valid_policy_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "valid.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert load_policy(path).policy.name == "clinic"


@pytest.mark.parametrize("case", list(CASES))
def test_load_policy_names_where_it_began_and_where_it_was_noticed(
    tmp_path: Path, case: str
) -> None:
    path = write_cases(tmp_path)[case]
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert [str(issue) for issue in info.value.issues] == [f"{path}:{CASES[case][1]}"]


def test_check_prints_each_message_and_exits_2_without_a_traceback(tmp_path: Path) -> None:
    paths = write_cases(tmp_path)
    result = run_keypolicy("check", *paths.values())
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    for case, path in paths.items():
        assert f"error: {path}:{CASES[case][1]}\n" in result.stderr, case


def test_a_traffic_profile_gets_the_same_messages(tmp_path: Path) -> None:
    profile = tmp_path / "traffic.yaml"
    profile.write_text("version: 1\nname: day\ndomains:\n  chat: {rate: [1, 2\n", encoding="utf-8")
    expected = (
        f"{profile}:4:16: YAML syntax: the '[' opened here is never closed (noticed at line 5, "
        f"column 1: expected ',' or ']', but the file ended; {CLOSE_LIST})"
    )
    with pytest.raises(TrafficError) as info:
        load_traffic(profile)
    assert info.value.issues == [expected]

    policy = tmp_path / "policy.yaml"
    policy.write_text(VALID, encoding="utf-8")
    result = run_keypolicy("simulate", policy, "--traffic", profile)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert expected in result.stderr
