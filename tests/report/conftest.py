"""Fixtures of the report tests: the clinic policies, a small real simulation, Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from keypolicy import load_policy
from keypolicy.policy.model import Policy
from keypolicy.records import RecordWriter
from keypolicy.sim.run import simulate_policy
from keypolicy.sim.traffic import load_traffic

ROOT = Path(__file__).parents[2]

TINY_POLICY = """\
version: 1
name: tiny-clinic
description: Two functions sharing one project; chat has a small daily budget.
timezone: America/New_York
organization:
  tier: 2
  models:
    gpt-4o-mini: {rpm: 5_000, tpm: 2_000_000}
projects:
  main:
    tier: 2
    models:
      gpt-4o-mini: {rpm: 600, tpm: 400_000}
keys:
  triage: {project: main, env: TINY_KEY_TRIAGE}
  chat: {project: main, env: TINY_KEY_CHAT}
pools:
  shared: {keys: [triage, chat]}
priorities:
  - name: critical
    reserve: 20%
    max_wait: 5s
  - name: interactive
    max_wait: 10s
domains:
  triage: {pool: shared, priority: critical, model: gpt-4o-mini}
  chat: {pool: shared, priority: interactive, model: gpt-4o-mini}
budgets:
  chat-daily:
    applies_to: {domain: chat}
    usd: $0.50
    per: day
    on_exhausted: reject
"""

TINY_TRAFFIC = """\
version: 1
name: tiny-morning
description: Two hours of a small clinic's triage and chat.
start: 2026-11-18T08:00:00-05:00
timezone: America/New_York
duration: 2h
domains:
  triage:
    rate: 600/h
    prompt_tokens: {fixed: 1500}
    max_tokens: {fixed: 500}
    completion_tokens: {fixed: 250}
  chat:
    rate: 1800/h
    prompt_tokens: {fixed: 800}
    max_tokens: {fixed: 300}
    completion_tokens: {fixed: 150}
"""


@pytest.fixture(scope="session")
def clinic() -> dict[str, Policy]:
    """The three clinic policies of policies/, by name."""
    names = ("clinic-separate", "clinic-merged", "clinic-single")
    return {n: load_policy(ROOT / "policies" / f"{n}.yaml").policy for n in names}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Policy]:
    """A real two-hour simulation in which chat's budget runs out: summary, records, policy."""
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "policy.yaml").write_text(TINY_POLICY)
    (folder / "traffic.yaml").write_text(TINY_TRAFFIC)
    policy = load_policy(folder / "policy.yaml").policy
    records = folder / "records.csv"
    with RecordWriter(records) as writer:
        result = simulate_policy(
            policy, load_traffic(folder / "traffic.yaml"), [1], on_record=writer.write
        )
    return result, records, policy


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium. Installed by ``make browser`` (CI runs it), never from a test: missing,
    the browser tests skip with that command, or fail where ``KEYPOLICY_REQUIRE_BROWSER`` is set
    (CI), so that a CI run without a browser cannot pass by skipping them."""
    found = shutil.which("chromium")
    if found:
        return found
    message = "chromium is not installed: run `make browser` (it installs Debian's chromium)"
    if os.environ.get("KEYPOLICY_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)
