"""The Batch API: uploaded files, batches, their output and error files.

Files and batches belong to the project of the key that created them (another project's key gets
a 404, as with OpenAI). A batch is validated when created (every line a JSON request to the
batch's endpoint), then handed to the provider's Batch API model
(:class:`keypolicy.upstream.BatchQueue`, via ``Provider.batches``): it is refused as ``failed``
with ``token_limit_exceeded`` if its prompt tokens would take the organization's queue past the
limit of its tier, else it takes a time drawn from the model's distribution (or the fixed
``--batch-delay``). Its results are computed the first time it is looked at after that, from
the provider model's usage draws; batch requests do not draw on the per-minute limits. A batch
drawn past the 24 h window ends ``expired``: the requests it ran are in its output file, the
others in its error file with ``batch_expired``, as OpenAI writes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keypolicy.mock import bodies
from keypolicy.upstream import (
    Endpoint,
    Enqueued,
    Provider,
    QueueFull,
    UpstreamRequest,
    Usage,
    errors,
    request_from_body,
    split_extension,
)
from keypolicy.upstream.batches import batch_expired

__all__ = ["ENDPOINTS", "BatchJob", "BatchStore", "FileStore", "StoredFile"]

ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": "chat.completions",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
}
"""Batch endpoints and the kind of request each takes."""

NewId = Callable[[str], str]


@dataclass
class StoredFile:
    """An uploaded (or generated) file; ``created_at`` in Unix seconds (model time)."""

    id: str
    project: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def view(self) -> dict[str, Any]:
        """The ``file`` object."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


class FileStore:
    """Files by id, each visible to its own project only."""

    def __init__(self, new_id: NewId) -> None:
        self._files: dict[str, StoredFile] = {}
        self._new_id = new_id

    def add(self, project: str, filename: str, purpose: str, data: bytes, now: float) -> StoredFile:
        """Store ``data`` for ``project``; ``now`` in model seconds."""
        stored = StoredFile(self._new_id("file-"), project, filename, purpose, data, int(now))
        self._files[stored.id] = stored
        return stored

    def get(self, project: str, file_id: str) -> StoredFile | None:
        """The file ``file_id`` if ``project`` owns it."""
        stored = self._files.get(file_id)
        return stored if stored is not None and stored.project == project else None


@dataclass
class BatchJob:
    """One batch: its requests, timeline (model seconds) and, once done, its results.

    ``due``: when it ends (completes, or expires); ``queued``: its place in the provider's
    Batch API queue (``None`` for a batch that failed at creation).
    """

    id: str
    project: str
    input_file_id: str
    endpoint: str
    metadata: Mapping[str, Any] | None
    created: float
    due: float
    expires_at: float
    lines: list[dict[str, Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)
    status: str = "in_progress"
    finished: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=lambda: Usage(0))
    queued: Enqueued | None = None

    def fail(self, problems: list[dict[str, Any]], now: float) -> None:
        """The batch failed at creation, for ``problems`` (``errors.data``)."""
        self.errors, self.status, self.finished = problems, "failed", now

    def view(self) -> dict[str, Any]:
        """The ``batch`` object."""
        done = self.finished is not None
        stamp = int(self.finished) if self.finished is not None else None
        total = len(self.lines)
        expired = self.status == "expired"
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created),
            "in_progress_at": None if self.status == "failed" else int(self.created),
            "expires_at": int(self.expires_at),
            "finalizing_at": stamp if self.status == "completed" else None,
            "completed_at": stamp if self.status == "completed" else None,
            "failed_at": stamp if self.status == "failed" else None,
            "expired_at": stamp if expired else None,
            "cancelling_at": stamp if self.status == "cancelled" else None,
            "cancelled_at": stamp if self.status == "cancelled" else None,
            "request_counts": self.counts or {"total": total, "completed": 0, "failed": 0},
            "metadata": dict(self.metadata) if self.metadata else None,
            "usage": _batch_usage(self.usage) if done else None,
        }


