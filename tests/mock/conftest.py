"""Fixtures that start the mock OpenAI server on a free loopback port, in a background thread.

``mock_server`` yields the base URL (``http://127.0.0.1:PORT``; the API is under ``/v1``) of a
server for a tiny policy with small limits, without latency. ``start_mock`` starts one with any
options (``speed``, ``seed``, a ``clock`` advanced by hand, :class:`keypolicy.mock.MockOptions`
fields). The keys' secrets are
canary values set with monkeypatch: tests check that none of them reaches a log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keypolicy.mock import MockOptions, MockServer, ScaledClock, create_app

POLICY = """\
version: 1
name: mock-test
organization:
  id: org-mocktest
projects:
  small:
    models:
      gpt-4o-mini: {rpm: 3, tpm: 10000}
  roomy:
    models:
      gpt-4o-mini: {rpm: 1000, tpm: 1000000}
      gpt-4o: {rpm: 1000, tpm: 30000}
      text-embedding-3-small: {rpm: 1000, tpm: 1000000}
keys:
  small: {project: small, env: MOCK_TEST_KEY_SMALL}
  roomy: {project: roomy, env: MOCK_TEST_KEY_ROOMY}
  unset: {project: roomy, env: MOCK_TEST_KEY_UNSET}
pools:
  all: {keys: [small, roomy, unset]}
priorities:
  - name: normal
domains:
  d: {pool: all, priority: normal, model: gpt-4o-mini}
"""

KEYS = {
    "small": "sk-canary-small-3f9a1c7e5b2d",
    "roomy": "sk-canary-roomy-8e4b6d0a2c91",
}
"""Secrets of the policy's keys, by alias (``unset`` has none in the environment)."""

WRONG_KEY = "sk-canary-wrong-77d1e0b5a3f6"
CANARIES = (*KEYS.values(), WRONG_KEY)

StartMock = Callable[..., str]


@pytest.fixture
def mock_policy(tmp_path: Path) -> Path:
    """The tiny test policy, written to a file."""
    path = tmp_path / "mock-test.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def mock_keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Set the keys' environment variables to canary secrets; return them by alias."""
    monkeypatch.setenv("MOCK_TEST_KEY_SMALL", KEYS["small"])
    monkeypatch.setenv("MOCK_TEST_KEY_ROOMY", KEYS["roomy"])
    monkeypatch.delenv("MOCK_TEST_KEY_UNSET", raising=False)
    return dict(KEYS)


@pytest.fixture
def start_mock(mock_policy: Path, mock_keys: dict[str, str]) -> Iterator[StartMock]:
    """Start mock servers with given options; each is stopped after the test."""
    servers: list[MockServer] = []

    def start(
        speed: float = 1.0, seed: int = 0, clock: ScaledClock | None = None, **options: Any
    ) -> str:
        options.setdefault("latency", False)
        mock_options = MockOptions(**options)
        app = create_app(mock_policy, speed=speed, seed=seed, options=mock_options, clock=clock)
        server = MockServer(app)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def mock_server(start_mock: StartMock) -> str:
    """The base URL of a mock server for the test policy (no latency, speed 1)."""
    return start_mock()
