"""What ``rt.defer()`` refuses at once, rather than hours later in a batch.

Two kinds of refusal, both raised before anything is queued:

- the caller's mistake about the policy (a domain it does not have, one that does not defer, an
  endpoint jobs do not run): ``ValueError``, saying what to do;
- a body the endpoint would refuse whatever the key or the time: ``PolicyRejected`` with reason
  ``invalid_request`` (or ``model_not_allowed``) and the API's own reason. The sizes are judged
  by the same rule the engine applies before sending a live call
  (:func:`keypolicy.core.validity.invalid_sizes`, by the catalog's output caps and context
  windows); the body's shape by the API's documented minimums (an empty ``messages``,
  ``max_tokens`` below 1, the Responses API's ``max_output_tokens`` below 16), worded as the
  API words them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from keypolicy.core.config import EngineConfig
from keypolicy.core.validity import invalid_sizes
from keypolicy.estimate import RequestEstimate, estimate_request
from keypolicy.runtime.errors import PolicyRejected

__all__ = ["ENDPOINT_URLS", "Checked", "check_job"]

ENDPOINT_URLS: Final = {
    "chat.completions": "/v1/chat/completions",
    "responses": "/v1/responses",
    "embeddings": "/v1/embeddings",
}
"""The endpoints a job may call (the Batch API's), and their paths."""

_LEAST: Final = {
    "chat.completions": (("max_completion_tokens", 1), ("max_tokens", 1)),
    "responses": (("max_output_tokens", 16),),
    "embeddings": (),
}


@dataclass(frozen=True, slots=True)
class Checked:
    """A job's body as it will be sent (its model filled in if it named none), its family
    model (as the policy counts it) and its size."""

    body: dict[str, Any]
    model: str
    estimate: RequestEstimate


def check_job(config: EngineConfig, domain: str, endpoint: str, body: Any) -> Checked:
    """Check a job for ``domain`` before it is queued (see the module); the body to send."""
    spec = config.domains.get(domain)
    if spec is None:
        known = ", ".join(sorted(config.domains))
        raise ValueError(f"policy {config.name!r} has no domain {domain!r}; it has: {known}")
    if spec.defer not in ("queue", "batch"):
        raise ValueError(
            f"domain {domain!r} does not defer (its defer is {spec.defer!r}): call it through "
            f"rt.openai({domain!r}), or set domains.{domain}.defer to queue or batch"
        )
    if endpoint not in ENDPOINT_URLS:
        raise ValueError(f"a job calls one of {', '.join(ENDPOINT_URLS)}, not {endpoint!r}")
    if not isinstance(body, dict):
        raise ValueError(f"a job's body is a JSON object (a dict), not {type(body).__name__}")
    try:
        json.dumps(body)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a job's body must be JSON ({exc})") from None
    if body.get("stream"):
        raise ValueError("a job cannot stream (stream: true): leave stream out")
    body = {**body}
    asked = body.setdefault("model", spec.model)
    if not isinstance(asked, str) or not asked:
        raise _refused(domain, "invalid_request", "model must be a model's name")
    model = config.families.get(asked, asked)
    if model not in spec.models:
        raise _refused(
            domain,
            "model_not_allowed",
            f"domain {domain!r} may not call {asked!r}; it may call {', '.join(spec.models)}",
        )
    shape = _shape(endpoint, body)
    if shape:
        raise _refused(domain, "invalid_request", shape)
    estimate = estimate_request(endpoint, body)
    sizes = invalid_sizes(
        model,
        estimate.prompt_tokens,
        estimate.max_output_tokens,
        config.max_output.get(model),
        config.context_window.get(model),
    )
    if sizes:
        raise _refused(domain, "invalid_request", sizes)
    return Checked(body, model, estimate)


def _shape(endpoint: str, body: dict[str, Any]) -> str:
    """The API's reason for refusing the body's shape, or ""."""
    if endpoint == "chat.completions":
        messages = body.get("messages")
        if not isinstance(messages, list):
            return "Missing required parameter: 'messages'."
        if not messages:
            return (
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead."
            )
    elif endpoint in ("embeddings", "responses") and body.get("input") in (None, "", []):
        return "Missing required parameter: 'input'."
    for name, least in _LEAST[endpoint]:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value < least:
            return (
                f"Invalid '{name}': integer below minimum value. Expected a value >= {least}, "
                f"but got {value} instead."
            )
    return ""


def _refused(domain: str, reason: str, detail: str) -> PolicyRejected:
    return PolicyRejected(domain, reason, detail, 0.0, "")
