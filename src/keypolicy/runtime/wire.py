"""The request and the answer as they cross the wire: which calls are metered, where the key
goes, and what the engine reads of an answer. Small functions the call flow and the transports
share."""

from __future__ import annotations

import json
from typing import Any, Final

import httpx2

from keypolicy.runtime.secrets import KeyRing

__all__ = ["endpoint_of", "given_up", "metered_body", "on_key", "plain"]

_ENDPOINTS: Final = (
    ("/chat/completions", "chat.completions"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
    ("/completions", "completions"),
)


def on_key(headers: httpx2.Headers, keys: KeyRing, alias: str) -> None:
    """Put key ``alias``'s secret on ``headers`` and drop any ``OpenAI-Project`` header (the
    openai client adds one from ``$OPENAI_PROJECT_ID``): a key belongs to one project, and
    another project's header would make the provider refuse the key."""
    if "openai-project" in headers:
        del headers["openai-project"]
    headers["authorization"] = keys.bearer(alias)


def endpoint_of(request: httpx2.Request) -> str:
    """``chat.completions``, ``responses``, ``embeddings``, ``completions``, or the path."""
    path = request.url.path.rstrip("/")
    for suffix, name in _ENDPOINTS:
        if path.endswith(suffix):
            return name
    return path


def metered_body(request: httpx2.Request) -> dict[str, Any] | None:
    """The JSON body of a request that names a model (the calls limits apply to), else None."""
    if request.method != "POST" or "json" not in request.headers.get("content-type", ""):
        return None
    try:
        body = json.loads(request.read())
    except ValueError:
        return None
    return body if isinstance(body, dict) and isinstance(body.get("model"), str) else None


def given_up(response: httpx2.Response) -> httpx2.Response:
    """The provider's refusal as the caller gets it once the engine has given up on the call:
    ``x-should-retry: false``, so that no client retries behind the policy's back."""
    response.headers["x-should-retry"] = "false"
    return response


def plain(headers: httpx2.Headers) -> dict[str, str]:
    """A response's headers as a plain dict with lower-case names: what the engine reads, made
    outside its lock (reading httpx2's headers there took three times as long)."""
    return dict(headers.items())
