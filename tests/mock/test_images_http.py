"""Images through the mock with the real openai client: usage and the limiter count an inline
image at the documented per-image tokens, not its base64 text (a 400,000-character image is
1,105 tokens on gpt-4o at high detail; as text it would be 100,000, over the 30,000 TPM here)."""

from __future__ import annotations

from tests.image_files import large_data_url
from tests.mock.test_endpoints import client

TEXT = "Read this x-ray."  # 16 characters: 4 tokens by the character estimate
IMAGE = large_data_url(2048, 4096)


def test_chat_usage_and_charge_count_the_image_tokens(mock_server: str) -> None:
    with client(mock_server) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": TEXT},
                        {"type": "image_url", "image_url": {"url": IMAGE, "detail": "high"}},
                    ],
                }
            ],
            max_tokens=50,
        )
    completion = raw.parse()
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 4 + 1105
    charged = 4 + 1105 + 50  # prompt and max_tokens, at admission
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(30_000 - charged)


def test_responses_usage_counts_a_low_detail_image(mock_server: str) -> None:
    with client(mock_server) as c:
        response = c.responses.create(
            model="gpt-4o",
            input=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": TEXT},
                        {"type": "input_image", "image_url": IMAGE, "detail": "low"},
                    ],
                }
            ],
            max_output_tokens=20,
        )
    assert response.usage is not None
    assert response.usage.input_tokens == 4 + 85
