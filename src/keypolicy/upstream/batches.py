"""The Batch API: how long a batch takes, when it expires, and the queue of enqueued tokens.

Modelled once, here, for both drivers of the provider model: the mock server serves it over HTTP
(:mod:`keypolicy.mock.batch`) and the simulator hands its batch-deferred requests to it
(:mod:`keypolicy.sim.driver`), each through :attr:`keypolicy.upstream.Provider.batches`.

What OpenAI says, and what users have seen:

- Time. "We will process these requests within 24 hours"; "If a batch expires (i.e. it could not
  be completed within the SLA time window), then remaining work is cancelled and any already
  completed work is returned" (Batch API FAQ, help.openai.com/en/articles/9197833). The batch
  guide ("Batch expiration") shows the expired requests in the error file as
  ``{"id": "batch_req_123", "custom_id": "request-3", "response": null, "error": {"code":
  "batch_expired", "message": "This request could not be executed before the completion window
  expired."}}``. How long a batch usually takes is not published. Reports put it at "30 minutes
  to a few hours" (dev.to, "Batch API vs real-time OpenAI", 2026); in slow periods batches took
  8 h and 19 h and one expired after 24 h with 1 of its 10 requests done, its request counts
  reading ``{total: 10, completed: 1, failed: 0}`` (warmbly/warmbly#333, 2026).
- The queue. "Each usage tier has an associated batch rate limit. Your batch rate limit includes
  the maximum number of input tokens you have enqueued at one time"; "Once your batch request is
  completed, your batch rate limit is reset, as your input tokens are cleared" (the FAQ). The
  limits per tier and model family are :func:`keypolicy.catalog.batch_queue_limit`'s. A batch
  past the limit is created and comes back ``failed``, its ``errors.data`` holding one error with
  ``code: token_limit_exceeded``, ``line: null``, ``param: null`` and the message "Enqueued token
  limit reached for gpt-4o-mini in organization org-.... Limit: 2,000,000 enqueued tokens. Please
  try again once some in_progress batches have been completed." (openai/openai-python#2084).

The model: a batch takes a time drawn from a log-normal distribution (:class:`BatchSettings`);
one drawn past the completion window expires at the window's end, having done the share of its
requests that fits in the window (its work spread evenly over the time drawn). Its prompt tokens
count against its organization's queue, per model family, from its creation until it completes,
expires or is cancelled; a batch that would take the queue past the limit is refused at creation.
Nothing here reads a clock: every call takes ``now`` (seconds, any epoch, not decreasing).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Final

from keypolicy.catalog import batch_queue_limit, family

__all__ = [
    "EXPIRED_MESSAGE",
    "BatchQueue",
    "BatchSettings",
    "Enqueued",
    "QueueFull",
    "batch_expired",
    "derived_rng",
]

_Z95: Final = NormalDist().inv_cdf(0.95)
"""The standard normal's 95th percentile (1.645): a log-normal's p95 is median * exp(z95 sigma)."""

EXPIRED_MESSAGE: Final = "This request could not be executed before the completion window expired."
"""What the error file says of each request an expired batch did not run (the batch guide)."""


@dataclass(frozen=True)
class BatchSettings:
    """How long batches take (model seconds).

    - ``median``, ``p95``: the log-normal distribution a batch's time from creation to completion
      is drawn from. Defaults: 1 h (the fixed turnaround the simulator assumed before) and 8 h,
      to match "30 minutes to a few hours" usually and a tail that reaches the window now and
      then: about 0.6% of batches expire (:attr:`expire_share`). Reported times are anecdotes,
      not a published distribution: a planner who fears a slow day sets a larger ``p95``.
    - ``window``: the completion window (OpenAI offers only ``24h``); a batch drawn longer
      expires at its end.
    - ``delay``: every batch takes exactly this long instead (the mock server's
      ``--batch-delay``); one past the window expires all the same.
    """

    median: float = 3600.0
    p95: float = 8 * 3600.0
    window: float = 86400.0
    delay: float | None = None

    def __post_init__(self) -> None:
        if self.median <= 0:
            raise ValueError(f"the median batch time must be positive, not {self.median}")
        if self.p95 < self.median:
            raise ValueError(f"the p95 batch time ({self.p95}) is below the median ({self.median})")
        if self.window <= 0:
            raise ValueError(f"the completion window must be positive, not {self.window}")
        if self.delay is not None and self.delay < 0:
            raise ValueError(f"the batch delay cannot be negative, not {self.delay}")

    @property
    def sigma(self) -> float:
        """The log-normal's shape: ln(p95 / median) / z95 (0 when they are equal)."""
        return math.log(self.p95 / self.median) / _Z95

    @property
    def expire_share(self) -> float:
        """The share of batches that run past the window and expire."""
        if self.delay is not None:
            return 1.0 if self.delay > self.window else 0.0
        if self.sigma == 0:
            return 1.0 if self.median > self.window else 0.0
        return 1.0 - NormalDist().cdf(math.log(self.window / self.median) / self.sigma)

    def duration(self, rng: random.Random) -> float:
        """How long one batch would take (seconds; past the window, it expires instead)."""
        if self.delay is not None:
            return self.delay
        return rng.lognormvariate(math.log(self.median), self.sigma)


