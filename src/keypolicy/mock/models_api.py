"""The model endpoints: chat completions, responses, embeddings, and the list of models.

Each request is authenticated, read (the ``keypolicy`` extension field removed first), checked
for what the API refuses by the body's shape (an empty ``messages``, ``max_tokens: 0``:
:func:`keypolicy.upstream.validation.check_body`), judged by the provider model at the server's
model time (which refuses what is invalid by its sizes, and answers a dated snapshot as its
family), answered after the model's latency, and settled when its answer is complete. Requests
are logged by key alias, never by key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from keypolicy.catalog import SNAPSHOTS, family
from keypolicy.mock import bodies, streaming
from keypolicy.mock.auth import Caller
from keypolicy.mock.state import DroppedResponse, MockState, json_response, state_of
from keypolicy.upstream import (
    Endpoint,
    Outcome,
    UpstreamRequest,
    Usage,
    errors,
    request_from_body,
    split_extension,
)
from keypolicy.upstream.validation import check_body

__all__ = [
    "Handler",
    "authenticated",
    "chat_completions",
    "create_embeddings",
    "create_response",
    "get_model",
    "list_models",
    "read_json",
]

log = logging.getLogger("keypolicy.mock")

Handler = Callable[[Request, MockState, Caller], Awaitable[Response]]


def authenticated(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A route that answers OpenAI's 401 unless the bearer key is one the policy names."""

    async def route(request: Request) -> Response:
        state = state_of(request)
        caller = state.keys.identify(request.headers.get("authorization"))
        if not isinstance(caller, Caller):
            log.info("%s %s -> 401 (key not accepted)", request.method, request.url.path)
            return json_response(401, caller, state.common_headers(0.0))
        return await handler(request, state, caller)

    route.__doc__ = handler.__doc__
    return route


async def read_json(request: Request) -> dict[str, Any] | Response:
    """The JSON object in the body, or the 400 to answer with."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        message = (
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        )
        return json_response(400, errors.bad_request(message))
    return body


async def _model_call(
    request: Request, state: MockState, caller: Caller, endpoint: Endpoint
) -> Response:
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    body, exact = split_extension(body)
    if not isinstance(body.get("model"), str):
        missing = errors.bad_request("Missing required parameter: 'model'.", "model")
        return json_response(400, missing, state.common_headers(0.0))
    chars = state.provider.settings.chars_per_token
    invalid = check_body(endpoint, body, chars)
    if invalid is not None:
        log.info("%s %s key=%s -> 400 invalid", request.method, request.url.path, caller.alias)
        return json_response(400, invalid, state.common_headers(0.0))
    upstream = request_from_body(caller.project, endpoint, body, exact, chars)
    outcome = state.provider.submit(upstream, state.clock.now())
    log.info(
        "%s %s key=%s model=%s -> %s %s",
        request.method,
        request.url.path,
        caller.alias,
        upstream.model,
        outcome.status,
        outcome.kind,
    )
    streams = bool(body.get("stream")) and endpoint != "embeddings"
    if outcome.ok and streams and outcome.usage is not None and outcome.ticket is not None:
        return _stream(state, endpoint, body, upstream, outcome, outcome.usage, outcome.ticket)
    try:
        await state.pause(outcome.timing.total, request.receive)
    finally:
        if outcome.ticket is not None:
            state.provider.settle(outcome.ticket, state.clock.now())
    return _reply(state, endpoint, body, upstream, outcome)


def _reply(
    state: MockState,
    endpoint: Endpoint,
    body: dict[str, Any],
    upstream: UpstreamRequest,
    outcome: Outcome,
) -> Response:
    """The complete answer for ``outcome``."""
    headers = {**state.common_headers(outcome.timing.total), **outcome.headers}
    if outcome.kind in ("ok", "malformed") and outcome.usage is not None:
        created = int(state.clock.now())
        answer = bodies.answer(
            endpoint, body, outcome.usage, upstream.max_output, state.ids, created
        )
        if outcome.kind == "ok":
            return json_response(200, answer, headers)
        content = json.dumps(answer).encode()
        return Response(content[: len(content) // 2], 200, headers, "application/json")
    if outcome.kind in ("timeout", "disconnect"):
        return DroppedResponse(headers)
    return json_response(outcome.status, outcome.error, headers)


def _stream(
    state: MockState,
    endpoint: Endpoint,
    body: dict[str, Any],
    upstream: UpstreamRequest,
    outcome: Outcome,
    usage: Usage,
    ticket: int,
) -> Response:
    """A streamed answer; the request is settled when the stream ends (or breaks off)."""
    created = int(state.clock.now())
    if endpoint == "chat.completions":
        head = {"id": state.ids("chatcmpl-"), "created": created, "model": upstream.model}
        options = body.get("stream_options")
        include = isinstance(options, dict) and bool(options.get("include_usage"))
        events = streaming.chat_chunks(
            head, usage, upstream.max_output, include, outcome.timing, state.pause
        )
    else:
        events = streaming.response_events(
            state.ids("resp_"),
            created,
            body,
            usage,
            upstream.max_output,
            outcome.timing,
            state.pause,
        )

    async def settled() -> AsyncIterator[bytes]:
        try:
            async for chunk in events:
                yield chunk
        finally:
            state.provider.settle(ticket, state.clock.now())

    headers = {**state.common_headers(outcome.timing.first_token), **outcome.headers}
    return StreamingResponse(settled(), 200, headers, media_type="text/event-stream")


@authenticated
async def chat_completions(request: Request, state: MockState, caller: Caller) -> Response:
    """POST /v1/chat/completions."""
    return await _model_call(request, state, caller, "chat.completions")


@authenticated
async def create_response(request: Request, state: MockState, caller: Caller) -> Response:
    """POST /v1/responses."""
    return await _model_call(request, state, caller, "responses")


@authenticated
async def create_embeddings(request: Request, state: MockState, caller: Caller) -> Response:
    """POST /v1/embeddings."""
    return await _model_call(request, state, caller, "embeddings")


@authenticated
async def list_models(request: Request, state: MockState, caller: Caller) -> Response:
    """GET /v1/models: the models the caller's project has limits for, and their dated
    snapshots."""
    families = state.provider.limits.models(caller.project)
    served = set(families)
    models = sorted([*families, *(s for s, f in SNAPSHOTS.items() if f in served)])
    return json_response(200, bodies.model_list(models), state.common_headers(0.0))


@authenticated
async def get_model(request: Request, state: MockState, caller: Caller) -> Response:
    """GET /v1/models/{model}."""
    model = request.path_params["model"]
    if not state.provider.serves(caller.project, family(model)):
        return json_response(404, errors.model_not_found(model), state.common_headers(0.0))
    return json_response(200, bodies.model_object(model), state.common_headers(0.0))
