"""One live call's life, written once for the sync and the async transport.

:meth:`Call.flow` is a generator, like httpx's ``Auth.auth_flow``: it decides what happens next
and *yields* the I/O it needs (wait for the engine's turn, send this request, read this body); the
sync and async transports (:mod:`keypolicy.runtime.transport`) are short loops that carry each
step out and send the result back in. So the policy's handling of a call (submit, wait, send on
the chosen key, settle or fail, retry, give up, write the record) exists in one place.

Every attempt the engine sends ends as exactly one ``Settled`` or ``Failed``, whatever happens: an
answer, a transport error, a caller that gives up (the generator is closed), a stream abandoned
half read (settled on an estimate by :class:`Streaming`). Every call ends as one usage record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Final

import httpx2

from keypolicy.core import Cancel, Complete, Defer, Failed, Reject, Retry, Send, Settled, Submit
from keypolicy.core.actions import Action
from keypolicy.core.headers import parse_rate_limit_headers
from keypolicy.estimate import RequestEstimate, estimate_request
from keypolicy.policy.model import Policy
from keypolicy.records import Outcome, UsageRecord, outcome_of
from keypolicy.runtime.answers import Usage, body_usage
from keypolicy.runtime.conductor import Conductor, Waiter
from keypolicy.runtime.errors import PolicyRejected
from keypolicy.runtime.secrets import KeyRing
from keypolicy.runtime.streaming import Streaming
from keypolicy.runtime.wire import endpoint_of, given_up, on_key, plain

__all__ = [
    "AWAIT",
    "RETRY",
    "Call",
    "Context",
    "OpenCalls",
    "Read",
    "Step",
    "Transmit",
]


class _Retry:
    def __repr__(self) -> str:
        return "RETRY"


RETRY: Final = _Retry()
"""An attempt's result when the engine will try again: wait for its next Send."""


class _Await:
    def __repr__(self) -> str:
        return "AWAIT"


AWAIT: Final = _Await()
"""Step: wait for the engine's next action for this call, and send it in."""


@dataclass(frozen=True, slots=True)
class Transmit:
    """Step: send ``request`` upstream; send the response (body unread) in, or throw the error."""

    request: httpx2.Request


@dataclass(frozen=True, slots=True)
class Read:
    """Step: read ``response``'s whole (decoded) body, close it, and send the bytes in."""

    response: httpx2.Response


Step = _Await | Transmit | Read


