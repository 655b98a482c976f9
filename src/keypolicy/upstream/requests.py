"""Requests as the provider model sees them, and how they are read from OpenAI JSON bodies.

Prompt tokens are estimated the way OpenAI's limiter does before a request runs: from the
character count, ``ceil(characters / chars_per_token)`` over the text of the messages (chat),
the ``input`` and ``instructions`` (responses) or the inputs (embeddings; token arrays count one
token per element), plus the tokens of the images (``image_url`` and ``input_image`` parts) at
the model's documented per-image formula, never their base64 text (:mod:`keypolicy.images`; an
image whose size cannot be read counts as ``assumed_image_size``). The same estimate stands in
for the usage the answer reports, since the model has no tokenizer.

A body may carry exact counts, for replaying a trace: the extension field
``"keypolicy": {"prompt_tokens": N, "completion_tokens": M, "cached_tokens": C}`` (each optional).
It is removed from the body before anything else reads it (with the ``openai`` client:
``extra_body={"keypolicy": {...}}``). Exact counts replace the estimate at admission and in usage,
unless the field also says ``"charge": "estimate"``: then the limiter charges the prompt at the
character estimate of the text, as OpenAI's does, and the exact count is the usage the answer
reports (``keypolicy replay`` sends this: real text, exact usage).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from keypolicy.images import ASSUMED_SIZE, ImageSize, count_images, image_parts

__all__ = [
    "EXTENSION_FIELD",
    "Endpoint",
    "ExactCounts",
    "UpstreamRequest",
    "estimate_tokens",
    "prompt_text",
    "request_from_body",
    "split_extension",
]

Endpoint = Literal["chat.completions", "responses", "embeddings"]

EXTENSION_FIELD: Final = "keypolicy"
"""Name of the body field that carries exact token counts (removed before the body is read)."""

_MAX_FIELDS: Final[dict[Endpoint, tuple[str, ...]]] = {
    "chat.completions": ("max_completion_tokens", "max_tokens"),
    "responses": ("max_output_tokens",),
    "embeddings": (),
}


@dataclass(frozen=True, slots=True)
class ExactCounts:
    """Token counts a request states for itself (trace replay); ``None`` where not stated."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    charge_estimate: bool = False


@dataclass(frozen=True, slots=True, init=False)
class UpstreamRequest:
    """One request to the provider, charged to ``project``.

    ``prompt_tokens`` is what the limiter charges for the prompt (tokens); ``max_output`` the most
    output tokens per choice the request allows (``None``: it names no maximum); ``n`` the number
    of choices. ``completion_tokens`` and ``cached_tokens``, when set, are exact usage (summed over
    the choices) instead of a draw. ``prompt`` is the prompt's text, read only by the prompt cache.
    ``max_output_param`` names the body field ``max_output`` came from (``max_tokens``,
    ``max_completion_tokens``, ``max_output_tokens``; ``""``: the endpoint's usual one), for the
    400 that refuses it. ``shared_prefix`` names a prefix the prompt starts with, of
    ``shared_prefix_tokens`` tokens, that other requests share (a system prompt): a simulated
    request has no text, so the prompt cache matches it by this name instead
    (:meth:`~keypolicy.upstream.caching.PromptCache.lookup_shared`); 0 tokens: none.
    ``rate_prompt_tokens``: what the limiter charges for the prompt when that is not
    ``prompt_tokens`` (OpenAI's character estimate, where the exact count is known apart);
    ``None``: ``prompt_tokens``.
    """

    project: str
    model: str
    endpoint: Endpoint = "chat.completions"
    prompt_tokens: int = 0
    max_output: int | None = None
    n: int = 1
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    prompt: str = ""
    max_output_param: str = ""
    shared_prefix: str = ""
    shared_prefix_tokens: int = 0
    rate_prompt_tokens: int | None = None

    def __init__(
        self,
        project: str,
        model: str,
        endpoint: Endpoint = "chat.completions",
        prompt_tokens: int = 0,
        max_output: int | None = None,
        n: int = 1,
        completion_tokens: int | None = None,
        cached_tokens: int | None = None,
        prompt: str = "",
        max_output_param: str = "",
        shared_prefix: str = "",
        shared_prefix_tokens: int = 0,
        rate_prompt_tokens: int | None = None,
    ) -> None:
        object.__setattr__(self, "project", project)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "endpoint", endpoint)
        object.__setattr__(self, "prompt_tokens", prompt_tokens)
        object.__setattr__(self, "max_output", max_output)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "completion_tokens", completion_tokens)
        object.__setattr__(self, "cached_tokens", cached_tokens)
        object.__setattr__(self, "prompt", prompt)
        object.__setattr__(self, "max_output_param", max_output_param)
        object.__setattr__(self, "shared_prefix", shared_prefix)
        object.__setattr__(self, "shared_prefix_tokens", shared_prefix_tokens)
        object.__setattr__(self, "rate_prompt_tokens", rate_prompt_tokens)


