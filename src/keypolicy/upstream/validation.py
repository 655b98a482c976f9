"""Requests the API refuses as invalid (400) before any limit is looked at.

Two kinds of check, both answered with OpenAI's own bodies (:mod:`keypolicy.upstream.errors`
says where each wording was seen):

- by the request's sizes, for the model (:func:`check_request`, called by
  :meth:`keypolicy.upstream.Provider.submit`, so the simulator and the mock server both refuse
  them): ``max_tokens`` (``max_completion_tokens``, ``max_output_tokens``) above the model's
  output cap is ``invalid_value``; the prompt plus that maximum (the prompt alone if the request
  names none) above the model's context window is ``context_length_exceeded``. Caps and windows
  come from :mod:`keypolicy.catalog`; a model it does not know is not checked.
- by the body's shape (:func:`check_body`, called by the mock server, which has the body): an
  empty ``messages``, a maximum below its least value (1; 16 for the Responses API's
  ``max_output_tokens``), an embeddings input longer than the model's window.

An :class:`~keypolicy.upstream.UpstreamRequest` with ``max_output`` 0 asks for no output and is
not refused (the charge of a prompt alone); a body saying ``max_tokens: 0`` is, by
:func:`check_body`. The decision engine refuses the same requests by the same rule before sending
them (``Reject(invalid_request)``, :mod:`keypolicy.core.validity`, written apart from this one);
``tests/sim/test_invalid_requests.py`` holds the two to agree. A dated snapshot is judged as its
family (:func:`keypolicy.catalog.family`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from keypolicy.catalog import family, model_info
from keypolicy.upstream import errors
from keypolicy.upstream.errors import ErrorBody
from keypolicy.upstream.requests import Endpoint, UpstreamRequest, estimate_tokens

__all__ = ["LEAST_OUTPUT", "as_family", "check_body", "check_request"]

LEAST_OUTPUT: Final[dict[Endpoint, tuple[tuple[str, int], ...]]] = {
    "chat.completions": (("max_completion_tokens", 1), ("max_tokens", 1)),
    "responses": (("max_output_tokens", 16),),  # the API reference: "minimum 16"
    "embeddings": (),
}
"""Per endpoint, the fields that bound the output and the least value each accepts."""

_USUAL_PARAM: Final[dict[Endpoint, str]] = {
    "chat.completions": "max_tokens",
    "responses": "max_output_tokens",
    "embeddings": "max_tokens",
}


def as_family(request: UpstreamRequest) -> UpstreamRequest:
    """``request`` for its model's family: a dated snapshot is served under its family's name
    (its limits, caps and 429 messages); any other request is returned as it is."""
    name = family(request.model)
    if name == request.model:
        return request
    r = request
    return UpstreamRequest(
        r.project,
        name,
        r.endpoint,
        r.prompt_tokens,
        r.max_output,
        r.n,
        r.completion_tokens,
        r.cached_tokens,
        r.prompt,
        r.max_output_param,
        r.shared_prefix,
        r.shared_prefix_tokens,
        r.rate_prompt_tokens,
    )


def check_request(request: UpstreamRequest) -> ErrorBody | None:
    """The 400 body refusing ``request`` by its sizes, or ``None`` if its sizes are valid."""
    info = model_info(request.model)
    if info is None or info.max_output <= 0 or request.endpoint == "embeddings":
        # Unknown, or an embeddings model: its window bounds each input, which only the body
        # shows (check_body).
        return None
    most = request.max_output
    if most is not None and most > info.max_output:
        param = request.max_output_param or _USUAL_PARAM[request.endpoint]
        return errors.max_tokens_too_large(param, most, info.max_output)
    if request.prompt_tokens + (most or 0) > info.context_window:
        return errors.context_length_exceeded(
            request.endpoint, info.context_window, request.prompt_tokens, most
        )
    return None


def check_body(
    endpoint: Endpoint, body: Mapping[str, Any], chars_per_token: float = 4.0
) -> ErrorBody | None:
    """The 400 body refusing a request by its body's shape (see the module), or ``None``.

    ``body`` is the JSON object without the ``keypolicy`` extension field; embeddings inputs are
    sized as the provider model sizes prompts (``chars_per_token``; token arrays by length).
    """
    if endpoint == "chat.completions":
        messages = body.get("messages")
        if isinstance(messages, list) and not messages:
            return errors.empty_array("messages")
    for name, least in LEAST_OUTPUT[endpoint]:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value < least:
            return errors.below_minimum(name, value, least)
    if endpoint == "embeddings":
        info = model_info(str(body.get("model", "")))
        if info is not None:
            for tokens in _input_sizes(body.get("input"), chars_per_token):
                if tokens > info.context_window:
                    return errors.context_length_exceeded(
                        endpoint, info.context_window, tokens, None
                    )
    return None


def _input_sizes(value: Any, chars_per_token: float) -> list[int]:
    """Tokens of each input of an embeddings request (a text, texts, a token array or arrays)."""
    if isinstance(value, str):
        return [estimate_tokens(len(value), chars_per_token)]
    if not isinstance(value, list):
        return []
    if value and all(isinstance(v, int) for v in value):
        return [len(value)]
    sizes = []
    for item in value:
        if isinstance(item, str):
            sizes.append(estimate_tokens(len(item), chars_per_token))
        elif isinstance(item, list):
            sizes.append(len(item))
    return sizes
