"""Reading requests from OpenAI JSON bodies: the character estimate and exact counts."""

from __future__ import annotations

from keypolicy.upstream import (
    ExactCounts,
    estimate_tokens,
    prompt_text,
    request_from_body,
    split_extension,
)


def test_estimate_is_characters_over_four_rounded_up() -> None:
    assert estimate_tokens(0) == 0
    assert estimate_tokens(1) == 1
    assert estimate_tokens(8) == 2
    assert estimate_tokens(9) == 3
    assert estimate_tokens(9, chars_per_token=3.0) == 3


def test_chat_prompt_reads_every_message_and_part() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "abcd"},
            {"role": "user", "content": [{"type": "text", "text": "efgh"}, {"type": "image_url"}]},
        ],
        "max_completion_tokens": 100,
        "n": 2,
    }
    request = request_from_body("p", "chat.completions", body)
    assert prompt_text("chat.completions", body) == "abcdefgh"
    # An image without a readable size counts as 1024x1024 at high detail: 765 tokens on gpt-4o.
    assert (request.prompt_tokens, request.max_output, request.n) == (2 + 765, 100, 2)


def test_max_tokens_fields_per_endpoint() -> None:
    chat = request_from_body("p", "chat.completions", {"model": "m", "max_tokens": 7})
    assert chat.max_output == 7
    responses = request_from_body(
        "p", "responses", {"model": "m", "input": "abcd", "max_output_tokens": 9}
    )
    assert (responses.max_output, responses.prompt_tokens) == (9, 1)
    assert request_from_body("p", "chat.completions", {"model": "m"}).max_output is None


def test_responses_prompt_includes_instructions_and_items() -> None:
    body = {
        "instructions": "abcd",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "efghij"}]}],
    }
    assert prompt_text("responses", body) == "abcdefghij"


def test_embeddings_count_strings_and_token_arrays() -> None:
    texts = request_from_body("p", "embeddings", {"model": "e", "input": ["abcd", "efgh"]})
    assert texts.prompt_tokens == 2
    tokens = request_from_body("p", "embeddings", {"model": "e", "input": [[1, 2, 3], [4]]})
    assert tokens.prompt_tokens == 4
    flat = request_from_body("p", "embeddings", {"model": "e", "input": [5, 6, 7]})
    assert flat.prompt_tokens == 3


def test_extension_is_stripped_and_read() -> None:
    body = {
        "model": "m",
        "messages": [],
        "keypolicy": {"prompt_tokens": 120, "completion_tokens": 30, "cached_tokens": -1},
    }
    rest, exact = split_extension(body)
    assert "keypolicy" not in rest
    assert exact == ExactCounts(120, 30, None)  # a negative count is ignored
    request = request_from_body("p", "chat.completions", rest, exact)
    assert (request.prompt_tokens, request.completion_tokens) == (120, 30)
    assert split_extension({"keypolicy": "nonsense"})[1] == ExactCounts()


def test_bad_n_counts_as_one() -> None:
    assert request_from_body("p", "chat.completions", {"model": "m", "n": 0}).n == 1
    assert request_from_body("p", "chat.completions", {"model": "m", "n": True}).n == 1
