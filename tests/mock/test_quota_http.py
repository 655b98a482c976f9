"""The real openai client against the mock past the organization's monthly usage limit: a
``RateLimitError`` whose code is ``insufficient_quota``, as OpenAI answers it."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.mock.conftest import KEYS, POLICY, StartMock

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def mock_policy(tmp_path: Path) -> Path:
    """The test policy with a monthly usage limit one small call passes."""
    path = tmp_path / "quota.yaml"
    limited = "  id: org-mocktest\n  usage_limit: 0.000001\n"
    path.write_text(POLICY.replace("  id: org-mocktest\n", limited))
    return path


def test_calls_past_the_monthly_usage_limit_are_insufficient_quota(start_mock: StartMock) -> None:
    url = start_mock()
    with openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["roomy"], max_retries=0) as client:
        first = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)
        assert first.usage is not None
        assert first.usage.prompt_tokens > 0
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)
    error = caught.value
    assert error.status_code == 429
    assert error.code == "insufficient_quota"
    assert error.message.startswith("Error code: 429 - You exceeded your current quota")


def test_the_mock_counts_by_an_assumed_rule(tmp_path: Path, mock_keys: dict[str, str]) -> None:
    """``--assume`` makes the mock count otherwise than the policy assumes (one value a rule)."""
    from keypolicy.mock.app import build_state
    from keypolicy.mock.options import MockOptions
    from keypolicy.policy import load_policy_text

    policy = load_policy_text(POLICY, "p.yaml").policy
    state = build_state(policy, options=MockOptions(assume=("refund_unused=true",)))
    assert state.provider.limits.accounting.refund_unused is True
    assert build_state(policy).provider.limits.accounting.refund_unused is False
    with pytest.raises(ValueError, match="the mock counts by one rule"):
        build_state(policy, options=MockOptions(assume=("refund_unused=both",)))
