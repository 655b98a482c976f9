"""The worker's settings (what nobody knows for sure about the provider is one, with its
documented default), and the parts of the runtime a worker drives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import httpx2

from keypolicy.core.config import EngineConfig
from keypolicy.ledger import Ledger
from keypolicy.policy.model import Policy
from keypolicy.records import UsageRecord
from keypolicy.runtime.clock import Clock
from keypolicy.runtime.conductor import Conductor
from keypolicy.runtime.secrets import KeyRing

__all__ = ["BATCH_MAX_BYTES", "BATCH_MAX_REQUESTS", "JobSettings", "RuntimeParts"]

BATCH_MAX_REQUESTS: Final = 50_000
"""The most requests one Batch API input file may hold (OpenAI's batch guide)."""
BATCH_MAX_BYTES: Final = 200 * 1024 * 1024
"""The largest Batch API input file (200 MB, OpenAI's batch guide)."""


@dataclass(frozen=True)
class JobSettings:
    """How a worker runs jobs. Times in seconds of the runtime's clock unless said otherwise.

    - ``concurrency``: live (``defer: queue``) jobs a worker has with the engine at once; the
      engine orders them by priority and capacity like any calls (16).
    - ``gather_s``: how long a batch file waits for more jobs once it has one (60 s); a file
      also goes as soon as it holds ``max_batch_requests`` or ``max_batch_bytes``.
    - ``max_batch_requests``, ``max_batch_bytes``: the Batch API's limits on one input file
      (50,000 requests, 200 MB); lower them to make smaller batches.
    - ``poll_s``, ``poll_max_s``: a batch is first looked at ``poll_s`` after it is created
      (30 s), then after twice as long each time, up to ``poll_max_s`` (10 min). How long a
      batch takes is not published (usually 30 min to a few hours): polling every 10 min at
      worst costs a few hundred unmetered calls a day.
    - ``retry_s``: a batch job refused before it ran (the provider's batch queue full for its
      model, an upload that failed) is tried again this much later (5 min), until its deadline.
    - ``lease_s``: how long a worker's hold on its jobs lasts unless renewed (it renews every
      third of it). A worker on another host that dies leaves its jobs for this long; one on
      this host is seen dead at once (its process is gone).
    - ``idle_s``: real seconds between looks at the queue when nothing wakes the worker (a job
      deferred in another process is seen within this).
    - ``drain_s``: on stop, real seconds live jobs already sent get to end.
    """

    concurrency: int = 16
    gather_s: float = 60.0
    max_batch_requests: int = BATCH_MAX_REQUESTS
    max_batch_bytes: int = BATCH_MAX_BYTES
    poll_s: float = 30.0
    poll_max_s: float = 600.0
    retry_s: float = 300.0
    lease_s: float = 60.0
    idle_s: float = 1.0
    drain_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("concurrency", "max_batch_requests", "max_batch_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"JobSettings.{name} must be at least 1")
        for name in ("gather_s", "poll_s", "retry_s", "idle_s", "drain_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"JobSettings.{name} cannot be negative")
        if self.poll_max_s < self.poll_s:
            raise ValueError("JobSettings.poll_max_s must be at least poll_s")
        if self.lease_s <= 0:
            raise ValueError("JobSettings.lease_s must be positive")


CallTransport = Callable[
    [str, httpx2.AsyncBaseTransport, Callable[[UsageRecord], None]], httpx2.AsyncBaseTransport
]
"""Makes the policy's asyncio transport for a domain over an inner transport, whose calls
write their records with the given function: the same path a live call of the runtime takes."""


@dataclass(frozen=True)
class RuntimeParts:
    """What a worker uses of its runtime: the policy, the one engine (behind its conductor),
    the clock, the keys, where the provider is, the ledger, and the policy's transports."""

    policy: Policy
    config: EngineConfig
    conductor: Conductor
    clock: Clock
    keys: KeyRing
    base_url: str | None
    ledger: Ledger
    call_transport: CallTransport
    write: Callable[[UsageRecord], None]
    """The runtime's own record writer (records of calls that are not jobs')."""
