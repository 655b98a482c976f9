"""Fixtures for the runtime: a mock OpenAI server on loopback and runtimes in front of it.

The keys' secrets are canaries set with monkeypatch; ``captured`` collects every log record of
the process (at DEBUG, openai's, httpx2's and the mock's included) so tests can check that no
canary reaches a log. The runtime and the mock share one :class:`FakeClock` where a test needs
time to pass: nothing sleeps to wait for a limit to refill or a max_wait to pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keypolicy.ledger import read_ledger
from keypolicy.mock import MockOptions, MockServer, ScaledClock, create_app
from keypolicy.runtime import FakeClock, Runtime

POLICY = """\
version: 1
name: runtime-test
organization:
  id: org-runtimetest
projects:
  clinical:
    models:
      gpt-4o: {rpm: 10_000, tpm: 10_000_000}
      gpt-4o-mini: {rpm: 10_000, tpm: 10_000_000}
  tight:
    models:
      gpt-4o-mini: {rpm: 5, tpm: 1_000_000}
  roomy:
    models:
      gpt-4o-mini: {rpm: 100_000, tpm: 100_000_000}
keys:
  clinical: {project: clinical, env: RT_TEST_KEY_CLINICAL}
  tight: {project: tight, env: RT_TEST_KEY_TIGHT}
  roomy-a: {project: roomy, env: RT_TEST_KEY_ROOMY_A}
  roomy-b: {project: roomy, env: RT_TEST_KEY_ROOMY_B}
pools:
  clinical: {keys: [clinical]}
  tight: {keys: [tight]}
  roomy: {keys: [roomy-a, roomy-b], strategy: round_robin}
priorities:
  - {name: critical, reserve: 20%, max_wait: 5s}
  - {name: background, max_wait: 30s, deferrable: true}
domains:
  diagnosis: {pool: clinical, priority: critical, model: gpt-4o, models: [gpt-4o-mini]}
  urgent: {pool: tight, priority: critical, model: gpt-4o-mini}
  burst: {pool: tight, priority: background, model: gpt-4o-mini}
  chat: {pool: roomy, priority: background, model: gpt-4o-mini}
  billing: {pool: roomy, priority: background, model: gpt-4o-mini, defer: batch}
retry:
  max_attempts: 3
  backoff: {initial: 10ms, max: 50ms, jitter: none}
"""

KEYS = {
    "RT_TEST_KEY_CLINICAL": "sk-canary-clinical-5d0f3a9e71c2",
    "RT_TEST_KEY_TIGHT": "sk-canary-tight-b81e4c2f90a7",
    "RT_TEST_KEY_ROOMY_A": "sk-canary-roomya-0c7d93e15b46",
    "RT_TEST_KEY_ROOMY_B": "sk-canary-roomyb-6a2e18f4d03c",
}
CANARIES = tuple(KEYS.values())

Start = Callable[..., tuple[Runtime, MockServer]]


def assert_no_canary(*texts: object) -> None:
    """Fail if any canary secret appears in any of ``texts`` (str() of each)."""
    for text in texts:
        shown = str(text)
        for canary in CANARIES:
            assert canary not in shown, f"a key's secret leaked into: {shown[:200]}"


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "runtime-test.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return dict(KEYS)


@pytest.fixture
def captured() -> Iterator[list[logging.LogRecord]]:
    """Every log record of the process, at DEBUG, while the test runs."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            self.format(record)  # formats exc_info as well, as a real handler would
            records.append(record)

    handler = Keep(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield records
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture
def start(policy_path: Path, keys: dict[str, str], tmp_path: Path) -> Iterator[Start]:
    """Start a mock server for the policy (options as MockOptions fields) and a Runtime in
    front of it, writing its ledger to ``tmp_path/usage.sqlite``. ``clock``: a FakeClock both
    share; ``policy``: another policy text."""
    made: list[tuple[Runtime, MockServer]] = []

    def start(
        clock: FakeClock | None = None, policy: str | None = None, seed: int = 0, **options: Any
    ) -> tuple[Runtime, MockServer]:
        path = policy_path
        if policy is not None:
            path = tmp_path / f"policy-{len(made)}.yaml"
            path.write_text(policy)
        options.setdefault("latency", False)
        mock_clock = None
        if clock is not None:
            mock_clock = ScaledClock(1.0, origin=clock.now(), monotonic=clock.now)
        app = create_app(path, seed=seed, options=MockOptions(**options), clock=mock_clock)
        server = MockServer(app)
        server.start()
        runtime = Runtime.from_file(
            path,
            ledger=tmp_path / f"usage-{len(made)}.sqlite",
            base_url=server.url + "/v1",
            clock=clock,
        )
        made.append((runtime, server))
        return runtime, server

    yield start
    for runtime, server in made:
        runtime.close()
        server.stop()


def ledger_rows(runtime: Runtime) -> Any:
    """The runtime's ledger as a DataFrame, after a flush."""
    runtime.ledger.flush()
    return read_ledger(runtime.ledger.path)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Block until ``condition()`` holds (threads reaching a state), or fail. This waits for
    other threads to get somewhere, never for time to pass: time is the fake clock's."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def mock_requests(records: list[logging.LogRecord], path: str = "/v1/chat/completions") -> int:
    """How many requests the mock server answered on ``path`` (it logs each one)."""
    return sum(
        1
        for r in records
        if r.name == "keypolicy.mock" and r.getMessage().startswith(f"POST {path} ")
    )
