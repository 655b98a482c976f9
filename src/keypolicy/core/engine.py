"""The decision engine: one deterministic state machine that both drivers feed.

Events go in (:mod:`keypolicy.core.events`), each with its time; actions come out
(:mod:`keypolicy.core.actions`). After every event the engine releases what has waited long
enough, expires what has waited too long, and admits whatever now fits, in priority order:
by class, then submission time, then a sequence number. ``next_wake`` says when it next needs an
:class:`~keypolicy.core.events.Advance` if nothing else happens. Nothing here reads a clock,
sleeps, or does I/O; shared counters go through the :class:`~keypolicy.core.store.Store`.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from keypolicy.core.actions import Action, Alert, Complete, Defer, Reject, Retry, Send
from keypolicy.core.budgets import BudgetBook, Hold
from keypolicy.core.calendar import minute_of_day, next_window_start, within_windows
from keypolicy.core.config import BucketDef, DomainDef, EngineConfig, Route
from keypolicy.core.events import Advance, Cancel, Event, Failed, Settled, Submit
from keypolicy.core.headers import parse_rate_limit_headers
from keypolicy.core.pricing import actual_cost, estimated_cost, format_usd
from keypolicy.core.retry import judge_failure
from keypolicy.core.selection import Selector
from keypolicy.core.store import BucketRef, Store

__all__ = ["Engine"]

INF = math.inf
KEY_COOLDOWN_S = 600.0  # a key the provider refused (401/403) rests this long
QUOTA_COOLDOWN_S = 300.0  # a project out of quota rests this long before it is tried again
DEFAULT_MAX_OUTPUT = 4096  # output cap assumed for a model the catalog does not know
# Wake no sooner than this after finding a request short: float time at epoch magnitude moves
# in steps of ~0.2µs, so a shortfall of a hair would otherwise ask to be woken "now" forever.
MIN_WAKE_S = 1e-3


@dataclass(slots=True)
class _Request:
    id: str
    domain: DomainDef
    model: str
    prompt: int
    rate_prompt: int
    max_out: int
    n: int
    submitted: float
    seq: int
    deadline: float = INF
    attempts: int = 0
    state: str = "new"  # queued, delayed, inflight, batch
    key: int = -1
    pinned: int = -1
    deferred: bool = False
    estimate_usd: float = 0.0
    charges: list[tuple[int, float]] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)

    @property
    def rank(self) -> int:
        return self.domain.rank

    @property
    def charge_tokens(self) -> int:
        return self.rate_prompt + self.max_out * self.n


@dataclass(slots=True)
class _Blocked:
    buckets: set[int]
    wait: float


class Engine:
    """Admits, queues, defers, retries and prices requests by a compiled policy.

    ``store`` holds what replicas share; ``seed`` seeds the only random draws (retry jitter), so
    the same events always give the same actions.
    """

    def __init__(self, config: EngineConfig, store: Store, seed: int = 0) -> None:
        self.config = config
        self.store = store
        self._rng = random.Random(seed)
        self._buckets: list[BucketDef] = list(config.buckets)
        self._declared = [b.rate for b in config.buckets]
        self._selectors = {
            pool: Selector(config.strategies[pool], keys, [config.keys[k].weight for k in keys])
            for pool, keys in config.pools.items()
        }
        self._budgets = BudgetBook(config.budgets, store)
        self._requests: dict[str, _Request] = {}
        self._queues: dict[tuple[int, str, str], list[tuple[float, int, str]]] = {}
        self._delayed: list[tuple[float, int, str]] = []
        self._deadlines: list[tuple[float, int, str]] = []
        self._seq = 0
        self._now = -INF
        self._wake_blocked = INF
        self.next_wake: float | None = None
        """When the engine next needs an Advance (epoch seconds), or None if it does not."""

    # ------------------------------------------------------------------ events

    def handle(self, event: Event) -> list[Action]:
        """Feed one event; return the actions the drivers must carry out, in order."""
        now = max(event.now, self._now)
        self._now = now
        out: list[Action] = []
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
        return out

    def waiting(self) -> list[str]:
        """Ids of requests queued for capacity (not in flight, not parked), for introspection."""
        return [r.id for r in self._requests.values() if r.state == "queued"]

    def request_state(self, request_id: str) -> str | None:
        """``queued``, ``delayed``, ``inflight`` or ``batch``; ``None`` once finished."""
        req = self._requests.get(request_id)
        return req.state if req else None

    def bucket(self, index: int) -> BucketDef:
        """The bucket at ``index`` as the engine currently sees it (limits learnt included)."""
        return self._buckets[index]

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
        model = ev.model or domain.model
        if model not in domain.models:
            out.append(
                Reject(
                    ev.request_id,
                    "model_not_allowed",
                    f"domain {domain.name!r} may not call {model!r}; it may call "
                    f"{', '.join(domain.models)}",
                )
            )
            return
        self._seq += 1
        req = _Request(
            ev.request_id,
            domain,
            model,
            max(ev.prompt_tokens, 0),
            max(
                ev.rate_prompt_tokens if ev.rate_prompt_tokens is not None else ev.prompt_tokens, 0
            ),
            ev.max_output_tokens or self.config.max_output.get(model, DEFAULT_MAX_OUTPUT),
            max(ev.n, 1),
            now,
            self._seq,
        )
        self._requests[req.id] = req
        if not self._check_domain_budgets(req, now, out):
            return
        if domain.defer == "batch":
            self._to_batch(req, now, out)
            return
        if domain.defer == "queue" and domain.windows:
            minute = minute_of_day(self.config.timezone, now)
            if not within_windows(domain.windows, minute):
                until = next_window_start(domain.windows, self.config.timezone, now)
                self._park(req, until, "outside its deferral windows", out)
                return
        self._enqueue(req, now, out)

    def _enqueue(self, req: _Request, now: float, out: list[Action]) -> None:
        too_large = self._too_large(req)
        if too_large:
            self._finish(req, Reject(req.id, "too_large", too_large, req.attempts), out)
            return
        if req.deadline == INF and not req.deferred:
            waits = [
                w
                for w in (req.domain.max_wait, self.config.class_max_wait[req.rank])
                if w is not None
            ]
            if waits:
                req.deadline = req.submitted + min(waits)
        if req.deadline < INF:
            heapq.heappush(self._deadlines, (max(req.deadline, now), req.seq, req.id))
        req.state = "queued"
        queue = self._queues.setdefault((req.rank, req.domain.pool, req.model), [])
        heapq.heappush(queue, (req.submitted, req.seq, req.id))

    def _too_large(self, req: _Request) -> str:
        """Why the request can never fit any key of its pool, or '' if it can."""
        why = f"no key of pool {req.domain.pool!r} can serve {req.model!r}"
        for route in self._routes(req):
            for b, share in zip(route.buckets, route.floors[req.rank], strict=True):
                ref = self._buckets[b]
                room = ref.capacity * (1.0 - share)
                if self._amount(req, b) > room + 1e-9:
                    unit = "tokens" if ref.tokens else "requests"
                    why = (
                        f"request needs {self._amount(req, b):,.0f} {unit} but the "
                        f"{ref.dimension} limit of {ref.owner} for {ref.model} leaves class "
                        f"{self.config.classes[req.rank]!r} at most {room:,.0f}"
                    )
                    break
            else:
                return ""
        return why

    def _routes(self, req: _Request) -> list[Route]:
        keys = self.config.pools[req.domain.pool]
        if req.pinned >= 0:
            keys = (req.pinned,)
        return [r for k in keys if (r := self.config.routes.get((k, req.model))) is not None]

    def _amount(self, req: _Request, bucket: int) -> float:
        return float(req.charge_tokens) if self._buckets[bucket].tokens else 1.0

    # ------------------------------------------------------------------ budgets

    def _estimate(self, req: _Request, batch: bool) -> float:
        price = self.config.prices[req.model]
        return estimated_cost(
            price, req.prompt, req.max_out, req.n, batch, self.config.batch_discount
        )

    def _check_domain_budgets(self, req: _Request, now: float, out: list[Action]) -> bool:
        """Apply the domain's budgets before queueing; False if the request went elsewhere."""
        batch = req.domain.defer == "batch"
        while True:
            req.estimate_usd = self._estimate(req, batch)
            short = self._budgets.first_short(req.domain.budgets, req.estimate_usd, now)
            if short is None:
                return True
            if not self._exhausted(req, short, now, out):
                return False

    def _exhausted(self, req: _Request, budget: int, now: float, out: list[Action]) -> bool:
        """Apply ``budget``'s on_exhausted; True if the request goes on (downgraded)."""
        b = self.config.budgets[budget]
        spent = self._budgets.spent(budget, now)
        what = f"budget {b.name!r} ({format_usd(spent)} of {format_usd(b.usd)} spent or held)"
        if b.action == "downgrade" and b.fallback and req.model != b.fallback:
            req.model = b.fallback
            req.max_out = min(req.max_out, self.config.max_output.get(b.fallback, req.max_out))
            return True
        if b.action == "defer":
            until = self._budgets.refill_time(budget, req.estimate_usd, now)
            if until < INF:
                self._park(req, until, f"{what} is exhausted", out)
                return False
        self._finish(
            req,
            Reject(
                req.id,
                "budget",
                f"{what} cannot cover {format_usd(req.estimate_usd)}",
                req.attempts,
            ),
            out,
        )
        return False

    def _to_batch(self, req: _Request, now: float, out: list[Action]) -> None:
        req.holds = self._budgets.holds(req.domain.budgets, req.estimate_usd, now)
        self._budgets.take(req.holds, now)
        req.state = "batch"
        until = now + min(req.domain.defer_deadline, 86400.0)
        out.append(
            Defer(req.id, "batch", until, "the domain runs through the Batch API", req.model)
        )

    # ------------------------------------------------------------------ parking and time

    def _park(self, req: _Request, until: float, why: str, out: list[Action]) -> None:
        req.state = "delayed"
        req.deferred = True
        if req.deadline == INF:
            req.deadline = req.submitted + req.domain.defer_deadline
            heapq.heappush(self._deadlines, (req.deadline, req.seq, req.id))
        heapq.heappush(self._delayed, (until, req.seq, req.id))
        out.append(Defer(req.id, "queue", until, why, req.model))

    def _tick(self, now: float, out: list[Action]) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, rid = heapq.heappop(self._delayed)
            req = self._requests.get(rid)
            if req is not None and req.state == "delayed":
                if req.domain.budgets and not self._check_domain_budgets(req, now, out):
                    continue
                self._enqueue(req, now, out)
        # Admit first: a request that fits now is not rejected for having waited until now.
        self._dispatch(now, out)
        expired = False
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, rid = heapq.heappop(self._deadlines)
            req = self._requests.get(rid)
            if req is not None and req.state in ("queued", "delayed") and req.deadline <= now:
                self._expire(req, now, out)
                expired = True
        if expired:  # an expired elder no longer holds back the requests behind it
            self._dispatch(now, out)
        while self._deadlines and not self._live_deadline(self._deadlines[0]):
            heapq.heappop(self._deadlines)
        wakes = [self._wake_blocked]
        if self._delayed:
            wakes.append(self._delayed[0][0])
        if self._deadlines:
            wakes.append(self._deadlines[0][0])
        wake = min(wakes)
        self.next_wake = None if wake == INF else max(wake, now)

    def _live_deadline(self, entry: tuple[float, int, str]) -> bool:
        req = self._requests.get(entry[2])
        return req is not None and req.state in ("queued", "delayed") and req.deadline <= entry[0]

    def _expire(self, req: _Request, now: float, out: list[Action]) -> None:
        waited = now - req.submitted
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
                    req.model,
                )
            )
            return
        reason = "deadline" if req.deferred else "max_wait"
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
        heads: list[tuple[int, float, int, tuple[int, str, str]]] = []
        for qkey, queue in self._queues.items():
            if self._clean_head(queue):
                heads.append((qkey[0], queue[0][0], queue[0][1], qkey))
        heapq.heapify(heads)
        blocked: set[int] = set()
        self._wake_blocked = INF
        while heads:
            _, _, _, qkey = heapq.heappop(heads)
            queue = self._queues[qkey]
            req = self._requests[queue[0][2]]
            result = self._admit(req, blocked, now, out)
            if isinstance(result, _Blocked):
                blocked |= result.buckets
                self._wake_blocked = min(self._wake_blocked, now + max(result.wait, MIN_WAKE_S))
                continue
            heapq.heappop(queue)
            if self._clean_head(queue):
                heapq.heappush(heads, (qkey[0], queue[0][0], queue[0][1], qkey))

    def _clean_head(self, queue: list[tuple[float, int, str]]) -> bool:
        while queue:
            req = self._requests.get(queue[0][2])
            if req is not None and req.state == "queued" and req.seq == queue[0][1]:
                return True
            heapq.heappop(queue)
        return False

    def _admit(
        self, req: _Request, blocked: set[int], now: float, out: list[Action]
    ) -> _Blocked | None:
        """Send ``req`` on the best key that has room, or say what it waits for."""
        routes = self._routes(req)
        all_buckets = {b for r in routes for b in r.buckets}
        open_routes = []
        wait = INF
        for route in routes:
            cool = self._cooldown_end(route)
            if cool > now:
                wait = min(wait, cool - now)
            elif not blocked.intersection(route.buckets):
                open_routes.append(route)
        if not open_routes:
            return _Blocked(all_buckets, wait)
        by_key = {r.key: r for r in open_routes}
        selector = self._selectors[req.domain.pool]
        order = selector.order(list(by_key), lambda k: self._headroom(req, by_key[k], now))
        estimate = self._estimate(req, False)
        for key in order:
            route = by_key[key]
            budgets = req.domain.budgets + self.config.key_budgets.get(key, ())
            holds = self._budgets.holds(budgets, estimate, now)
            got = self._acquire(req, route, holds, now)
            if got == 0.0:
                selector.chosen(key)
                self._send(req, route, holds, estimate, now, out)
                return None
            if got < 0:  # a budget, not a limit, is short
                short = self._budgets.first_short(budgets, estimate, now)
                if short is not None and not self._exhausted(req, short, now, out):
                    return None
                return self._admit(req, blocked, now, out) if req.state == "queued" else None
            wait = min(wait, got)
        return _Blocked(all_buckets, wait)

    def _acquire(self, req: _Request, route: Route, holds: list[Hold], now: float) -> float:
        """Take the route's limits and the budget holds, all at once: 0.0 if taken, seconds to
        wait if a limit is short, -1.0 if a budget is."""
        refs: list[BucketRef] = [self._buckets[b] for b in route.buckets]
        amounts = [self._amount(req, b) for b in route.buckets]
        floors = [
            share * ref.capacity for share, ref in zip(route.floors[req.rank], refs, strict=True)
        ]
        for bucket, usd in holds:
            refs.append(bucket)
            amounts.append(usd)
            floors.append(0.0)
        wait = self.store.acquire(refs, amounts, floors, now)
        if wait == 0.0 or not holds:
            return wait
        levels = self.store.levels([bucket for bucket, _ in holds], now)
        if any(level + 1e-12 < usd for level, (_, usd) in zip(levels, holds, strict=True)):
            return -1.0
        return wait

    def _headroom(self, req: _Request, route: Route, now: float) -> float:
        refs = [self._buckets[b] for b in route.buckets]
        levels = self.store.levels(refs, now)
        return (
            min(
                (level - share * ref.capacity - self._amount(req, b)) / max(ref.capacity, 1e-9)
                for level, share, b, ref in zip(
                    levels, route.floors[req.rank], route.buckets, refs, strict=True
                )
            )
            if refs
            else 1.0
        )

    def _cooldown_end(self, route: Route) -> float:
        key = self.config.keys[route.key]
        return max(
            self.store.cooldown(f"key:{key.alias}"),
            self.store.cooldown(f"project:{key.project}/{route.model}"),
        )

    def _send(
        self,
        req: _Request,
        route: Route,
        holds: list[Hold],
        estimate: float,
        now: float,
        out: list[Action],
    ) -> None:
        req.attempts += 1
        req.state = "inflight"
        req.key = route.key
        req.charges = [(b, self._amount(req, b)) for b in route.buckets]
        req.holds = holds
        req.estimate_usd = estimate
        key = self.config.keys[route.key]
        out.append(
            Send(
                req.id,
                key.alias,
                key.project,
                req.model,
                req.attempts,
                now - req.submitted,
                req.charge_tokens,
            )
        )

    # ------------------------------------------------------------------ outcomes

    def _settle(self, ev: Settled, now: float, out: list[Action]) -> None:
        req = self._requests.get(ev.request_id)
        if req is None or req.state not in ("inflight", "batch"):
            return
        batch = req.state == "batch"
        used = max(ev.prompt_tokens, 0) + max(ev.completion_tokens, 0)
        for b, amount in req.charges:
            if self._buckets[b].tokens:
                self.store.adjust(self._buckets[b], amount - used, now)
        cost = actual_cost(
            self.config.prices[req.model],
            ev.prompt_tokens,
            ev.cached_tokens,
            ev.completion_tokens,
            batch,
            self.config.batch_discount,
        )
        self._budgets.settle(req.holds, cost, now)
        self._alerts(req.holds, now, out)
        if req.key >= 0 and not batch:
            self._learn(req, ev.headers, now)
        key = self.config.keys[req.key] if req.key >= 0 else None
        self._finish(
            req,
            Complete(
                req.id,
                key.alias if key else "",
                key.project if key else "",
                req.model,
                req.attempts,
                cost,
                batch,
            ),
            out,
        )

    def _alerts(self, holds: list[Hold], now: float, out: list[Action]) -> None:
        for budget, threshold, spent in self._budgets.crossed(holds, now):
            b = self.config.budgets[budget]
            out.append(Alert(b.name, threshold, spent, b.usd, now))

    def _learn(self, req: _Request, headers: Mapping[str, str], now: float) -> None:
        """Correct the project's per-minute buckets from the response's rate-limit headers."""
        if not headers:
            return
        info = parse_rate_limit_headers(headers)
        if not info.any():
            return
        project = self.config.keys[req.key].project
        for b, _ in req.charges:
            ref = self._buckets[b]
            if (
                ref.scope != "project"
                or ref.owner != project
                or ref.dimension not in ("rpm", "tpm")
            ):
                continue
            limit = info.limit_tokens if ref.tokens else info.limit_requests
            remaining = info.remaining_tokens if ref.tokens else info.remaining_requests
            if limit is not None and 0 < limit < ref.rate * 60 - 1e-6:
                scale = limit / (ref.rate * 60)
                ref = replace(ref, capacity=ref.capacity * scale, rate=limit / 60)
                self._buckets[b] = ref
            if remaining is not None:
                self.store.clamp(ref, remaining, now)

    def _fail(self, ev: Failed, now: float, out: list[Action]) -> None:
        req = self._requests.get(ev.request_id)
        if req is None or req.state not in ("inflight", "batch"):
            return
        self._budgets.release(req.holds, now)
        req.holds = []
        if req.state == "batch":
            self._finish(
                req,
                Reject(req.id, "gave_up", f"the batch failed (HTTP {ev.status})", req.attempts),
                out,
            )
            return
        verdict = judge_failure(
            self.config.retry, ev.status, ev.headers, ev.body, req.attempts, now, self._rng
        )
        key = self.config.keys[req.key]
        if ev.status == 429:
            self._refund(req, now)
        if verdict.kind == "retry" and verdict.rate_limit is not None:
            self._cool_project(req, verdict.rate_limit, verdict.delay, now)
        if verdict.kind == "quota":
            self.store.set_cooldown(f"project:{key.project}/{req.model}", now + QUOTA_COOLDOWN_S)
            self._finish(req, Reject(req.id, "quota", verdict.reason, req.attempts), out)
        elif verdict.kind == "other_key":
            self.store.set_cooldown(f"key:{key.alias}", now + KEY_COOLDOWN_S)
            others = [k for k in self.config.pools[req.domain.pool] if k != req.key]
            if others and req.attempts < self.config.retry.max_attempts:
                self._retry(req, now, verdict.reason, out)
            else:
                self._finish(req, Reject(req.id, "client_error", verdict.reason, req.attempts), out)
        elif verdict.kind == "retry":
            if not self.config.retry.other_key and verdict.rate_limit is not None:
                req.pinned = req.key
            self._retry(
                req, now + (0.0 if verdict.rate_limit else verdict.delay), verdict.reason, out
            )
        else:
            code = "client_error" if verdict.kind == "client_error" else "gave_up"
            self._finish(req, Reject(req.id, code, verdict.reason, req.attempts), out)

    def _refund(self, req: _Request, now: float) -> None:
        for b, amount in req.charges:
            self.store.adjust(self._buckets[b], amount, now)
        req.charges = []

    def _cool_project(self, req: _Request, limit: str, delay: float, now: float) -> None:
        """After a pace 429: rest the project/model, and lower our view of the bucket that was
        hit to what the provider's "try again in" implies (the request fits after ``delay``)."""
        key = self.config.keys[req.key]
        self.store.set_cooldown(f"project:{key.project}/{req.model}", now + delay)
        route = self.config.routes[(req.key, req.model)]
        for b in route.buckets:
            ref = self._buckets[b]
            if (
                ref.scope == "project"
                and ref.tokens == (limit == "tokens")
                and ref.dimension in ("rpm", "tpm")
            ):
                self.store.clamp(ref, self._amount(req, b) - ref.rate * delay, now)

    def _retry(self, req: _Request, at: float, why: str, out: list[Action]) -> None:
        req.charges = []
        req.key = -1
        req.state = "delayed"
        heapq.heappush(self._delayed, (at, req.seq, req.id))
        out.append(Retry(req.id, at, why, req.attempts + 1))

    def _cancel(self, request_id: str, now: float, out: list[Action]) -> None:
        req = self._requests.get(request_id)
        if req is None:
            return
        if req.state in ("queued", "delayed"):
            self._budgets.release(req.holds, now)
        # In flight, the provider has it: keep its charges and its budget hold as spent.
        self._finish(req, Reject(req.id, "cancelled", "cancelled by the caller", req.attempts), out)

    def _finish(self, req: _Request, action: Action, out: list[Action]) -> None:
        self._requests.pop(req.id, None)
        req.state = "done"
        out.append(action)
