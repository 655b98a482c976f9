"""``keypolicy advise`` as a user runs it: outputs written whole, bad input refused (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keypolicy.advise.candidates import build_candidate
from keypolicy.policy import load_policy
from tests.commands import run_keypolicy

DATA = Path(__file__).parent / "data"
MINI = [DATA / "mini.yaml", "--traffic", DATA / "mini-day.yaml"]


@pytest.fixture(scope="module")
def advised(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("advise")
    done = run_keypolicy(
        "advise",
        *MINI,
        "--runs",
        "2",
        "--no-headroom",
        "--jobs",
        "1",
        "--json",
        out / "advice.json",
        "--out",
        out / "advice.html",
        "--write-policy",
        out / "best.yaml",
    )
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_it_tells_the_front_and_where_the_current_grouping_stands(
    advised: tuple[Path, str],
) -> None:
    _, stdout = advised
    assert "15 groupings: screened by simulating their 4 distinct parts apart" in stdout
    assert "#1 " in stdout
    assert "cost $" in stdout
    assert "The current grouping (chat | diagnosis | scheduling | xray)" in stdout


def test_the_written_policy_extends_the_base_and_passes_check_strict(
    advised: tuple[Path, str],
) -> None:
    out, _ = advised
    text = (out / "best.yaml").read_text()
    assert "extends: " in text
    assert text.startswith("# Written by `keypolicy advise`")
    checked = run_keypolicy("check", "--strict", "--quiet", out / "best.yaml")
    assert checked.returncode == 0, checked.stderr
    document = json.loads((out / "advice.json").read_text())
    best = document["candidates"][document["recommended"]]
    written = load_policy(out / "best.yaml").policy
    pools = {p: sorted(d for d, s in written.domains.items() if s.pool == p) for p in written.pools}
    assert {p: d for p, d in pools.items() if d} == best["pools"]
    base = load_policy(DATA / "mini.yaml").policy
    for section in ("priorities", "budgets", "retry", "organization"):
        assert getattr(written, section) == getattr(base, section)
    grouping = tuple(sorted((frozenset(d) for d in best["pools"].values()), key=min))
    simulated = build_candidate(base, grouping, best["index"]).policy
    for section in ("projects", "keys", "pools", "domains"):  # the file is what was simulated
        assert getattr(written, section) == getattr(simulated, section)


def test_the_json_and_the_report(advised: tuple[Path, str]) -> None:
    out, _ = advised
    document = json.loads((out / "advice.json").read_text())
    assert document["candidates_total"] == 15
    assert document["screen"]["parts_simulated_apart"] == 4  # two components, two ways each
    assert document["front"][0] == document["candidates"][document["recommended"]]["label"]
    assert document["critical_classes"] == ["critical"]
    page = (out / "advice.html").read_text()
    assert "<svg" in page
    assert "<script" not in page
    assert "http" not in page.replace("xmlns", "")
    assert page.count('fill="#c0392b"') == len(document["front"])  # the front, marked
    assert "current" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--apart", "chat,nope"], "unknown domain nope"),
        (["--apart", "chat,xray", "--together", "chat,xray"], "contradicts --together"),
        (["--max-candidates", "3"], "--max-candidates"),
        (["--rank", "critical,speed"], "unknown speed"),
        (["--critical", "urgent"], "not a priority class"),
        (["--rule", "half"], "--rule 'half'"),
        (["--cluster", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
    ],
)
def test_bad_input_is_a_clear_error_and_exit_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    done = run_keypolicy("advise", *MINI, *args, "--write-policy", tmp_path / "best.yaml")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_policy_with_one_domain_is_refused(tmp_path: Path) -> None:
    text = (DATA / "mini.yaml").read_text()
    lonely = tmp_path / "lonely.yaml"
    keep = (
        text.split("\ndomains:\n")[0] + "\ndomains:\n  chat: {pool: chat, priority: "
        "interactive, model: gpt-4o-mini}\n\nretry:\n  max_attempts: 3\n"
    )
    lonely.write_text(keep)
    traffic = tmp_path / "chat.yaml"
    traffic.write_text(
        (DATA / "mini-day.yaml").read_text().split("\ndomains:\n")[0]
        + "\ndomains:\n  chat:\n    rate: 60/h\n    model: gpt-4o-mini\n"
        "    prompt_tokens: 100\n    max_tokens: 50\n    completion_tokens: 20\n"
    )
    done = run_keypolicy("advise", lonely, "--traffic", traffic)
    assert done.returncode == 2, done.stderr
    assert "one domain" in done.stderr
    assert "Traceback" not in done.stderr
