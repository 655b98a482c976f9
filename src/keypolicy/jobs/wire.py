"""The jobs' side of the wire: the Batch API's client on the key the engine chose, and the
mark a live job's request leaves in the queue just before it goes out.

The Batch API's calls (upload a file, create a batch, poll it, download its results) name no
model, so no limit counts them; but a batch must be created with the key the engine chose for
its requests (files and batches belong to that key's project). :func:`batch_client` makes a
real ``openai.AsyncOpenAI`` holding a placeholder, whose transport sets that key's secret on
each request as it leaves, as the policy's transports do: the client, its errors and its logs
never hold the secret.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Final

import httpx2
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from keypolicy.runtime.secrets import PLACEHOLDER, KeyRing
from keypolicy.runtime.wire import on_key

__all__ = ["CURRENT", "KeyedTransport", "MarkingTransport", "batch_client"]

CURRENT: Final[contextvars.ContextVar[object | None]] = contextvars.ContextVar(
    "keypolicy_job", default=None
)
"""The job a worker's task is running (its run state), read by the transports below it."""


class KeyedTransport(httpx2.AsyncBaseTransport):
    """Sends every request on key ``alias`` (its secret set only while it is sent)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, keys: KeyRing, alias: str) -> None:
        self._inner = inner
        self._keys = keys
        self._alias = alias

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        placeholder = request.headers.get("authorization", "")
        on_key(request.headers, self._keys, self._alias)
        try:
            return await self._inner.handle_async_request(request)
        finally:
            request.headers["authorization"] = placeholder

    async def aclose(self) -> None:
        await self._inner.aclose()


class MarkingTransport(httpx2.AsyncBaseTransport):
    """Calls ``before_send(run)`` for the running job (:data:`CURRENT`) just before each of its
    requests goes out: the queue records that the job may have been sent, committed first, so
    a worker that dies in flight leaves that known."""

    def __init__(
        self, inner: httpx2.AsyncBaseTransport, before_send: Callable[[object], None]
    ) -> None:
        self._inner = inner
        self._before_send = before_send

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        run = CURRENT.get()
        if run is not None:
            self._before_send(run)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def batch_client(
    keys: KeyRing, alias: str, base_url: str | None, inner: httpx2.AsyncBaseTransport
) -> AsyncOpenAI:
    """An ``openai.AsyncOpenAI`` for the Batch API's calls on key ``alias``. Its own retries
    (two, the client's backoff) stay on: uploading, polling and downloading may be repeated;
    creating a batch is called with ``max_retries=0`` and reconciled instead (see the worker)."""
    options: dict[str, object] = {}
    if base_url:
        options["base_url"] = base_url
    return AsyncOpenAI(
        api_key=PLACEHOLDER,
        http_client=DefaultAsyncHttpxClient(
            transport=KeyedTransport(inner, keys, alias), follow_redirects=False
        ),
        **options,  # type: ignore[arg-type]
    )
