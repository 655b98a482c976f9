"""Hypothesis drives the engine with random events on a fake clock and checks its invariants.

- No bucket ever admits more than its capacity plus what it refilled, over any window (the
  ledger is kept here, independently of the engine, from its Send actions and the documented
  refunds, under each accounting rule the policy may assume: unused tokens at settlement only
  where the provider gives them back, and no more after a 429 on tokens; on a refused attempt
  everything, or its tokens only where failed requests count). A sliced limit may take one
  request larger than its slice: over a window, at most the larger of the two plus refill.
- Budget spend (settled plus held) never passes the budget when requests cost no more than their
  estimates.
- While a request waits, nothing less urgent is admitted on any limit of the keys it waits for
  (not resting after an error, able to hold it at all).
- The same events always give the same actions; nothing waits forever.
"""

from __future__ import annotations

import json
from collections import defaultdict

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from keypolicy.core import (
    Action,
    Advance,
    Cancel,
    Complete,
    Engine,
    Event,
    Failed,
    Reject,
    Send,
    Settled,
    Submit,
)
from keypolicy.core.config import BucketDef
from keypolicy.policy import load_policy_text
from keypolicy.policy.compile import compile_policy
from keypolicy.policy.model import Policy
from keypolicy.state import MemoryStore

from .conftest import T0

POLICY = """\
version: 1
name: invariants
organization:
  id: org
  models: {{gpt-4o-mini: {{rpm: {org_rpm}, tpm: {org_tpm}}}}}
projects:
  p: {{models: {{gpt-4o-mini: {{rpm: {rpm}, tpm: {tpm}}}}}}}
  q: {{models: {{gpt-4o-mini: {{rpm: {rpm}, tpm: {tpm}, quantum: 10s}}}}}}
keys:
  k1: {{project: p, env: K1}}
  k2: {{project: q, env: K2}}
pools:
  one: {{keys: [k1]}}
  both: {{keys: [k1, k2], strategy: {strategy}}}
priorities:
  - {{name: high, reserve: {r0}, max_wait: 30s}}
  - {{name: mid, reserve: {r1}, max_wait: 60s}}
  - {{name: low, max_wait: 120s, deferrable: true}}
domains:
  a: {{pool: one, priority: high, model: gpt-4o-mini}}
  b: {{pool: both, priority: mid, model: gpt-4o-mini}}
  c: {{pool: both, priority: low, model: gpt-4o-mini, defer: {{mode: queue, deadline: 5m}}}}
  d: {{pool: one, priority: low, model: gpt-4o-mini}}
budgets:
  all: {{applies_to: all, usd: {usd}, per: day}}
provider: {{refund_unused: {refund}, count_failed: {count_failed}, quantum_tokens: {slice}}}
"""

PRICE_IN, PRICE_OUT = 0.15e-6, 0.60e-6
RATE_BODY = json.dumps(
    {
        "error": {
            "message": "Please try again in 1.5s.",
            "type": "tokens",
            "code": "rate_limit_exceeded",
        }
    }
)


