"""What one mock server holds: the provider model, its clock, keys, files and batches.

Every handler runs on the server's one event loop and calls the provider without awaiting in
between, so each decision is atomic without a lock. Replies carry OpenAI's usual headers besides
the ``x-ratelimit-*`` ones: ``x-request-id``, ``openai-organization``, ``openai-processing-ms``
and ``openai-version``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from keypolicy.mock.auth import KeyRing
from keypolicy.mock.batch import BatchStore, FileStore
from keypolicy.mock.clock import ScaledClock
from keypolicy.upstream import Provider

__all__ = [
    "DroppedConnection",
    "DroppedResponse",
    "Ids",
    "MockState",
    "json_response",
    "quiet_dropped_connections",
    "state_of",
]

log = logging.getLogger("keypolicy.mock")


class Ids:
    """Object ids: a prefix and a counter, so one run's ids are reproducible."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)

    def __call__(self, prefix: str) -> str:
        """A new id such as ``chatcmpl-00000000000000000000002a``."""
        return f"{prefix}{next(self._seq):024x}"


@dataclass
class MockState:
    """The server's state; ``stopping`` wakes every waiting handler when the server stops."""

    provider: Provider
    clock: ScaledClock
    keys: KeyRing
    ids: Ids
    files: FileStore
    batches: BatchStore
    loop: asyncio.AbstractEventLoop | None = None
    stopping: asyncio.Event | None = None

    def started(self) -> None:
        """Called on the server's loop when it starts."""
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()

    def stop_waiting(self) -> None:
        """From any thread: end every pause at once (the server is stopping)."""
        if self.loop is not None and self.stopping is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.stopping.set)

    def common_headers(self, seconds: float) -> dict[str, str]:
        """Headers every reply carries; ``seconds`` is the model's processing time."""
        return {
            "x-request-id": self.ids("req_"),
            "openai-organization": self.provider.limits.organization_id,
            "openai-processing-ms": str(round(seconds * 1000)),
            "openai-version": "2020-10-01",
        }

    async def pause(
        self, model_seconds: float, receive: Callable[[], Awaitable[Message]] | None = None
    ) -> None:
        """Wait ``model_seconds`` of model time, less if the client leaves or the server stops."""
        wall = self.clock.wall(model_seconds)
        if wall <= 0 or (self.stopping is not None and self.stopping.is_set()):
            return
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(asyncio.sleep(wall))]
        if self.stopping is not None:
            waiters.append(asyncio.ensure_future(self.stopping.wait()))
        if receive is not None:
            waiters.append(asyncio.ensure_future(receive()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


def state_of(request: Request) -> MockState:
    """The mock state of the app serving ``request``."""
    state: MockState = request.app.state.mock
    return state


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON reply."""
    content = json.dumps(body, separators=(",", ":")).encode()
    return Response(content, status, headers, media_type="application/json")


class DroppedConnection(Exception):  # noqa: N818  (names the event, not an error of ours)
    """Raised after the headers are sent, so the server closes the connection mid-answer."""


class DroppedResponse(Response):
    """Sends the status line and headers, then drops the connection before the body.

    The headers promise a body (``content-length``), so the client sees the connection end
    early instead of an empty answer.
    """

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(b"", 200, {**headers, "content-length": "4096"}, "application/json")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Start the answer, then break off."""
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        raise DroppedConnection


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for every connection dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


def quiet_dropped_connections() -> None:
    """Install the filter on uvicorn's error log (once)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())
