"""Prompt text of a given size: its exact tokens are the traffic's, its length chosen apart."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from keypolicy.estimate import count_tokens, estimate_request
from keypolicy.fidelity.prompts import WORDS, chat_prompt, filler


def test_every_word_is_one_token_in_both_vocabularies() -> None:
    for length, word in WORDS.items():
        assert len(word) == length
        for model in ("gpt-4o", "gpt-3.5-turbo"):  # o200k_base, cl100k_base
            assert count_tokens(word * 9, model) == 9, (word, model)


@settings(max_examples=60, deadline=None)
@given(
    tokens=st.integers(min_value=50, max_value=6000),  # short ones: see below
    ratio=st.floats(min_value=2.2, max_value=14.0),
    model=st.sampled_from(["gpt-4o", "gpt-4o-mini", "gpt-3.5-turbo"]),
)
def test_a_prompt_counts_exactly_its_tokens_and_has_its_length(
    tokens: int, ratio: float, model: str
) -> None:
    text = chat_prompt(tokens, ratio)
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    sized = estimate_request("chat.completions", body)
    assert sized.prompt_tokens == tokens  # the runtime's exact count, message overhead included
    assert len(text) == round(tokens * ratio)


def test_lengths_out_of_reach_come_as_near_as_the_words_allow() -> None:
    assert filler(10, 5) == " a" * 10  # two characters a token at the least
    assert filler(3, 300) == WORDS[16] * 3  # sixteen at the most
    assert filler(0, 40) == ""
