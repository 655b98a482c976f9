"""The seam: httpx2 transports under the ``openai`` clients, one sync, one async.

Each is a short loop that carries out the steps of :meth:`keypolicy.runtime.call.Call.flow`
(wait for the engine's turn, send, read) with its own kind of I/O; the decisions are the flow's.
Calls that name no model (listing models, files, retrieving a batch) pass through on the first
key of the domain's pool, unmetered: no limit counts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2

from keypolicy.runtime.call import (
    AWAIT,
    Call,
    Context,
    Read,
    Transmit,
)
from keypolicy.runtime.errors import PolicyRejected
from keypolicy.runtime.streaming import Streaming
from keypolicy.runtime.wire import metered_body, on_key

__all__ = ["AsyncPolicyTransport", "PolicyTransport"]


class _Domain:
    """What both transports know of their domain."""

    def __init__(self, context: Context, domain: str) -> None:
        self.context = context
        self.domain = domain
        spec = context.policy.domains[domain]
        self.first_key = context.policy.pools[spec.pool].keys[0]

    def call(
        self, request: httpx2.Request, loop: asyncio.AbstractEventLoop | None
    ) -> Call | httpx2.Request:
        """A metered call for ``request``, or the request as it passes through unmetered."""
        if self.context.closing.is_set():
            raise PolicyRejected(self.domain, "closed", "the keypolicy Runtime is closed", 0.0, "")
        body = metered_body(request)
        if body is None:
            on_key(request.headers, self.context.keys, self.first_key)
            return request
        return Call(self.context, self.domain, request, body, loop)


class PolicyTransport(httpx2.BaseTransport):
    """Enforces the policy for one domain on every request of a sync client."""

    def __init__(self, context: Context, domain: str, inner: httpx2.BaseTransport) -> None:
        self._domain = _Domain(context, domain)
        self._inner = inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Carry ``request`` through the policy: the flow's steps, with blocking I/O."""
        call = self._domain.call(request, None)
        if not isinstance(call, Call):
            return self._inner.handle_request(call)
        flow, waiter = call.flow(), call.waiter
        try:
            step = next(flow)
            while True:
                if step is AWAIT:
                    step = flow.send(waiter.wait())
                    continue
                try:
                    if isinstance(step, Transmit):
                        result: Any = self._inner.handle_request(step.request)
                    else:
                        assert isinstance(step, Read)
                        result = _read(step.response)
                except Exception as exc:  # the provider could not be reached: the flow decides
                    step = flow.throw(exc)
                    continue
                step = flow.send(result)
        except StopIteration as done:
            answer: httpx2.Response | Streaming = done.value
        finally:
            flow.close()  # the caller gave up (Ctrl-C...): the flow ends the call
        return _passed_on(answer, request, _SyncStream)


class AsyncPolicyTransport(httpx2.AsyncBaseTransport):
    """Enforces the policy for one domain on every request of an asyncio client."""

    def __init__(self, context: Context, domain: str, inner: httpx2.AsyncBaseTransport) -> None:
        self._domain = _Domain(context, domain)
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Carry ``request`` through the policy: the flow's steps, awaited."""
        call = self._domain.call(request, asyncio.get_running_loop())
        if not isinstance(call, Call):
            return await self._inner.handle_async_request(call)
        flow, waiter = call.flow(), call.waiter
        try:
            step = next(flow)
            while True:
                if step is AWAIT:
                    step = flow.send(await waiter.wait_async())
                    continue
                try:
                    if isinstance(step, Transmit):
                        result: Any = await self._inner.handle_async_request(step.request)
                    else:
                        assert isinstance(step, Read)
                        result = await _aread(step.response)
                except Exception as exc:
                    step = flow.throw(exc)
                    continue
                step = flow.send(result)
        except StopIteration as done:
            answer: httpx2.Response | Streaming = done.value
        finally:
            flow.close()
        return _passed_on(answer, request, _AsyncStream)

    async def aclose(self) -> None:
        """Close this client's connection pool."""
        await self._inner.aclose()


def _passed_on(
    answer: httpx2.Response | Streaming,
    request: httpx2.Request,
    stream: Callable[[Streaming], httpx2.SyncByteStream | httpx2.AsyncByteStream],
) -> httpx2.Response:
    """The flow's answer as the client gets it: a streamed one wrapped to be read on its way."""
    if not isinstance(answer, Streaming):
        return answer
    return httpx2.Response(
        answer.response.status_code,
        headers=answer.headers(),
        stream=stream(answer),
        request=request,
        extensions=answer.response.extensions,
    )


def _read(response: httpx2.Response) -> bytes:
    try:
        return response.read()
    finally:
        response.close()


async def _aread(response: httpx2.Response) -> bytes:
    try:
        return await response.aread()
    finally:
        await response.aclose()


class _SyncStream(httpx2.SyncByteStream):
    """A streamed answer passed on to a sync caller, read on its way."""

    def __init__(self, streaming: Streaming) -> None:
        self._streaming = streaming

    def __iter__(self) -> Iterator[bytes]:
        streaming = self._streaming
        try:
            for chunk in streaming.response.iter_bytes():
                out = streaming.feed(chunk)
                if out:
                    yield out
            rest = streaming.rest()
            if rest:
                yield rest
        except Exception as exc:
            streaming.finish(f"the stream failed ({type(exc).__name__})")
            raise
        streaming.finish(None)

    def close(self) -> None:
        try:
            self._streaming.response.close()
        finally:
            self._streaming.finish("the caller closed the stream before its end")

    def __del__(self) -> None:
        self._streaming.dropped()


class _AsyncStream(httpx2.AsyncByteStream):
    """A streamed answer passed on to an asyncio caller, read on its way."""

    def __init__(self, streaming: Streaming) -> None:
        self._streaming = streaming

    async def __aiter__(self) -> AsyncIterator[bytes]:
        streaming = self._streaming
        try:
            async for chunk in streaming.response.aiter_bytes():
                out = streaming.feed(chunk)
                if out:
                    yield out
            rest = streaming.rest()
            if rest:
                yield rest
        except Exception as exc:
            streaming.finish(f"the stream failed ({type(exc).__name__})")
            raise
        streaming.finish(None)

    async def aclose(self) -> None:
        try:
            await self._streaming.response.aclose()
        finally:
            self._streaming.finish("the caller closed the stream before its end")

    def __del__(self) -> None:
        self._streaming.dropped()
