"""``keypolicy mock-server`` as a user starts it: a real process, the real openai client."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

ROOT = Path(__file__).parents[2]
CANARY = "sk-canary-mockcli-0123456789"


def test_mock_server_command_serves_the_openai_client() -> None:
    env = {**os.environ, "CLINIC_KEY_CHAT": CANARY}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keypolicy",
            "mock-server",
            "--policy",
            str(ROOT / "policies" / "clinic-merged.yaml"),
            "--port",
            "0",
            "--no-latency",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url, lines = None, []
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            match = re.search(r"(http://127\.0\.0\.1:\d+)/v1", line)
            url = match.group(1) if match else None
        assert url, "".join(lines)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=CANARY, max_retries=0)
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], max_tokens=20
        )
        assert reply.usage is not None
        assert reply.usage.completion_tokens <= 20
        client.close()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert CANARY not in "".join(lines) + out


def test_mock_server_refuses_a_bad_policy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\n")
    result = subprocess.run(
        [sys.executable, "-m", "keypolicy", "mock-server", "--policy", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "'projects' is required" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["--error-rate", "2"], ["--batch-delay", "soon"]])
def test_mock_server_refuses_bad_options(args: list[str]) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keypolicy",
            "mock-server",
            "--policy",
            str(ROOT / "policies" / "clinic-merged.yaml"),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
