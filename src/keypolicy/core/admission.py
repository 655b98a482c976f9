"""Admission: which key a request goes out on, and taking what it needs, all at once.

A request may go on a key of its pool whose project/model and key are not resting after an
error, and whose buckets no earlier or more urgent waiting request is holding back (``blocked``).
Among those, the pool's strategy orders the keys; the first whose limits (down to the class's
floor) and budgets all have room is taken, atomically, through the store. This module also owns
the engine's view of the limits: refunds, corrections at settlement, and what response headers
and 429s teach about the provider's real limits and the way it counts.

How the provider counts is the policy's assumption (``EngineConfig.accounting``): whether the
unused part of a token charge is given back at completion, whether a request refused for pace
still counts, and (compiled into the buckets) whether per-minute limits are spent in slices. A
provider that counts more strictly than assumed shows itself by a 429 on a limit the engine
thought had room, and the engine learns from it (:meth:`Admission.after_rate_limit`): after a
429 on a token limit it gives nothing back to that limit any more, and where the 429's numbers
show that the provider holds less of a minute's allowance at once than the engine's bucket does
(a limit spent in slices the policy did not assume), the bucket's burst capacity is lowered to
what the provider holds (:meth:`Admission.learn_burst`). A wrong assumption costs a few 429s,
not thousands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from keypolicy.core.budgets import HOLD_LEASE_S, BudgetBook, Hold
from keypolicy.core.config import BucketDef, EngineConfig, Route
from keypolicy.core.headers import ErrorBody, RateLimitHeaders, parse_rate_limit_headers
from keypolicy.core.pricing import estimated_cost
from keypolicy.core.request import Pending
from keypolicy.core.selection import Selector
from keypolicy.core.store import BucketRef, Store

__all__ = ["Admission", "Admitted", "Blocked", "BudgetShort"]

INF: Final = math.inf
# A burst capacity is learnt only where the provider's numbers put it this much below the
# engine's (a share, plus a unit): well above the headers' own rounding (whole units remaining,
# resets and waits in milliseconds), so a provider counting as assumed never teaches anything.
BURST_MARGIN: Final = 0.01
# A learnt burst capacity recovers once a response shows this much more room than it allows.
BURST_RECOVERY: Final = 1.05
# The least burst capacity learnt: this many seconds of the limit's allowance (OpenAI's guide
# names slices of one second: 60,000 RPM enforced as 1,000 a second).
BURST_FLOOR_S: Final = 1.0
# The precision of the provider's numbers: resets and waits in whole milliseconds (remaining in
# whole units, rounded down). A burst capacity is learnt this much allowance below the estimate,
# so that it errs below the provider's (a hair of throughput; above, a full burst is a 429).
HEADER_PRECISION_S: Final = 1e-3


@dataclass(frozen=True, slots=True, init=False)
class Admitted:
    """Taken: the request goes out on ``route``, holding ``holds`` of its budgets (under
    ``lease`` on a shared store: see :mod:`keypolicy.core.budgets`; else ``""``)."""

    route: Route
    holds: list[Hold]
    estimate: float
    amounts: tuple[float, ...]  # what it took from each of the route's buckets
    lease: str

    def __init__(
        self,
        route: Route,
        holds: list[Hold],
        estimate: float,
        amounts: tuple[float, ...],
        lease: str = "",
    ) -> None:
        object.__setattr__(self, "route", route)
        object.__setattr__(self, "holds", holds)
        object.__setattr__(self, "estimate", estimate)
        object.__setattr__(self, "amounts", amounts)
        object.__setattr__(self, "lease", lease)


@dataclass(frozen=True, slots=True, init=False)
class Blocked:
    """Not now: the buckets the request holds back while it waits, and the soonest it could
    fit (seconds; ``inf`` if only another event can tell). ``exact``: no budget stood in the
    way of any key, so until ``wait`` has passed only capacity given back can change this."""

    buckets: frozenset[int]
    wait: float
    exact: bool = False

    def __init__(self, buckets: frozenset[int], wait: float, exact: bool = False) -> None:
        object.__setattr__(self, "buckets", buckets)
        object.__setattr__(self, "wait", wait)
        object.__setattr__(self, "exact", exact)


@dataclass(frozen=True, slots=True, init=False)
class BudgetShort:
    """A budget, not a limit, stands in the way."""

    budget: int

    def __init__(
        self,
        budget: int,
    ) -> None:
        object.__setattr__(self, "budget", budget)


class _Plan:
    """What a request of one class draws on one route: the buckets (limits learnt included),
    the absolute floor it must leave on each (units), which are token buckets, and, if any is
    sliced, the most of a request each checks against its slice (``clips``, ``inf`` where it
    checks all: a larger request goes once the slice is unused, and leaves it in debt) and the
    most the class may ever send through it (``rooms``: the whole limit above its floor; a
    request above that is checked whole, so never fits)."""

    def __init__(
        self,
        refs: list[BucketRef],
        floors: list[float],
        tokens: tuple[bool, ...],
        clips: tuple[float, ...] | None,
        rooms: tuple[float, ...] = (),
    ) -> None:
        self.refs: Final = refs
        self.floors: Final = floors
        self.tokens: Final = tokens
        self.clips: Final = clips
        self.rooms: Final = rooms

    def amounts(self, tokens: float) -> list[float]:
        """What a request charged ``tokens`` takes from each bucket (tokens or 1 request)."""
        return [tokens if flag else 1.0 for flag in self.tokens]

    def checked(self, amounts: list[float]) -> list[float]:
        """``amounts`` as the buckets check them: clipped to each slice's clip."""
        clips = self.clips
        if clips is None:
            return amounts
        return [
            a if a <= c or a > room else c
            for a, c, room in zip(amounts, clips, self.rooms)  # noqa: B905 (same route)
        ]


