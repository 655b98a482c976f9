"""The policy's ``state:``: memory by default, a Redis URL to share limits and budgets; a URL
with a password is refused without being echoed."""

from __future__ import annotations

import pytest

from keypolicy.policy import PolicyError, load_policy_text
from keypolicy.policy.model import State
from tests.policy.test_lint import BASE


def _state(value: str) -> State:
    return load_policy_text(BASE + f"state: {value}\n", "p.yaml").policy.state


def test_memory_by_default() -> None:
    state = load_policy_text(BASE, "p.yaml").policy.state
    assert (state.url, state.url_env, state.namespace) == ("memory", None, None)


def test_a_redis_url_as_a_word_or_a_mapping() -> None:
    assert _state("redis://127.0.0.1:6379/0").url == "redis://127.0.0.1:6379/0"
    state = _state("{url_env: KEYPOLICY_STATE, namespace: clinic}")
    assert (state.url_env, state.namespace) == ("KEYPOLICY_STATE", "clinic")


def test_a_password_in_the_url_is_refused_and_never_echoed() -> None:
    with pytest.raises(PolicyError) as caught:
        _state("redis://:canary-pass-41f@127.0.0.1:6379/0")
    text = str(caught.value)
    assert "the state URL holds a password" in text
    assert "p.yaml:14:8: state:" in text
    assert "canary" not in text


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(PolicyError, match="state is 'memory' or a redis://HOST:PORT/DB URL"):
        _state("http://127.0.0.1:6379")


@pytest.mark.parametrize(
    "url", ["redis://:ab/canary-cd@127.0.0.1:6379/0", "redis://h:6379/0?password=canary-x"]
)
def test_passwords_of_any_shape_are_refused(url: str) -> None:
    with pytest.raises(PolicyError, match="the state URL holds a password") as caught:
        _state(url)
    assert "canary" not in str(caught.value)
