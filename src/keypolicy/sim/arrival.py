"""One simulated request as it arrives: what traffic profiles and traces produce.

Its own small module so that it is compiled with the simulator's driver (``make``): the driver
reads every arrival's fields, and a compiled class is read natively.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Arrival"]


@dataclass(frozen=True, slots=True, init=False)
class Arrival:
    """One request as it arrives.

    ``time`` is seconds since the start of the simulated period (>= 0); token counts are tokens;
    ``completion_tokens`` None lets the provider model draw it; ``model`` None means the domain's
    default model. ``shared_prefix``: how many of the prompt's tokens are its domain's shared
    prefix (a system prompt every request of the domain starts with; the provider model's
    prompt cache matches it by the domain's name), 0 for none.
    """

    time: float
    domain: str
    prompt_tokens: int
    max_output_tokens: int
    completion_tokens: int | None
    model: str | None = None
    shared_prefix: int = 0

    def __init__(
        self,
        time: float,
        domain: str,
        prompt_tokens: int,
        max_output_tokens: int,
        completion_tokens: int | None,
        model: str | None = None,
        shared_prefix: int = 0,
    ) -> None:
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "prompt_tokens", prompt_tokens)
        object.__setattr__(self, "max_output_tokens", max_output_tokens)
        object.__setattr__(self, "completion_tokens", completion_tokens)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "shared_prefix", shared_prefix)
