"""Replaying traffic through the live runtime: what the simulator predicts, done for real.

:class:`Replay` takes the arrivals the simulator would simulate (the same traffic object, the same
seed: :meth:`Traffic.arrivals`, not a copy of it) and sends each at its time through a
:class:`~keypolicy.runtime.Runtime` with real ``openai`` clients, against a provider (the mock
server, normally, at the same ``--speed``). The runtime's clock is a :class:`ReplayClock` at that
speed starting at the traffic's first moment, so the engine sees the times the simulator's engine
sees. Calls are made by many callers at once, as a service makes them: a pool of threads with
``openai.OpenAI`` clients takes every other arrival while one of them is free, and asyncio tasks
with ``openai.AsyncOpenAI`` take the rest (unbounded: the simulator has no limit on callers either;
a bounded pool would add waits the simulator does not model).

Each arrival becomes one chat completion whose prompt counts exactly its prompt tokens
(:mod:`keypolicy.fidelity.prompts`) and whose body states its exact counts for the mock
(``extra_body={"keypolicy": {..., "charge": "estimate"}}``: usage as the traffic says, the limiter
charged from the text's characters as OpenAI's is). How long the text is per token
(``chars_per_token``, per domain) decides what the provider's limiter and the runtime estimate;
give the simulator the same ratios (``run_once(chars_per_token=...)``) to predict it.

The runtime's state is in memory whatever the policy's ``state:`` says: a replay tries a policy,
it must not draw on a fleet's shared counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import openai

from keypolicy.fidelity.clock import ReplayClock
from keypolicy.fidelity.prompts import chat_prompt
from keypolicy.policy.model import Policy
from keypolicy.runtime import Runtime
from keypolicy.sim.arrival import Arrival
from keypolicy.sim.traffic import Traffic
from keypolicy.state import MemoryStore

__all__ = ["Replay", "ReplayProgress", "ReplaySettings", "api_base"]

_TICK_S: Final = 0.25
"""Longest the dispatcher sleeps at once: progress is shown and Ctrl-C obeyed this often."""


def api_base(url: str) -> str:
    """The openai client's ``base_url`` for a server at ``url`` (``/v1`` added if missing)."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


@dataclass(frozen=True)
class ReplaySettings:
    """How to replay.

    ``speed``: model seconds per wall second (the mock server must run at the same speed);
    ``seed``: the traffic's seed (and the engine's, as in the simulator); ``threads``: sync
    callers; ``chars_per_token``: characters of prompt text per exact token, by domain (absent:
    ``default_chars_per_token``); ``extra_s``: model seconds after the traffic ends that calls
    still open may take (as the simulator's run, 26 h); ``drain_s``: wall seconds calls in
    flight get to end when the replay is stopped.
    """

    speed: float = 1.0
    seed: int = 0
    threads: int = 16
    chars_per_token: Mapping[str, float] = field(default_factory=dict)
    default_chars_per_token: float = 4.0
    extra_s: float = 26 * 3600.0
    drain_s: float = 0.5

    def ratio(self, domain: str) -> float:
        """Characters per token of ``domain``'s prompts."""
        return self.chars_per_token.get(domain, self.default_chars_per_token)


@dataclass
class ReplayProgress:
    """Where a replay is. Times in seconds: ``model_s`` of the traffic replayed so far (of
    ``duration_s``); ``late_s`` the most any call was sent after its time (wall seconds: the
    machine could not keep up when it is large against ``1 / speed``)."""

    duration_s: float
    model_s: float = 0.0
    sent: int = 0
    ended: int = 0
    sync_calls: int = 0
    async_calls: int = 0
    deferred_jobs: int = 0
    late_s: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    partial: bool = False
    wall_s: float = 0.0

    @property
    def open(self) -> int:
        """Calls sent and not ended yet."""
        return self.sent - self.ended


