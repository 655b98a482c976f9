"""What the provider refuses as invalid by a request's sizes, as the engine sees a request.

The same rule as the provider model's (:mod:`keypolicy.upstream.validation`), written apart from
it (the provider model judges the engine; ``tests/sim/test_invalid_requests.py`` holds the two to
agree): ``max_tokens`` above the model's output cap, or the prompt plus ``max_tokens`` (the prompt
alone if the request names none) above the model's context window; and a negative maximum. A
request the provider answers with a 400 whatever the key or the time is never worth sending, nor
retrying.

A maximum of 0 is not refused here: ``Submit.max_output_tokens`` 0 is how a driver says a request
writes no output (an embeddings call), and the engine does not know the endpoint. A chat body
saying ``max_tokens: 0`` goes out and gets the provider's own 400 (``integer_below_min_value``),
which the engine does not retry.
"""

from __future__ import annotations

__all__ = ["invalid_sizes"]


def invalid_sizes(
    model: str, prompt: int, most: int | None, cap: int | None, window: int | None
) -> str:
    """Why a request of ``prompt`` tokens asking for ``most`` output tokens (``None``: it names
    no maximum) is invalid for ``model``, whose output cap is ``cap`` and context window
    ``window`` (tokens; ``None`` where unknown), or ``""`` if it is not.

    Only a negative maximum is refused for a model of unknown sizes; a model with no output (an
    embeddings model, ``cap`` 0) is not checked further: its window bounds each input, which the
    engine does not see.
    """
    if most is not None and most < 0:
        return f"max_tokens is {most}: it must be at least 1"
    if not cap or window is None:
        return ""
    if most is not None and most > cap:
        return (
            f"max_tokens {most:,} is above {model}'s output cap of {cap:,} tokens: "
            f"ask for {cap:,} at most"
        )
    if most is None and prompt > window:
        return (
            f"the prompt ({prompt:,} tokens) is above {model}'s context window of "
            f"{window:,} tokens: shorten it"
        )
    if most is not None and prompt + most > window:
        return (
            f"the prompt ({prompt:,} tokens) plus max_tokens ({most:,}) is {prompt + most:,} "
            f"tokens, above {model}'s context window of {window:,}: shorten the prompt or "
            "lower max_tokens"
        )
    return ""
