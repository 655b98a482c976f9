"""The real openai client, sync and async, against the mock: every endpoint parses."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests.mock.conftest import KEYS, StartMock


def client(url: str, alias: str = "roomy") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS[alias], max_retries=0)


def test_chat_completion_with_usage(mock_server: str) -> None:
    with client(mock_server) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x" * 400}],
            max_tokens=50,
        )
        completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 100
    assert 1 <= completion.usage.completion_tokens <= 50
    assert completion.usage.total_tokens == 100 + completion.usage.completion_tokens
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    message = completion.choices[0].message.content
    assert message is not None
    assert len(message.split()) == completion.usage.completion_tokens
    assert raw.headers["x-ratelimit-limit-requests"] == "1000"
    assert raw.headers["x-ratelimit-remaining-requests"] == "999"
    assert raw.headers["x-ratelimit-limit-tokens"] == "1000000"
    assert raw.headers["x-request-id"].startswith("req_")


def test_exact_counts_extension_replays_usage(mock_server: str) -> None:
    with client(mock_server) as c:
        completion = c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=500,
            n=2,
            extra_body={"keypolicy": {"prompt_tokens": 1234, "completion_tokens": 77}},
        )
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (1234, 77)
    assert len(completion.choices) == 2


def test_streaming_with_include_usage(start_mock: StartMock) -> None:
    url = start_mock(speed=100.0, latency=True)  # real latencies, a hundred times faster
    with client(url) as c:
        stream = c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "abcdefgh"}],
            max_tokens=40,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    usage = chunks[-1].usage
    assert usage is not None
    assert chunks[-1].choices == []
    assert usage.prompt_tokens == 2
    assert len(text.split()) == usage.completion_tokens
    assert finishes[-1] in ("stop", "length")
    assert all(ch.usage is None for ch in chunks[:-1])


def test_streaming_without_usage(mock_server: str) -> None:
    with client(mock_server) as c:
        chunks = list(
            c.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}], stream=True
            )
        )
    assert all(ch.usage is None for ch in chunks)
    assert chunks[-1].choices[0].finish_reason is not None


def test_responses(mock_server: str) -> None:
    with client(mock_server) as c:
        response = c.responses.create(
            model="gpt-4o", input="abcdefgh", instructions="abcd", max_output_tokens=30
        )
    assert response.object == "response"
    assert response.usage is not None
    assert response.usage.input_tokens == 3
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.total_tokens == 3 + response.usage.output_tokens
    assert len(response.output_text.split()) == response.usage.output_tokens


def test_responses_streaming(mock_server: str) -> None:
    with client(mock_server) as c:
        events = list(c.responses.create(model="gpt-4o", input="abcd", stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type in ("response.completed", "response.incomplete")
    final = events[-1].response  # type: ignore[union-attr]
    assert final.usage is not None
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert len(deltas.split()) == final.usage.output_tokens


@pytest.mark.parametrize("encoding", ["float", None])
def test_embeddings(mock_server: str, encoding: str | None) -> None:
    extra = {"encoding_format": encoding} if encoding else {}
    with client(mock_server) as c:
        result = c.embeddings.create(
            model="text-embedding-3-small", input=["abcd", "abcdefgh"], **extra
        )
    assert [len(d.embedding) for d in result.data] == [1536, 1536]
    assert sum(result.data[0].embedding) == pytest.approx(1.0)
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (3, 3)


def test_models(mock_server: str) -> None:
    with client(mock_server) as c:
        ids = [m.id for m in c.models.list()]
        assert c.models.retrieve("gpt-4o").id == "gpt-4o"
        with pytest.raises(openai.NotFoundError) as caught:
            c.models.retrieve("gpt-5")
    assert ids == [
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "gpt-4o-2024-11-20",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        "text-embedding-3-small",
    ]  # the project's models and their dated snapshots
    assert caught.value.code == "model_not_found"


def test_unknown_model_is_404(mock_server: str) -> None:
    with client(mock_server) as c, pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "a"}])


def test_async_client(mock_server: str) -> None:
    async def main() -> list[int]:
        async with openai.AsyncOpenAI(
            base_url=f"{mock_server}/v1", api_key=KEYS["roomy"], max_retries=0
        ) as c:
            calls = [
                c.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "abcd"}],
                    max_tokens=10,
                )
                for _ in range(5)
            ]
            results = await asyncio.gather(*calls)
            stream = await c.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "abcd"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            assert chunks[-1].usage is not None
            embedded = await c.embeddings.create(model="text-embedding-3-small", input="abcd")
            assert embedded.usage.prompt_tokens == 1
        return [r.usage.prompt_tokens for r in results if r.usage is not None]

    assert asyncio.run(main()) == [1] * 5


def test_bad_json_and_missing_model(mock_server: str) -> None:
    headers = {"Authorization": f"Bearer {KEYS['roomy']}"}
    with httpx.Client(base_url=f"{mock_server}/v1", headers=headers) as http:
        bad = http.post("/chat/completions", content=b"{not json")
        missing = http.post("/chat/completions", json={"messages": []})
        nowhere = http.get("/nowhere")
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "model"
    assert nowhere.status_code == 404
    assert nowhere.json()["error"]["message"] == "Invalid URL (GET /v1/nowhere)"
