"""The Files and Batch endpoints: upload a JSONL file, create a batch, poll it, download results."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from keypolicy.mock.auth import Caller
from keypolicy.mock.models_api import authenticated, read_json
from keypolicy.mock.state import MockState, json_response
from keypolicy.upstream import errors

__all__ = [
    "cancel_batch",
    "create_batch",
    "create_file",
    "file_content",
    "get_batch",
    "get_file",
    "list_batches",
]


def _bad(state: MockState, message: str, param: str | None = None) -> Response:
    return json_response(400, errors.bad_request(message, param), state.common_headers(0.0))


def _missing(state: MockState, message: str) -> Response:
    return json_response(404, errors.not_found(message), state.common_headers(0.0))


@authenticated
async def create_file(request: Request, state: MockState, caller: Caller) -> Response:
    """POST /v1/files (multipart: ``file`` and ``purpose``)."""
    async with request.form() as form:
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, UploadFile):
            return _bad(state, "Missing required parameter: 'file'.", "file")
        if not isinstance(purpose, str) or not purpose:
            return _bad(state, "Missing required parameter: 'purpose'.", "purpose")
        data = await upload.read()
        name = upload.filename or "upload.jsonl"
    stored = state.files.add(caller.project, name, purpose, data, state.clock.now())
    return json_response(200, stored.view(), state.common_headers(0.0))


@authenticated
async def get_file(request: Request, state: MockState, caller: Caller) -> Response:
    """GET /v1/files/{file_id}."""
    file_id = request.path_params["file_id"]
    stored = state.files.get(caller.project, file_id)
    if stored is None:
        return _missing(state, f"No such File object: {file_id}")
    return json_response(200, stored.view(), state.common_headers(0.0))


@authenticated
async def file_content(request: Request, state: MockState, caller: Caller) -> Response:
    """GET /v1/files/{file_id}/content."""
    file_id = request.path_params["file_id"]
    stored = state.files.get(caller.project, file_id)
    if stored is None:
        return _missing(state, f"No such File object: {file_id}")
    headers = state.common_headers(0.0)
    return Response(stored.data, 200, headers, media_type="application/octet-stream")


@authenticated
async def create_batch(request: Request, state: MockState, caller: Caller) -> Response:
    """POST /v1/batches."""
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    now = state.clock.now()
    if state.provider.out_of_quota(now):  # past the month's usage limit: no new batch either
        return json_response(429, errors.insufficient_quota(), state.common_headers(0.0))
    job = state.batches.create(caller.project, body, now)
    if isinstance(job, str):
        return _missing(state, job) if job.startswith("No such") else _bad(state, job)
    return json_response(200, job.view(), state.common_headers(0.0))


@authenticated
async def get_batch(request: Request, state: MockState, caller: Caller) -> Response:
    """GET /v1/batches/{batch_id}: the batch as it stands now (model time)."""
    batch_id = request.path_params["batch_id"]
    job = state.batches.get(caller.project, batch_id, state.clock.now())
    if job is None:
        return _missing(state, f"No batch found with id '{batch_id}'.")
    return json_response(200, job.view(), state.common_headers(0.0))


@authenticated
async def cancel_batch(request: Request, state: MockState, caller: Caller) -> Response:
    """POST /v1/batches/{batch_id}/cancel."""
    batch_id = request.path_params["batch_id"]
    job = state.batches.cancel(caller.project, batch_id, state.clock.now())
    if job is None:
        return _missing(state, f"No batch found with id '{batch_id}'.")
    return json_response(200, job.view(), state.common_headers(0.0))


@authenticated
async def list_batches(request: Request, state: MockState, caller: Caller) -> Response:
    """GET /v1/batches: the project's batches, newest first (``limit``, 1 to 100, default 20;
    ``after``: a batch id, to page on), as a list object with ``has_more``."""
    try:
        limit = int(request.query_params.get("limit", "20"))
    except ValueError:
        return _bad(state, "Invalid 'limit': expected an integer.", "limit")
    if not 1 <= limit <= 100:
        return _bad(state, "Invalid 'limit': expected a value between 1 and 100.", "limit")
    page = state.batches.listed(
        caller.project, request.query_params.get("after"), limit, state.clock.now()
    )
    data = [job.view() for job in page[:limit]]
    body = {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(page) > limit,
    }
    return json_response(200, body, state.common_headers(0.0))
