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
    default model.
    """

    time: float
    domain: str
    prompt_tokens: int
    max_output_tokens: int
    completion_tokens: int | None
    model: str | None = None

    def __init__(
        self,
        time: float,
        domain: str,
        prompt_tokens: int,
        max_output_tokens: int,
        completion_tokens: int | None,
        model: str | None = None,
    ) -> None:
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "prompt_tokens", prompt_tokens)
        object.__setattr__(self, "max_output_tokens", max_output_tokens)
        object.__setattr__(self, "completion_tokens", completion_tokens)
        object.__setattr__(self, "model", model)
