"""Passwords in service URLs are never shown, whatever characters they hold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keypolicy.urls import mask_url, url_passwords


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:ab/cd+ef@host/0", "redis://:***@host/0"),
        ("postgresql://u:p#ss@127.0.0.1/db", "postgresql://u:***@127.0.0.1/db"),
        ("postgresql://u:a?b@c@127.0.0.1:5432/db", "postgresql://u:***@127.0.0.1:5432/db"),
        ("redis://h/0?password=secret&db=1", "redis://h/0?password=***&db=1"),
        ("redis://user@host:6379/0", "redis://user@host:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("memory", "memory"),
    ],
)
def test_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@given(st.text(alphabet=st.characters(codec="ascii", exclude_characters="\n\r\t "), min_size=6))
def test_no_password_survives_masking(password: str) -> None:
    redis, postgres = f"redis://:{password}@127.0.0.1:6379/0", f"postgresql://u:{password}@h/db"
    assert mask_url(redis) == "redis://:***@127.0.0.1:6379/0"
    assert mask_url(postgres) == "postgresql://u:***@h/db"
    assert password in url_passwords(redis)
    assert password in url_passwords(postgres)


def test_unencoded_passwords_are_refused_before_any_driver_reads_them() -> None:
    """A driver would read part of such a password as the port or the path and echo it."""
    from keypolicy.ledger_pg import PostgresURL
    from keypolicy.state.redis import RedisStore

    with pytest.raises(ValueError, match="percent-encode them") as redis:
        RedisStore.from_url("redis://:ab/canary@127.0.0.1:1/0")
    with pytest.raises(ValueError, match="percent-encode them") as postgres:
        PostgresURL("postgresql://u:canary#x@127.0.0.1:1/db")
    for caught in (redis, postgres):
        assert "canary" not in str(caught.value)
    assert ":ab" not in str(redis.value)
