"""Sizing a request before it goes out, from the JSON body the openai client sends.

Two prompt counts, for two uses:

- ``prompt_tokens``: counted exactly with OpenAI's own BPE vocabularies (``o200k_base`` for
  gpt-4o, gpt-4.1, gpt-5 and the o-series; ``cl100k_base`` for older models and embeddings),
  from the ``bpe-openai`` package, which ships the vocabularies: nothing is downloaded, ever
  (tiktoken fetches its files at first use, which fails offline). Budgets hold cost estimates
  made from this count.
- ``rate_prompt_tokens``: what the provider's rate limiter charges before it has tokenized
  anything. OpenAI estimates from the characters of the request; keypolicy uses one token per
  ``CHARS_PER_TOKEN`` characters, rounded up. The engine charges the TPM buckets with this count
  (plus ``max_tokens`` × ``n``), as the provider does.

Chat messages add ``TOKENS_PER_MESSAGE`` each and ``REPLY_PRIMING`` once, as OpenAI's cookbook
counts them. ``tools`` (function definitions) and a ``response_format`` / ``text.format`` JSON
schema are counted as their compact JSON text: the provider renders them into the prompt in a
format of its own, so this is an approximation (typically within a few tokens per tool).

Images (``image_url`` and ``input_image`` parts) count in both, at the documented per-image
token formula of the model, from the size a base64 data URL states in its header
(:mod:`keypolicy.images`): the limiter charges images as their tokens, not their base64 text.
An image whose size cannot be read (a remote URL, a file id) counts as ``assumed_image_size``
(default 1024×1024, 765 tokens for gpt-4o); ``RequestEstimate.assumed_images`` says how many did.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

# bpe-openai 0.1.x reads its vocabularies with importlib.resources.open_binary, deprecated since
# Python 3.11; the warning is theirs to fix and says nothing about our use.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai

from keypolicy.images import ASSUMED_SIZE, ImageSize, count_images, is_image_part

__all__ = ["RequestEstimate", "count_tokens", "encoding_name", "estimate_request"]

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")


class _Encoding(Protocol):
    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class RequestEstimate:
    """What a request will draw on: tokens, output cap per choice (``None``: the model's
    maximum), choices, and whether it streams. ``image_tokens`` is the part of both prompt
    counts its images make; ``assumed_images`` how many of them were counted at an assumed size
    because theirs could not be read (the estimate is a guess for those)."""

    endpoint: str
    model: str
    prompt_tokens: int
    rate_prompt_tokens: int
    max_output_tokens: int | None
    n: int
    stream: bool
    image_tokens: int = 0
    assumed_images: int = 0


def encoding_name(model: str) -> str:
    """The BPE vocabulary a model uses."""
    return "o200k_base" if model.startswith(_O200K_PREFIXES) else "cl100k_base"


@lru_cache(maxsize=4)
def _encoding(name: str) -> _Encoding:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        encoding: _Encoding = bpe_openai.get_encoding(name)
    return encoding


def count_tokens(text: str, model: str) -> int:
    """Exact tokens of ``text`` for ``model``."""
    if not text:
        return 0
    return len(_encoding(encoding_name(model)).encode(text))


class _Tally:
    """Walks the content of a request body, counting exact tokens and characters."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.tokens = 0
        self.chars = 0
        self.images: list[Mapping[str, Any]] = []  # counted once the walk is done

    def text(self, value: str) -> None:
        self.tokens += count_tokens(value, self.model)
        self.chars += len(value)

    def content(self, value: Any) -> None:
        if isinstance(value, str):
            self.text(value)
        elif isinstance(value, list):
            for part in value:
                self.part(part)
        elif isinstance(value, dict):
            self.part(value)

    def part(self, part: Any) -> None:
        if isinstance(part, str):
            self.text(part)
            return
        if not isinstance(part, dict):
            return
        if is_image_part(part):
            self.images.append(part)
        elif isinstance(part.get("text"), str):
            self.text(part["text"])
        elif "content" in part:
            self.message(part)

    def message(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        self.tokens += TOKENS_PER_MESSAGE
        self.content(message.get("content"))
        if isinstance(message.get("name"), str):
            self.text(message["name"])
            self.tokens += 1
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                self.text(str(call.get("function", "")))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _maximum(body: dict[str, Any], *names: str) -> int | None:
    """The first of ``names`` the body gives as an integer, whatever its value: a maximum of 0
    or below is passed on for the engine to refuse (the provider would answer it with a 400)."""
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def estimate_request(
    endpoint: str, body: dict[str, Any], assumed_image_size: ImageSize = ASSUMED_SIZE
) -> RequestEstimate:
    """Size a request to ``endpoint`` (``chat.completions``, ``responses``, ``embeddings``, or
    anything else, counted by its text) from its JSON ``body``; an image whose size cannot be
    read counts as ``assumed_image_size``."""
    model = str(body.get("model", ""))
    tally = _Tally(model)
    max_output: int | None = None
    if endpoint == "chat.completions":
        for message in body.get("messages") or []:
            tally.message(message)
        tally.tokens += REPLY_PRIMING
        max_output = _maximum(body, "max_completion_tokens", "max_tokens")
    elif endpoint == "responses":
        if isinstance(body.get("instructions"), str):
            tally.text(body["instructions"])
        raw = body.get("input")
        if isinstance(raw, list):
            for item in raw:
                tally.part(item)
        else:
            tally.content(raw)
        max_output = _maximum(body, "max_output_tokens")
    elif endpoint == "embeddings":
        tally.content(body.get("input"))
        max_output = 0
    else:
        tally.content(body.get("prompt") or body.get("input"))
    for extra in (body.get("tools"), body.get("response_format"), (body.get("text") or {})):
        if extra and isinstance(extra, list | dict):
            schema = extra.get("format") if isinstance(extra, dict) and "format" in extra else extra
            if schema:
                tally.text(json.dumps(schema, separators=(",", ":")))
    n = _int(body.get("n")) or 1
    images = count_images(model, tally.images, assumed_image_size)
    return RequestEstimate(
        endpoint=endpoint,
        model=model,
        prompt_tokens=tally.tokens + images.tokens,
        rate_prompt_tokens=math.ceil(tally.chars / CHARS_PER_TOKEN) + images.tokens,
        max_output_tokens=max_output,
        n=n,
        stream=bool(body.get("stream")),
        image_tokens=images.tokens,
        assumed_images=images.assumed,
    )