class EngineMachine(RuleBasedStateMachine):
    """Random submissions, settlements, failures, cancels and time steps."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.events: list[Event] = []
        self.actions: list[Action] = []
        self.inflight: dict[str, Send] = {}
        self.requests: dict[str, tuple[str, int, int]] = {}  # id -> (domain, prompt, out)
        self.ledger: dict[int, list[tuple[float, float]]] = defaultdict(list)  # bucket -> flows
        self.settled_usd = 0.0
        self.held: dict[str, float] = {}
        self.count = 0

    @initialize(
        rpm=st.integers(5, 60),
        tpm=st.integers(2_000, 20_000),
        org=st.floats(0.6, 2.0),
        r0=st.sampled_from(["0%", "10%", "30%"]),
        r1=st.sampled_from(["0%", "20%"]),
        usd=st.sampled_from([0.002, 0.01, 1.0]),
        strategy=st.sampled_from(["least_loaded", "round_robin", "weighted"]),
        seed=st.integers(0, 3),
        refund=st.booleans(),
        count_failed=st.booleans(),
        slice_=st.sampled_from(["null", "5s"]),
    )
    def setup(
        self,
        rpm: int,
        tpm: int,
        org: float,
        r0: str,
        r1: str,
        usd: float,
        strategy: str,
        seed: int,
        refund: bool,
        count_failed: bool,
        slice_: str,
    ) -> None:
        text = POLICY.format(
            rpm=rpm,
            tpm=tpm,
            org_rpm=int(rpm * org) + 1,
            org_tpm=int(tpm * org) + 1,
            r0=r0,
            r1=r1,
            usd=usd,
            strategy=strategy,
            refund=str(refund).lower(),
            count_failed=str(count_failed).lower(),
            slice=slice_,
        )
        self.text, self.seed, self.usd = text, seed, usd
        self.count_failed = count_failed
        # Token buckets that get unused tokens back at settlement: none without refunds, and
        # none of a route once a 429 on tokens came back from it.
        self.refunded = {
            b
            for b, ref in enumerate(compile_policy(self._policy()).buckets)
            if refund and ref.tokens
        }
        self.engine = self._fresh()
        self.keys = {k.alias: i for i, k in enumerate(self.engine.config.keys)}

    def _policy(self) -> Policy:
        return load_policy_text(self.text, "inv.yaml").policy

    def _fresh(self) -> Engine:
        return Engine(compile_policy(self._policy()), MemoryStore(), self.seed)

    # ---------------------------------------------------------------- driving

    def _feed(self, event: Event) -> None:
        waiting = self._heads()
        got = self.engine.handle(event)
        self.events.append(event)
        self.actions += got
        # What each waiting head may claim is judged after the event: keys that started to rest
        # during it are no longer waited for.
        claims = {rid: self._claims(rid) for rid in waiting}
        for action in got:
            self._account(action)
            if isinstance(action, Send):
                self._check_priority(action, claims)

    def _heads(self) -> list[str]:
        """The next in line of each queue (class, pool): within a class requests go in order, so
        those behind the head wait on the same keys as the head."""
        heads: dict[tuple[int, str], str] = {}
        for rid in self.engine.waiting():
            domain = self.engine.config.domains[self.requests[rid][0]]
            line = (domain.rank, domain.pool)
            if line not in heads or int(rid[1:]) < int(heads[line][1:]):
                heads[line] = rid
        return list(heads.values())

    def _claims(self, rid: str) -> tuple[int, set[int]]:
        """A waiting request's class and the buckets of the keys it waits for: not resting after
        an error, able to hold it at all; none if the budget, not capacity, stops it."""
        domain = self.engine.config.domains[self.requests[rid][0]]
        _, prompt, out = self.requests[rid]
        claims: set[int] = set()
        estimate = prompt * PRICE_IN + out * PRICE_OUT
        if self.settled_usd + sum(self.held.values()) + estimate > self.usd:
            return domain.rank, claims
        for k in self.engine.config.pools[domain.pool]:
            key = self.engine.config.keys[k]
            names = (f"key:{key.alias}", f"project:{key.project}/gpt-4o-mini")
            if max(self.engine.store.cooldown(n) for n in names) > self.now:
                continue
            route = self.engine.config.routes[(k, "gpt-4o-mini")]
            refs = [self.engine.bucket(b) for b in route.buckets]
            need = [
                _checked(ref, prompt + out if ref.tokens else 1, share) + share * ref.capacity
                for ref, share in zip(refs, route.floors[domain.rank], strict=True)
            ]
            if all(n <= ref.capacity + 1e-9 for n, ref in zip(need, refs, strict=True)):
                claims |= set(route.buckets)
        return domain.rank, claims

    def _route(self, send: Send) -> tuple[int, ...]:
        return self.engine.config.routes[(self.keys[send.key], send.model)].buckets

    def _account(self, action: Action) -> None:
        if isinstance(action, Send):
            self.inflight[action.request_id] = action
            for b in self._route(action):
                amount = action.charge_tokens if self.engine.bucket(b).tokens else 1
                self.ledger[b].append((self.now, amount))
            _, prompt, out = self.requests[action.request_id]
            self.held[action.request_id] = prompt * PRICE_IN + out * PRICE_OUT
        elif isinstance(action, Complete | Reject):
            self.inflight.pop(action.request_id, None)
            self.held.pop(action.request_id, None)
            if isinstance(action, Complete):
                self.settled_usd += action.cost_usd

    def _check_priority(self, send: Send, claims: dict[str, tuple[int, set[int]]]) -> None:
        rank = self.engine.config.domains[self.requests[send.request_id][0]].rank
        used = set(self._route(send))
        still = set(self.engine.waiting())
        for rid, (other_rank, buckets) in claims.items():
            if rid in still and other_rank < rank:
                taken = buckets & used
                assert not taken, (
                    f"{send.request_id} (class {rank}) admitted on {taken} while "
                    f"{rid} (class {other_rank}) waits for them; events: "
                    + "\n".join(map(repr, self.events))
                )

    @rule(domain=st.sampled_from("abcd"), prompt=st.integers(10, 1500), out=st.integers(1, 1500))
    def submit(self, domain: str, prompt: int, out: int) -> None:
        self.count += 1
        rid = f"r{self.count}"
        self.requests[rid] = (domain, prompt, out)
        self._feed(Submit(rid, domain, self.now, prompt_tokens=prompt, max_output_tokens=out))

    @rule(dt=st.floats(0.0, 20.0))
    def advance(self, dt: float) -> None:
        self.now += dt
        self._feed(Advance(self.now))

    @rule()
    def advance_to_wake(self) -> None:
        if self.engine.next_wake is not None:
            self.now = max(self.now, self.engine.next_wake)
        self._feed(Advance(self.now))

    @precondition(lambda self: bool(self.inflight))
    @rule(data=st.data(), completion_share=st.floats(0.0, 1.0))
    def settle(self, data: st.DataObject, completion_share: float) -> None:
        rid = data.draw(st.sampled_from(sorted(self.inflight)))
        send = self.inflight[rid]
        _, prompt, out = self.requests[rid]
        completion = int(out * completion_share)
        for b in self._route(send):
            if b in self.refunded:  # the documented refund of unused tokens
                self.ledger[b].append((self.now, -(send.charge_tokens - prompt - completion)))
        self._feed(Settled(rid, self.now, prompt, completion))

    @precondition(lambda self: bool(self.inflight))
    @rule(data=st.data(), status=st.sampled_from([429, 503, 400, None]))
    def fail(self, data: st.DataObject, status: int | None) -> None:
        rid = data.draw(st.sampled_from(sorted(self.inflight)))
        send = self.inflight.pop(rid)
        self.held.pop(rid, None)
        if status in (429, 400):  # refused or invalid: nothing was consumed, all comes back
            for b in self._route(send):  # (but the request itself, where failures count)
                tokens = self.engine.bucket(b).tokens
                if tokens or not self.count_failed:
                    self.ledger[b].append((self.now, -(send.charge_tokens if tokens else 1)))
        if status == 429:  # on tokens: the provider keeps what it counted from now on
            self.refunded -= set(self._route(send))
        body = RATE_BODY if status == 429 else None
        self._feed(Failed(rid, self.now, status, {}, body))

    @precondition(lambda self: bool(self.requests))
    @rule(data=st.data())
    def cancel_waiting(self, data: st.DataObject) -> None:
        waiting = self.engine.waiting()
        if waiting:
            self._feed(Cancel(data.draw(st.sampled_from(sorted(waiting))), self.now))

    # ---------------------------------------------------------------- invariants

    @invariant()
    def no_bucket_admits_more_than_it_has(self) -> None:
        for b, flows in self.ledger.items():
            bucket = self.engine.config.buckets[b]
            # The worst window ends at the latest flow and starts at some earlier flow time.
            end = flows[-1][0]
            total = most = 0.0
            for t, amount in reversed(flows):
                total += amount
                most = max(most, amount)
                room = max(bucket.capacity, most) if bucket.sliced else bucket.capacity
                assert total <= room + bucket.rate * (end - t) + 1e-6, (
                    f"{bucket.name}: {total} admitted in {end - t:.3f}s"
                )

    @invariant()
    def budget_is_never_overspent(self) -> None:
        assert self.settled_usd + sum(self.held.values()) <= self.usd + 1e-12

    def teardown(self) -> None:
        if not hasattr(self, "engine"):
            return
        # Nothing waits forever: with every in-flight request settled, time drains the queue.
        for rid in sorted(self.inflight):
            _, prompt, out = self.requests[rid]
            self._feed(Settled(rid, self.now, prompt, out // 2))
        for _ in range(1000):
            if self.engine.next_wake is None:
                break
            self.now = max(self.now, self.engine.next_wake)
            self._feed(Advance(self.now))
        assert self.engine.waiting() == []
        assert self.engine.next_wake is None
        # The same events give the same actions.
        replay = self._fresh()
        again: list[Action] = []
        for event in self.events:
            again += replay.handle(event)
        assert again == self.actions


def _checked(ref: BucketDef, amount: float, share: float) -> float:
    """What a bucket checks of ``amount`` for a class leaving ``share``: a sliced one at most
    what is left of a slice above the floor (a larger request goes once the slice is unused),
    unless it is more than the class may take of the whole limit (then it never fits)."""
    room = ref.capacity * (1 - share)
    if ref.sliced and room > 0 and amount <= ref.limit * (1 - share):
        return min(amount, room)
    return amount


TestEngineInvariants = EngineMachine.TestCase
TestEngineInvariants.settings = settings(
    settings.default,
    max_examples=max(200, settings.default.max_examples),
    stateful_step_count=50,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
