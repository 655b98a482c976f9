"""The Batch API: uploaded files, batches that complete after a set delay, their output files.

Files and batches belong to the project of the key that created them (another project's key gets
a 404, as with OpenAI). A batch is validated when created (every line a JSON request to the
batch's endpoint) and completes ``delay`` model seconds later. Its results are computed the first
time it is looked at after that, from the provider model's usage draws: batch requests do not
draw on the per-minute limits (OpenAI limits batches by a separate queue of enqueued tokens,
which this model does not enforce).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keypolicy.mock import bodies
from keypolicy.upstream import Endpoint, Provider, Usage, errors, request_from_body, split_extension

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
    """One batch: its requests, timeline (model seconds) and, once done, its results."""

    id: str
    project: str
    input_file_id: str
    endpoint: str
    metadata: Mapping[str, Any] | None
    created: float
    due: float
    lines: list[dict[str, Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)
    status: str = "in_progress"
    finished: float | None = None
    output_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=lambda: Usage(0))

    def view(self) -> dict[str, Any]:
        """The ``batch`` object."""
        done = self.finished is not None
        stamp = int(self.finished) if self.finished is not None else None
        total = len(self.lines)
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": None,
            "created_at": int(self.created),
            "in_progress_at": None if self.status == "failed" else int(self.created),
            "expires_at": int(self.created) + 86400,
            "finalizing_at": stamp if self.status == "completed" else None,
            "completed_at": stamp if self.status == "completed" else None,
            "failed_at": stamp if self.status == "failed" else None,
            "expired_at": None,
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
    """Batches by id, completing ``delay`` model seconds after they are created."""

    def __init__(
        self,
        files: FileStore,
        provider: Provider,
        new_id: NewId,
        delay: float = 60.0,
    ) -> None:
        self.files = files
        self.provider = provider
        self.delay = delay
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
        job = BatchJob(
            self._new_id("batch_"),
            project,
            stored.id,
            str(endpoint),
            body.get("metadata"),
            now,
            now + self.delay,
            lines,
            problems,
        )
        if problems or not lines:
            job.status, job.finished = "failed", now
        self._jobs[job.id] = job
        return job

    def get(self, project: str, batch_id: str, now: float) -> BatchJob | None:
        """The batch ``batch_id`` of ``project`` as it stands at ``now`` (model seconds)."""
        job = self._jobs.get(batch_id)
        if job is None or job.project != project:
            return None
        if job.status == "in_progress" and now >= job.due:
            self._finish(job)
        return job

    def cancel(self, project: str, batch_id: str, now: float) -> BatchJob | None:
        """Cancel a batch still in progress at ``now``."""
        job = self.get(project, batch_id, now)
        if job is not None and job.status == "in_progress":
            job.status, job.finished = "cancelled", now
        return job

    def _finish(self, job: BatchJob) -> None:
        outputs, total = [], Usage(0)
        failed = 0
        for line in job.lines:
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
        data = ("\n".join(outputs) + "\n").encode()
        out = self.files.add(job.project, f"{job.id}_output.jsonl", "batch_output", data, job.due)
        job.output_file_id, job.usage = out.id, total
        job.counts = {
            "total": len(job.lines),
            "completed": len(job.lines) - failed,
            "failed": failed,
        }
        job.status, job.finished = "completed", job.due

    def _run(self, job: BatchJob, line: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        """One line's output record, and its usage (None when it failed)."""
        body, exact = split_extension(line["body"])
        endpoint = ENDPOINTS[job.endpoint]
        chars = self.provider.settings.chars_per_token
        request = request_from_body(job.project, endpoint, body, exact, chars)
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
        answer = bodies.answer(
            endpoint, body, usage, request.max_output, self._new_id, int(job.due)
        )
        record["response"] = {
            "status_code": 200,
            "request_id": self._new_id("req_"),
            "body": answer,
        }
        return record, usage
