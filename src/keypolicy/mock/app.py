"""The mock server's ASGI application (Starlette): OpenAI's endpoints over the provider model."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keypolicy.mock import batch_api, models_api
from keypolicy.mock.auth import KeyRing
from keypolicy.mock.batch import BatchStore, FileStore
from keypolicy.mock.clock import ScaledClock
from keypolicy.mock.options import MockOptions
from keypolicy.mock.state import Ids, MockState, json_response, quiet_dropped_connections
from keypolicy.policy import Policy, load_policy
from keypolicy.upstream import (
    Accounting,
    Provider,
    ProviderLimits,
    errors,
    parse_assumption,
    parse_limit_override,
)

__all__ = ["ROUTES", "build_state", "create_app"]

ROUTES = [
    Route("/v1/chat/completions", models_api.chat_completions, methods=["POST"]),
    Route("/v1/responses", models_api.create_response, methods=["POST"]),
    Route("/v1/embeddings", models_api.create_embeddings, methods=["POST"]),
    Route("/v1/models", models_api.list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", models_api.get_model, methods=["GET"]),
    Route("/v1/files", batch_api.create_file, methods=["POST"]),
    Route("/v1/files/{file_id}", batch_api.get_file, methods=["GET"]),
    Route("/v1/files/{file_id}/content", batch_api.file_content, methods=["GET"]),
    Route("/v1/batches", batch_api.create_batch, methods=["POST"]),
    Route("/v1/batches", batch_api.list_batches, methods=["GET"]),
    Route("/v1/batches/{batch_id}", batch_api.get_batch, methods=["GET"]),
    Route("/v1/batches/{batch_id}/cancel", batch_api.cancel_batch, methods=["POST"]),
]


def build_state(
    policy: Policy,
    *,
    speed: float = 1.0,
    seed: int = 0,
    options: MockOptions | None = None,
    environ: Mapping[str, str] | None = None,
    clock: ScaledClock | None = None,
) -> MockState:
    """The state of a mock server for ``policy``; secrets are read from ``environ`` now."""
    options = options or MockOptions()
    overrides = dict(parse_limit_override(spec) for spec in options.limits)
    accounting = Accounting.from_policy(policy)
    for spec in options.assume:
        rule, values = parse_assumption(spec)
        if len(values) != 1:
            raise ValueError(f"--assume {spec}: the mock counts by one rule: give one value")
        accounting = accounting.with_rule(rule, values[0])
    limits = ProviderLimits.from_policy(
        policy,
        factor=options.limit_factor,
        overrides=overrides,
        organization_id=options.organization_id,
        accounting=accounting,
    )
    provider = Provider(limits, options.provider_settings(), random.Random(seed))
    ids = Ids()
    files = FileStore(ids)
    return MockState(
        provider=provider,
        clock=clock or ScaledClock(speed),
        keys=KeyRing.from_policy(policy, os.environ if environ is None else environ),
        ids=ids,
        files=files,
        batches=BatchStore(files, provider, ids),
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """OpenAI's JSON for an unknown URL or method, instead of Starlette's plain text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"Invalid URL ({request.method} {request.url.path})"
    return json_response(status, errors.bad_request(message))


def create_app(
    policy: Policy | str | Path,
    *,
    speed: float = 1.0,
    seed: int = 0,
    options: MockOptions | None = None,
    environ: Mapping[str, str] | None = None,
    clock: ScaledClock | None = None,
) -> Starlette:
    """The mock OpenAI server for ``policy`` (a policy or the path of a policy file).

    ``speed`` runs model time that many times faster than the wall clock; ``seed`` seeds every
    random draw; ``environ`` (default: the process environment) holds the keys' secrets;
    ``clock`` replaces the scaled wall clock (tests pass one they advance by hand).
    """
    if not isinstance(policy, Policy):
        policy = load_policy(policy).policy
    state = build_state(
        policy, speed=speed, seed=seed, options=options, environ=environ, clock=clock
    )
    quiet_dropped_connections()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.started()
        yield

    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.state.mock = state
    return app