def _batch_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _validate(data: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The request lines of a batch input file, and the errors found in it."""
    lines, problems = [], []
    for number, text in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            line = None
        if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
            message = "Each line must be a JSON object with custom_id, method, url and body."
        elif line.get("url") != endpoint:
            message = f"The url of every line must be the batch's endpoint {endpoint}."
        else:
            lines.append(line)
            continue
        problems.append(
            {"code": "invalid_request", "message": message, "param": None, "line": number}
        )
    return lines, problems


class BatchStore:
    """Batches by id, timed and queued by the provider's Batch API model (``provider.batches``,
    set by :class:`~keypolicy.upstream.batches.BatchSettings` in the provider's settings)."""

    def __init__(self, files: FileStore, provider: Provider, new_id: NewId) -> None:
        self.files = files
        self.provider = provider
        self._new_id = new_id
        self._jobs: dict[str, BatchJob] = {}

    def create(self, project: str, body: Mapping[str, Any], now: float) -> BatchJob | str:
        """A new batch for ``project`` at ``now`` (model seconds), or what is wrong with it."""
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            return f"endpoint must be one of {', '.join(ENDPOINTS)}"
        if body.get("completion_window", "24h") != "24h":
            return "completion_window must be 24h"
        stored = self.files.get(project, str(body.get("input_file_id")))
        if stored is None:
            return f"No such File object: {body.get('input_file_id')}"
        lines, problems = _validate(stored.data, str(endpoint))
        queue = self.provider.batches
        job = BatchJob(
            self._new_id("batch_"),
            project,
            stored.id,
            str(endpoint),
            body.get("metadata"),
            now,
            now,
            now + queue.settings.window,
            lines,
        )
        self._jobs[job.id] = job
        if problems or not lines:
            job.fail(problems, now)
            return job
        queued = queue.create(self._prompt_tokens(job), now)
        if isinstance(queued, QueueFull):
            job.fail([queued.error()], now)
        else:
            job.queued, job.due = queued, queued.ends
        return job

    def _prompt_tokens(self, job: BatchJob) -> dict[str, int]:
        """The batch's prompt tokens by model: what it holds enqueued."""
        tokens: dict[str, int] = {}
        for line in job.lines:
            request, _ = self._request(job, line)
            tokens[request.model] = tokens.get(request.model, 0) + request.prompt_tokens
        return tokens

    def get(self, project: str, batch_id: str, now: float) -> BatchJob | None:
        """The batch ``batch_id`` of ``project`` as it stands at ``now`` (model seconds)."""
        job = self._jobs.get(batch_id)
        if job is None or job.project != project:
            return None
        if job.status == "in_progress" and now >= job.due:
            self._finish(job)
        return job

    def listed(self, project: str, after: str | None, limit: int, now: float) -> list[BatchJob]:
        """Up to ``limit + 1`` of ``project``'s batches, newest first, after batch ``after``
        (the one more says whether there are more), as they stand at ``now``."""
        mine = [job for job in reversed(self._jobs.values()) if job.project == project]
        if after is not None:
            ids = [job.id for job in mine]
            mine = mine[ids.index(after) + 1 :] if after in ids else []
        page = mine[: limit + 1]
        for job in page:
            self.get(project, job.id, now)  # brought up to date
        return page

    def cancel(self, project: str, batch_id: str, now: float) -> BatchJob | None:
        """Cancel a batch still in progress at ``now``."""
        job = self.get(project, batch_id, now)
        if job is not None and job.status == "in_progress":
            job.status, job.finished = "cancelled", now
            if job.queued is not None:
                self.provider.batches.cancel(job.queued.id, now)
        return job

    def _finish(self, job: BatchJob) -> None:
        """Run the lines the batch got to (all, unless it expired); the rest expired."""
        done = len(job.lines) if job.queued is None else job.queued.done(len(job.lines))
        outputs, total = [], Usage(0)
        failed = 0
        for line in job.lines[:done]:
            output, usage = self._run(job, line)
            outputs.append(json.dumps(output))
            if usage is None:
                failed += 1
            else:
                total = Usage(
                    total.prompt_tokens + usage.prompt_tokens,
                    total.completion_tokens + usage.completion_tokens,
                    total.cached_tokens + usage.cached_tokens,
                )
        expired = [
            json.dumps(
                {
                    "id": self._new_id("batch_req_"),
                    "custom_id": line.get("custom_id"),
                    "response": None,
                    "error": batch_expired(),
                }
            )
            for line in job.lines[done:]
        ]
        job.output_file_id = self._file(job, "output", outputs)
        job.error_file_id = self._file(job, "error", expired)
        job.usage = total
        # Expired requests count as neither completed nor failed (warmbly/warmbly#333 saw
        # ``{total: 10, completed: 1, failed: 0}`` on a batch that expired).
        job.counts = {"total": len(job.lines), "completed": done - failed, "failed": failed}
        job.status = "expired" if done < len(job.lines) else "completed"
        job.finished = job.due

    def _file(self, job: BatchJob, kind: str, lines: list[str]) -> str | None:
        """Store ``lines`` as the batch's ``kind`` (output or error) file; its id, if any."""
        if not lines:
            return None
        data = ("\n".join(lines) + "\n").encode()
        name = f"{job.id}_{kind}.jsonl"
        return self.files.add(job.project, name, "batch_output", data, job.due).id

    def _request(
        self, job: BatchJob, line: dict[str, Any]
    ) -> tuple[UpstreamRequest, dict[str, Any]]:
        """The provider's view of one line of the batch, and the line's body as OpenAI sees it
        (without keypolicy's extension field)."""
        body, exact = split_extension(line["body"])
        chars = self.provider.settings.chars_per_token
        request = request_from_body(job.project, ENDPOINTS[job.endpoint], body, exact, chars)
        return request, body

    def _run(self, job: BatchJob, line: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        """One line's output record, and its usage (None when it failed)."""
        request, body = self._request(job, line)
        record: dict[str, Any] = {
            "id": self._new_id("batch_req_"),
            "custom_id": line.get("custom_id"),
            "error": None,
        }
        if not self.provider.serves(job.project, request.model):
            error = errors.model_not_found(request.model)
            record["response"] = {
                "status_code": 404,
                "request_id": self._new_id("req_"),
                "body": error,
            }
            return record, None
        usage = self.provider.usage(request, job.due)
        self.provider.bill_batch(request.model, usage, job.due)  # the monthly usage limit
        answer = bodies.answer(
            ENDPOINTS[job.endpoint], body, usage, request.max_output, self._new_id, int(job.due)
        )
        record["response"] = {
            "status_code": 200,
            "request_id": self._new_id("req_"),
            "body": answer,
        }
        return record, usage
