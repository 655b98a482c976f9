"""A short replay, end to end as a user runs it: the mock server, ``keypolicy replay --predict``
and ``keypolicy fidelity``, all on the command line. About 30 seconds of wall time.

Twenty minutes of the clinic morning (the x-ray worklist run at 07:00, under separate keys: a
third of the requests meet a limit) at 60 times real time, the prompts' text 5.5 characters a
token (the limiters' estimate 37% above the exact count, modelled by the simulator). The bounds
are looser than the goals of ``benchmarks/fidelity.py`` (a test suite shares the machine), but
tight enough that a change breaking the shared-core promise (the simulator and the runtime
deciding differently, or charging differently) fails: the unmodelled estimate alone misses them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from keypolicy.policy import load_policy
from tests.commands import run_keypolicy

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "clinic-separate.yaml"
SPEED = "60"

LOOSE = {"cost_usd": 0.03, "upstream_429s": 0.15, "deferred": 0.15, "wait_p95_s": 0.30}
"""The test's bounds on the relative errors (floors as in keypolicy.fidelity.compare)."""


@pytest.fixture
def keys() -> dict[str, str]:
    policy = load_policy(POLICY).policy
    return {k.env: f"sk-canary-{alias}-3f9a1c7e" for alias, k in policy.keys.items()}


@pytest.fixture
def mock_url(keys: dict[str, str]) -> Iterator[str]:
    """``keypolicy mock-server`` for the policy at the replay's speed, in its own process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "keypolicy", "mock-server", "--policy", str(POLICY),
         "--port", "0", "--speed", SPEED, "--seed", "1", "--log-level", "warning"],
        env={**os.environ, **keys},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        for line in process.stderr:
            found = re.search(r"mock server on (http://\S+?)/v1", line)
            if found:
                yield found.group(1)
                break
        else:
            pytest.fail("the mock server did not start")
    finally:
        process.terminate()
        process.wait(10)
        process.stderr.close()


def test_a_short_replay_matches_its_prediction(
    tmp_path: Path, keys: dict[str, str], mock_url: str
) -> None:
    predicted, observed = tmp_path / "predicted.csv", tmp_path / "ledger.jsonl"
    env_file = tmp_path / "keys.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in keys.items()))
    replayed = run_keypolicy(
        "replay", POLICY, "--traffic", ROOT / "simulations" / "clinic-day.yaml",
        "--against", mock_url, "--speed", SPEED, "--seed", "1", "--window", "6h50m-7h10m",
        "--only", "xray", "--only", "diagnosis", "--only", "treatment", "--only", "chat",
        "--only", "scheduling", "--chars-per-token", "5.5",
        "--ledger", observed, "--predict", predicted, "--env-file", env_file,
        timeout=240,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    assert "from threads" in replayed.stderr
    assert "from asyncio tasks" in replayed.stderr
    for canary in keys.values():
        assert canary not in replayed.stderr + replayed.stdout
        assert canary not in observed.read_text()
    out = tmp_path / "fidelity.json"
    compared = run_keypolicy("fidelity", predicted, observed, "--json", out)
    assert compared.returncode == 0, compared.stderr
    data = json.loads(out.read_text())
    rows = {(r["domain"], r["metric"]): r for r in data["rows"]}
    total = rows["total", "requests"]
    assert total["predicted"] == total["observed"] > 1000  # the very same arrivals
    assert rows["total", "rejected"]["predicted"] > 100  # limits were met
    for metric, bound in LOOSE.items():
        error = rows["total", metric]["rel_err"]
        assert abs(error) <= bound, (metric, error, compared.stdout)
