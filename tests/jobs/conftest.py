"""Fixtures for the job queue: a mock OpenAI server (its Batch API too) on loopback and a
runtime in front of it, sharing one :class:`FakeClock` (nothing sleeps for time to pass).

The keys are canaries; ``wait_until`` waits for the worker's thread to get somewhere, never
for time to pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keypolicy.jobs import JobSettings
from keypolicy.mock import MockOptions, MockServer, ScaledClock, create_app
from keypolicy.runtime import FakeClock, Runtime

# 2026-11-18 06:06:40 in New York (EST, UTC-5).
START = 1_795_000_000.0

POLICY = """\
version: 1
name: jobs-test
timezone: America/New_York
organization:
  id: org-jobstest
  tier: 1
projects:
  office:
    models:
      gpt-4o-mini: {rpm: 10_000, tpm: 10_000_000}
      gpt-4o: {rpm: 1_000, tpm: 1_000_000}
  clinical:
    models:
      gpt-4o: {rpm: 10_000, tpm: 1_000_000}
keys:
  office-a: {project: office, env: JOBS_TEST_KEY_A}
  office-b: {project: office, env: JOBS_TEST_KEY_B}
  clinical: {project: clinical, env: JOBS_TEST_KEY_CLINICAL}
pools:
  office: {keys: [office-a, office-b], strategy: round_robin}
  clinical: {keys: [clinical]}
priorities:
  - {name: critical, reserve: 20%, max_wait: 5s}
  - {name: background, max_wait: 30s, deferrable: true}
domains:
  diagnosis: {pool: clinical, priority: critical, model: gpt-4o}
  scheduling:
    pool: office
    priority: background
    model: gpt-4o-mini
    defer: {mode: queue, deadline: 2h}
  nightly:
    pool: office
    priority: background
    model: gpt-4o-mini
    defer: {mode: queue, windows: ["01:00-05:00"], deadline: 20h}
  reminders:
    pool: office
    priority: background
    model: gpt-4o-mini
    defer: {mode: queue, windows: ["19:00-21:00"], deadline: 4h}
  financial:
    pool: office
    priority: background
    model: gpt-4o-mini
    models: [gpt-4o]
    defer: {mode: batch, deadline: 24h}
retry:
  max_attempts: 3
  backoff: {initial: 10ms, max: 50ms, jitter: none}
"""

KEYS = {
    "JOBS_TEST_KEY_A": "sk-canary-jobs-a-4f1c9e2d7b80",
    "JOBS_TEST_KEY_B": "sk-canary-jobs-b-93ab0c5e1d26",
    "JOBS_TEST_KEY_CLINICAL": "sk-canary-jobs-clin-7e0d2b4a6c19",
}
CANARIES = tuple(KEYS.values())

FAST = JobSettings(gather_s=60.0, poll_s=30.0, poll_max_s=120.0, retry_s=300.0, idle_s=0.05)
"""Worker settings for tests: the same logic, looked at often in real time."""

Start = Callable[..., tuple[Runtime, MockServer]]


def chat(text: str = "Bill visit 42", max_tokens: int = 50) -> dict[str, Any]:
    """A chat completion body."""
    return {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return dict(KEYS)


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "jobs-test.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def mock(policy_path: Path, clock: FakeClock) -> Iterator[Callable[..., MockServer]]:
    """Start a mock server on the fake clock (options as MockOptions fields)."""
    made: list[MockServer] = []

    def start(**options: Any) -> MockServer:
        options.setdefault("latency", False)
        options.setdefault("batch_delay", 3600.0)
        app = create_app(
            policy_path,
            options=MockOptions(**options),
            clock=ScaledClock(1.0, origin=clock.now(), monotonic=clock.now),
        )
        server = MockServer(app)
        server.start()
        made.append(server)
        return server

    yield start
    for server in made:
        server.stop()


@pytest.fixture
def runtime(
    policy_path: Path, keys: dict[str, str], clock: FakeClock, tmp_path: Path
) -> Iterator[Callable[..., Runtime]]:
    """Make runtimes of the test policy on the fake clock (options as Runtime's)."""
    made: list[Runtime] = []

    def make(server: MockServer | None = None, **options: Any) -> Runtime:
        options.setdefault("ledger", tmp_path / "usage.sqlite")
        options.setdefault("job_settings", FAST)
        if server is not None:
            options.setdefault("base_url", server.url + "/v1")
        rt = Runtime.from_file(policy_path, clock=clock, **options)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Block until ``condition()`` holds (another thread got somewhere), or fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def looked(rt: Runtime) -> None:
    """Wait until the runtime's worker has looked at the queue twice from now (a whole look
    after whatever happened before this call)."""
    worker = rt._worker
    assert worker is not None, "the runtime's jobs worker did not start"
    seen = worker.looks
    wait_until(lambda: worker.looks >= seen + 2, "the worker to look at the queue")
