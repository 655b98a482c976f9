"""Batch requests gathered into files in the simulator, as the runtime's job worker gathers them.

The worker (``keypolicy.jobs.batcher``) puts the requests the engine hands to the Batch API
into one input file per key and model, sends a file once it has waited ``gather_s`` for more
(or holds ``max_requests``), and only as much of it as the organization's batch queue has room
for: a request waits for room rather than failing, unless it alone is larger than the whole
limit. The requests of one batch end together, when the batch ends (its time drawn from the
provider model's distribution, :class:`keypolicy.upstream.BatchSettings`); those an expired
batch did not run end ``batch_expired``.

Written apart from the worker (the simulator and the runtime never import each other); the
defaults are the worker's (``keypolicy.jobs.JobSettings``: ``tests/jobs/test_sim_batches.py``
holds them equal). What the worker does and this does not: try a ``batch_expired`` request
again in a later batch (here it ends), and poll (here a batch's results come back the moment
it ends, not at the next poll).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import simpy
from simpy.events import Timeout

from keypolicy.upstream import Provider, QueueFull, UpstreamRequest, Usage
from keypolicy.upstream.batches import batch_expired

__all__ = ["GATHERING", "GATHER_S", "MAX_REQUESTS", "BatchGatherer", "Gathering"]

GATHER_S: Final = 60.0
"""How long a file waits for more requests once it has one (seconds): the worker's default."""
MAX_REQUESTS: Final = 50_000
"""The most requests one Batch API input file may hold (OpenAI's batch guide)."""


@dataclass(frozen=True)
class Gathering:
    """How batch requests are gathered (see the module); the runtime worker's defaults."""

    gather_s: float = GATHER_S
    max_requests: int = MAX_REQUESTS


GATHERING: Final = Gathering()
"""The simulator's default: as the worker gathers."""

@dataclass(eq=False)
class _Group:
    """Requests waiting for one file: one key, one model."""

    model: str
    entries: list[tuple[str, UpstreamRequest]] = field(default_factory=list)
    flushing: bool = False


class BatchGatherer:
    """Gathers batch requests into files and hands them to the provider's Batch API model.

    ``done(rid, usage)`` and ``failed(rid, error)`` are called, from SimPy callbacks of their
    own, when a request's batch ends (``error`` as the batch's error file or ``errors.data``
    states it)."""

    def __init__(
        self,
        env: simpy.Environment,
        provider: Provider,
        settings: Gathering,
        done: Callable[[str, Usage], None],
        failed: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self._env = env
        self._provider = provider
        self._settings = settings
        self._done = done
        self._failed = failed
        self._groups: dict[tuple[str, str], _Group] = {}
        self.files = 0
        """Batches created so far."""
        self.requests = 0
        """Requests sent in them."""

    def add(self, rid: str, key: str, model: str, request: UpstreamRequest) -> None:
        """Request ``rid`` goes to the Batch API on ``key`` for ``model``: gathered."""
        where = (key, model)
        group = self._groups.get(where)
        if group is None:
            group = self._groups[where] = _Group(model)
        group.entries.append((rid, request))
        if len(group.entries) >= self._settings.max_requests:
            self._flush_in(group, 0.0)  # full: at once (after the engine's other actions)
        elif len(group.entries) == 1:
            self._flush_in(group, self._settings.gather_s)

    def _flush_in(self, group: _Group, delay: float) -> None:
        if group.flushing and delay > 0:
            return
        group.flushing = True
        Timeout(self._env, delay).callbacks.append(lambda _: self._flush(group))

    def _flush(self, group: _Group) -> None:
        group.flushing = False
        if not group.entries:
            return
        t = self._env.now
        queue = self._provider.batches
        limit = queue.limit(group.model)
        held = queue.enqueued(group.model, t)
        if limit is not None:
            for rid, request in [e for e in group.entries if e[1].prompt_tokens > limit]:
                group.entries.remove((rid, request))
                error = QueueFull(
                    group.model, queue.organization_id, limit, held, request.prompt_tokens
                ).error()
                self._failed(rid, error)
        chosen: list[tuple[str, UpstreamRequest]] = []
        tokens = 0
        for rid, request in group.entries:
            if len(chosen) >= self._settings.max_requests or (
                limit is not None and held + tokens + request.prompt_tokens > limit
            ):
                break
            chosen.append((rid, request))
            tokens += request.prompt_tokens
        del group.entries[: len(chosen)]
        if chosen:
            self._submit(group.model, chosen, tokens, t)
        if group.entries:  # no room yet: look again once a file's wait has passed
            self._flush_in(group, max(self._settings.gather_s, 1.0))

    def _submit(
        self, model: str, chosen: list[tuple[str, UpstreamRequest]], tokens: int, t: float
    ) -> None:
        batch = self._provider.batches.create({model: tokens}, t)
        if isinstance(batch, QueueFull):  # not expected: room was checked
            for rid, _ in chosen:
                self._failed(rid, batch.error())
            return
        self.files += 1
        self.requests += len(chosen)
        usages = [self._provider.usage(request, t) for _, request in chosen]
        ran = batch.done(len(chosen))

        def end(_: simpy.Event) -> None:
            now = self._env.now
            for i, ((rid, _request), usage) in enumerate(zip(chosen, usages, strict=True)):
                if i < ran:
                    self._provider.bill_batch(model, usage, now)
                    self._done(rid, usage)
                else:
                    self._failed(rid, batch_expired())

        Timeout(self._env, batch.ends - t).callbacks.append(end)
