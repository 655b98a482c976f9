"""OpenAI's error bodies, word for word as its servers send them.

Every body is ``{"error": {"message", "type", "param", "code"}}``. The 401 for a wrong key names no
part of the key (OpenAI shows its first and last characters; the model writes ``sk-***``), so
that nothing secret can end up in a log that records responses.
"""

from __future__ import annotations

from typing import Any, Final

from keypolicy.upstream.durations import go_duration
from keypolicy.upstream.limits import Dimension

__all__ = [
    "DIMENSION_NAMES",
    "ErrorBody",
    "bad_request",
    "below_minimum",
    "context_length_exceeded",
    "empty_array",
    "error_body",
    "insufficient_quota",
    "invalid_api_key",
    "max_tokens_too_large",
    "missing_api_key",
    "model_not_found",
    "not_found",
    "rate_limit_reached",
    "rate_limit_without_wait",
    "request_too_large",
    "server_error",
]

ErrorBody = dict[str, Any]
"""``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``."""

_LEARN_MORE: Final = "Visit https://platform.openai.com/account/rate-limits to learn more."

DIMENSION_NAMES: Final[dict[Dimension, str]] = {
    "rpm": "requests per min (RPM)",
    "tpm": "tokens per min (TPM)",
    "rpd": "requests per day (RPD)",
    "tpd": "tokens per day (TPD)",
}


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> ErrorBody:
    """An OpenAI error body."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _type(dimension: Dimension) -> str:
    return "requests" if dimension in ("rpm", "rpd") else "tokens"


def rate_limit_reached(
    model: str,
    where: str,
    dimension: Dimension,
    limit: int,
    used: int,
    requested: int,
    wait: float,
) -> ErrorBody:
    """The 429 for a full bucket; ``where`` is ``organization org-...`` (or ``project ...``)."""
    message = (
        f"Rate limit reached for {model} in {where} on {DIMENSION_NAMES[dimension]}: "
        f"Limit {limit}, Used {used}, Requested {requested}. "
        f"Please try again in {go_duration(wait)}. {_LEARN_MORE}"
    )
    return error_body(message, _type(dimension), "rate_limit_exceeded")


def request_too_large(
    model: str, where: str, dimension: Dimension, limit: int, requested: int
) -> ErrorBody:
    """The 429 for a request larger than a whole bucket."""
    message = (
        f"Request too large for {model} in {where} on {DIMENSION_NAMES[dimension]}: "
        f"Limit {limit}, Requested {requested}. The input or output tokens must be reduced in "
        f"order to run successfully. {_LEARN_MORE}"
    )
    return error_body(message, _type(dimension), "rate_limit_exceeded")


def rate_limit_without_wait(model: str, where: str) -> ErrorBody:
    """A 429 that states no wait (sent without ``x-ratelimit-*`` headers)."""
    message = f"Rate limit reached for {model} in {where}. Please try again later. {_LEARN_MORE}"
    return error_body(message, "requests", "rate_limit_exceeded")


def insufficient_quota() -> ErrorBody:
    """The 429 of an account out of credit: retrying cannot help."""
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors."
    )
    return error_body(message, "insufficient_quota", "insufficient_quota")


def invalid_api_key() -> ErrorBody:
    """The 401 for a key the provider does not know (no part of the key is shown)."""
    message = (
        "Incorrect API key provided: sk-***. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    return error_body(message, "invalid_request_error", "invalid_api_key")


def missing_api_key() -> ErrorBody:
    """The 401 for a request without an ``Authorization: Bearer`` header."""
    message = (
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
        "(with blank username) if you're accessing the API from your browser and are prompted for "
        "a username and password. You can obtain an API key from "
        "https://platform.openai.com/account/api-keys."
    )
    return error_body(message, "invalid_request_error", None)


def model_not_found(model: str) -> ErrorBody:
    """The 404 for a model that does not exist or the project has no access to.

    Seen whole in github.com/openai/openai-agents-python/issues/458 (2025) and
    github.com/rd-1-2022/ai-openai-helloworld/issues/9: type ``invalid_request_error``, param
    null, code ``model_not_found``.
    """
    message = f"The model `{model}` does not exist or you do not have access to it."
    return error_body(message, "invalid_request_error", "model_not_found")


def not_found(message: str) -> ErrorBody:
    """A 404 for an unknown object (file, batch)."""
    return error_body(message, "invalid_request_error", None)


def bad_request(message: str, param: str | None = None) -> ErrorBody:
    """A 400 for a request the provider cannot read."""
    return error_body(message, "invalid_request_error", None, param)


# The 400s of a request the API refuses before running it. Where each wording was seen (public
# issue threads quoting the API's whole body) is said beside it; numbers are written bare, as
# the API writes them.


def max_tokens_too_large(param: str, given: int, most: int) -> ErrorBody:
    """The 400 for ``param`` (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``)
    above the model's output cap ``most``.

    Seen for ``max_tokens`` on gpt-4o (github.com/charmbracelet/catwalk/issues/41, 2025: "max_tokens
    is too large: 20000. This model supports at most 16384 completion tokens, whereas you provided
    20000.", code ``invalid_value``) and gpt-4.1 (github.com/opencode-ai/opencode/issues/140). The
    other two parameters are assumed to be worded the same with their own name: no captured body
    was found.
    """
    message = (
        f"{param} is too large: {given}. This model supports at most {most} completion tokens, "
        f"whereas you provided {given}."
    )
    return error_body(message, "invalid_request_error", "invalid_value", param)


def below_minimum(param: str, given: int, least: int) -> ErrorBody:
    """The 400 for an integer ``param`` below its least value (``max_tokens: 0``; the Responses
    API's ``max_output_tokens`` below 16).

    Seen as "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0
    instead." (github.com/it-at-m/mucgpt/issues/608) and for ``max_output_tokens`` >= 16
    (github.com/vectorize-io/hindsight/issues/58), code ``integer_below_min_value``.
    """
    message = (
        f"Invalid '{param}': integer below minimum value. Expected a value >= {least}, "
        f"but got {given} instead."
    )
    return error_body(message, "invalid_request_error", "integer_below_min_value", param)


def empty_array(param: str) -> ErrorBody:
    """The 400 for an empty array that needs an item (``messages: []``).

    Seen as "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an
    empty array instead.", code ``empty_array`` (github.com/CopilotKit/CopilotKit/issues/529).
    """
    message = (
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an "
        "empty array instead."
    )
    return error_body(message, "invalid_request_error", "empty_array", param)


def context_length_exceeded(
    endpoint: str, window: int, prompt: int, max_output: int | None
) -> ErrorBody:
    """The 400 for a prompt (plus ``max_output``, if the request names one) above the model's
    context ``window`` (tokens), as each endpoint words it:

    - chat completions naming a maximum: "This model's maximum context length is 8192 tokens.
      However, you requested 8256 tokens (64 in the messages, 8192 in the completion). Please
      reduce the length of the messages or completion." (github.com/ChatGPTNextWeb/NextChat/
      issues/3195); naming none: "... However, your messages resulted in 6988 tokens. Please
      reduce the length of the messages." (github.com/rahul2002m/ChatPDF/issues/6); both with
      param ``messages`` and code ``context_length_exceeded``;
    - responses: "Your input exceeds the context window of this model. Please adjust your input
      and try again.", param ``input`` (github.com/anomalyco/opencode/issues/6071,
      github.com/dyad-sh/dyad/issues/1672);
    - embeddings (one input too long): "This model's maximum context length is 8192 tokens,
      however you requested 8610 tokens (8610 in your prompt; 0 for the completion). Please
      reduce your prompt; or completion length.", with no param and no code
      (github.com/pingcap/autoflow/issues/265, github.com/microsoft/PubSec-Info-Assistant/
      issues/755).
    """
    if endpoint == "responses":
        message = (
            "Your input exceeds the context window of this model. Please adjust your input and "
            "try again."
        )
        return error_body(message, "invalid_request_error", "context_length_exceeded", "input")
    if endpoint == "embeddings":
        message = (
            f"This model's maximum context length is {window} tokens, however you requested "
            f"{prompt} tokens ({prompt} in your prompt; 0 for the completion). Please reduce "
            "your prompt; or completion length."
        )
        return error_body(message, "invalid_request_error", None)
    head = f"This model's maximum context length is {window} tokens. However, "
    if max_output is None:
        message = (
            f"{head}your messages resulted in {prompt} tokens. Please reduce the length of the "
            "messages."
        )
    else:
        message = (
            f"{head}you requested {prompt + max_output} tokens ({prompt} in the messages, "
            f"{max_output} in the completion). Please reduce the length of the messages or "
            "completion."
        )
    return error_body(message, "invalid_request_error", "context_length_exceeded", "messages")


_SERVER_MESSAGES: Final = {
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
}


def server_error(status: int) -> ErrorBody:
    """The body of a 500, 502 or 503."""
    message = _SERVER_MESSAGES.get(status, _SERVER_MESSAGES[500])
    return error_body(message, "server_error", None)
