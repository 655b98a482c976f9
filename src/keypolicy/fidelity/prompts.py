"""Prompt text of a given size, for replaying traffic that states sizes but carries no text.

A profile or trace says how many tokens a prompt has; a live call needs text. The text is made
of common English words that are one token each in OpenAI's vocabularies (``o200k_base`` and
``cl100k_base``; tests/fidelity/test_prompts.py counts them), so its exact token count is the
number of words, and its length in characters can be chosen independently: that is what the
provider's limiter estimates from (``characters / 4``), and what makes its charge differ from the
exact count. ``chars_per_token`` says how long a domain's prompts are per exact token (English
prose: about 4; JSON, code or a chart summary with numbers: more or less).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

__all__ = ["MESSAGE_OVERHEAD", "WORDS", "chat_prompt", "filler"]

WORDS: Final[dict[int, str]] = {
    2: " a",
    3: " an",
    4: " the",
    5: " that",
    6: " which",
    7: " should",
    8: " patient",
    9: " patients",
    10: " treatment",
    11: " management",
    12: " information",
    13: " professional",
    14: " international",
    15: " responsibility",
    16: " characteristics",
}
"""One-token words by their length in characters (the leading space included)."""

MESSAGE_OVERHEAD: Final = 6
"""Tokens a one-message chat request counts beyond its text: 3 for the message and 3 priming
the reply (OpenAI's cookbook; :mod:`keypolicy.estimate` counts the same)."""

_SHORTEST, _LONGEST = min(WORDS), max(WORDS)


@lru_cache(maxsize=4096)
def filler(tokens: int, characters: int) -> str:
    """Text of exactly ``tokens`` tokens and, as near as the words allow, ``characters``
    characters (between 2 and 16 per token)."""
    if tokens <= 0:
        return ""
    per = max(_SHORTEST, min(_LONGEST, characters // tokens))
    if per == _LONGEST:
        return WORDS[per] * tokens
    longer = max(0, min(tokens, characters - per * tokens))  # words one character longer
    return WORDS[per + 1] * longer + WORDS[per] * (tokens - longer)


def chat_prompt(prompt_tokens: int, chars_per_token: float = 4.0) -> str:
    """The text of a one-message chat request that counts ``prompt_tokens`` exactly (its
    message overhead included) and is ``prompt_tokens × chars_per_token`` characters long."""
    text_tokens = max(1, prompt_tokens - MESSAGE_OVERHEAD)
    return filler(text_tokens, round(prompt_tokens * chars_per_token))