def derived_rng(rng: random.Random, purpose: str) -> random.Random:
    """A generator of its own for ``purpose``, seeded from (a copy of) ``rng``'s state.

    The same ``rng`` state gives the same generator, and drawing from it takes nothing from
    ``rng``: a part of the model that draws from it (the batches) leaves every other draw of a
    simulation as it was. A string seed is hashed with SHA-512, the same in every process.
    """
    copy = random.Random()
    copy.setstate(rng.getstate())
    return random.Random(f"{purpose}:{copy.getrandbits(64)}")


def batch_expired() -> dict[str, Any]:
    """The error of a request its batch did not run before the window closed."""
    return {"code": "batch_expired", "message": EXPIRED_MESSAGE}


@dataclass(frozen=True, slots=True)
class Enqueued:
    """A batch accepted into the queue.

    ``tokens``: its prompt tokens by model family; ``took``: the time drawn for it; ``ends``:
    when it leaves the queue, completed (``created + took``) or expired (at the window's end).
    """

    id: int
    tokens: Mapping[str, int]
    created: float
    took: float
    ends: float
    expired: bool

    def done(self, requests: int) -> int:
        """How many of its ``requests`` it has run when it ends: all, or for an expired batch
        the share of its time drawn that fell within the window."""
        if not self.expired:
            return requests
        return math.floor(requests * (self.ends - self.created) / self.took)


@dataclass(frozen=True, slots=True)
class QueueFull:
    """A batch refused at creation: ``model``'s enqueued tokens would pass its ``limit``."""

    model: str
    organization_id: str
    limit: int
    enqueued: int
    requested: int

    @property
    def message(self) -> str:
        """OpenAI's wording (openai/openai-python#2084)."""
        return (
            f"Enqueued token limit reached for {self.model} in organization "
            f"{self.organization_id}. Limit: {self.limit:,} enqueued tokens. Please try again "
            "once some in_progress batches have been completed."
        )

    def error(self) -> dict[str, Any]:
        """The batch's error, as its ``errors.data`` lists it."""
        message = self.message
        return {"code": "token_limit_exceeded", "line": None, "message": message, "param": None}


class BatchQueue:
    """One organization's batches in the Batch API, and the prompt tokens they hold enqueued.

    ``tier``: the organization's usage tier, which sets the queue limit per model family
    (:func:`keypolicy.catalog.batch_queue_limit`; none without a tier or a published figure).
    Times drawn come from ``rng`` alone, in call order.
    """

    def __init__(
        self,
        settings: BatchSettings,
        tier: int | None,
        organization_id: str,
        rng: random.Random,
    ) -> None:
        self.settings = settings
        self.tier = tier
        self.organization_id = organization_id
        self.rng = rng
        self._open: dict[int, Enqueued] = {}
        self._ends: list[tuple[float, int]] = []  # a heap: (ends, id), cancelled ones left in
        self._enqueued: dict[str, int] = {}  # model family -> prompt tokens
        self._next_id = 1

    def limit(self, model: str) -> int | None:
        """The most prompt tokens ``model``'s family may hold enqueued, if limited."""
        return batch_queue_limit(self.tier, model)

    def enqueued(self, model: str, now: float) -> int:
        """Prompt tokens of ``model``'s family in batches still open at ``now``."""
        self._sweep(now)
        return self._enqueued.get(family(model), 0)

    def create(self, tokens: Mapping[str, int], now: float) -> Enqueued | QueueFull:
        """A batch of ``tokens`` (prompt tokens by model) created at ``now``: enqueued, or
        refused if any model's family would pass its limit (the first such, in order)."""
        self._sweep(now)
        by_family: dict[str, int] = {}
        for model, count in tokens.items():
            name = family(model)
            by_family[name] = by_family.get(name, 0) + count
        for name, count in by_family.items():
            limit = self.limit(name)
            held = self._enqueued.get(name, 0)
            if limit is not None and held + count > limit:
                return QueueFull(name, self.organization_id, limit, held, count)
        took = self.settings.duration(self.rng)
        window = self.settings.window
        expired = took > window
        batch = Enqueued(
            self._next_id, by_family, now, took, now + (window if expired else took), expired
        )
        self._next_id += 1
        self._open[batch.id] = batch
        heapq.heappush(self._ends, (batch.ends, batch.id))
        for name, count in by_family.items():
            self._enqueued[name] = self._enqueued.get(name, 0) + count
        return batch

    def cancel(self, batch_id: int, now: float) -> None:
        """Batch ``batch_id`` is cancelled at ``now``: its tokens leave the queue (nothing for
        a batch already ended, or unknown)."""
        self._sweep(now)
        batch = self._open.pop(batch_id, None)
        if batch is not None:
            self._release(batch)

    def _sweep(self, now: float) -> None:
        """Batches that have ended by ``now`` leave the queue."""
        while self._ends and self._ends[0][0] <= now:
            _, batch_id = heapq.heappop(self._ends)
            batch = self._open.pop(batch_id, None)
            if batch is not None:
                self._release(batch)

    def _release(self, batch: Enqueued) -> None:
        for name, count in batch.tokens.items():
            left = self._enqueued.get(name, 0) - count
            if left:
                self._enqueued[name] = left
            else:  # none left (a family may hold batches of no tokens)
                self._enqueued.pop(name, None)
