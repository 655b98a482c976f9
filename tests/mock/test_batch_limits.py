"""The Batch API's queue limit and expiry, with the real openai client, on a clock moved by hand.

The organization is at usage tier 1, where gpt-4o may hold 90,000 prompt tokens enqueued
(``keypolicy.catalog.TIERS``). Prompt sizes are stated exactly with the ``keypolicy`` extension
field, so the queue's arithmetic is plain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types import Batch

from keypolicy.catalog import batch_queue_limit
from keypolicy.mock import ScaledClock
from tests.mock.conftest import KEYS, StartMock
from tests.mock.test_batch import T0, HandClock, lines

HOUR = 3600.0

TIER_1 = """\
version: 1
name: batch-limits
organization:
  id: org-batchtest
  tier: 1
projects:
  roomy:
    models:
      gpt-4o: {rpm: 1000, tpm: 30000}
      gpt-4o-mini: {rpm: 1000, tpm: 1000000}
keys:
  roomy: {project: roomy, env: MOCK_TEST_KEY_ROOMY}
  small: {project: roomy, env: MOCK_TEST_KEY_SMALL}
pools:
  all: {keys: [roomy, small]}
priorities:
  - name: normal
domains:
  d: {pool: all, priority: normal, model: gpt-4o}
"""


@pytest.fixture
def mock_policy(tmp_path: Path) -> Path:
    """The tier-1 policy (replaces the shared fixture of the same name for this module)."""
    path = tmp_path / "batch-limits.yaml"
    path.write_text(TIER_1)
    return path


@dataclass
class Batches:
    """The openai client of a mock whose clock moves only when told."""

    client: openai.OpenAI
    hand: HandClock

    def create(self, *prompts: int, model: str = "gpt-4o") -> Batch:
        """A batch of one request per prompt size (tokens, stated exactly)."""
        data = lines(
            *(
                {
                    "model": model,
                    "messages": [{"role": "user", "content": "x"}],
                    "max_tokens": 20,
                    "keypolicy": {"prompt_tokens": tokens, "completion_tokens": 5},
                }
                for tokens in prompts
            )
        )
        uploaded = self.client.files.create(file=("batch.jsonl", data), purpose="batch")
        return self.client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )

    def retrieve(self, batch_id: str) -> Batch:
        return self.client.batches.retrieve(batch_id)

    def lines(self, file_id: str) -> list[dict[str, Any]]:
        """The records of an output or error file."""
        text = self.client.files.content(file_id).text
        return [json.loads(line) for line in text.splitlines()]

    def advance(self, seconds: float) -> None:
        """Move model time to ``seconds`` after the start."""
        self.hand.now = seconds


@pytest.fixture
def api(start_mock: StartMock, request: pytest.FixtureRequest) -> Iterator[Batches]:
    """A mock with the options of the test's parameter, on a clock moved by hand."""
    hand = HandClock()
    options = getattr(request, "param", {})
    url = start_mock(clock=ScaledClock(1.0, T0, hand), **options)
    with openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["roomy"], max_retries=0) as c:
        yield Batches(c, hand)


@pytest.mark.parametrize("api", [{"batch_delay": HOUR}], indirect=True, ids=["1h"])
def test_a_batch_past_the_queue_limit_comes_back_failed(api: Batches) -> None:
    assert batch_queue_limit(1, "gpt-4o") == 90_000
    first = api.create(30_000, 30_000)
    assert first.status == "in_progress"
    refused = api.create(20_000, 20_000)  # 60,000 + 40,000 > 90,000
    assert refused.status == "failed"
    assert refused.failed_at == int(T0)
    assert refused.in_progress_at is None
    assert refused.errors is not None
    assert refused.errors.data is not None
    [error] = refused.errors.data
    assert error.code == "token_limit_exceeded"
    assert (error.line, error.param) == (None, None)
    assert error.message == (
        "Enqueued token limit reached for gpt-4o in organization org-batchtest. Limit: 90,000 "
        "enqueued tokens. Please try again once some in_progress batches have been completed."
    )
    assert api.create(30_000).status == "in_progress"  # exactly up to the limit
    assert api.create(1_000, model="gpt-4o-mini").status == "in_progress"  # its own queue
    # Once the in-progress batches have completed, their tokens are cleared.
    api.advance(HOUR)
    assert api.retrieve(first.id).status == "completed"
    assert api.create(20_000, 20_000).status == "in_progress"


@pytest.mark.parametrize("api", [{"batch_delay": HOUR}], indirect=True, ids=["1h"])
def test_cancelling_a_batch_clears_its_tokens(api: Batches) -> None:
    whole = api.create(90_000)
    assert api.create(1).status == "failed"
    assert api.client.batches.cancel(whole.id).status == "cancelled"
    assert api.create(1).status == "in_progress"


@pytest.mark.parametrize("api", [{"batch_delay": 30 * HOUR}], indirect=True, ids=["30h"])
def test_a_batch_that_runs_past_the_window_expires(api: Batches) -> None:
    batch = api.create(100, 100, 100, 100, 100)
    assert batch.expires_at == int(T0 + 24 * HOUR)
    api.advance(24 * HOUR - 1)
    assert api.retrieve(batch.id).status == "in_progress"
    api.advance(24 * HOUR)
    expired = api.retrieve(batch.id)
    assert expired.status == "expired"
    assert expired.expired_at == int(T0 + 24 * HOUR)
    assert expired.completed_at is None
    # 24 h of its 30 h of work were done: 4 of its 5 requests ran, the last one expired (and
    # counts as neither completed nor failed, as a real expired batch reported).
    assert expired.request_counts is not None
    counts = expired.request_counts
    assert (counts.total, counts.completed, counts.failed) == (5, 4, 0)
    assert expired.output_file_id is not None
    assert expired.error_file_id is not None
    outputs = api.lines(expired.output_file_id)
    assert [line["custom_id"] for line in outputs] == ["r0", "r1", "r2", "r3"]
    [line] = api.lines(expired.error_file_id)
    assert line["custom_id"] == "r4"
    assert line["response"] is None
    assert line["error"] == {
        "code": "batch_expired",
        "message": "This request could not be executed before the completion window expired.",
    }
    assert expired.usage is not None
    assert expired.usage.input_tokens == 400  # only the work done
    # Expired, its tokens left the queue.
    assert api.create(90_000).status == "in_progress"


def test_batch_times_are_drawn_per_batch_within_the_window(api: Batches) -> None:
    batches = [api.create(10) for _ in range(8)]
    api.advance(24 * HOUR)
    ended = [api.retrieve(b.id) for b in batches]
    took = []
    for b in ended:
        assert b.status in ("completed", "expired")
        end = b.completed_at if b.status == "completed" else b.expired_at
        assert end is not None
        took.append(end - b.created_at)
    assert len(set(took)) > 1  # drawn, not a fixed delay
    assert all(0 <= t <= 24 * HOUR for t in took)
