"""External services some tests need (PostgreSQL, Redis): there, or the test skips.

A test that needs a server calls :func:`require_service` (and :func:`require_module` for its
client library). Where the service is missing the test skips, saying what is missing and how to
get it, unless ``KEYPOLICY_REQUIRE_POSTGRES=1`` or ``KEYPOLICY_REQUIRE_REDIS=1`` is set (CI sets
the latter for every external service): then it fails, so that a CI without its services cannot
pass by skipping.
"""

from __future__ import annotations

import importlib
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

REQUIRE = {"redis": "KEYPOLICY_REQUIRE_REDIS", "postgres": "KEYPOLICY_REQUIRE_POSTGRES"}
"""Per service, the environment variable that makes it missing a failure (CI sets both)."""
POSTGRES = os.environ.get(
    "KEYPOLICY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
"""A PostgreSQL server the tests may create and drop databases on (``kp_test_*`` only)."""


def _service(name: str) -> str:
    """The service a name given to the helpers below stands for (``Redis``, ``psycopg``...)."""
    lowered = name.lower()
    return "redis" if "redis" in lowered else "postgres"


def required(service: str = "redis") -> str | None:
    """The environment variable that makes ``service`` (redis, postgres) missing a failure, if
    it is set."""
    flag = REQUIRE[service]
    return flag if os.environ.get(flag, "") not in ("", "0") else None


def _missing(reason: str, service: str) -> NoReturn:
    flag = required(service)
    if flag is not None:
        pytest.fail(f"{reason}, and {flag}={os.environ[flag]} requires it", pytrace=False)
    pytest.skip(f"{reason} (set {REQUIRE[service]}=1 to fail instead)")


def require_service(
    name: str, host: str, port: int, hint: str = "", timeout: float = 2.0
) -> tuple[str, int]:
    """``(host, port)`` if something accepts TCP connections there; else skip the test (fail
    when required), saying so and ``hint`` (what to do)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        why = f"{name} is not reachable at {host}:{port} ({exc.strerror or exc})"
        _missing(f"{why}: {hint}" if hint else why, _service(name))
    return host, port


def require_module(name: str, install: str) -> ModuleType:
    """The module ``name``, imported; else skip the test (fail when required)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        _missing(f"{name} is not installed ({install})", _service(name))


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def postgres_url(database: str, password: str | None = None, port: int | None = None) -> str:
    """:data:`POSTGRES` naming ``database`` (and ``password``, ``port`` if given)."""
    parts = urlsplit(POSTGRES)
    user = parts.username or ""
    secret = f":{password}" if password is not None else ""
    netloc = f"{user}{secret}@" if user or secret else ""
    netloc += f"{parts.hostname}:{port or parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database of its own on the test server, dropped after: its URL. Skips
    (or fails when required) without a server or psycopg."""
    parts = urlsplit(POSTGRES)
    hint = "start one, or name another with KEYPOLICY_TEST_POSTGRES=postgresql://..."
    require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432, hint)
    psycopg = require_module("psycopg", "pip install -e '.[dev]'")
    name = f"kp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_url(name)
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
