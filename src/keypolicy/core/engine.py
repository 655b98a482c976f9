"""The decision engine: one deterministic state machine that both drivers feed.

Events go in (:mod:`keypolicy.core.events`), each with its time; actions come out
(:mod:`keypolicy.core.actions`). After every event the engine releases what has waited long
enough, admits whatever now fits, in priority order (class, then submission time, then a
sequence number), and expires what has waited too long. ``next_wake`` says when it next needs an
:class:`~keypolicy.core.events.Advance` if nothing else happens. Nothing here reads a clock,
sleeps, or does I/O; shared counters go through the :class:`~keypolicy.core.store.Store`.

A store call may raise (a shared store's server goes away). The engine then carries on as
:meth:`Engine.handle` states: each request ends exactly once, nothing is corrected twice.
"""

from __future__ import annotations

import heapq
import math
import random
from typing import Final

from keypolicy.core.actions import (
    Action,
    Alert,
    Complete,
    Defer,
    Reject,
    RejectReason,
    Retry,
    Send,
    StoreFault,
)
from keypolicy.core.admission import Admission, Admitted, Blocked
from keypolicy.core.budgets import BATCH_LEASE_S, BudgetBook, Hold
from keypolicy.core.calendar import minute_of_day, next_window_start, within_windows
from keypolicy.core.config import BucketDef, EngineConfig
from keypolicy.core.events import Advance, Cancel, Event, Failed, Settled, Submit
from keypolicy.core.headers import parse_rate_limit_headers
from keypolicy.core.pricing import actual_cost, format_usd
from keypolicy.core.request import Pending
from keypolicy.core.retry import Verdict, judge_batch_failure, judge_failure
from keypolicy.core.store import Store
from keypolicy.core.validity import invalid_sizes

__all__ = ["Engine"]

INF: Final = math.inf
KEY_COOLDOWN_S: Final = 600.0  # a key the provider refused (401/403) rests this long
QUOTA_COOLDOWN_S: Final = 300.0  # a project out of quota rests this long before it is tried again
DEFAULT_MAX_OUTPUT: Final = 4096  # output cap assumed for a model the catalog does not know
# Wake no sooner than this after finding a request short: float time at epoch magnitude moves
# in steps of ~0.2µs, so a shortfall of a hair would otherwise ask to be woken "now" forever.
MIN_WAKE_S: Final = 1e-3
# A blocked request is tried again, whatever happened, from this long before the time it was
# found to fit by refill alone: far more than float time's steps and the store's tolerances.
STALL_MARGIN_S: Final = 1e-3
# After a store call failed while admitting, the others waiting are tried again this soon even
# if no event comes (dispatch stops at a failure: an outage rejects one request, not the queue).
STORE_RETRY_S: Final = 1.0
# On a shared store, an engine looks for ended leases of budget holds (a dead replica's) at most
# this often, and returns at most REAP_MOST of them each time (more at the next event if full).
REAP_EVERY_S: Final = 60.0
REAP_MOST: Final = 100

QueueKey = tuple[int, str, str]  # (class rank, pool, model)


