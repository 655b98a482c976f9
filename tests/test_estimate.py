"""Request sizing: exact tokens with the shipped vocabularies, the provider's character estimate."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from keypolicy.estimate import count_tokens, encoding_name, estimate_request
from keypolicy.images import ImageSize
from tests.image_files import large_data_url


def test_exact_counts_match_openai_vocabularies() -> None:
    # Reference values from tiktoken for the same strings.
    assert count_tokens("Hello, world!", "gpt-4o") == 4  # o200k: 13225, 11, 2375, 0
    assert count_tokens("tiktoken is great!", "gpt-4o-mini") == 6
    assert count_tokens("Hello, world!", "gpt-4") == 4  # cl100k: 9906, 11, 1917, 0
    assert count_tokens("", "gpt-4o") == 0


def test_model_to_vocabulary() -> None:
    assert encoding_name("gpt-4o-mini") == "o200k_base"
    assert encoding_name("gpt-5-nano") == "o200k_base"
    assert encoding_name("o3") == "o200k_base"
    assert encoding_name("text-embedding-3-small") == "cl100k_base"


def test_chat_request() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a careful clinician."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Read this x-ray."},
                    {"type": "image_url", "image_url": {"url": "data:..."}},
                ],
            },
        ],
        "max_completion_tokens": 300,
        "n": 2,
    }
    est = estimate_request("chat.completions", body)
    text_tokens = count_tokens("You are a careful clinician.", "gpt-4o") + count_tokens(
        "Read this x-ray.", "gpt-4o"
    )
    assert est.prompt_tokens == text_tokens + 2 * 3 + 3 + 765
    chars = len("You are a careful clinician.") + len("Read this x-ray.") + 765 * 4
    assert est.rate_prompt_tokens == -(-chars // 4)
    assert (est.max_output_tokens, est.n, est.stream) == (300, 2, False)


def test_an_inline_image_counts_its_tiles_not_its_base64_text() -> None:
    url = large_data_url(2048, 4096)  # 400,000 characters: 1105 tokens at high detail on gpt-4o
    assert len(url) > 400_000
    text = "Read this x-ray."
    chat = {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
    }
    est = estimate_request("chat.completions", chat)
    assert est.prompt_tokens == count_tokens(text, "gpt-4o") + 3 + 3 + 1105
    assert est.rate_prompt_tokens == -(-len(text) // 4) + 1105  # the limiter: tokens, not text
    assert (est.image_tokens, est.assumed_images) == (1105, 0)
    low = {"model": "gpt-4o", "input": [{"type": "input_image", "image_url": url, "detail": "low"}]}
    assert estimate_request("responses", low).image_tokens == 85


def test_an_image_of_unknown_size_is_assumed_and_says_so() -> None:
    body = {
        "model": "gpt-4o-mini",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_image", "image_url": "https://example.com/scan.jpg"},
                    {"type": "input_image", "file_id": "file-123", "detail": "low"},
                ],
            }
        ],
    }
    est = estimate_request("responses", body)
    assert (est.image_tokens, est.assumed_images) == (2833 + 4 * 5667 + 2833, 2)
    small = estimate_request("responses", body, assumed_image_size=ImageSize(512, 512))
    assert small.image_tokens == 2833 + 5667 + 2833


def test_responses_and_embeddings() -> None:
    est = estimate_request(
        "responses",
        {
            "model": "gpt-4.1",
            "input": "Summarize the bill.",
            "instructions": "Be brief.",
            "max_output_tokens": 50,
        },
    )
    assert est.prompt_tokens == count_tokens("Summarize the bill.", "gpt-4.1") + count_tokens(
        "Be brief.", "gpt-4.1"
    )
    assert est.max_output_tokens == 50
    emb = estimate_request(
        "embeddings", {"model": "text-embedding-3-small", "input": ["one", "two three"]}
    )
    assert emb.max_output_tokens == 0
    assert emb.prompt_tokens == 3


def test_malformed_bodies_do_not_crash() -> None:
    for body in (
        {},
        {"messages": "x"},
        {"messages": [1, None, {"content": 5}]},
        {"model": "gpt-4o", "input": {"weird": True}, "n": True, "max_tokens": "3"},
    ):
        est = estimate_request("chat.completions", body)  # type: ignore[arg-type]
        assert est.n == 1
        assert est.max_output_tokens is None


@pytest.mark.parametrize("value", [0, -3])
def test_a_maximum_below_one_is_passed_on_for_the_engine_to_refuse(value: int) -> None:
    est = estimate_request("chat.completions", {"model": "gpt-4o", "max_tokens": value})
    assert est.max_output_tokens == value
    both = {"model": "gpt-4o", "max_completion_tokens": 0, "max_tokens": 100}
    assert estimate_request("chat.completions", both).max_output_tokens == 0


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) to cut the network")
def test_tokenizer_works_without_any_network() -> None:
    """Run the tokenizer in a fresh process inside a network namespace with no interfaces up."""
    code = (
        "from keypolicy.estimate import count_tokens; "
        "print(count_tokens('Hello, world!', 'gpt-4o'), count_tokens('Hello, world!', 'gpt-4'))"
    )
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("this machine does not allow network namespaces")
    result = subprocess.run(
        ["unshare", "-rn", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "4"]


def test_tools_and_response_formats_count_as_their_json_text() -> None:
    body: dict[str, object] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    bare = estimate_request("chat.completions", body).prompt_tokens
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object"}},
    }
    with_tool = estimate_request("chat.completions", {**body, "tools": [tool]}).prompt_tokens
    assert with_tool == bare + count_tokens(
        '[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]',
        "gpt-4o",
    )
    schema = {"type": "json_schema", "schema": {"type": "object"}}
    plain = estimate_request("responses", {"model": "gpt-4o", "input": "hi"}).prompt_tokens
    shaped = estimate_request(
        "responses", {"model": "gpt-4o", "input": "hi", "text": {"format": schema}}
    ).prompt_tokens
    assert shaped > plain
