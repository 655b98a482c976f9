"""Starting and running the mock server; its clock, options and key ring."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from keypolicy.mock import KeyRing, MockOptions, MockServer, ScaledClock, create_app
from keypolicy.policy import load_policy_text
from keypolicy.upstream import ModelSpeed
from tests.mock.conftest import KEYS, POLICY


def test_starts_in_under_a_second(mock_policy: Path, mock_keys: dict[str, str]) -> None:
    began = time.monotonic()
    with MockServer(create_app(mock_policy)) as server:
        started = time.monotonic() - began
        reply = httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer x"})
    assert started < 1.0
    assert reply.status_code == 401


def test_scaled_clock() -> None:
    wall = [100.0]
    clock = ScaledClock(60.0, origin=1000.0, monotonic=lambda: wall[0])
    assert clock.now() == 1000.0
    wall[0] = 102.0
    assert clock.now() == 1120.0
    assert clock.wall(60.0) == 1.0
    with pytest.raises(ValueError, match="positive"):
        ScaledClock(0.0)


def test_key_ring_names_aliases_never_secrets() -> None:
    policy = load_policy_text(POLICY, "p.yaml").policy
    ring = KeyRing.from_policy(
        policy, {"MOCK_TEST_KEY_SMALL": KEYS["small"], "MOCK_TEST_KEY_ROOMY": KEYS["small"]}
    )
    assert ring.aliases == ["small"]  # roomy has the same secret; unset has none
    caller = ring.identify(f"Bearer {KEYS['small']}")
    assert (caller.alias, caller.project) == ("small", "small")
    assert isinstance(ring.identify("Bearer sk-other"), dict)
    assert isinstance(ring.identify(None), dict)


def test_options_make_settings() -> None:
    settings = MockOptions(ttft=0.1, tokens_per_second=1000.0, error_rate=0.1).provider_settings()
    assert settings.latency.speed("gpt-4o") == ModelSpeed(0.1, 1000.0)
    assert settings.latency.speed("anything") == ModelSpeed(0.1, 1000.0)
    assert settings.faults.server_error == 0.1
    assert MockOptions(latency=False).latency_settings().scale == 0.0
    with pytest.raises(ValueError, match="between 0 and 1"):
        MockOptions(timeout_rate=2.0).provider_settings()


def test_run_mock_server_serves_until_interrupted(mock_policy: Path) -> None:
    env = {**os.environ, "MOCK_TEST_KEY_ROOMY": KEYS["roomy"]}
    code = (
        "import sys; from keypolicy.mock import run_mock_server; "
        "run_mock_server(sys.argv[1], '127.0.0.1', 0, 10.0, 3, error_rate=0.0, limits=[])"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(mock_policy)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = ""
        while "mock server on" not in first and process.poll() is None:
            first += process.stderr.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+)/v1 \(speed x10, seed 3", first)
        assert match, first
        reply = httpx.post(
            f"{match.group(1)}/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEYS['roomy']}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert reply.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "key=roomy" in err
    assert KEYS["roomy"] not in out + err + first
