"""A small policy and helpers for driving the provider model on a fake clock (plain floats)."""

from __future__ import annotations

import random
from typing import Any

from keypolicy.policy import load_policy_text
from keypolicy.upstream import (
    Accounting,
    LatencySettings,
    ModelLimits,
    Provider,
    ProviderLimits,
    ProviderSettings,
    UpstreamRequest,
)

T0 = 1_795_000_000.0  # any fixed epoch does: the model reads no clock

POLICY = """\
version: 1
name: upstream-test
organization:
  id: org-test
  models:
    gpt-4o: {rpm: 10000, tpm: 50000}
projects:
  alpha:
    models:
      gpt-4o-mini: {rpm: 3, tpm: 200000, rpd: 5, tpd: 1000000}
      gpt-4o: {rpm: 10000, tpm: 30000}
      big: {rpm: 60000, tpm: 1000000, quantum: 1s}
      text-embedding-3-small: {rpm: 100, tpm: 1000}
  beta:
    models:
      gpt-4o: {rpm: 10000, tpm: 30000}
keys:
  a: {project: alpha, env: KEY_A}
  b: {project: beta, env: KEY_B}
pools:
  all: {keys: [a, b]}
priorities:
  - name: normal
domains:
  d: {pool: all, priority: normal, model: gpt-4o-mini}
"""


def limits(
    overrides: dict[str, ModelLimits] | None = None, accounting: Accounting | None = None
) -> ProviderLimits:
    """The provider limits of :data:`POLICY`, with ``overrides``, counted by ``accounting``
    (default: what the policy assumes, the defaults)."""
    policy = load_policy_text(POLICY, "test.yaml").policy
    return ProviderLimits.from_policy(policy, overrides=overrides, accounting=accounting)


def provider(
    seed: int = 0,
    overrides: dict[str, ModelLimits] | None = None,
    accounting: Accounting | None = None,
    **settings: Any,
) -> Provider:
    """A provider for :data:`POLICY`, without latency unless ``latency`` is given."""
    settings.setdefault("latency", LatencySettings.instant())
    return Provider(
        limits(overrides, accounting), ProviderSettings(**settings), random.Random(seed)
    )


REFUNDING = Accounting(refund_unused=True)
"""A provider that gives unused tokens back when an answer completes."""

PURE = Accounting(count_failed=False)
"""A provider that counts nothing of a refused request (its 429s state the bare arithmetic)."""


def req(
    model: str = "gpt-4o-mini",
    project: str = "alpha",
    prompt: int = 10,
    max_output: int | None = 0,
    **fields: Any,
) -> UpstreamRequest:
    """A request with ``prompt`` prompt tokens and ``max_output`` output tokens at most."""
    return UpstreamRequest(project, model, prompt_tokens=prompt, max_output=max_output, **fields)