class Engine:
    """Admits, queues, defers, retries and prices requests by a compiled policy.

    ``store`` holds what replicas share; ``seed`` seeds the only random draws (retry jitter), so
    the same events always give the same actions.
    """

    def __init__(self, config: EngineConfig, store: Store, seed: int = 0) -> None:
        self.config = config
        self.store = store
        self._rng = random.Random(seed)
        self._budgets = BudgetBook(config.budgets, store)
        self._admission = Admission(config, store, self._budgets)
        self._requests: dict[str, Pending] = {}
        self._queues: dict[QueueKey, list[tuple[float, int, str]]] = {}
        self._busy: set[QueueKey] = set()  # queues that may hold someone
        self._delayed: list[tuple[float, int, str]] = []
        self._deadlines: list[tuple[float, int, str]] = []
        self._seq = 0
        self._now = -INF
        self._wake_blocked = INF
        # Counts what may let a blocked request through sooner than refill alone: capacity or
        # budget given back, budget held, a key or project resting. Only with a store that
        # this engine alone changes (else another replica may give capacity back unseen).
        self._changes = 0
        self._stalls = store.exclusive()
        # On a shared store: each request's budget hold lease (request id -> lease name), and
        # when to look for ended leases next (never on an exclusive store).
        self._leases: dict[str, str] = {}
        self._next_reap = INF if self._stalls else -INF
        self.holds_reaped = 0
        """How many ended leases of budget holds this engine gave back (a dead replica's)."""
        self.retries_saved = 0
        """How many times a blocked request was known to be still blocked without trying it."""
        self.store_errors = 0
        """How many store calls raised (each reported as a :class:`StoreFault` action)."""
        self.next_wake: float | None = None
        """When the engine next needs an Advance (epoch seconds), or None if it does not."""

    # ------------------------------------------------------------------ events

    def handle(self, event: Event) -> list[Action]:
        """Feed one event; return the actions the drivers must carry out, in order.

        Every request the engine knows ends with exactly one final action, ``Complete`` or
        ``Reject``; until then it is pending (``request_state`` is not ``None``). That holds
        even when a store call raises in the middle of an event: ``handle`` does not raise for
        it, it returns every action decided before and after it, and reports each failure as a
        :class:`StoreFault` action (counted in ``store_errors``). Then:

        - a request being admitted (on its submission, from the queue, or to the Batch API)
          ends with ``Reject(reason="store_error")``: nothing was sent, nothing is held. Those
          behind it stay queued and are tried again at the next event, or ``STORE_RETRY_S``
          later (``next_wake``);
        - an answer (``Settled``, ``Failed``) is carried out whatever the store does: ``Complete``
          with the cost, or the retry or ``Reject`` its failure calls for. Corrections the store
          refused (unused tokens, the budget's hold settled to the cost, refunds, limits learnt,
          rests) are lost, never applied twice: the request has moved on, so the same answer
          given again is ignored. Lost corrections leave capacity or budget shown as used when
          it was not (the safe side), until refill or the budget's next period (on a shared
          store, until the hold's lease ends: then the whole hold comes back, and the cost is
          missing from the budget: see :mod:`keypolicy.core.budgets`);
        - a ``Cancel`` ends the request all the same; a hold it could not give back stays held
          (on a shared store, until its lease ends).

        A store call that raises is taken as not applied (``acquire`` took nothing).
        ``handle`` raises only for a driver's mistake (an id already in use, something that is
        not an event), before changing anything.
        """
        now = event.now if event.now > self._now else self._now  # time never goes back
        self._now = now
        out: list[Action] = []
        if now >= self._next_reap and isinstance(event, (Submit, Settled, Failed, Cancel, Advance)):
            self.reap(now, out)  # first: what comes back may let this very event's request in
        if isinstance(event, Submit):
            self._submit(event, now, out)
        elif isinstance(event, Settled):
            self._settle(event, now, out)
        elif isinstance(event, Failed):
            self._fail(event, now, out)
        elif isinstance(event, Cancel):
            self._cancel(event.request_id, now, out)
        elif not isinstance(event, Advance):
            raise TypeError(f"not an engine event: {event!r}")
        self._tick(now, out)
        try:
            self.store.flush()  # corrections still held back (none, mostly: a call carried them)
        except Exception as exc:  # a store failure: see handle
            self._fault("", "applying the limits' corrections", exc, now, out)
        return out

    def reap(self, now: float, out: list[Action] | None = None) -> int:
        """Give back the budget holds whose leases ended by ``now`` unsettled (their replica
        died, or its store calls failed): see :mod:`keypolicy.core.budgets`. On a shared store
        :meth:`handle` does this itself, at most every ``REAP_EVERY_S`` (one store call); a
        failure is reported in ``out`` as a :class:`StoreFault` and tried again then. Returns
        how many leases were given back."""
        self._next_reap = now + REAP_EVERY_S
        try:
            reaped = self.store.reap(now, REAP_MOST)
        except Exception as exc:  # a store failure: see handle
            if out is None:
                raise
            self._fault("", "giving back the budget holds of ended leases", exc, now, out)
            return 0
        if reaped:
            self.holds_reaped += reaped
            self._changes += 1  # budget given back
            if reaped >= REAP_MOST:
                self._next_reap = now  # more may be due: again at the next event
        return reaped

    def waiting(self) -> list[str]:
        """Ids of requests queued for capacity (not in flight, not parked), for introspection."""
        return [r.id for r in self._requests.values() if r.state == "queued"]

    def request_state(self, request_id: str) -> str | None:
        """``queued``, ``delayed``, ``inflight`` or ``batch``; ``None`` once finished."""
        req = self._requests.get(request_id)
        return req.state if req else None

    def bucket(self, index: int) -> BucketDef:
        """The bucket at ``index`` as the engine currently sees it (limits learnt included)."""
        return self._admission.buckets[index]

    # ------------------------------------------------------------------ submission

    def _submit(self, ev: Submit, now: float, out: list[Action]) -> None:
        if ev.request_id in self._requests:
            raise ValueError(f"request id {ev.request_id!r} is already in use")
        domain = self.config.domains.get(ev.domain)
        if domain is None:
            known = ", ".join(sorted(self.config.domains))
            out.append(
                Reject(
                    ev.request_id,
                    "unknown_domain",
                    f"unknown domain {ev.domain!r}; the policy has: {known}",
                )
            )
            return
        asked = ev.model or domain.model
        # A dated snapshot is allowed where its family is, draws on its family's limits and is
        # priced at its family's prices; it goes out under its own name (Pending.snapshot).
        model = self.config.families.get(asked, asked)
        if model not in domain.models:
            out.append(
                Reject(
                    ev.request_id,
                    "model_not_allowed",
                    f"domain {domain.name!r} may not call {asked!r}; "
                    f"it may call {', '.join(domain.models)}",
                )
            )
            return
        invalid = invalid_sizes(
            model,
            ev.prompt_tokens if ev.prompt_tokens > 0 else 0,  # exact: the provider counts tokens
            ev.max_output_tokens,
            self.config.max_output.get(model),
            self.config.context_window.get(model),
        )
        if invalid:  # the provider would answer 400 whatever key or time: never send it
            out.append(Reject(ev.request_id, "invalid_request", invalid))
            return
        self._seq += 1
        rate_prompt = ev.prompt_tokens if ev.rate_prompt_tokens is None else ev.rate_prompt_tokens
        max_out = ev.max_output_tokens or self.config.max_output.get(model, DEFAULT_MAX_OUTPUT)
        req = Pending(
            ev.request_id,
            domain,
            model,
            ev.prompt_tokens if ev.prompt_tokens > 0 else 0,
            rate_prompt if rate_prompt > 0 else 0,
            max_out,
            ev.n if ev.n > 1 else 1,
            now,
            self._seq,
            submitted_wait=now,
            snapshot=asked if asked != model else "",
        )
        self._requests[req.id] = req
        try:
            if domain.defer == "batch":
                self._to_batch(req, now, out)
            elif (
                domain.defer == "queue"
                and domain.windows
                and not within_windows(domain.windows, minute_of_day(self.config.timezone, now))
            ):
                until = next_window_start(domain.windows, self.config.timezone, now)
                self._park(req, until, "outside its deferral windows", out)
            elif not self._busy and self._fast_admit(req, now, out):
                return
            else:
                self._enqueue(req, now)
        except Exception as exc:  # a store failure: see handle
            self._abandon(req, "admitting it", exc, now, out)

    def _fast_admit(self, req: Pending, now: float, out: list[Action]) -> bool:
        """Nobody waits: admit at once if it fits, skipping the queues (the common case)."""
        result = self._admission.try_admit(req, set(), now)
        if isinstance(result, Admitted):
            self._send(req, result, now, out)
            return True
        if isinstance(result, Blocked):
            return False
        # A budget stands in the way: parked or rejected (done), or downgraded (queue it).
        return not self._exhausted(req, result.budget, now, out)

    def _enqueue(self, req: Pending, now: float) -> None:
        if req.attempts and not req.deferred:  # a retry: max_wait counts its own wait again
            req.deadline = INF
            req.submitted_wait = now
        if req.deadline == INF and not req.deferred:
            waits = [
                w
                for w in (req.domain.max_wait, self.config.class_max_wait[req.rank])
                if w is not None
            ]
            if waits:
                req.deadline = req.submitted_wait + min(waits)
        if req.deadline < INF:
            heapq.heappush(self._deadlines, (max(req.deadline, now), req.seq, req.id))
        req.state = "queued"
        req.stall_until = -INF
        qkey = (req.rank, req.domain.pool, req.model)
        heapq.heappush(self._queues.setdefault(qkey, []), (req.submitted, req.seq, req.id))
        self._busy.add(qkey)

    def _to_batch(self, req: Pending, now: float, out: list[Action]) -> None:
        """Hand the request to the Batch API: no per-minute limits (batches have their own
        queue), budgets held at batch prices in one atomic take (so replicas cannot both pass
        a look and overspend), on the key the pool's strategy picks."""
        req.key = self._admission.batch_key(req)
        while True:
            budgets = self._admission.budgets_of(req.domain.name, req.key)
            req.estimate_usd = self._admission.estimate(req, batch=True)
            holds = self._budgets.holds(budgets, req.estimate_usd, now)
            lease = self._budgets.take(holds, now, BATCH_LEASE_S)
            if lease is not None:
                break
            short = self._budgets.first_short(budgets, req.estimate_usd, now)
            if short is None:
                continue  # given back by another replica between the take and the look
            if not self._exhausted(req, short, now, out):
                return
        req.holds = holds  # only once taken: a request holds nothing until then
        if lease:
            self._leases[req.id] = lease
        self._changes += 1
        req.state = "batch"
        until = now + min(req.domain.defer_deadline, 86400.0)
        out.append(
            Defer(
                req.id,
                "batch",
                until,
                "the domain runs through the Batch API",
                req.sent_model,
                self.config.keys[req.key].alias,
            )
        )

    def _exhausted(self, req: Pending, budget: int, now: float, out: list[Action]) -> bool:
        """Apply ``budget``'s on_exhausted; True if the request goes on (downgraded)."""
        b = self.config.budgets[budget]
        named = b.fallback or ""
        fallback = self.config.families.get(named, named)  # a snapshot: drawn on as its family
        if b.action == "downgrade" and fallback and fallback not in req.tried:
            req.tried.add(req.model)
            req.model = fallback
            req.snapshot = named if named != fallback else ""
            req.stall_until = -INF  # another model: what blocked it no longer says anything
            req.max_out = min(req.max_out, self.config.max_output.get(fallback, req.max_out))
            return True
        estimate = self._admission.estimate(req, req.domain.defer == "batch")
        spent = self._budgets.spent(budget, now)
        what = f"budget {b.name!r} ({format_usd(spent)} of {format_usd(b.usd)} spent or held)"
        if b.action == "defer" and req.domain.defer != "never":
            until = self._budgets.refill_time(budget, estimate, now)
            if until < INF:
                # A rolling budget short by a hair refills "now" in float time: park it at
                # least MIN_WAKE_S, or it would be released and parked again forever.
                self._park(req, max(until, now + MIN_WAKE_S), f"{what} is exhausted", out)
                return False
        self._finish(
            req,
            Reject(req.id, "budget", f"{what} cannot cover {format_usd(estimate)}", req.attempts),
            out,
        )
        return False

    # ------------------------------------------------------------------ time

    def _park(self, req: Pending, until: float, why: str, out: list[Action]) -> None:
        deadline = req.submitted + req.domain.defer_deadline
        if until > deadline:
            self._finish(
                req,
                Reject(
                    req.id,
                    "deadline",
                    f"{why}, and it could not run before its deferral deadline",
                    req.attempts,
                ),
                out,
            )
            return
        req.state = "delayed"
        req.deferred = True
        if req.deadline != deadline:
            req.deadline = deadline
            heapq.heappush(self._deadlines, (req.deadline, req.seq, req.id))
        heapq.heappush(self._delayed, (until, req.seq, req.id))
        out.append(Defer(req.id, "queue", until, why, req.sent_model))

    def _tick(self, now: float, out: list[Action]) -> None:
        if not (self._delayed or self._deadlines or self._busy):  # nothing waits: nothing to do
            self._wake_blocked = INF
            self.next_wake = None
            return
        while self._delayed and self._delayed[0][0] <= now:
            entry = heapq.heappop(self._delayed)
            req = self._requests.get(entry[2])
            if req is not None and self._live_delayed(entry):
                if req.domain.defer == "batch":
                    try:
                        self._to_batch(req, now, out)
                    except Exception as exc:  # a store failure: see handle
                        self._abandon(req, "handing it to the Batch API", exc, now, out)
                else:
                    self._enqueue(req, now)
        # Deadlines already past expire first (the event came late); a request whose deadline
        # is exactly now is admitted if it fits: it is not rejected for waiting until now.
        self._expire_due(now, out, strictly=True)
        self._dispatch(now, out)
        if self._expire_due(now, out, strictly=False):
            self._dispatch(now, out)  # an expired elder no longer holds back those behind it
        while self._deadlines and not self._live_deadline(self._deadlines[0]):
            heapq.heappop(self._deadlines)
        while self._delayed and not self._live_delayed(self._delayed[0]):
            heapq.heappop(self._delayed)
        wake = min(
            self._wake_blocked,
            self._delayed[0][0] if self._delayed else INF,
            self._deadlines[0][0] if self._deadlines else INF,
        )
        self.next_wake = None if wake == INF else max(wake, now)

    def _expire_due(self, now: float, out: list[Action], strictly: bool) -> bool:
        expired = False
        while self._deadlines and (
            self._deadlines[0][0] < now or (not strictly and self._deadlines[0][0] <= now)
        ):
            entry = heapq.heappop(self._deadlines)
            req = self._requests.get(entry[2])
            if req is not None and self._live_deadline(entry):
                self._expire(req, now, out)
                expired = True
        return expired

    # Heap entries are (time, seq, id) and are dropped lazily: one stands only while its request
    # is still the same request (ids may be reused) in a state the entry is about.

    def _live_deadline(self, entry: tuple[float, int, str]) -> bool:
        req = self._requests.get(entry[2])
        return (
            req is not None
            and req.seq == entry[1]
            and req.state in ("queued", "delayed")
            and req.deadline <= entry[0]
        )

    def _live_delayed(self, entry: tuple[float, int, str]) -> bool:
        req = self._requests.get(entry[2])
        return req is not None and req.seq == entry[1] and req.state == "delayed"

    def _expire(self, req: Pending, now: float, out: list[Action]) -> None:
        waited = now - req.submitted_wait
        if req.domain.defer == "queue" and not req.deferred:
            req.deferred = True
            req.deadline = req.submitted + req.domain.defer_deadline
            heapq.heappush(self._deadlines, (req.deadline, req.seq, req.id))
            out.append(
                Defer(
                    req.id,
                    "queue",
                    None,
                    f"waited {waited:.1f}s, past max_wait: deferred",
                    req.sent_model,
                )
            )
            return
        reason: RejectReason = "deadline" if req.deferred else "max_wait"
        self._finish(
            req,
            Reject(
                req.id,
                reason,
                f"waited {waited:.1f}s for capacity, past its {reason}",
                req.attempts,
            ),
            out,
        )

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, now: float, out: list[Action]) -> None:
        """Admit what fits, by (class, submission time, sequence), never past a waiting elder."""
        if not self._busy:
            self._wake_blocked = INF
            return
        heads: list[tuple[int, float, int, QueueKey]] = []
        for qkey in list(self._busy):
            queue = self._queues[qkey]
            if self._clean_head(queue):
                heads.append((qkey[0], queue[0][0], queue[0][1], qkey))
            else:
                self._busy.discard(qkey)
        heapq.heapify(heads)
        # Buckets held back by waiting requests of more urgent classes; what the current class
        # claims joins them once dispatch moves on to a less urgent class. Within a class,
        # order is kept per queue (pool and model), not across pools: a request of one pool does
        # not wait behind an equally urgent one of another pool that waits for its own project.
        blocked: set[int] = set()
        claims: set[int] = set()
        rank = -1
        self._wake_blocked = INF
        req: Pending | None = None
        try:
            while heads:
                head_rank, _, _, qkey = heapq.heappop(heads)
                if head_rank != rank:
                    blocked |= claims
                    claims = set()
                    rank = head_rank
                queue = self._queues[qkey]
                req = self._requests[queue[0][2]]
                if self._try(req, blocked, claims, now, out):
                    heapq.heappop(queue)
                    if self._clean_head(queue):
                        heapq.heappush(heads, (qkey[0], queue[0][0], queue[0][1], qkey))
        except Exception as exc:  # a store failure: see handle
            if req is None:
                raise
            self._abandon(req, "admitting it", exc, now, out)
            self._wake_blocked = min(self._wake_blocked, now + STORE_RETRY_S)

    def _try(
        self, req: Pending, blocked: set[int], claims: set[int], now: float, out: list[Action]
    ) -> bool:
        """Try the head of a queue; True if it left the queue (sent, parked or rejected)."""
        if req.domain.windows and not within_windows(
            req.domain.windows, minute_of_day(self.config.timezone, now)
        ):
            until = next_window_start(req.domain.windows, self.config.timezone, now)
            self._park(req, until, "its deferral window closed", out)
            return True
        mark = (self._changes, self._admission.epoch, self._budgets.generation)
        if now < req.stall_until and req.stall_mark == mark and req.stall_blocked == blocked:
            # Found blocked before, and since then nothing was given back, no budget held, no
            # limit learnt, no key rested, its elders unchanged: trying again must find it
            # blocked again, the same way. (Takes by others only make it wait longer.)
            claims |= req.stall_claims
            self._wake_blocked = min(self._wake_blocked, req.stall_wake)
            self.retries_saved += 1
            return False
        result = self._admission.try_admit(req, blocked, now)
        if isinstance(result, Admitted):
            self._send(req, result, now, out)
            return True
        if isinstance(result, Blocked):
            return self._blocked(req, result, blocked, claims, mark, now, out)
        if self._exhausted(req, result.budget, now, out):  # downgraded: try the new model
            return self._try(req, blocked, claims, now, out)
        return True

    def _blocked(
        self,
        req: Pending,
        result: Blocked,
        blocked: set[int],
        claims: set[int],
        mark: tuple[int, int, int],
        now: float,
        out: list[Action],
    ) -> bool:
        """A queue head that cannot go now: True if it never can (rejected as too large)."""
        # Whether it can ever fit changes only when a limit is learnt: check once per epoch.
        if req.fit_epoch != self._admission.epoch:
            too_large = self._admission.too_large(req)
            if too_large:
                self._finish(req, Reject(req.id, "too_large", too_large, req.attempts), out)
                return True
            req.fit_epoch = self._admission.epoch
        claims |= result.buckets
        wake = now + max(result.wait, MIN_WAKE_S)
        self._wake_blocked = min(self._wake_blocked, wake)
        if self._stalls and result.exact and result.wait > STALL_MARGIN_S:
            req.stall_until = now + result.wait - STALL_MARGIN_S
            req.stall_mark = mark
            req.stall_blocked = frozenset(blocked)
            req.stall_claims = result.buckets
            req.stall_wake = wake
        return False

    def _clean_head(self, queue: list[tuple[float, int, str]]) -> bool:
        while queue:
            req = self._requests.get(queue[0][2])
            if req is not None and req.state == "queued" and req.seq == queue[0][1]:
                return True
            heapq.heappop(queue)
        return False

    def _send(self, req: Pending, admitted: Admitted, now: float, out: list[Action]) -> None:
        route = admitted.route
        req.attempts += 1
        req.sent_at = now
        req.state = "inflight"
        req.key = route.key
        # One amount per bucket of the route (Admission builds them so); a compiled zip without
        # strict= is a plain loop, with it a zip object.
        req.charges = [(b, a) for b, a in zip(route.buckets, admitted.amounts)]  # noqa: B905
        req.holds = admitted.holds
        if req.holds:
            self._changes += 1  # budget held: another request's key may now be short of it
            if admitted.lease:
                self._leases[req.id] = admitted.lease
        req.estimate_usd = admitted.estimate
        key = self.config.keys[route.key]
        out.append(
            Send(
                req.id,
                key.alias,
                key.project,
                req.sent_model,
                req.attempts,
                now - req.submitted,
                req.charge_tokens,
            )
        )

    # ------------------------------------------------------------------ outcomes

    def _settle(self, ev: Settled, now: float, out: list[Action]) -> None:
        req = self._requests.get(ev.request_id)
        if (
            req is None
            or req.state not in ("inflight", "batch")
            or (ev.attempt is not None and ev.attempt != req.attempts)
        ):
            return  # unknown, finished, or a late answer to an attempt given up on
        batch = req.state == "batch"
        prompt = ev.prompt_tokens if ev.prompt_tokens > 0 else 0
        completion = ev.completion_tokens if ev.completion_tokens > 0 else 0
        self._changes += 1  # tokens and budget given back
        cost = actual_cost(
            self.config.prices[req.model],
            prompt,
            ev.cached_tokens,
            completion,
            batch,
            self.config.batch_discount,
        )
        # The answer came back: whatever the store does, the request completes (below), so
        # the same answer given again finds it gone and corrects nothing twice. The limits'
        # corrections (unused tokens, what the headers say) come first: a shared store holds
        # them back (Store.adjust_later) and carries them with the budget's settlement, one
        # round trip for the whole answer (a failure of that trip loses both).
        lease = self._leases.pop(req.id, "") if self._leases else ""
        try:
            self._admission.settle(req, prompt + completion, now)
            if req.key >= 0 and (ev.headers or ev.rate_limits is not None):
                self._admission.learn(req, ev.headers, now, ev.rate_limits)
        except Exception as exc:  # a store failure: see handle
            self._fault(req.id, "correcting its token charges", exc, now, out)
        try:
            levels = self._budgets.settle(req.holds, cost, now, lease)
            for budget, threshold, spent in self._budgets.crossed(req.holds, levels, cost, now):
                b = self.config.budgets[budget]
                out.append(Alert(b.name, threshold, spent, b.usd, now))
        except Exception as exc:  # a store failure: see handle
            self._fault(req.id, "settling its budget hold to its cost", exc, now, out)
        key = self.config.keys[req.key] if req.key >= 0 else None
        self._finish(
            req,
            Complete(
                req.id,
                key.alias if key else "",
                key.project if key else "",
                req.sent_model,
                req.attempts,
                cost,
                batch,
            ),
            out,
        )

    def _fail(self, ev: Failed, now: float, out: list[Action]) -> None:
        req = self._requests.get(ev.request_id)
        if (
            req is None
            or req.state not in ("inflight", "batch")
            or (ev.attempt is not None and ev.attempt != req.attempts)
        ):
            return
        self._changes += 1  # budget released, tokens refunded, a key or project rested
        holds, req.holds = req.holds, []  # given back below, or lost: never given back twice
        lease = self._leases.pop(req.id, "") if self._leases else ""
        if req.state == "batch":
            self._release(req.id, holds, lease, now, out)
            code, why = judge_batch_failure(ev.status, ev.body)
            self._finish(req, Reject(req.id, code, why, req.attempts, ev.status), out)
            return
        verdict = judge_failure(
            self.config.retry, ev.status, ev.headers, ev.body, req.attempts, now, self._rng
        )
        # The attempt is over whatever the store does: the request is retried or ends below.
        try:
            self._budgets.release(holds, now, lease)
            if ev.status is not None and ev.status < 500 and ev.status not in (408, 409):
                # Refused (429) or rejected as invalid (4xx): the provider counted nothing.
                self._admission.refund(req, now)
            read = parse_rate_limit_headers(ev.headers) if ev.headers else None
            if read is not None:
                self._admission.learn(req, ev.headers, now, read)
            if verdict.rate_limit is not None:  # a pace 429, even on the last attempt
                self._admission.after_rate_limit(
                    req, verdict.rate_limit, verdict.delay, now, read, verdict.body
                )
        except Exception as exc:  # a store failure: see handle
            self._fault(req.id, "recording its failed attempt", exc, now, out)
        self._act_on(req, verdict, ev.status, now, out)

    def _act_on(
        self, req: Pending, verdict: Verdict, status: int | None, now: float, out: list[Action]
    ) -> None:
        """Carry out a failure's verdict: retry (here or elsewhere), or give up. ``status``:
        the failed attempt's HTTP status."""
        if verdict.kind == "retry":
            if verdict.rate_limit is None:
                self._retry(req, now + verdict.delay, verdict.reason, out)
                return
            if not self.config.retry.other_key:
                req.pinned = req.key
            self._retry(req, now, verdict.reason, out)  # the project rests; another key may not
        elif verdict.kind == "other_key":
            self._rest(req, "key", now + KEY_COOLDOWN_S, now, out)
            others = [k for k in self.config.pools[req.domain.pool] if k != req.key]
            if others and req.attempts < self.config.retry.max_attempts:
                self._retry(req, now, verdict.reason, out)
            else:
                reject = Reject(req.id, "client_error", verdict.reason, req.attempts, status)
                self._finish(req, reject, out)
        else:
            code: RejectReason = "gave_up"
            if verdict.kind == "quota":
                self._rest(req, "project", now + QUOTA_COOLDOWN_S, now, out)
                code = "quota"
            elif verdict.kind == "client_error":
                code = "client_error"
            self._finish(req, Reject(req.id, code, verdict.reason, req.attempts, status), out)

    def _rest(self, req: Pending, what: str, until: float, now: float, out: list[Action]) -> None:
        """Rest the key or the project/model ``req`` went out on, after a failure."""
        try:
            self._admission.rest((req.key, req.model), what, until)
        except Exception as exc:  # a store failure: see handle
            self._fault(req.id, f"resting its {what}", exc, now, out)

    def _retry(self, req: Pending, at: float, why: str, out: list[Action]) -> None:
        # A non-429 failure keeps its charges: the provider may well have counted the attempt.
        req.charges = []
        req.key = -1
        req.state = "delayed"
        heapq.heappush(self._delayed, (at, req.seq, req.id))
        out.append(Retry(req.id, at, why, req.attempts + 1))

    def _cancel(self, request_id: str, now: float, out: list[Action]) -> None:
        """End the request at the caller's word, giving its budget hold back whatever its state
        (in flight or at the Batch API, what it cost will never be known). In flight, its
        charges on the limits stay: the provider counted the attempt."""
        req = self._requests.get(request_id)
        if req is None:
            return
        if req.holds or req.state in ("queued", "delayed"):
            self._changes += 1
        holds, req.holds = req.holds, []
        lease = self._leases.pop(req.id, "") if self._leases else ""
        self._release(req.id, holds, lease, now, out)
        self._finish(req, Reject(req.id, "cancelled", "cancelled by the caller", req.attempts), out)

    def _finish(self, req: Pending, action: Action, out: list[Action]) -> None:
        self._requests.pop(req.id, None)
        req.state = "done"
        out.append(action)

    # ------------------------------------------------------------------ store failures

    def _release(
        self, request_id: str, holds: list[Hold], lease: str, now: float, out: list[Action]
    ) -> None:
        """Give budget holds back (ending their ``lease``); if the store fails, they stay held
        (never given twice) until their lease ends, if they have one."""
        if holds:
            try:
                self._budgets.release(holds, now, lease)
            except Exception as exc:  # a store failure: see handle
                self._fault(request_id, "giving back its budget hold", exc, now, out)

    def _fault(
        self, request_id: str, doing: str, exc: Exception, now: float, out: list[Action]
    ) -> str:
        """Report a store call that raised while ``doing`` something for the request; return
        the error as text."""
        self.store_errors += 1
        error = f"{type(exc).__name__}: {exc}"
        out.append(StoreFault(request_id, doing, error, now))
        return error

    def _abandon(
        self, req: Pending, doing: str, exc: Exception, now: float, out: list[Action]
    ) -> None:
        """The store failed while ``doing`` something for ``req`` on its way out: unless it
        went out after all (sent, or handed to the Batch API), it ends unsent. A request holds
        no budget until it goes out, so there is nothing to give back."""
        error = self._fault(req.id, doing, exc, now, out)
        if self._requests.get(req.id) is req and req.state in ("new", "queued", "delayed"):
            why = f"the store failed while {doing} ({error}); nothing was sent"
            self._finish(req, Reject(req.id, "store_error", why, req.attempts), out)
