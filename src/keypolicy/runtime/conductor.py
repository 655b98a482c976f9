"""The runtime's driver of the engine: one engine behind one lock, a waiter per request, a timer.

The engine answers any event with actions for any request (a settlement may release a queued
request of another caller), so every action is routed by request id to that request's
:class:`Waiter`, where its caller picks it up: a thread blocks on it, a coroutine awaits it
without blocking its event loop. One timer thread delivers ``Advance`` at the engine's
``next_wake``. Nothing here decides anything: it carries events in and actions out, like the
simulator's driver does on SimPy's clock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Final

from keypolicy.core import (
    Action,
    Advance,
    Alert,
    Cancel,
    Complete,
    Engine,
    Event,
    Reject,
    StoreFault,
)
from keypolicy.runtime.clock import Clock

__all__ = ["Conductor", "Waiter"]

log = logging.getLogger("keypolicy.runtime")

_FINAL: Final = (Complete, Reject)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Waiter:
    """The actions the engine addressed to one request, in order, for its caller to take.

    ``put`` runs with the conductor's lock held; ``poll``, ``wait`` and ``wait_async`` take it.
    """

    __slots__ = ("_actions", "_event", "_future", "_lock", "_loop")

    def __init__(self, lock: threading.Lock, loop: asyncio.AbstractEventLoop | None) -> None:
        self._actions: deque[Action] = deque()
        self._lock = lock
        self._loop = loop
        self._event: threading.Event | None = None  # made when a thread first has to wait
        self._future: asyncio.Future[None] | None = None

    def put(self, action: Action) -> None:
        """Hand an action to the caller (the conductor's lock is held)."""
        self._actions.append(action)
        if self._event is not None:
            self._event.set()
        elif self._future is not None and self._loop is not None:
            future, self._future = self._future, None
            try:
                self._loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # its event loop is closed: nobody awaits it any more
                log.warning("keypolicy: a call's event loop closed while the call waited")

    def poll(self) -> Action | None:
        """The next action if one is there, without waiting."""
        with self._lock:
            return self._actions.popleft() if self._actions else None

    def wait(self) -> Action:
        """Block the calling thread until the next action comes."""
        assert self._loop is None, "an async waiter is awaited, not waited on"
        while True:
            with self._lock:
                if self._actions:
                    return self._actions.popleft()
                if self._event is None:
                    self._event = threading.Event()
                event = self._event
                event.clear()
            event.wait()

    async def wait_async(self) -> Action:
        """Await the next action without blocking the event loop."""
        assert self._loop is not None, "a sync waiter is waited on, not awaited"
        while True:
            with self._lock:
                if self._actions:
                    return self._actions.popleft()
                future = self._future = self._loop.create_future()
            await future


class Conductor:
    """Feeds the engine events under one lock and routes its actions to the requests' waiters.

    ``on_alert`` receives budget alerts, called with the lock held: it must be quick and must not
    call back in.
    """

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.lock = threading.Lock()
        self._waiters: dict[str, Waiter] = {}
        self._on_alert = on_alert
        # Work handed in from places that must not take the lock (a finalizer during garbage
        # collection may run on a thread that holds it): done at the next event or tick.
        self.later: deque[Callable[[], None]] = deque()
        self._timer = _Timer(self)
        clock.on_change(self._timer.poke)

    def open(self, request_id: str, loop: asyncio.AbstractEventLoop | None = None) -> Waiter:
        """A waiter for ``request_id``, registered before its first event."""
        waiter = Waiter(self.lock, loop)
        with self.lock:
            self._waiters[request_id] = waiter
        return waiter

    def forget(self, request_id: str) -> None:
        """Drop the waiter of a call that ended without the engine (refused before it)."""
        with self.lock:
            self._waiters.pop(request_id, None)

    def handle(self, event: Event) -> None:
        """Feed one event; its actions go to their requests' waiters."""
        if self.later:
            self.run_later()
        with self.lock:
            self._route(self.engine.handle(event))
            wake = self.engine.next_wake
        if wake is not None:
            self._timer.want(wake)

    def _route(self, actions: list[Action], closing: bool = False) -> None:
        """Hand each action to its request's waiter (the lock is held). Nothing here may raise:
        an action not routed would leave its caller waiting for ever."""
        waiters = self._waiters
        for action in actions:
            if isinstance(action, Alert):
                self._alert(action)
            elif isinstance(action, StoreFault):
                log.error(
                    "keypolicy: the state store failed while %s (%s); the engine carried on",
                    action.doing,
                    action.error,
                )
            else:
                rid = action.request_id
                final = isinstance(action, _FINAL)
                waiter = waiters.pop(rid, None) if final else waiters.get(rid)
                if waiter is None:
                    continue
                if closing and isinstance(action, Reject) and action.reason == "cancelled":
                    waiter.put(
                        Reject(
                            rid,
                            "cancelled",
                            "the keypolicy Runtime was closed while the call waited",
                            action.attempts,
                        )
                    )
                else:
                    waiter.put(action)

    def _alert(self, alert: Alert) -> None:
        if self._on_alert is None:
            return
        try:
            self._on_alert(alert)
        except Exception:
            log.exception("keypolicy: a budget alert's handler failed")

    def cancel_waiting(self) -> int:
        """End every call still queued or parked (the runtime is closing): each caller gets a
        refusal saying so. Calls in flight go on to their answers. Returns how many ended."""
        with self.lock:
            engine = self.engine
            waiting = [
                rid for rid in self._waiters if engine.request_state(rid) in ("queued", "delayed")
            ]
            now = self.clock.now()
            for rid in waiting:
                self._route(engine.handle(Cancel(rid, now)), closing=True)
        return len(waiting)

    def soon(self, job: Callable[[], None]) -> None:
        """Run ``job`` at the next event or tick; safe where the lock may be held (finalizers)."""
        self.later.append(job)
        self._timer.poke(blocking=False)

    def run_later(self) -> None:
        """Do the work handed in by :meth:`soon`."""
        while True:
            try:
                job = self.later.popleft()
            except IndexError:  # another thread took the last one
                return
            try:
                job()
            except Exception:
                log.exception("keypolicy: deferred work failed")

    def start(self) -> None:
        """Start the timer thread."""
        self._timer.start()

    def close(self) -> None:
        """Stop the timer thread (requests still waiting stay as they are)."""
        self._timer.stop()


class _Timer:
    """One thread that delivers ``Advance`` when the engine asked to be woken."""

    def __init__(self, conductor: Conductor) -> None:
        self._conductor = conductor
        self._cond = threading.Condition()
        self._wake: float | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="keypolicy-timer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def want(self, at: float) -> None:
        """Be woken at ``at`` (engine time) at the latest."""
        current = self._wake
        if current is not None and current <= at:
            return  # an earlier wake is set: it will look again then
        with self._cond:
            if self._wake is None or at < self._wake:
                self._wake = at
                self._cond.notify()

    def poke(self, blocking: bool = True) -> None:
        """Time jumped (a fake clock) or work was handed in: look again. Not blocking: only if
        the timer's lock is free at once (a finalizer must never wait on it)."""
        if self._cond.acquire(blocking=blocking):
            try:
                self._cond.notify()
            finally:
                self._cond.release()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _run(self) -> None:
        clock = self._conductor.clock
        with self._cond:
            while not self._stopped:
                if self._conductor.later:
                    self._cond.release()
                    try:
                        self._conductor.run_later()
                    finally:
                        self._cond.acquire()
                wake = self._wake
                delay = None if wake is None else clock.real_delay(wake)
                if delay is None or delay > 0:
                    # Never longer than a second: work handed in by a finalizer whose poke
                    # found this lock taken is picked up then at the latest.
                    self._cond.wait(min(delay, 1.0) if delay is not None else 1.0)
                    continue
                self._wake = None
                self._cond.release()
                try:
                    self._conductor.handle(Advance(clock.now()))
                except Exception:  # the timer must outlive any one failure
                    log.exception("keypolicy: the engine failed on a timer tick")
                finally:
                    self._cond.acquire()
