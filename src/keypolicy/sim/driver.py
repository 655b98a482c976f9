"""The simulator driver: the decision core and the provider model on SimPy's virtual clock.

It has no decision logic of its own. Arrivals become :class:`~keypolicy.core.events.Submit`
events; the engine's actions are carried out against :class:`~keypolicy.upstream.Provider`
(which answers after its modelled latency), and the answers go back to the engine as
``Settled``/``Failed`` events. The engine's ``next_wake`` becomes a SimPy timeout. Every request
ends as a :class:`~keypolicy.records.UsageRecord`.

Time: SimPy counts seconds from 0; the engine sees epoch seconds (the traffic's start plus
SimPy's now), so calendar budgets and deferral windows fall where they would in the real day.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import simpy
from simpy.events import Timeout

from keypolicy.core import (
    Action,
    Advance,
    Alert,
    Complete,
    Defer,
    Engine,
    Event,
    Failed,
    Reject,
    Retry,
    Send,
    Settled,
    StoreFault,
    Submit,
)
from keypolicy.core.headers import RateLimitHeaders
from keypolicy.metrics import Metrics
from keypolicy.policy.compile import compile_policy
from keypolicy.policy.model import Policy
from keypolicy.records import Outcome as RecordOutcome
from keypolicy.records import UsageRecord, outcome_of
from keypolicy.sim.arrival import Arrival
from keypolicy.sim.batching import GATHERING, BatchGatherer, Gathering
from keypolicy.sim.transit import Transit
from keypolicy.state import MemoryStore
from keypolicy.upstream import Provider, ProviderLimits, ProviderSettings, UpstreamRequest
from keypolicy.upstream.batches import QueueFull, batch_expired
from keypolicy.upstream.errors import insufficient_quota
from keypolicy.upstream.outcome import Outcome, RateLimitNumbers, Usage

__all__ = ["Simulation", "char_estimate"]

RUNTIME_CHARS_PER_TOKEN: Final = 4.0
"""The runtime's character estimate: one token per this many characters
(``keypolicy.estimate.CHARS_PER_TOKEN``, held equal by tests/fidelity/test_sim_estimate.py; not
imported: that module loads the tokenizer's package, 0.4 s more for every simulation)."""


@dataclass(init=False)
class _Life:
    """What the driver remembers of a request until it ends."""

    arrival: Arrival
    submitted: float
    started: float | None = None
    key: str = ""
    project: str = ""
    model: str = ""
    deferred: bool = False
    batch: bool = False
    attempt: int = 0
    ticket: int | None = None
    cached: int = 0
    completion: int = 0
    prompt: int = 0
    # While an attempt is out: the run it answers to, the attempt, and the provider's answer.
    sim: Simulation | None = field(default=None, init=False, repr=False, compare=False)
    send: Send | None = field(default=None, init=False, repr=False, compare=False)
    outcome: Outcome | None = field(default=None, init=False, repr=False, compare=False)

    def __call__(self, _: simpy.Event) -> None:
        """The provider's answer arrives (the life is its timeout's callback: no closure)."""
        sim, send, outcome = self.sim, self.send, self.outcome
        self.sim = self.send = self.outcome = None
        if sim is not None and send is not None and outcome is not None:
            sim._answer(self, send, outcome)

    def __init__(
        self,
        arrival: Arrival,
        submitted: float,
        started: float | None = None,
        key: str = "",
        project: str = "",
        model: str = "",
        deferred: bool = False,
        batch: bool = False,
        attempt: int = 0,
        ticket: int | None = None,
        cached: int = 0,
        completion: int = 0,
        prompt: int = 0,
    ) -> None:
        self.arrival = arrival
        self.submitted = submitted
        self.started = started
        self.key = key
        self.project = project
        self.model = model
        self.deferred = deferred
        self.batch = batch
        self.attempt = attempt
        self.ticket = ticket
        self.cached = cached
        self.completion = completion
        self.prompt = prompt
        self.sim = None
        self.send = None
        self.outcome = None


def _request(
    arrival: Arrival, project: str, model: str, rate_prompt: int | None = None
) -> UpstreamRequest:
    """The provider's view of an arrival sent on ``project`` for ``model``, its limiter charging
    ``rate_prompt`` tokens for the prompt (``None``: the exact count). Its shared prefix is named
    by its domain: every request of a domain starts with the same system prompt."""
    return UpstreamRequest(
        project,
        model,
        prompt_tokens=arrival.prompt_tokens,
        max_output=arrival.max_output_tokens,
        completion_tokens=arrival.completion_tokens,
        shared_prefix=arrival.domain,
        shared_prefix_tokens=arrival.shared_prefix,
        rate_prompt_tokens=rate_prompt,
    )


def char_estimate(prompt_tokens: int, text_chars_per_token: float, divisor: float) -> int:
    """The character estimate of a prompt of ``prompt_tokens`` exact tokens whose text has
    ``text_chars_per_token`` characters per token, by a limiter counting one token per
    ``divisor`` characters (rounded up, as both the provider and the runtime do)."""
    return math.ceil(prompt_tokens * text_chars_per_token / divisor)


def _read(numbers: RateLimitNumbers | None) -> RateLimitHeaders | None:
    """The provider model's rate-limit numbers as the engine reads headers: the values its
    headers state (tests/sim/test_read_headers.py holds the two equal), without writing them
    out as text and parsing them back on every answer."""
    if numbers is None:
        return None
    return RateLimitHeaders(*numbers)


class Simulation:
    """One run: one policy, one traffic, one seed. ``run()`` returns its :class:`Metrics`.

    ``chars_per_token`` gives, by domain, how many characters of prompt text an exact token
    stands for: the engine is then told the runtime's character estimate of each prompt
    (``Submit.rate_prompt_tokens``) and the provider charges its own, as the live ones do
    (a domain absent: both charge the exact count, as before). ``transit``: how long requests
    take to reach the provider and their answers to come back (:mod:`keypolicy.sim.transit`;
    ``None``: no time at all, as before).
    """

    def __init__(
        self,
        policy: Policy,
        arrivals: Iterator[Arrival],
        start: float,
        seed: int,
        *,
        provider_settings: ProviderSettings | None = None,
        provider_limits: ProviderLimits | None = None,
        on_record: Callable[[UsageRecord], None] | None = None,
        on_progress: Callable[[float], None] | None = None,
        chars_per_token: Mapping[str, float] | None = None,
        transit: Transit | None = None,
        batch_gathering: Gathering | None = GATHERING,
    ) -> None:
        self.env = simpy.Environment()
        self._chars_per_token = dict(chars_per_token or {})
        self._transit = transit
        self._transit_rng = random.Random(seed + 2_000_003)  # its own: other draws unchanged
        self.start = start
        self.engine = Engine(compile_policy(policy), MemoryStore(), seed)
        limits = provider_limits or ProviderLimits.from_policy(policy)
        self.provider = Provider(
            limits,
            provider_settings,
            random.Random(seed + 1_000_003),
            header_text=False,
            origin=start,
        )
        self._arrivals = arrivals
        # Batch requests gathered into files as the runtime's job worker does, by default with
        # its settings (None: a batch of its own per request): sim/batching.py.
        self._gatherer = (
            None
            if batch_gathering is None
            else BatchGatherer(
                self.env, self.provider, batch_gathering, self._batch_done, self._batch_failed
            )
        )
        self._lives: dict[str, _Life] = {}
        self._wake_at = float("inf")
        self._wake_token = 0
        self._on_record = on_record
        self._on_progress = on_progress
        self._priority = {n: d.priority for n, d in policy.domains.items()}
        self.metrics = Metrics(
            start, policy.timezone, {n: d.pool for n, d in policy.domains.items()}, self._priority
        )
        self.stopped = False
        self._due: Arrival | None = None  # the next arrival, once its time has come
        self._count = 0  # arrivals so far
        self._fed = False  # whether every arrival has come
        self._t = 0.0  # SimPy's clock as last read (seconds since the start)

    # ------------------------------------------------------------------ running

    def run(self, until: float | None = None) -> Metrics:
        """Simulate until the traffic is over and every request has ended (or until ``until``
        seconds), then close the requests still open as deferred."""
        self.env.process(self._start())
        self.env.process(self._sample())
        try:
            self.env.run(until=until)
        finally:  # interrupted or done: every request still open ends as a record
            self._close_open()
        return self.metrics

    def _clock(self) -> float:
        """Read SimPy's clock, once per callback. ``env.now`` is a property whose getter
        returns ``env._now``; read from compiled code, the property costs a Python call,
        2% of a simulated request (tests/sim/test_driver.py holds the two equal)."""
        self._t = self.env._now
        return self._t

    def _now(self) -> float:
        """The engine's time (epoch seconds) as of the last :meth:`_clock`."""
        return self.start + self._t

    def _start(self) -> Generator[simpy.Event, Any, None]:
        """The arrivals due at the very start, first of all (the sampler comes after)."""
        self._feed(None)
        return
        yield  # a generator: SimPy runs it as the first process

    def _feed(self, _: simpy.Event | None) -> None:
        """Submit the arrival due now, and any others at the same time, then wait for the next:
        one timeout per arrival, with this as its callback (cheaper than a process's resume)."""
        arrivals, t = self._arrivals, self._clock()
        arrival, self._due = self._due, None
        while True:
            if arrival is not None:
                self._arrive(arrival)
            arrival = next(arrivals, None)
            if arrival is None:
                self._fed = True
                return
            if arrival.time > t:
                self._due = arrival
                Timeout(self.env, arrival.time - t).callbacks.append(self._feed)
                return

    def _arrive(self, arrival: Arrival) -> None:
        self._count += 1
        rid = f"r{self._count}"
        now = self.start + self._t
        self._lives[rid] = _Life(arrival, now)
        self.metrics.arrival(arrival.domain, now)
        ratio = self._chars_per_token.get(arrival.domain)
        self._handle(
            Submit(
                rid,
                arrival.domain,
                now,
                arrival.prompt_tokens,
                arrival.max_output_tokens,
                1,
                arrival.model,
                None
                if ratio is None
                else char_estimate(arrival.prompt_tokens, ratio, RUNTIME_CHARS_PER_TOKEN),
            )
        )

    def _rate_prompt(self, arrival: Arrival) -> int | None:
        """What the provider's limiter charges for ``arrival``'s prompt (``None``: exact)."""
        ratio = self._chars_per_token.get(arrival.domain)
        if ratio is None:
            return None
        return char_estimate(arrival.prompt_tokens, ratio, self.provider.settings.chars_per_token)

    def _sample(self) -> Generator[simpy.Event, Any, None]:
        """Once a simulated minute: queue depth per class, and progress. While no request is
        open, the minutes until the next arrival are skipped (their depths are zero): a trace
        with a gap of years costs as much as one without."""
        while not self._fed or self._lives:
            t = self._clock()
            depths: dict[str, int] = dict.fromkeys(self.engine.config.classes, 0)
            for rid in self.engine.waiting():
                depths[self._priority[self._lives[rid].arrival.domain]] += 1
            self.metrics.queue_depth(depths, self._now())
            if self._on_progress is not None:
                self._on_progress(t)
            step = 60.0
            if not self._lives and self._due is not None:  # idle: on to the next arrival
                step = max(step, math.ceil(self._due.time / 60.0) * 60.0 - t)
            yield Timeout(self.env, step)

    # ------------------------------------------------------------------ the engine

    def _handle(self, event: Event) -> None:
        for action in self.engine.handle(event):
            self._carry_out(action)
        wake = self.engine.next_wake
        if wake is None:
            return
        t = self._t
        at = max(wake - self.start, t)
        if at < self._wake_at or self._wake_at < t:
            # One wake-up is pending at a time: an earlier one replaces it, and the replaced
            # timeout, when it fires, does nothing (else stale timeouts would multiply).
            self._wake_at = at
            self._wake_token += 1
            token = self._wake_token

            def fire(_: simpy.Event, token: int = token) -> None:
                self._wake(token)

            Timeout(self.env, at - t).callbacks.append(fire)

    def _wake(self, token: int) -> None:
        if token != self._wake_token:
            return
        self._wake_at = float("inf")
        self._clock()
        self._handle(Advance(self._now()))

    def _carry_out(self, action: Action) -> None:
        if isinstance(action, Send):
            self._send(action)
        elif isinstance(action, Complete):
            self._complete(action)
        elif isinstance(action, Reject):
            self._reject(action)
        elif isinstance(action, Defer):
            self._defer(action)
        elif isinstance(action, Retry):
            self.metrics.retry(self._lives[action.request_id].arrival.domain)
        elif isinstance(action, Alert):
            self.metrics.alert(action.budget, action.threshold, action.spent_usd, action.at)
        elif isinstance(action, StoreFault):  # the memory store never fails: a bug
            raise RuntimeError(f"the engine caught a failure: {action}")

    def _send(self, send: Send) -> None:
        life = self._lives[send.request_id]
        if life.send is not None:  # the engine sends again only after an answer
            raise RuntimeError(f"{send.request_id} sent while an attempt is out")
        life.started, life.key, life.project, life.model = (
            self._now(),
            send.key,
            send.project,
            send.model,
        )
        life.attempt = send.attempt
        if self._transit is None:
            self._submit(life, send, 0.0)
            return
        # In transit: the provider sees it later, and its answer comes back later still.
        life.send = send
        there, back = self._transit.draw(self._transit_rng), self._transit.draw(self._transit_rng)

        def arrive(_: simpy.Event) -> None:
            self._clock()
            self._submit(life, send, back)

        Timeout(self.env, there).callbacks.append(arrive)

    def _submit(self, life: _Life, send: Send, back: float) -> None:
        """``send`` reaches the provider now; its answer is back ``back`` seconds after the
        provider's latency."""
        a = life.arrival
        request = _request(a, send.project, send.model, self._rate_prompt(a))
        outcome = self.provider.submit(request, self._t)
        self.metrics.admitted(send.project, send.model, send.charge_tokens, self._now())
        life.ticket = outcome.ticket
        if outcome.usage is not None:
            life.prompt, life.cached = outcome.usage.prompt_tokens, outcome.usage.cached_tokens
            life.completion = outcome.usage.completion_tokens
        if outcome.status == 429:
            self.metrics.rate_limit(a.domain, send.project, self._now())
        life.sim, life.send, life.outcome = self, send, outcome
        Timeout(self.env, outcome.timing.total + back).callbacks.append(life)

    def _answer(self, life: _Life, send: Send, outcome: Outcome) -> None:
        """The provider's answer to ``send`` comes back (its latency has passed)."""
        t = self._clock()
        if life.ticket is not None:
            self.provider.settle(life.ticket, t)
            life.ticket = None
        if outcome.ok:
            self._handle(
                Settled(
                    send.request_id,
                    self._now(),
                    life.prompt,
                    life.completion,
                    life.cached,
                    outcome.headers,
                    send.attempt,
                    _read(outcome.rate_limits),
                )
            )
        else:
            body = json.dumps(outcome.error) if outcome.error is not None else None
            status = outcome.status or None
            self._handle(
                Failed(send.request_id, self._now(), status, outcome.headers, body, send.attempt)
            )

    def _defer(self, defer: Defer) -> None:
        """A parked request waits for its window; a batch request goes to the provider's Batch
        API model (``Provider.batches``) as a batch of its own.

        One batch per request, not gathered: the engine hands requests over one by one and no
        batch runner exists yet whose grouping could be copied. The queue limit counts tokens
        whatever the grouping; what one batch per request leaves out is that the requests of
        one batch finish together, and that a large batch is refused whole.
        """
        life = self._lives[defer.request_id]
        life.deferred = True
        if defer.mode != "batch":
            return
        # Handed to the Batch API now: it waits for the batch, not for capacity.
        life.batch, life.key, life.model, life.started = (
            True,
            defer.key or "",
            defer.model,
            self._now(),
        )
        life.project = self._project_of(life.key)
        rid = defer.request_id
        request = _request(life.arrival, life.project, defer.model)
        if self.provider.out_of_quota(self._t):  # past the month's usage limit
            refused = insufficient_quota()["error"]
            Timeout(self.env, 0.0).callbacks.append(lambda _: self._batch_failed(rid, refused))
            return
        if self._gatherer is not None:  # into a file, with others (sim/batching.py)
            self._gatherer.add(rid, life.key, defer.model, request)
            return
        batch = self.provider.batches.create({defer.model: request.prompt_tokens}, self._t)
        if isinstance(batch, QueueFull):
            # Refused at creation (the batch comes back failed): the request ends at once,
            # after the engine's other actions of this event.
            error = batch.error()
            Timeout(self.env, 0.0).callbacks.append(lambda _: self._batch_failed(rid, error))
            return
        usage = self.provider.usage(request, self._t)
        life.prompt, life.completion, life.cached = (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
        )

        def done(_: simpy.Event) -> None:
            if batch.expired:
                self._batch_failed(rid, batch_expired())
                return
            self._clock()
            self.provider.bill_batch(defer.model, usage, self._t)
            self._handle(Settled(rid, self._now(), life.prompt, life.completion, life.cached))

        Timeout(self.env, batch.ends - self._t).callbacks.append(done)

    def _batch_done(self, rid: str, usage: Usage) -> None:
        """The batch of request ``rid`` ended and ran it: what it used, to the engine."""
        life = self._lives[rid]
        life.prompt, life.completion, life.cached = (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
        )
        self._clock()
        self._handle(Settled(rid, self._now(), life.prompt, life.completion, life.cached))

    def _batch_failed(self, rid: str, error: dict[str, Any]) -> None:
        """The Batch API failed the batch of request ``rid`` with ``error`` (as its
        ``errors.data`` or error file states it): the engine ends the request with the reason
        the error's code names (``batch_queue_full``, ``batch_expired``)."""
        self._clock()
        body = json.dumps({"error": error})
        self._handle(Failed(rid, self._now(), None, None, body))

    def _project_of(self, alias: str) -> str:
        for key in self.engine.config.keys:
            if key.alias == alias:
                return key.project
        return ""

    # ------------------------------------------------------------------ endings

    def _complete(self, done: Complete) -> None:
        life = self._lives.pop(done.request_id)
        self._end(done.request_id, life, "ok", "", done.attempts, done.cost_usd, done.model)

    def _reject(self, reject: Reject) -> None:
        life = self._lives.pop(reject.request_id)
        self._end(
            reject.request_id,
            life,
            outcome_of(reject.reason, reject.status),
            f"{reject.reason}: {reject.message}",
            reject.attempts,
            0.0,
            life.model or life.arrival.model or "",
        )

    def _end(
        self,
        rid: str,
        life: _Life,
        outcome: RecordOutcome,
        reason: str,
        attempts: int,
        cost: float,
        model: str,
    ) -> None:
        now = self._now()
        ok = outcome == "ok"
        record = UsageRecord(
            rid,
            life.arrival.domain,
            model,
            life.key,
            life.project,
            self._priority.get(life.arrival.domain, ""),
            life.submitted,
            life.started,
            now,
            (life.started - life.submitted) if life.started is not None else now - life.submitted,
            attempts,
            outcome,
            reason,
            life.prompt if ok else 0,
            life.cached if ok else 0,
            life.completion if ok else 0,
            cost,
            life.batch,
            life.deferred,
            life.arrival.model or "",
            life.arrival.prompt_tokens,
            life.arrival.max_output_tokens,
        )
        self.metrics.record(record)
        if self._on_record is not None:
            self._on_record(record)

    def _close_open(self) -> None:
        """Requests still open when the run stops: parked, queued or in flight."""
        self._clock()
        for rid, life in list(self._lives.items()):
            self._lives.pop(rid)
            self._end(
                rid,
                life,
                "deferred",
                "still open when the simulation ended",
                life.attempt,
                0.0,
                life.model or life.arrival.model or "",
            )

    def summary_extra(self) -> dict[str, Any]:
        """Facts of this run the summary reports beside the metrics."""
        extra: dict[str, Any] = {"simulated_s": self.env.now}
        if self._gatherer is not None:
            extra["batch_files"] = self._gatherer.files
            extra["batch_requests"] = self._gatherer.requests
        return extra
