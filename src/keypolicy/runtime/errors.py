"""What a caller sees when the policy refuses a call."""

from __future__ import annotations

from typing import Final

import openai

__all__ = ["PolicyRejected"]

_HINTS: Final = {
    "max_wait": "give the domain's class more reserve or a longer max_wait, move it to a pool "
    "with more capacity, or raise the project's limits",
    "deadline": "lengthen domains.{domain}.defer.deadline or widen its windows",
    "budget": "raise the budget's usd, or set its on_exhausted to defer or downgrade",
    "too_large": "lower max_tokens or the prompt, or raise the project's tokens per minute",
    "invalid_request": "OpenAI would refuse it with a 400 (no retry helps): keep max_tokens "
    "(max_completion_tokens, max_output_tokens) between 1 and the model's output cap, and the "
    "prompt plus max_tokens within its context window",
    "model_not_allowed": "call the domain's model, or add this one to domains.{domain}.models",
    "unknown_domain": "use a domain the policy declares",
    "batch_domain": "hand its work to the Batch API with rt.defer('{domain}', endpoint, body), "
    "which returns a job to wait on; or set domains.{domain}.defer to queue or never to call it "
    "through a client",
    "store_error": "check the state store keypolicy uses; the call was not sent",
}


class PolicyRejected(openai.OpenAIError):
    """keypolicy's policy refused the call: it was not sent (or not sent again).

    ``reason`` is the engine's code (``max_wait``, ``budget``, ``deadline``, ``too_large``,
    ``model_not_allowed``, ``invalid_request``, ...); ``waited_s`` how long it waited for
    capacity; ``message`` says which limit, budget or size, and what to change.
    """

    def __init__(
        self, domain: str, reason: str, detail: str, waited_s: float, request_id: str
    ) -> None:
        self.domain = domain
        self.reason = reason
        self.detail = detail
        self.waited_s = waited_s
        self.request_id = request_id
        hint = _HINTS.get(reason, "").format(domain=domain)
        self.message = (
            f"keypolicy refused a call of domain {domain!r} after {waited_s:.2f}s ({reason}): "
            f"{detail}" + (f". To change: {hint}" if hint else "")
        )
        super().__init__(self.message)

    def __reduce__(self) -> tuple[type[PolicyRejected], tuple[str, str, str, float, str]]:
        return (
            PolicyRejected,
            (self.domain, self.reason, self.detail, self.waited_s, self.request_id),
        )