def split_extension(body: Mapping[str, Any]) -> tuple[dict[str, Any], ExactCounts]:
    """The body without the ``keypolicy`` field, and the exact counts that field states."""
    rest = {k: v for k, v in body.items() if k != EXTENSION_FIELD}
    ext = body.get(EXTENSION_FIELD)
    if not isinstance(ext, Mapping):
        return rest, ExactCounts()

    def count(name: str) -> int | None:
        value = ext.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return None
        return value

    return rest, ExactCounts(
        count("prompt_tokens"),
        count("completion_tokens"),
        count("cached_tokens"),
        ext.get("charge") == "estimate",
    )


def estimate_tokens(characters: int, chars_per_token: float = 4.0) -> int:
    """Tokens OpenAI's limiter would estimate for ``characters`` of text (rounded up)."""
    return math.ceil(characters / chars_per_token) if characters > 0 else 0


def _texts(value: Any) -> Iterator[str]:
    """Every text in a message content, input item or list of them."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, Mapping):
        for name in ("content", "text", "input_text", "output"):
            if name in value:
                yield from _texts(value[name])


def prompt_text(endpoint: Endpoint, body: Mapping[str, Any]) -> str:
    """The prompt's text as the character-based estimate reads it."""
    if endpoint == "chat.completions":
        return "".join(_texts(body.get("messages", [])))
    if endpoint == "responses":
        return "".join(_texts(body.get("instructions"))) + "".join(_texts(body.get("input")))
    return "".join(_texts(body.get("input")))


def _embedding_token_arrays(body: Mapping[str, Any]) -> int:
    """Tokens given directly as integer arrays in an embeddings input."""
    value = body.get("input")
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return len(value)
    if isinstance(value, list):
        return sum(len(v) for v in value if isinstance(v, list))
    return 0


def _max_output(endpoint: Endpoint, body: Mapping[str, Any]) -> tuple[int | None, str]:
    """The body's maximum output tokens per choice, and the field that gave it."""
    for name in _MAX_FIELDS[endpoint]:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value, name
    return None, ""


def request_from_body(
    project: str,
    endpoint: Endpoint,
    body: Mapping[str, Any],
    exact: ExactCounts | None = None,
    chars_per_token: float = 4.0,
    assumed_image_size: ImageSize = ASSUMED_SIZE,
) -> UpstreamRequest:
    """Read a request from an OpenAI JSON body (already without the ``keypolicy`` field)."""
    exact = exact or ExactCounts()
    text = prompt_text(endpoint, body)
    model = str(body.get("model", ""))
    estimate = estimate_tokens(len(text), chars_per_token)
    if endpoint == "embeddings":
        estimate += _embedding_token_arrays(body)
    else:
        items = body.get("messages" if endpoint == "chat.completions" else "input")
        estimate += count_images(model, image_parts(items), assumed_image_size).tokens
    prompt = estimate if exact.prompt_tokens is None else exact.prompt_tokens
    charged = estimate if exact.prompt_tokens is not None and exact.charge_estimate else None
    n = body.get("n", 1) if endpoint == "chat.completions" else 1
    max_output, max_output_param = _max_output(endpoint, body)
    return UpstreamRequest(
        project=project,
        model=model,
        endpoint=endpoint,
        prompt_tokens=prompt,
        max_output=max_output,
        n=n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1,
        completion_tokens=exact.completion_tokens,
        cached_tokens=exact.cached_tokens,
        prompt=text,
        max_output_param=max_output_param,
        rate_prompt_tokens=charged,
    )
