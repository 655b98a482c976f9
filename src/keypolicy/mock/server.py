"""Serving the mock: on uvicorn, in a background thread (tests) or in the foreground (command).

Uvicorn's access log is off and its logging left unconfigured, so no request line (and no header)
is written by it; the mock logs each request itself by key alias. It binds 127.0.0.1 unless told
otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from keypolicy.mock.app import create_app
from keypolicy.mock.options import MockOptions
from keypolicy.mock.state import MockState

__all__ = ["MockServer", "bind", "run_mock_server", "uvicorn_config"]

log = logging.getLogger("keypolicy.mock")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)  # connections made before uvicorn serves wait instead of failing
    except OSError:
        sock.close()
        raise
    return sock


def uvicorn_config(app: Starlette, log_level: str = "warning") -> uvicorn.Config:
    """Uvicorn's settings for the mock: no access log, no logging set-up, quick shutdown."""
    return uvicorn.Config(
        app,
        access_log=False,
        log_config=None,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=30,
    )


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class MockServer:
    """A mock server running on a thread of its own; ``url`` is its base URL (without ``/v1``)."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._sock = bind(host, port)
        self.url = _url(self._sock)
        self._server = uvicorn.Server(uvicorn_config(app))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="keypolicy-mock",
            daemon=True,  # a server a test forgot to stop must not keep the process alive
        )

    @property
    def state(self) -> MockState:
        """The server's state (provider model, clock, keys, files, batches)."""
        state: MockState = self.app.state.mock
        return state

    def start(self, timeout: float = 10.0) -> str:
        """Start serving; return the base URL once requests are accepted."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the mock server did not start on {self.url}")
            time.sleep(0.002)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: end every pause, let uvicorn shut down, wait for the thread."""
        self.state.stop_waiting()
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> MockServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run_mock_server(
    policy_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    speed: float = 1.0,
    seed: int = 0,
    *,
    log_level: str = "info",
    **options: Any,
) -> None:
    """Serve the mock for the policy at ``policy_path`` until interrupted (Ctrl-C); then return.

    ``speed`` runs model time that many times faster; ``seed`` seeds every random draw;
    ``options`` are :class:`MockOptions` fields (fault rates, latency, limit overrides...).
    Raises ``PolicyError`` for a policy that does not load, ``ValueError`` for a bad option.
    """
    if "limits" in options:
        options["limits"] = tuple(options["limits"] or ())
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("keypolicy.mock").setLevel(log_level.upper())
    app = create_app(policy_path, speed=speed, seed=seed, options=MockOptions(**options))
    sock = bind(host, port)
    state: MockState = app.state.mock
    log.warning(
        "keypolicy mock server on %s/v1 (speed x%g, seed %d, organization %s, keys: %s)",
        _url(sock),
        speed,
        seed,
        state.provider.limits.organization_id,
        ", ".join(state.keys.aliases) or "none",
    )
    # uvicorn re-raises the Ctrl-C it handled; stopping is what Ctrl-C asked for
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(uvicorn_config(app, log_level)).run(sockets=[sock])
    log.warning("keypolicy mock server stopped")
