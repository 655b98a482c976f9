"""Streamed answers as server-sent events, in OpenAI's chunk and event formats.

Chat completions stream ``chat.completion.chunk`` objects (a role chunk, content chunks, a chunk
with the finish reason, then, with ``stream_options.include_usage``, a chunk with no choices and
the usage) and end with ``data: [DONE]``. The Responses API streams typed events ending in
``response.completed``, whose response carries the usage. The first token comes after
``timing.first_token``; the rest is spread evenly until ``timing.total`` (model seconds).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from keypolicy.mock import bodies
from keypolicy.upstream import Timing, Usage

__all__ = ["DONE", "Pause", "chat_chunks", "response_events", "sse"]

Pause = Callable[[float], Awaitable[None]]
"""Waits the given model seconds."""

DONE = b"data: [DONE]\n\n"
_PIECES = 8
"""Content chunks per choice (at most): enough to look like a stream, few enough to be cheap."""


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event carrying ``data`` as JSON."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _split(words: list[str], pieces: int) -> list[str]:
    """``words`` joined into ``pieces`` consecutive pieces (fewer if there are fewer words)."""
    count = min(pieces, len(words))
    return [
        "".join(words[j * len(words) // count : (j + 1) * len(words) // count])
        for j in range(count)
    ]


async def chat_chunks(
    head: Mapping[str, Any],
    usage: Usage,
    max_output: int | None,
    include_usage: bool,
    timing: Timing,
    pause: Pause,
) -> AsyncIterator[bytes]:
    """The chunks of a streamed chat completion; ``head`` holds id, created and model."""
    base = {
        **head,
        "object": "chat.completion.chunk",
        "system_fingerprint": bodies.SYSTEM_FINGERPRINT,
    }
    if include_usage:
        base["usage"] = None

    def chunk(choices: list[dict[str, Any]]) -> bytes:
        return sse({**base, "choices": choices})

    def choice(i: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}

    await pause(timing.first_token)
    for i in range(len(usage.choices)):
        yield chunk([choice(i, {"role": "assistant", "content": "", "refusal": None})])
    pieces = [_split(bodies.filler_words(t), _PIECES) for t in usage.choices]
    steps = max((len(p) for p in pieces), default=0)
    for j in range(steps):
        await pause((timing.total - timing.first_token) / steps)
        for i, texts in enumerate(pieces):
            if j < len(texts):
                yield chunk([choice(i, {"content": texts[j]})])
    for i, tokens in enumerate(usage.choices):
        yield chunk([choice(i, {}, bodies.finish_reason(tokens, max_output))])
    if include_usage:
        yield sse({**base, "choices": [], "usage": bodies.chat_usage(usage)})
    yield DONE


async def response_events(
    id_: str,
    created: int,
    request: Mapping[str, Any],
    usage: Usage,
    max_output: int | None,
    timing: Timing,
    pause: Pause,
) -> AsyncIterator[bytes]:
    """The events of a streamed Responses API answer, ending in ``response.completed``."""
    seq = iter(range(1_000_000))
    item_id = "msg_" + id_.removeprefix("resp_")

    def event(type_: str, **fields: Any) -> bytes:
        return sse({"type": type_, "sequence_number": next(seq), **fields}, type_)

    at = {"item_id": item_id, "output_index": 0, "content_index": 0}
    empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    yield event(
        "response.created", response=bodies.response_object(id_, created, request, None, max_output)
    )
    await pause(timing.first_token)
    in_progress = bodies.output_message(item_id, "", "in_progress")
    yield event("response.output_item.added", output_index=0, item=in_progress)
    yield event("response.content_part.added", part=empty, **at)
    pieces = _split(bodies.filler_words(usage.completion_tokens), _PIECES)
    for piece in pieces:
        await pause((timing.total - timing.first_token) / len(pieces))
        yield event("response.output_text.delta", delta=piece, logprobs=[], **at)
    text = "".join(pieces)
    yield event("response.output_text.done", text=text, logprobs=[], **at)
    yield event("response.content_part.done", part={**empty, "text": text}, **at)
    done = bodies.output_message(item_id, text)
    yield event("response.output_item.done", output_index=0, item=done)
    final = bodies.response_object(id_, created, request, usage, max_output)
    yield event(f"response.{final['status']}", response=final)