class Replay:
    """One replay of ``traffic`` through ``policy``'s runtime against the server at ``url``.

    ``ledger``: where the runtime writes its usage records (a path or URL, as for
    :class:`Runtime`); ``environ``: where the keys' secrets are (default: the environment);
    ``on_progress`` is called from the replaying thread a few times a second.
    """

    def __init__(
        self,
        policy: Policy,
        traffic: Traffic,
        url: str,
        ledger: str | Path,
        settings: ReplaySettings | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        on_progress: Callable[[ReplayProgress], None] | None = None,
    ) -> None:
        self.policy, self.traffic, self.url, self.ledger = policy, traffic, url, ledger
        self.settings = settings or ReplaySettings()
        self.environ = environ
        self.on_progress = on_progress
        self.progress = ReplayProgress(traffic.duration_s)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._work: queue.Queue[Arrival | None] = queue.Queue()
        self._idle = 0
        self._loop = asyncio.new_event_loop()
        self._async_clients: dict[str, openai.AsyncOpenAI] = {}
        self._deferred = ThreadPoolExecutor(64, thread_name_prefix="replay-deferred")

    # ------------------------------------------------------------------ running

    def run(self) -> ReplayProgress:
        """Replay everything (or until :attr:`stop` is set, or Ctrl-C in this thread): the
        runtime is closed and its ledger flushed either way. Returns the final progress."""
        s = self.settings
        clock = ReplayClock(s.speed, origin=self.traffic.start.timestamp())
        rt = Runtime(
            self.policy,
            ledger=self.ledger,
            environ=self.environ,
            base_url=api_base(self.url),
            clock=clock,
            store=MemoryStore(),
            seed=s.seed,
        )
        threads = [
            threading.Thread(target=self._sync_caller, args=(rt,), name=f"replay-{i}", daemon=True)
            for i in range(s.threads)
        ]
        self._idle = len(threads)
        for t in threads:
            t.start()
        loop_thread = threading.Thread(target=self._run_loop, name="replay-asyncio", daemon=True)
        loop_thread.start()
        begun = time.monotonic()
        try:
            self._dispatch(rt, clock)
            self._drain(clock)
        except KeyboardInterrupt:
            self.stop.set()
        finally:
            self.progress.partial = self.stop.is_set()
            self._finish(rt, threads, loop_thread)
            self.progress.wall_s = time.monotonic() - begun
        return self.progress

    def _dispatch(self, rt: Runtime, clock: ReplayClock) -> None:
        """Hand each arrival to a caller at its time."""
        last_report = 0.0
        for index, arrival in enumerate(self.traffic.arrivals(self.settings.seed)):
            due = clock.wall_at(arrival.time)
            while (delay := due - time.monotonic()) > 0:
                if self.stop.wait(min(delay, _TICK_S)):
                    return
                last_report = self._report(clock, last_report)
            if self.stop.is_set():
                return
            late = time.monotonic() - due
            with self._lock:
                self.progress.sent += 1
                self.progress.late_s = max(self.progress.late_s, late)
            self._hand_over(rt, arrival, index)
            last_report = self._report(clock, last_report)

    def _hand_over(self, rt: Runtime, arrival: Arrival, index: int) -> None:
        defer = getattr(rt, "defer", None)  # the job API of issue 16, once it exists
        if defer is not None and self.policy.domains[arrival.domain].defer.mode == "batch":
            with self._lock:
                self.progress.deferred_jobs += 1
            self._deferred.submit(self._deferred_call, defer, arrival)
            return
        if index % 2 == 0 and self._idle > 0:  # only this thread lowers _idle: never overbooked
            with self._lock:
                self._idle -= 1
                self.progress.sync_calls += 1
            self._work.put(arrival)
            return
        with self._lock:
            self.progress.async_calls += 1
        asyncio.run_coroutine_threadsafe(self._async_call(rt, arrival), self._loop)

    def _drain(self, clock: ReplayClock) -> None:
        """Wait for the calls still open (parked, queued, in flight) to end."""
        last_report = 0.0
        end = self.traffic.duration_s + self.settings.extra_s
        while self.progress.open > 0 and clock.now() - clock.origin < end:
            if self.stop.wait(_TICK_S):
                return
            last_report = self._report(clock, last_report)

    def _report(self, clock: ReplayClock, last: float) -> float:
        now = time.monotonic()
        if self.on_progress is None or now - last < _TICK_S:
            return last
        self.progress.model_s = min(clock.now() - clock.origin, self.traffic.duration_s)
        self.on_progress(self.progress)
        return now

    def _finish(
        self, rt: Runtime, threads: list[threading.Thread], loop_thread: threading.Thread
    ) -> None:
        """Close the runtime (calls still waiting are refused, those in flight get
        ``drain_s``; the ledger is flushed), then end the callers."""
        rt.close(drain_s=self.settings.drain_s)
        for _ in threads:
            self._work.put(None)
        for t in threads:
            t.join(1.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        loop_thread.join(1.0)
        self._deferred.shutdown(wait=False, cancel_futures=True)
        if self.on_progress is not None:
            self.on_progress(self.progress)

    # ------------------------------------------------------------------ the calls

    def _request(self, arrival: Arrival) -> dict[str, Any]:
        """The chat completion an arrival makes (keyword arguments of ``create``)."""
        domain = self.policy.domains[arrival.domain]
        # The mock reports the exact counts as usage, and charges its limiter with the
        # character estimate of the text, as OpenAI does.
        exact: dict[str, int | str] = {"prompt_tokens": arrival.prompt_tokens, "charge": "estimate"}
        if arrival.completion_tokens is not None:
            exact["completion_tokens"] = arrival.completion_tokens
        text = chat_prompt(arrival.prompt_tokens, self.settings.ratio(arrival.domain))
        request: dict[str, Any] = {
            "model": arrival.model or domain.model,
            "messages": [{"role": "user", "content": text}],
            "extra_body": {"keypolicy": exact},
        }
        if arrival.max_output_tokens > 0:
            request["max_tokens"] = arrival.max_output_tokens
        return request

    def _ended(self, failure: BaseException | None) -> None:
        with self._lock:
            self.progress.ended += 1
            if failure is not None:
                name = getattr(failure, "reason", None) or type(failure).__name__
                self.progress.failures[name] = self.progress.failures.get(name, 0) + 1

    def _sync_caller(self, rt: Runtime) -> None:
        """A thread of the service: takes arrivals one at a time, calls, and is free again."""
        clients: dict[str, openai.OpenAI] = {}
        while (arrival := self._work.get()) is not None:
            failure: BaseException | None = None
            try:
                client = clients.get(arrival.domain)
                if client is None:
                    client = clients[arrival.domain] = rt.openai(arrival.domain)
                client.chat.completions.create(**self._request(arrival))
            except Exception as exc:  # refusals and provider errors: the ledger has the record
                failure = exc
            finally:
                self._ended(failure)
                with self._lock:
                    self._idle += 1
        for client in clients.values():
            with contextlib.suppress(Exception):
                client.close()

    def _deferred_call(self, defer: Callable[..., Any], arrival: Arrival) -> None:
        """A deferred domain's call as a job of the deferral API: handed over, then waited for."""
        failure: BaseException | None = None
        try:
            request = self._request(arrival)
            body = {k: v for k, v in request.items() if k != "extra_body"} | request["extra_body"]
            defer(arrival.domain, "chat.completions", body).wait()
        except Exception as exc:
            failure = exc
        finally:
            self._ended(failure)

    def _run_loop(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _async_call(self, rt: Runtime, arrival: Arrival) -> None:
        failure: BaseException | None = None
        try:
            client = self._async_clients.get(arrival.domain)
            if client is None:
                client = self._async_clients[arrival.domain] = rt.async_openai(arrival.domain)
            await client.chat.completions.create(**self._request(arrival))
        except Exception as exc:
            failure = exc
        except asyncio.CancelledError:
            failure = KeyboardInterrupt("stopped")
            raise
        finally:
            self._ended(failure)
