"""Success bodies in OpenAI's shapes: chat completions, responses, embeddings, models.

They parse into the ``openai`` client's types (``ChatCompletion``, ``Response``,
``CreateEmbeddingResponse``, ``Model``). The generated text is filler, one word per completion
token; embeddings are unit vectors that depend only on the input text.
"""

from __future__ import annotations

import array
import base64
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from keypolicy.upstream import Endpoint, Usage

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "SYSTEM_FINGERPRINT",
    "answer",
    "chat_completion",
    "chat_usage",
    "embeddings",
    "filler",
    "filler_words",
    "finish_reason",
    "model_list",
    "model_object",
    "output_message",
    "response_object",
    "response_usage",
]

_WORDS = (" the", " model", " answers", " with", " filler", " text", " so", " usage", " counts")
SYSTEM_FINGERPRINT = "fp_keypolicy_mock"
EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}
"""Vector sizes that differ from 1,536 (text-embedding-3-small, ada-002)."""


def filler_words(tokens: int) -> list[str]:
    """``tokens`` words of filler text (one word counts as one token)."""
    words = [_WORDS[i % len(_WORDS)] for i in range(tokens)]
    if words:
        words[0] = words[0].lstrip()
    return words


def filler(tokens: int) -> str:
    """``tokens`` words of filler text as one string."""
    return "".join(filler_words(tokens))


def finish_reason(tokens: int, max_output: int | None) -> str:
    """``length`` when a choice used its whole allowance, else ``stop``."""
    return "length" if max_output is not None and tokens >= max_output else "stop"


def chat_usage(usage: Usage) -> dict[str, Any]:
    """The ``usage`` object of a chat completion."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(
    id_: str, created: int, model: str, usage: Usage, max_output: int | None
) -> dict[str, Any]:
    """A ``chat.completion`` with one choice per entry of ``usage.choices``."""
    choices: list[dict[str, Any]] = [
        {
            "index": i,
            "message": {
                "role": "assistant",
                "content": filler(tokens),
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": finish_reason(tokens, max_output),
        }
        for i, tokens in enumerate(usage.choices)
    ]
    return {
        "id": id_,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": chat_usage(usage),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def response_usage(usage: Usage) -> dict[str, Any]:
    """The ``usage`` object of a Responses API response."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def output_message(id_: str, text: str, status: str = "completed") -> dict[str, Any]:
    """One assistant message of a response's ``output``."""
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {
        "type": "message",
        "id": id_,
        "status": status,
        "role": "assistant",
        "content": [] if status == "in_progress" else content,
    }


def response_object(
    id_: str,
    created: int,
    request: Mapping[str, Any],
    usage: Usage | None,
    max_output: int | None,
) -> dict[str, Any]:
    """A ``response`` object: completed with its usage, or in progress when ``usage`` is None."""
    status, incomplete, output = "in_progress", None, []
    if usage is not None:
        tokens = usage.completion_tokens
        cut = finish_reason(tokens, max_output) == "length"
        status = "incomplete" if cut else "completed"
        incomplete = {"reason": "max_output_tokens"} if cut else None
        output = [output_message("msg_" + id_.removeprefix("resp_"), filler(tokens))]
    return {
        "id": id_,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": request.get("instructions"),
        "max_output_tokens": max_output,
        "model": request.get("model"),
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": response_usage(usage) if usage is not None else None,
        "user": None,
        "metadata": request.get("metadata") or {},
    }


def _inputs(value: Any) -> list[Any]:
    if isinstance(value, list) and value and not all(isinstance(v, int) for v in value):
        return value
    return [value]


def _vector(item: Any, size: int, base64_: bool) -> Any:
    """A unit vector whose one non-zero component depends on the input."""
    vector = [0.0] * size
    vector[zlib.crc32(repr(item).encode()) % size] = 1.0
    if base64_:
        return base64.b64encode(array.array("f", vector).tobytes()).decode()
    return vector


def embeddings(request: Mapping[str, Any], usage: Usage) -> dict[str, Any]:
    """A ``list`` of embeddings, one per input, with usage."""
    model = str(request.get("model"))
    size = request.get("dimensions")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        size = EMBEDDING_DIMENSIONS.get(model, 1536)
    b64 = request.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": i, "embedding": _vector(item, size, b64)}
        for i, item in enumerate(_inputs(request.get("input")))
    ]
    tokens = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
    return {"object": "list", "data": data, "model": model, "usage": tokens}


def model_object(model: str, created: int = 1_700_000_000) -> dict[str, Any]:
    """One ``model`` object."""
    return {"id": model, "object": "model", "created": created, "owned_by": "system"}


def model_list(models: list[str]) -> dict[str, Any]:
    """The ``list`` of models."""
    return {"object": "list", "data": [model_object(m) for m in models]}


def answer(
    endpoint: Endpoint,
    request: Mapping[str, Any],
    usage: Usage,
    max_output: int | None,
    new_id: Callable[[str], str],
    created: int,
) -> dict[str, Any]:
    """The success body of ``endpoint`` for ``request`` with ``usage``."""
    if endpoint == "chat.completions":
        model = str(request.get("model"))
        return chat_completion(new_id("chatcmpl-"), created, model, usage, max_output)
    if endpoint == "responses":
        return response_object(new_id("resp_"), created, request, usage, max_output)
    return embeddings(request, usage)
