"""Stores for the contract suite: every test that takes ``store`` (or ``make_store``) runs on the
memory store and on the Redis store.

The Redis store runs against the shared Redis on 127.0.0.1:6379 (``KEYPOLICY_TEST_REDIS`` names
another), each store in a namespace of its own whose keys are deleted afterwards, key by key:
never ``FLUSHALL``/``FLUSHDB`` (other tests use that Redis). Without a reachable Redis these
tests skip, saying why, unless ``KEYPOLICY_REQUIRE_REDIS=1`` (CI): then they fail
(``tests/services.py``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest

from keypolicy.core.store import Store
from keypolicy.state import MemoryStore
from tests.services import free_port, require_module, require_service, required

REDIS_URL = os.environ.get("KEYPOLICY_TEST_REDIS", "redis://127.0.0.1:6379/0")
INSTALL = "pip install -e '.[dev]'"


def need(reason: str) -> NoReturn:
    """Skip for ``reason``, or fail where services are required (``KEYPOLICY_REQUIRE_REDIS``)."""
    flag = required()
    if flag is not None:
        pytest.fail(f"{reason}, and {flag}={os.environ[flag]} requires it", pytrace=False)
    pytest.skip(f"{reason} (set KEYPOLICY_REQUIRE_REDIS=1 to fail instead)")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis's URL, once it accepts connections (else skip, or fail if required)."""
    require_module("redis", INSTALL)
    parts = urlsplit(REDIS_URL)
    require_service("Redis", parts.hostname or "127.0.0.1", parts.port or 6379)
    return REDIS_URL


class RedisStores:
    """Makes Redis stores, each in a fresh namespace, and deletes their keys afterwards."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.made: list[Any] = []

    def __call__(self, **options: Any) -> Any:
        from keypolicy.state.redis import RedisStore

        namespace = f"test-{uuid.uuid4().hex[:16]}"
        store = RedisStore.from_url(self.url, namespace=namespace, **options)
        self.made.append(store)
        return store

    def twin(self, store: Any) -> Store:
        """Another store on ``store``'s namespace: another replica (a connection of its own)."""
        from keypolicy.state.redis import RedisStore

        other: Store = RedisStore.from_url(self.url, namespace=store.namespace)
        self.made.append(other)
        return other

    def keys(self, store: Any) -> list[str]:
        """Every key ``store`` has in Redis."""
        return sorted(self.client.scan_iter(match=store.key_pattern(), count=1000))

    def cleanup(self) -> None:
        for store in self.made:
            keys = self.keys(store)
            if keys:
                self.client.unlink(*keys)
            store.close()
        self.client.close()


@pytest.fixture
def redis_stores(redis_url: str) -> Iterator[RedisStores]:
    """A maker of Redis stores (a fresh namespace each), cleaned up after the test."""
    stores = RedisStores(redis_url)
    yield stores
    stores.cleanup()


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Callable[[], Store]:
    """A maker of fresh stores of one kind: the memory store, then the Redis store."""
    if request.param == "memory":
        return MemoryStore
    stores: RedisStores = request.getfixturevalue("redis_stores")
    return stores


@pytest.fixture
def twin(request: pytest.FixtureRequest) -> Callable[[Store], Store]:
    """Another caller of a store made by ``make_store``/``store`` (another replica): the same
    object for a memory store, another connection to the same namespace for a Redis store."""

    def make(store: Store) -> Store:
        if isinstance(store, MemoryStore):
            return store
        stores: RedisStores = request.getfixturevalue("redis_stores")
        return stores.twin(store)

    return make


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    """A fresh store: the memory store, then the Redis store."""
    return make_store()


class RedisServer:
    """A ``redis-server`` of the test's own on a free port: killed, paused and restarted at
    will. The shared Redis on 6379 is never touched. ``persist``: with an append-only file
    written before each reply (``appendfsync always``), so a restart, even after SIGKILL, keeps
    every write it acknowledged; else nothing is kept (it restarts empty)."""

    def __init__(self, folder: Path, password: str | None = None, persist: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            need("redis-server is not on PATH (install Redis to run the fault tests)")
        self.binary = binary
        self.folder = folder
        self.password = password
        self.persist = persist
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        secret = f":{self.password}@" if self.password else ""
        return f"redis://{secret}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.proc is None, "already running"
        self.starts += 1
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--dir", str(self.folder)]
        args += (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persist
            else [
                "--appendonly",
                "no",
            ]
        )
        if self.password:
            args += ["--requirepass", self.password]
        with (self.folder / f"redis-{self.starts}.log").open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10.0
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as probe:
                    probe.sendall(b"PING\r\n")
                    answer = probe.recv(64)
                if answer.startswith((b"+PONG", b"-NOAUTH")):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                text = (self.folder / f"redis-{self.starts}.log").read_text(errors="replace")
                self.kill()
                pytest.fail(f"redis-server did not start on port {self.port}:\n{text}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: gone at once, as a crash."""
        if self.proc is not None:
            self.resume()
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing is answered (a hung server)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server of this test's own (killed afterwards)."""
    require_module("redis", INSTALL)
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()
