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
    "error_body",
    "insufficient_quota",
    "invalid_api_key",
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
    """The 404 for a model the project has no access to."""
    message = f"The model `{model}` does not exist or you do not have access to it."
    return error_body(message, "invalid_request_error", "model_not_found")


def not_found(message: str) -> ErrorBody:
    """A 404 for an unknown object (file, batch)."""
    return error_body(message, "invalid_request_error", None)


def bad_request(message: str, param: str | None = None) -> ErrorBody:
    """A 400 for a request the provider cannot read."""
    return error_body(message, "invalid_request_error", None, param)


_SERVER_MESSAGES: Final = {
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
}


def server_error(status: int) -> ErrorBody:
    """The body of a 500, 502 or 503."""
    message = _SERVER_MESSAGES.get(status, _SERVER_MESSAGES[500])
    return error_body(message, "server_error", None)
