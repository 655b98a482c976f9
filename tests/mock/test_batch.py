"""The Batch API round trip with the real openai client, on a clock advanced by hand."""

from __future__ import annotations

import json

import openai
import pytest

from keypolicy.mock import ScaledClock
from tests.mock.conftest import KEYS, StartMock

T0 = 1_795_000_000.0


class HandClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(*bodies: dict[str, object], url: str = "/v1/chat/completions") -> bytes:
    records = [
        {"custom_id": f"r{i}", "method": "POST", "url": url, "body": body}
        for i, body in enumerate(bodies)
    ]
    return "\n".join(json.dumps(r) for r in records).encode() + b"\n"


def test_batch_round_trip(start_mock: StartMock) -> None:
    hand = HandClock()
    url = start_mock(clock=ScaledClock(1.0, T0, hand), batch_delay=60.0)
    data = lines(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "abcd"}],
            "max_tokens": 9,
        },
        {
            "model": "gpt-4o",
            "messages": [],
            "keypolicy": {"prompt_tokens": 50, "completion_tokens": 7},
        },
        {"model": "gpt-5", "messages": []},
    )
    with openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["roomy"], max_retries=0) as c:
        uploaded = c.files.create(file=("requests.jsonl", data), purpose="batch")
        assert (uploaded.bytes, uploaded.purpose, uploaded.filename) == (
            len(data),
            "batch",
            "requests.jsonl",
        )
        batch = c.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"job": "nightly"},
        )
        assert batch.status == "in_progress"
        assert batch.created_at == int(T0)
        hand.now = 59.0
        assert c.batches.retrieve(batch.id).status == "in_progress"
        hand.now = 61.0
        done = c.batches.retrieve(batch.id)
        assert done.status == "completed"
        assert done.completed_at == int(T0 + 60)
        assert done.request_counts is not None
        assert (done.request_counts.total, done.request_counts.completed) == (3, 2)
        assert done.output_file_id is not None
        output = c.files.content(done.output_file_id).text
    results = [json.loads(line) for line in output.splitlines()]
    assert [r["custom_id"] for r in results] == ["r0", "r1", "r2"]
    first, second, third = (r["response"] for r in results)
    assert first["status_code"] == 200
    assert first["body"]["object"] == "chat.completion"
    assert first["body"]["usage"]["prompt_tokens"] == 1
    assert second["body"]["usage"]["completion_tokens"] == 7
    assert third["status_code"] == 404
    assert done.usage is not None
    usage = first["body"]["usage"]
    assert done.usage.input_tokens == usage["prompt_tokens"] + 50
    assert done.usage.output_tokens == usage["completion_tokens"] + 7


def test_batch_with_bad_lines_fails(start_mock: StartMock) -> None:
    url = start_mock()
    data = b"not json\n" + lines({"model": "gpt-4o"}, url="/v1/embeddings")
    with openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["roomy"], max_retries=0) as c:
        uploaded = c.files.create(file=("bad.jsonl", data), purpose="batch")
        batch = c.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [e.line for e in batch.errors.data] == [1, 2]


def test_files_and_batches_belong_to_their_project(start_mock: StartMock) -> None:
    url = start_mock(batch_delay=0.0)
    with (
        openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["roomy"], max_retries=0) as mine,
        openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["small"], max_retries=0) as theirs,
    ):
        data = lines({"model": "gpt-4o-mini", "messages": []})
        uploaded = mine.files.create(file=("a.jsonl", data), purpose="batch")
        assert mine.files.retrieve(uploaded.id).id == uploaded.id
        with pytest.raises(openai.NotFoundError):
            theirs.files.retrieve(uploaded.id)
        with pytest.raises(openai.NotFoundError):
            theirs.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        batch = mine.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        with pytest.raises(openai.NotFoundError):
            theirs.batches.retrieve(batch.id)
        assert mine.batches.retrieve(batch.id).status == "completed"


def test_cancel_a_batch(start_mock: StartMock) -> None:
    url = start_mock(batch_delay=3600.0)
    with openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["roomy"], max_retries=0) as c:
        data = lines({"model": "gpt-4o-mini", "messages": []})
        uploaded = c.files.create(file=("a.jsonl", data), purpose="batch")
        batch = c.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert c.batches.cancel(batch.id).status == "cancelled"
        assert c.batches.retrieve(batch.id).status == "cancelled"