class OpenCalls:
    """How many calls have begun and not yet written their record (thread-safe), and how many
    have begun in all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.begun = 0

    def add(self, delta: int) -> None:
        with self._lock:
            self.count += delta
            if delta > 0:
                self.begun += delta


@dataclass(frozen=True, slots=True)
class Context:
    """What every call of one runtime shares."""

    conductor: Conductor
    keys: KeyRing
    policy: Policy
    write: Callable[[UsageRecord], None]
    on_retry: Callable[[str], None]
    on_rate_limited: Callable[[str, str], None]
    next_id: Callable[[], str]
    open_calls: OpenCalls
    closing: threading.Event
    """Set when the runtime closes: no call begins, and none is retried or queued again."""


class Call:
    """One metered request through the policy: from ``Submit`` to its usage record."""

    def __init__(
        self,
        context: Context,
        domain: str,
        request: httpx2.Request,
        body: dict[str, Any],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.context = context
        self.domain = domain
        self.request = request
        self.id = context.next_id()
        self.endpoint = endpoint_of(request)
        self.estimate: RequestEstimate = estimate_request(self.endpoint, body)
        self.requested_model = str(body.get("model", ""))
        self.hide_usage = False
        if self.estimate.stream and self.endpoint == "chat.completions":
            options = body.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                # Ask for the usage chunk, and take it out of what the caller reads.
                body = {**body, "stream_options": {**(options or {}), "include_usage": True}}
                self.hide_usage = True
        self._placeholder = request.headers.get("authorization", "")
        self.body = body
        self.content = json.dumps(body).encode() if self.hide_usage else request.read()
        self.waiter: Waiter = context.conductor.open(self.id, loop)
        context.open_calls.add(1)
        self.submitted = 0.0
        self.started: float | None = None
        self.send: Send | None = None
        self.inflight = False
        self.deferred = False
        self.ended = False

    # ------------------------------------------------------------------ the flow

    def flow(self) -> Generator[Step, Any, httpx2.Response | Streaming]:
        """The call's life as steps of I/O for a transport to carry out (see the module)."""
        conductor = self.context.conductor
        self.submitted = conductor.clock.now()
        if self.context.policy.domains[self.domain].defer.mode == "batch":
            self._refuse_batch()
        conductor.handle(
            Submit(
                self.id,
                self.domain,
                self.submitted,
                self.estimate.prompt_tokens,
                self.estimate.max_output_tokens,
                self.estimate.n,
                self.requested_model or None,
                self.estimate.rate_prompt_tokens,
            )
        )
        try:
            while True:
                action = self.waiter.poll()
                if action is None:
                    action = yield AWAIT
                if isinstance(action, Send):
                    answer = yield from self._attempt(action)
                    if not isinstance(answer, _Retry):
                        return answer
                else:
                    self._note(action)
        except BaseException:  # the caller gave up (GeneratorExit, cancelled) or we refused
            self._abandon()
            raise

    def _note(self, action: Action) -> None:
        """An action other than Send while the call waits: a refusal ends it."""
        if isinstance(action, Reject):
            self._end(action)
            raise self._rejected(action)
        if isinstance(action, Defer):
            self.deferred = True
        elif isinstance(action, Retry):
            self.context.on_retry(self.domain)

    def _refuse_batch(self) -> None:
        """A batch domain's work goes through the Batch API, never a plain client's call."""
        refusal = Reject(
            self.id,
            "batch_domain",
            "the domain runs through the Batch API (defer: batch); a plain client's call "
            "would bypass it",
        )
        self.context.conductor.forget(self.id)
        self._end(refusal)
        raise self._rejected(refusal)

    def _attempt(self, send: Send) -> Generator[Step, Any, httpx2.Response | Streaming | _Retry]:
        """One attempt on the key the engine chose: the answer for the caller, or ``RETRY``:
        wait for the engine's next word."""
        self.send, self.inflight = send, True
        self.started = self.context.conductor.clock.now()
        outgoing = self._on_key(send)
        try:
            try:
                response: httpx2.Response = yield Transmit(outgoing)
            finally:
                self._sent(outgoing)
            if response.status_code < 300 and self.estimate.stream:
                return Streaming(self, response)  # settled when the stream ends
            body: bytes = yield Read(response)
        except Exception:  # no answer (timeout, connection): the provider may have counted it
            if self._failed(None, {}, None) is not None:
                raise
            return RETRY
        if response.status_code < 300:
            usage = body_usage(body)
            estimated = usage is None
            if usage is None:  # an answer that reports no usage: count what it held
                out = (self.estimate.max_output_tokens or 0) * self.estimate.n
                usage = Usage(self.estimate.prompt_tokens, 0, out)
            self.settle(usage, response.headers, estimated, "the answer reported no usage")
            return response  # read and closed; the client takes its body as it is
        if response.status_code == 429:
            self.context.on_rate_limited(self.domain, send.project)
        final = self._failed(response.status_code, plain(response.headers), body)
        return RETRY if final is None else given_up(response)

    def _on_key(self, send: Send) -> httpx2.Request:
        """The request as it goes out on ``send``'s key: its secret set, the model the engine
        chose (a budget's downgrade rewrites it), no project header of another project. The
        caller's request itself when its body goes out as it came (the common case)."""
        content = self.content
        if send.model != self.requested_model:
            content = json.dumps({**self.body, "model": send.model}).encode()
        elif not self.hide_usage:  # taken off again once sent (see _sent)
            on_key(self.request.headers, self.context.keys, send.key)
            return self.request
        headers = self.request.headers.copy()
        if "content-length" in headers:  # the body changed; httpx2 sets it anew
            del headers["content-length"]
        on_key(headers, self.context.keys, send.key)
        return httpx2.Request(
            self.request.method,
            self.request.url,
            headers=headers,
            content=content,
            extensions=self.request.extensions,
        )

    def _sent(self, outgoing: httpx2.Request) -> None:
        """The request is on the wire: the caller's own request object gets its placeholder
        back, so that no error or log that shows it (``err.request``) holds a secret."""
        if outgoing is self.request:
            self.request.headers["authorization"] = self._placeholder

    # ------------------------------------------------------------------ outcomes

    def settle(self, usage: Usage, headers: Any, estimated: bool, why: str) -> None:
        """The attempt out succeeded: its usage back to the engine, and the call's record."""
        send = self.send
        assert send is not None
        self.inflight = False
        conductor = self.context.conductor
        limits = parse_rate_limit_headers(plain(headers))  # read here, not under the lock
        conductor.handle(
            Settled(
                self.id,
                conductor.clock.now(),
                usage.prompt,
                usage.completion,
                usage.cached,
                None,
                send.attempt,
                limits,
            )
        )
        final = self._final()
        self._end(final, usage, f"usage estimated: {why}" if estimated else "", estimated)

    def _failed(self, status: int | None, headers: Any, body: bytes | None) -> Action | None:
        """The attempt out failed: tell the engine; its final word if it gives up, else None."""
        send = self.send
        assert send is not None
        self.inflight = False
        conductor = self.context.conductor
        conductor.handle(
            Failed(self.id, conductor.clock.now(), status, headers, body, send.attempt)
        )
        action = self.waiter.poll()
        if isinstance(action, Retry) and self.context.closing.is_set():
            # The runtime is closing (its timer may have stopped): no retry, the call ends.
            conductor.handle(Cancel(self.id, conductor.clock.now()))
            action = self._final()
        if isinstance(action, Retry):
            self.context.on_retry(self.domain)
            return None
        if action is None:
            return None
        self._end(action)
        return action

    def _final(self) -> Action:
        """The engine's final action for this call, skipping anything before it."""
        while True:
            action = self.waiter.poll()
            if action is None:
                raise RuntimeError(f"keypolicy: the engine gave no final answer for {self.id}")
            if isinstance(action, Complete | Reject):
                return action

    def _abandon(self) -> None:
        """The caller gave up: the attempt out (if any) fails, then the call is cancelled."""
        if self.ended:
            return
        conductor = self.context.conductor
        if self.inflight and self.send is not None:
            self.inflight = False
            now = conductor.clock.now()
            conductor.handle(Failed(self.id, now, None, None, None, self.send.attempt))
        conductor.handle(Cancel(self.id, conductor.clock.now()))
        with contextlib.suppress(RuntimeError):  # the engine had already ended it
            self._end(self._final())

    def _rejected(self, reject: Reject) -> PolicyRejected:
        now = self.context.conductor.clock.now()
        waited = (self.started or now) - self.submitted
        return PolicyRejected(self.domain, reject.reason, reject.message, waited, self.id)

    def _end(
        self, final: Action, usage: Usage | None = None, note: str = "", estimated: bool = False
    ) -> None:
        """Write the call's one usage record."""
        if self.ended:
            return
        self.ended = True
        try:
            self.context.write(self.record(final, usage, note, estimated))
        finally:
            self.context.open_calls.add(-1)

    def record(self, final: Action, usage: Usage | None, note: str, estimated: bool) -> UsageRecord:
        """The call's usage record, filled as the simulator fills its records."""
        now = self.context.conductor.clock.now()
        send = self.send
        ok = isinstance(final, Complete)
        if isinstance(final, Complete):
            model, key, project, attempts = final.model, final.key, final.project, final.attempts
            cost, reason = final.cost_usd, note
            outcome: Outcome = "ok"
        else:
            assert isinstance(final, Reject)
            model = send.model if send else (self.requested_model or self._default_model())
            key, project = (send.key, send.project) if send else ("", "")
            attempts, cost = final.attempts, 0.0
            outcome = outcome_of(final.reason, final.status)
            reason = f"{final.reason}: {final.message}"
        started = self.started
        domain = self.context.policy.domains.get(self.domain)
        used = usage if ok and usage is not None else Usage(0, 0, 0)
        return UsageRecord(
            request_id=self.id,
            domain=self.domain,
            model=model,
            key=key,
            project=project,
            priority=domain.priority if domain else "",
            submitted=self.submitted,
            started=started,
            finished=now,
            wait_s=(started if started is not None else now) - self.submitted,
            attempts=attempts,
            outcome=outcome,
            reason=reason,
            prompt_tokens=used.prompt,
            cached_tokens=used.cached,
            completion_tokens=used.completion,
            cost_usd=cost,
            batch=False,
            deferred=self.deferred,
            requested_model=self.requested_model,
            requested_prompt_tokens=self.estimate.prompt_tokens,
            requested_max_tokens=max(self.estimate.max_output_tokens or 0, 0),
            usage_estimated=estimated,
        )

    def _default_model(self) -> str:
        domain = self.context.policy.domains.get(self.domain)
        return domain.model if domain else ""