class _RouteSet:
    """The routes a request of one pool, model and pinned key may take, in pool order;
    ``whole``: they are every key of the pool in its order, all on one project's limits (then
    their order is the pool's, rotated). ``names``: the cooldowns to read for them, each once
    (in one store call, on a shared store); route ``i`` rests until the later of
    ``names[key_at[i]]`` and ``names[project_at[i]]``."""

    def __init__(self, routes: list[Route], whole: bool, cool_names: list[tuple[str, str]]) -> None:
        self.routes: Final = routes
        self.whole: Final = whole
        names: list[str] = []
        at: dict[str, int] = {}  # name -> its place in names
        key_at: list[int] = []
        project_at: list[int] = []
        for route in routes:
            key_name, project_name = cool_names[route.index]
            for name in (key_name, project_name):
                if name not in at:
                    at[name] = len(names)
                    names.append(name)
            key_at.append(at[key_name])
            project_at.append(at[project_name])
        self.names: Final = names
        self.key_at: Final = key_at
        self.project_at: Final = project_at


class Admission:
    """Chooses keys and takes capacity for the engine."""

    def __init__(self, config: EngineConfig, store: Store, budgets: BudgetBook) -> None:
        self.config = config
        self.store = store
        self.budgets = budgets
        self.buckets: list[BucketDef] = list(config.buckets)
        self._selectors = {
            pool: Selector(config.strategies[pool], keys, [config.keys[k].weight for k in keys])
            for pool, keys in config.pools.items()
        }
        # By route index: the cooldown names of the route's key and of its project/model.
        self._cool_names = [
            (f"key:{config.keys[r.key].alias}", f"project:{config.keys[r.key].project}/{r.model}")
            for r in sorted(config.routes.values(), key=lambda r: r.index)
        ]
        self._ranks = len(config.classes)
        self._refund = config.accounting.refund_unused
        self._count_failed = config.accounting.count_failed
        # By bucket index: whether unused tokens are still given back to it. Cleared for good
        # once a 429 shows the provider counts more than we do (see after_rate_limit).
        self._refunds = [self._refund and b.tokens for b in config.buckets]
        # By bucket index: whether its burst capacity was learnt below the policy's (see
        # learn_burst); only those are looked at for recovery on each response.
        self._bursts = [False] * len(config.buckets)
        self.epoch = 0
        """Counts the limits learnt from the provider: what fits may have changed."""
        self._taken: tuple[float, ...] = ()  # the limit amounts of the last _take
        self._lease = ""  # the lease of the last _take's holds (a shared store's)
        self._shared = budgets.shared
        # Whether a head's cooldowns are read in one store call (see try_admit).
        self._read_together = not store.exclusive()
        self._budget_sets: dict[str, dict[int, tuple[int, ...]]] = {}  # domain -> key -> budgets
        # Per route and class (route.index * classes + rank): the limits' and the budgets'
        # buckets and floors in one list for the store's atomic acquire, with the budgets and
        # the budget generation they were built for.
        self._combined: dict[int, tuple[tuple[int, ...], int, list[BucketRef], list[float]]] = {}
        # (pool, model, pinned key) -> the routes and the cooldowns to read for them
        self._routes: dict[tuple[str, str, int], _RouteSet] = {}
        # Per route and class: the route's bucket refs, absolute floors, token flags and slices;
        # rebuilt when a limit or a burst is learnt. Decisions are arithmetic on these, not walks
        # of the config.
        self._plans: dict[int, _Plan] = {}

    def routes(self, req: Pending) -> list[Route]:
        """The routes (key, model) the request may take, in pool order."""
        return self._route_set(req).routes

    def _route_set(self, req: Pending) -> _RouteSet:
        cache_key = (req.domain.pool, req.model, req.pinned)
        found = self._routes.get(cache_key)
        if found is None:
            pool = self.config.pools[req.domain.pool]
            keys = (req.pinned,) if req.pinned >= 0 else pool
            get = self.config.routes.get
            routes = [r for k in keys if (r := get((k, req.model))) is not None]
            whole = [r.key for r in routes] == list(pool) and all(
                r.buckets == routes[0].buckets for r in routes
            )
            found = self._routes[cache_key] = _RouteSet(routes, whole, self._cool_names)
        return found

    def _plan(self, route: Route, rank: int) -> _Plan:
        slot = route.index * self._ranks + rank
        plan = self._plans.get(slot)
        if plan is None:
            defs = [self.buckets[b] for b in route.buckets]
            floors = [
                share * ref.capacity for share, ref in zip(route.floors[rank], defs, strict=True)
            ]
            clips = None
            rooms: tuple[float, ...] = ()
            if any(ref.sliced for ref in defs):
                # What is left of a slice above the floor; a class that may use nothing of
                # the bucket checks the whole amount (and so never fits).
                clips = tuple(
                    ref.capacity - floor if ref.sliced and ref.capacity - floor > 0 else INF
                    for ref, floor in zip(defs, floors, strict=True)
                )
                rooms = tuple(
                    ref.limit * (1.0 - share)
                    for ref, share in zip(defs, route.floors[rank], strict=True)
                )
            refs: list[BucketRef] = list(defs)
            plan = _Plan(refs, floors, tuple(ref.tokens for ref in defs), clips, rooms)
            self._plans[slot] = plan
        return plan

    def amounts(self, req: Pending, route: Route) -> list[float]:
        """What the request takes from each of the route's buckets (tokens or 1 request)."""
        return self._plan(route, req.rank).amounts(float(req.charge_tokens))

    def estimate(self, req: Pending, batch: bool) -> float:
        """The most the request can cost (USD)."""
        return estimated_cost(
            self.config.prices[req.model],
            req.prompt,
            req.max_out,
            req.n,
            batch,
            self.config.batch_discount,
        )

    def try_admit(
        self, req: Pending, blocked: set[int], now: float
    ) -> Admitted | Blocked | BudgetShort:
        """Take capacity for ``req`` on the best open key, or say why not.

        A key is open unless it or its project/model rests after an error, or a more urgent
        (or older) waiting request holds back one of its buckets. A request that cannot go holds
        back every bucket of the keys it is waiting for (``Blocked.buckets``): while it waits,
        nothing less urgent draws on them. Keys it waits on only for a rest after an error, keys
        whose limits could never hold it, and keys whose budgets are spent, it does not claim.
        """
        wait = INF
        open_routes = []
        claims: set[int] = set()
        found = self._route_set(req)
        routes = found.routes
        # On a shared store, every cooldown the routes need in one call (one round trip); on an
        # exclusive one (in this process), one call per name is cheaper: no list is built.
        ends = self.store.cooldowns(found.names) if self._read_together else None
        # zip without strict=: compiled, it is a plain loop (the lists are built together).
        for route, key_at, project_at in zip(routes, found.key_at, found.project_at):  # noqa: B905
            if ends is None:
                cool = self.cooldown_end(route)
            else:
                key_end = ends[key_at]
                project_end = ends[project_at]
                cool = key_end if key_end > project_end else project_end
            if cool > now:
                wait = min(wait, cool - now)
            elif not blocked or blocked.isdisjoint(route.buckets):
                open_routes.append(route)
            elif self._fits(req, route):
                claims.update(route.buckets)  # behind its elders, it still waits for this key
        estimate = self.estimate(req, False)
        budget_short: int | None = None
        whole = found.whole and len(open_routes) == len(routes)
        for route in self._ordered(req, open_routes, now, whole):
            budgets = self.budgets_of(req.domain.name, route.key)
            holds = self.budgets.holds(budgets, estimate, now)
            got = self._take(req, route, budgets, holds, now)
            if got == 0.0:
                self._selectors[req.domain.pool].chosen(route.key)
                return Admitted(route, holds, estimate, self._taken, self._lease if holds else "")
            if got < 0:  # this key's budgets are spent: another key may have its own room
                if budget_short is None:
                    budget_short = self.budgets.first_short(budgets, estimate, now)
                continue
            wait = min(wait, got)
            if got < INF:
                claims.update(route.buckets)
        if budget_short is not None and not claims and wait == INF:
            return BudgetShort(budget_short)
        return Blocked(frozenset(claims), wait, budget_short is None)

    def budgets_of(self, domain: str, key: int) -> tuple[int, ...]:
        """The budgets a request of ``domain`` draws on when it goes out on ``key``."""
        by_key = self._budget_sets.get(domain)
        if by_key is None:
            by_key = self._budget_sets[domain] = {}
        found = by_key.get(key)
        if found is None:
            found = self.config.domains[domain].budgets + self.config.key_budgets.get(key, ())
            by_key[key] = found
        return found

    def _fits(self, req: Pending, route: Route) -> bool:
        """Whether the route's limits could ever hold the request (down to its class floor)."""
        plan = self._plan(route, req.rank)
        checked = plan.checked(plan.amounts(float(req.charge_tokens)))
        return all(
            amount + floor <= ref.capacity + 1e-9
            for amount, floor, ref in zip(checked, plan.floors, plan.refs, strict=True)
        )

    def batch_key(self, req: Pending) -> int:
        """The key a Batch API request goes out on: the pool's next turn (no limits apply)."""
        keys = list(self.config.pools[req.domain.pool])
        selector = self._selectors[req.domain.pool]
        key = selector.order(keys, lambda _: 0.0)[0]
        selector.chosen(key)
        return key

    def _ordered(
        self, req: Pending, routes: list[Route], now: float, whole: bool = False
    ) -> list[Route]:
        """``routes`` in the order to try them. ``whole``: they are every key of the pool, in
        its order, all on one project's limits."""
        if len(routes) <= 1:
            return routes
        selector = self._selectors[req.domain.pool]
        if whole and selector.strategy != "weighted":
            return selector.rotated(routes)  # what turn() gives, without building its tables
        by_key = {r.key: r for r in routes}
        if selector.strategy != "weighted" and all(r.buckets == routes[0].buckets for r in routes):
            # Keys of one project: equal headroom by construction, so only the turn matters.
            return [by_key[k] for k in selector.turn(list(by_key))]
        cache: dict[tuple[int, ...], float] = {}

        def headroom(key: int) -> float:
            route = by_key[key]
            if route.buckets not in cache:
                cache[route.buckets] = self._headroom(req, route, now)
            return cache[route.buckets]

        return [by_key[k] for k in selector.order(list(by_key), headroom)]

    def _headroom(self, req: Pending, route: Route, now: float) -> float:
        """The smallest share of capacity left on the route's buckets after admitting ``req``."""
        plan = self._plan(route, req.rank)
        if not plan.refs:
            return 1.0
        levels = self.store.levels(plan.refs, now)
        checked = plan.checked(plan.amounts(float(req.charge_tokens)))
        return min(
            (level - floor - amount) / max(ref.capacity, 1e-9)
            for level, floor, amount, ref in zip(
                levels, plan.floors, checked, plan.refs, strict=True
            )
        )

    def _take(
        self, req: Pending, route: Route, budgets: tuple[int, ...], holds: list[Hold], now: float
    ) -> float:
        """0.0 if taken; seconds to wait if a limit is short; -1.0 if a budget is."""
        plan = self._plan(route, req.rank)
        refs, floors = plan.refs, plan.floors
        tokens = float(req.charge_tokens)
        amounts = [tokens if flag else 1.0 for flag in plan.tokens]
        self._taken = tuple(amounts)
        if plan.clips is not None:
            return self._take_sliced(plan, holds, now)
        if holds:
            # The limits' and the budgets' buckets, in one list, rebuilt only when a budget
            # period rolls over (or a limit is learnt): a decision is then arithmetic.
            slot = route.index * self._ranks + req.rank
            generation = self.budgets.generation
            both = self._combined.get(slot)
            if both is None or both[1] != generation or both[0] != budgets:
                both = (
                    budgets,
                    generation,
                    [*refs, *(bucket for bucket, _ in holds)],
                    [*floors, *([0.0] * len(holds))],
                )
                self._combined[slot] = both
            refs, floors = both[2], both[3]
            amounts += [usd for _, usd in holds]
            if self._shared:  # the holds leased, in the same atomic take
                wait, self._lease = self.store.acquire_leased(
                    refs, amounts, floors, now, len(plan.refs), now + HOLD_LEASE_S
                )
            else:
                wait = self.store.acquire(refs, amounts, floors, now)
            if wait == 0.0:
                return wait
            return self._budget_short(holds, wait, now)
        return self.store.acquire(refs, amounts, floors, now)

    def _budget_short(self, holds: list[Hold], wait: float, now: float) -> float:
        """-1.0 if one of the budgets' holds does not fit (a budget is short), else ``wait``."""
        levels = self.store.levels([bucket for bucket, _ in holds], now)
        if any(level + 1e-12 < usd for level, (_, usd) in zip(levels, holds, strict=True)):
            return -1.0
        return wait

    def _take_sliced(self, plan: _Plan, holds: list[Hold], now: float) -> float:
        """:meth:`_take` on a route with a sliced limit: the store checks each amount clipped
        to its slice, then the part above the clip is taken as debt (the provider admits a
        request larger than a slice once the slice is unused, and counts all of it)."""
        full = list(self._taken)
        checked = plan.checked(full)
        refs: list[BucketRef] = list(plan.refs)
        floors = list(plan.floors)
        amounts = list(checked)
        for bucket, usd in holds:
            refs.append(bucket)
            floors.append(0.0)
            amounts.append(usd)
        if self._shared and holds:
            wait, self._lease = self.store.acquire_leased(
                refs, amounts, floors, now, len(plan.refs), now + HOLD_LEASE_S
            )
        else:
            wait = self.store.acquire(refs, amounts, floors, now)
        if wait == 0.0:
            for ref, whole, part in zip(plan.refs, full, checked, strict=True):
                if whole > part:
                    self.store.adjust_later(ref, part - whole, now)
            return 0.0
        if not holds:
            return wait
        return self._budget_short(holds, wait, now)

    def too_large(self, req: Pending) -> str:
        """Why the request can never fit any key of its pool, or '' if it can."""
        why = f"no key of pool {req.domain.pool!r} can serve {req.model!r}"
        for route in self.routes(req):
            for b, share, amount in zip(
                route.buckets, route.floors[req.rank], self.amounts(req, route), strict=True
            ):
                ref = self.buckets[b]
                # A sliced limit takes a request up to the whole limit, once a slice is unused.
                room = ref.limit * (1.0 - share)
                if amount > room + 1e-9:
                    unit = "tokens" if ref.tokens else "requests"
                    why = (
                        f"request needs {amount:,.0f} {unit} but the {ref.dimension} limit of "
                        f"{ref.owner} for {ref.model} leaves class "
                        f"{self.config.classes[req.rank]!r} at most {room:,.0f}"
                    )
                    break
            else:
                return ""
        return why

    def cooldown_end(self, route: Route) -> float:
        """When the route's key and project/model may be used again (epoch seconds)."""
        key_name, project_name = self._cool_names[route.index]
        key_end = self.store.cooldown(key_name)
        project_end = self.store.cooldown(project_name)
        return key_end if key_end > project_end else project_end

    def rest(self, route_key: tuple[int, str], what: str, until: float) -> None:
        """Rest the route's ``key`` or ``project`` until ``until``."""
        key_name, project_name = self._cool_names[self.config.routes[route_key].index]
        self.store.set_cooldown(key_name if what == "key" else project_name, until)

    # ------------------------------------------------------------ after the attempt

    def settle(self, req: Pending, used: int, now: float) -> None:
        """Correct the token charges to the ``used`` tokens (giving back what was not used),
        where the provider is assumed to (``refund_unused``); else the charge stands."""
        if not self._refund:
            return
        refunds = self._refunds
        for b, amount in req.charges:
            if refunds[b] and amount != used:
                self.store.adjust_later(self.buckets[b], amount - used, now)

    def refund(self, req: Pending, now: float) -> None:
        """Give back what a refused attempt took that the provider did not count: everything,
        or, where failed requests count (``count_failed``), all but its request per minute."""
        keep = self._count_failed
        for b, amount in req.charges:
            ref = self.buckets[b]
            if not (keep and ref.dimension == "rpm"):
                self.store.adjust_later(ref, amount, now)
        req.charges = []

    def learn(
        self,
        req: Pending,
        headers: Mapping[str, str],
        now: float,
        read: RateLimitHeaders | None = None,
    ) -> None:
        """Correct the project's per-minute buckets from a response's rate-limit headers:
        adopt a lower real limit, a smaller burst capacity where the provider holds less at
        once (``remaining + reset * rate`` while ``remaining > 0``, when it is exact: see
        :meth:`learn_burst`), a learnt one back up where it shows more room than that allows,
        and lower our level to what the provider says remains. ``read``: the headers already
        read (else they are read here)."""
        info = read if read is not None else parse_rate_limit_headers(headers)
        if not info.any():
            return
        project = self.config.keys[req.key].project
        for b, _ in req.charges:
            ref = self.buckets[b]
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
                capacity = ref.capacity * scale
                if not ref.tokens and capacity < 1.0:  # a slice holds one request at least
                    capacity = min(limit, 1.0)
                ref = replace(ref, capacity=capacity, rate=limit / 60)
                self.buckets[b] = ref
                self._plans.clear()
                self._combined.clear()
                self.epoch += 1
            if remaining is None:
                continue
            if self._bursts[b] and remaining > ref.capacity * BURST_RECOVERY + 1.0:
                # The provider has just had more room than the learnt capacity allows: it was
                # learnt too low (a 429 with another cause). Back up to what it showed.
                ref = self._set_burst(b, remaining, now)
            reset = info.reset_tokens if ref.tokens else info.reset_requests
            if reset is not None and remaining > 0:  # exact only while it has room left
                held = remaining + reset * _rate(limit, ref)
                if held < ref.capacity * (1.0 - BURST_MARGIN) - 1.0:
                    ref = self.adopt_burst(b, held, limit, now)
            # The provider counted "remaining" when it admitted the attempt; the bucket has
            # refilled since. Our own later admissions are already in our level.
            since = max(now - req.sent_at, 0.0)
            self.store.clamp_later(ref, remaining + ref.rate * since, now)

    def after_rate_limit(
        self,
        req: Pending,
        limit: str,
        delay: float,
        now: float,
        read: RateLimitHeaders | None = None,
        error: ErrorBody | None = None,
    ) -> None:
        """After a pace 429: rest the project/model for ``delay`` seconds, and lower our view of
        the bucket that was hit to what "try again in" implies (the request fits after it).

        A 429 on a token limit means the provider counted more than we did: if unused tokens
        were being given back, it is taken as a sign that the provider keeps them, and the
        route's token limits get nothing back at settlement from now on (more cautious than
        the policy, never less: a 429 with another cause, such as another client on the
        project, costs throughput, not more 429s). ``read`` and ``error``: the 429's rate-limit
        headers and body, from which a smaller burst capacity may be learnt first
        (:meth:`learn_burst`)."""
        self.rest((req.key, req.model), "project", now + delay)
        if read is not None:
            self.learn_burst(req, limit, read, error, now)
        route = self.config.routes[(req.key, req.model)]
        plan = self._plan(route, req.rank)
        checked = plan.checked(plan.amounts(float(req.charge_tokens)))
        for b, amount in zip(route.buckets, checked, strict=True):
            ref = self.buckets[b]
            if limit == "tokens" and self._refunds[b]:
                self._refunds[b] = False
            if (
                ref.scope == "project"
                and ref.tokens == (limit == "tokens")
                and ref.dimension in ("rpm", "tpm")
            ):
                self.store.clamp_later(ref, amount - ref.rate * delay, now)

    def learn_burst(
        self,
        req: Pending,
        limit: str,
        read: RateLimitHeaders,
        error: ErrorBody | None,
        now: float,
    ) -> None:
        """After a pace 429 on ``limit`` (``tokens`` or ``requests``): if the provider holds less
        of a minute's allowance at once than the engine's bucket does, learn its burst capacity.

        The rule. A per-minute limit of ``L`` refills at ``r = L / 60`` a second. OpenAI may
        spend it in slices (60,000 RPM as 1,000 a second): then it holds at most a slice at
        once, however much of the minute is unused, while the policy may assume the whole
        minute. A 429 tells how much the provider holds at once two ways, neither (but for the
        headers' rounding) below it:

        - ``remaining + reset * r``: what it still has room for plus what it has in use
          (``x-ratelimit-reset-*`` is the time until the bucket is empty again). Exact while
          the bucket has room left (``remaining > 0``); an upper bound while it is full or in
          debt. Every answer's headers tell this much (:meth:`learn` reads it there, where it
          is exact);
        - ``requested + (reset - try_again) * r``: when the request fits, ``try_again`` from
          now, the provider holds what is then still in use plus the request, and no more (it
          did not fit a moment before). Exact while the request is no larger than a slice
          (even with the bucket in debt); an upper bound (the request) when it is larger.

        The smaller is the estimate. It is adopted only if the engine's own view had room for
        the request (its level, the refused attempt given back, covers what the request is
        checked at: else the engine itself explains the 429) and if it lies below the bucket's
        capacity by more than the numbers' rounding (``BURST_MARGIN``). A provider spending
        whole minutes, as assumed, shows ``remaining + reset * r = L`` and ``requested + (reset
        - try_again) * r = L`` whatever else has used the bucket, so a 429 from another cause
        (another client on the project, a count we did not know) teaches nothing here. Without
        a ``reset`` header nothing is learnt (the rest and the clamp still apply).

        What is learnt: the bucket keeps its rate (so its limit, and what is too large), its
        capacity becomes the estimate less the numbers' precision (``HEADER_PRECISION_S`` of
        allowance: erring below the provider costs a hair of throughput, above it a 429 on
        every full burst), never below one second's allowance (``BURST_FLOOR_S``, one
        request at least) nor above the policy's, and it is spent in slices: a request larger
        than the capacity still goes once the bucket is full and leaves it in debt, as the
        provider takes it. Per bucket, as a learnt limit (the same epoch: plans rebuilt, what
        can ever fit checked again). It only goes down here, so the engine is never more
        permissive than the policy; one learnt too low (the numbers spoke of a bucket other
        than the one hit) recovers as soon as a response's headers show more room than it
        allows (:meth:`learn`). Without headers, a capacity stays learnt: it costs burst
        capacity, not 429s. No recovery with time: a provider's slices do not change, and
        probing for more room would cost a 429 each time.
        """
        tokens = limit == "tokens"
        reset = read.reset_tokens if tokens else read.reset_requests
        if reset is None:
            return
        remaining = read.remaining_tokens if tokens else read.remaining_requests
        shown = read.limit_tokens if tokens else read.limit_requests
        try_again = error.try_again_s if error is not None else None
        route = self.config.routes[(req.key, req.model)]
        project = self.config.keys[req.key].project
        plan = self._plan(route, req.rank)
        amounts = plan.amounts(float(req.charge_tokens))
        checked = plan.checked(amounts)
        for i, b in enumerate(route.buckets):
            ref = self.buckets[b]
            if (
                ref.tokens != tokens
                or ref.scope != "project"
                or ref.owner != project
                or ref.dimension not in ("rpm", "tpm")
            ):
                continue
            rate = _rate(shown, ref)
            held = INF
            if remaining is not None:
                held = remaining + reset * rate
            if try_again is not None:
                requested = amounts[i]
                if error is not None and error.requested is not None:
                    requested = error.requested
                held = min(held, requested + max(reset - try_again, 0.0) * rate)
            if not held < ref.capacity * (1.0 - BURST_MARGIN) - 1.0:
                continue
            if self.store.levels([ref], now)[0] + 1e-9 < checked[i]:
                continue  # the engine did not think it had room either
            self.adopt_burst(b, held, shown, now)

    def adopt_burst(self, b: int, held: float, shown: float | None, now: float) -> BucketDef:
        """Learn that the provider holds ``held`` units of bucket ``b`` at once (headers showing
        ``shown`` per minute): its burst capacity becomes that less the numbers' precision, at
        least one second's allowance (one request), at most the policy's, spent in slices (see
        :meth:`learn_burst`). Returns the bucket as it now is."""
        ref = self.buckets[b]
        capacity = held - _rate(shown, ref) * HEADER_PRECISION_S
        floor = ref.rate * BURST_FLOOR_S
        if not ref.tokens and floor < 1.0:
            floor = 1.0
        floor = min(floor, self._policy_burst(b))
        return self._set_burst(b, capacity if capacity > floor else floor, now)

    def _policy_burst(self, b: int) -> float:
        """The burst capacity the policy gives bucket ``b`` at its current rate (a limit learnt
        from headers scales it)."""
        base = self.config.buckets[b]
        if base.rate <= 0:
            return base.capacity
        return base.capacity * (self.buckets[b].rate / base.rate)

    def _set_burst(self, b: int, capacity: float, now: float) -> BucketDef:
        """Give bucket ``b`` the burst ``capacity`` (at most the policy's): spent in slices
        below the policy's, as the policy says at it. Returns the bucket as it now is."""
        ref = self.buckets[b]
        base = self.config.buckets[b]
        policy = self._policy_burst(b)
        if capacity >= policy - 1e-9:
            ref = replace(ref, capacity=policy, sliced=base.sliced)
            self._bursts[b] = False
        else:
            ref = replace(ref, capacity=capacity, sliced=True)
            self._bursts[b] = True
        self.buckets[b] = ref
        self.store.clamp_later(ref, ref.capacity, now)  # a level above the new capacity is cut
        self._plans.clear()
        self._combined.clear()
        self.epoch += 1
        return ref


def _rate(shown: float | None, ref: BucketDef) -> float:
    """The rate (units a second) of a per-minute limit whose headers show ``shown`` per minute
    (the bucket's own rate where they show none)."""
    return shown / 60.0 if shown is not None and shown > 0 else ref.rate
