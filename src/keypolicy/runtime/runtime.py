"""The runtime: a policy enforced on live ``openai`` calls, in the service that makes them.

``Runtime`` holds one engine (behind one lock), the keys' secrets, a timer and the usage ledger.
It hands out real ``openai.OpenAI`` / ``openai.AsyncOpenAI`` clients whose HTTP transport is a
:class:`~keypolicy.runtime.transport.PolicyTransport` for one domain: every call the client makes
passes the policy there (key choice, limits, priority queue, budgets, retries, deferral), and
ends as one usage record in the ledger.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets as _random
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import httpx2
from openai import AsyncOpenAI, DefaultAsyncHttpxClient, DefaultHttpxClient, OpenAI

from keypolicy.core import Alert, Engine
from keypolicy.core.store import Store
from keypolicy.ledger import Ledger, default_ledger_path
from keypolicy.policy import load_policy
from keypolicy.policy.compile import compile_policy
from keypolicy.policy.model import Policy
from keypolicy.records import UsageRecord
from keypolicy.runtime.call import Context, OpenCalls
from keypolicy.runtime.clock import Clock, WallClock
from keypolicy.runtime.conductor import Conductor
from keypolicy.runtime.secrets import PLACEHOLDER, KeyRing, environment
from keypolicy.runtime.transport import AsyncPolicyTransport, PolicyTransport
from keypolicy.state import MemoryStore, open_store
from keypolicy.state.fallback import FallbackStore

__all__ = ["STATE_ENV", "Runtime", "policy_store"]

log = logging.getLogger("keypolicy.runtime")

# The openai client's own connection limits (it uses them when it makes its own client).
_LIMITS: Final = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)


STATE_ENV: Final = "KEYPOLICY_STATE"
"""The environment variable that names the state store when the policy's ``state.url_env``
does not (it wins over the policy's ``state.url``): ``memory`` or ``redis://HOST:PORT/DB``."""


def policy_store(policy: Policy, environ: Mapping[str, str]) -> Store:
    """The store the policy's ``state:`` names: the URL in its ``url_env`` variable, else in
    ``$KEYPOLICY_STATE``, else its ``url`` (``memory`` by default). Its keys are namespaced by
    ``state.namespace``, else the organization's id, else the policy's name, so that every
    policy on one provider organization shares its limits. With ``state.on_error: local``, a
    :class:`~keypolicy.state.fallback.FallbackStore` around it (each replica on its own share
    while the shared store is down)."""
    state = policy.state
    if state.url_env is not None:
        url = environ.get(state.url_env)
        if not url:
            raise ValueError(
                f"state.url_env names ${state.url_env}, which is not set: set it to the state "
                "store's URL (redis://HOST:PORT/DB)"
            )
    else:
        url = environ.get(STATE_ENV) or state.url
    org = policy.organization
    namespace = state.namespace or (org.id if org is not None and org.id else policy.name)
    store = open_store(url, namespace=namespace)
    _check_clock(store)
    if state.on_error == "local" and not isinstance(store, MemoryStore):
        return FallbackStore(store, 1.0 / (state.replicas or 1))
    return store


def _check_clock(store: Store) -> None:
    """Log a warning if the store is Redis and this machine's clock is off from Redis's by
    more than ``SKEW_WARNING_S`` (what that costs: :func:`keypolicy.state.redis.clock_offset`),
    or if it cannot be measured (Redis unreachable: the calls will say so too)."""
    from keypolicy.state import StoreUnavailable  # noqa: PLC0415 - only for a Redis store
    from keypolicy.state.redis import SKEW_WARNING_S, RedisStore, clock_offset  # noqa: PLC0415

    if not isinstance(store, RedisStore):
        return
    try:
        measured = clock_offset(store)
    except StoreUnavailable as exc:
        log.warning("keypolicy: could not compare this clock with the state store's: %s", exc)
        return
    if abs(measured.offset) > SKEW_WARNING_S:
        log.warning(
            "keypolicy: this machine's clock is %.0f ms %s the state store's (%r; measured "
            "within %.1f ms): replicas sharing limits through it should agree within %.0f ms; "
            "a bucket may refill early or late by the skew times its rate (sync the clocks: "
            "NTP, chrony)",
            abs(measured.offset) * 1000,
            "behind" if measured.offset > 0 else "ahead of",
            store,
            measured.rtt * 500,
            SKEW_WARNING_S * 1000,
        )


class Runtime:
    """Enforces one policy on the live calls of this process.

    ``ledger``: where usage records go (``.sqlite`` by default, ``.csv`` or ``.jsonl``; a
    ``postgresql://`` URL for a ledger the fleet shares; a :class:`~keypolicy.ledger.Ledger`;
    ``None``: :func:`~keypolicy.ledger.default_ledger_path`, that is ``$KEYPOLICY_LEDGER`` or
    ``./keypolicy-usage.sqlite``). Keys' secrets come from the
    environment (``environ`` to pass another mapping, ``env_file`` to read a ``.env`` file under
    it). The provider's URL: ``base_url``, else the policy's ``base_url``, else the openai
    client's own choice (``$OPENAI_BASE_URL``, else OpenAI). ``clock`` is the wall clock unless a
    test brings a fake one; ``store`` holds the shared counters: by default the one the policy's
    ``state:`` names (:func:`policy_store`), in memory unless it says Redis.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        ledger: str | Path | Ledger | None = None,
        environ: Mapping[str, str] | None = None,
        env_file: str | Path | None = None,
        base_url: str | None = None,
        clock: Clock | None = None,
        store: Store | None = None,
        seed: int = 0,
        prometheus: Any = None,
    ) -> None:
        self.policy = policy
        env = environ if environ is not None else environment(env_file)
        self._keys = KeyRing.from_policy(policy, env)
        self.base_url = base_url or policy.base_url
        self.clock: Clock = clock or WallClock()
        # A store the runtime opened itself (from the policy's state:) is closed with it.
        self._own_store: Store | None = None
        if store is None:
            store = self._own_store = policy_store(policy, env)
        self.engine = Engine(compile_policy(policy), store, seed)
        self.ledger = (
            ledger
            if isinstance(ledger, Ledger)
            else Ledger(ledger if ledger is not None else default_ledger_path())
        )
        self._prometheus = prometheus
        self._conductor = Conductor(self.engine, self.clock, on_alert=self._alert)
        prefix = _random.token_hex(3)
        counter = itertools.count(1)
        self._context = Context(
            conductor=self._conductor,
            keys=self._keys,
            policy=policy,
            write=self._write,
            on_retry=self._retry,
            on_rate_limited=self._rate_limited,
            next_id=lambda: f"{prefix}-{next(counter)}",
            open_calls=OpenCalls(),
            closing=threading.Event(),
        )
        self._http = httpx2.HTTPTransport(limits=_LIMITS)
        self.closed = False
        self.ledger_closed = False
        self.records_lost = 0
        """Records the ledger failed to take (each one logged as an error)."""
        self._conductor.start()

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> Runtime:
        """A runtime for the policy file at ``path`` (raises ``PolicyError`` if it is invalid);
        ``options`` as for the constructor."""
        return cls(load_policy(path).policy, **options)

    # ------------------------------------------------------------------ clients

    def openai(self, domain: str, **options: Any) -> OpenAI:
        """A real ``openai.OpenAI`` client whose every call passes the policy as ``domain``.

        ``options`` go to the client (``timeout``, ``organization``, ``default_headers``...);
        its own retries stay off: the policy's retry rules decide.
        """
        transport = self.transport(domain)
        return OpenAI(
            **self._client_options(options),
            # No redirects: httpx would send the request on to another origin, with the key
            # the transport sets; a 3xx is the policy's to judge, as a failure.
            http_client=DefaultHttpxClient(transport=transport, follow_redirects=False),
        )

    def async_openai(self, domain: str, **options: Any) -> AsyncOpenAI:
        """A real ``openai.AsyncOpenAI`` client (asyncio) whose every call passes the policy as
        ``domain``. Close it as usual (``await client.close()``)."""
        transport = self.async_transport(domain)
        return AsyncOpenAI(
            **self._client_options(options),
            http_client=DefaultAsyncHttpxClient(transport=transport, follow_redirects=False),
        )

    def transport(self, domain: str) -> PolicyTransport:
        """The policy's httpx2 transport for ``domain``, for a client you build yourself."""
        self._check(domain)
        return PolicyTransport(self._context, domain, self._http)

    def async_transport(self, domain: str) -> AsyncPolicyTransport:
        """The asyncio transport for ``domain`` (a connection pool of its own)."""
        self._check(domain)
        return AsyncPolicyTransport(
            self._context, domain, httpx2.AsyncHTTPTransport(limits=_LIMITS)
        )

    def _client_options(self, options: dict[str, Any]) -> dict[str, Any]:
        if options.get("max_retries"):
            raise ValueError(
                "keypolicy retries by the policy's retry rules: leave max_retries out (it is 0)"
            )
        for name in ("api_key", "http_client"):
            if name in options:
                raise ValueError(f"keypolicy sets {name} itself: leave it out")
        options = {"max_retries": 0, **options, "api_key": PLACEHOLDER}
        if self.base_url and "base_url" not in options:
            options["base_url"] = self.base_url
        return options

    def _check(self, domain: str) -> None:
        if self.closed:
            raise RuntimeError("this keypolicy Runtime is closed")
        if domain not in self.policy.domains:
            known = ", ".join(sorted(self.policy.domains))
            raise ValueError(
                f"policy {self.policy.name!r} has no domain {domain!r}; it has: {known}"
            )

    @property
    def pending_calls(self) -> int:
        """Calls that have not ended yet: queued, parked, in flight or streaming (a service may
        wait for 0 before it closes the runtime)."""
        return self._context.open_calls.count

    # ------------------------------------------------------------------ what calls report

    def _write(self, record: UsageRecord) -> None:
        """A call's record to the ledger (and Prometheus). Never raises: a ledger that fails
        must not take a paid answer away from its caller; it is logged instead."""
        try:
            if self._prometheus is not None:
                self._prometheus.record(record)
            if self.ledger_closed:
                log.warning(
                    "keypolicy: call %s ended after the runtime closed; its record is not in "
                    "the ledger",
                    record.request_id,
                )
                return
            self.ledger.write(record)
        except Exception as exc:
            self.records_lost += 1
            log.error(
                "keypolicy: the record of call %s could not be written (%s: %s); "
                "%d records lost so far",
                record.request_id,
                type(exc).__name__,
                exc,
                self.records_lost,
            )

    def _retry(self, domain: str) -> None:
        if self._prometheus is not None:
            self._prometheus.retry(domain)

    def _rate_limited(self, domain: str, project: str) -> None:
        if self._prometheus is not None:
            self._prometheus.rate_limited(domain, project)

    def _alert(self, alert: Alert) -> None:
        log.warning(
            "keypolicy: budget %s crossed %.0f%%: $%.2f of $%.2f",
            alert.budget,
            alert.threshold * 100,
            alert.spent_usd,
            alert.usd,
        )

    # ------------------------------------------------------------------ lifetime

    def close(self, drain_s: float = 10.0) -> None:
        """Close the runtime: no call begins any more (``PolicyRejected``, reason ``closed``);
        calls queued or parked are refused (reason ``cancelled``); calls in flight get up to
        ``drain_s`` seconds (real time) to end and be recorded, and are not retried; then the
        timer stops and the ledger is flushed and closed. From an event loop, ``await
        rt.aclose()`` instead, which lets the loop's own calls finish meanwhile."""
        if not self._begin_close():
            return
        deadline = time.monotonic() + drain_s
        while self.pending_calls and time.monotonic() < deadline:
            time.sleep(0.01)
        self._end_close()

    async def aclose(self, drain_s: float = 10.0) -> None:
        """:meth:`close` for asyncio: waits for calls in flight without blocking the loop."""
        if not self._begin_close():
            return
        deadline = time.monotonic() + drain_s
        while self.pending_calls and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(self._end_close)

    def _begin_close(self) -> bool:
        if self.closed:
            return False
        self.closed = True
        self._context.closing.set()
        self._conductor.cancel_waiting()
        return True

    def _end_close(self) -> None:
        self._conductor.cancel_waiting()  # retries parked while draining
        self._conductor.close()
        self.ledger_closed = True
        try:
            self.ledger.close()
        finally:
            self._http.close()
            close_store = getattr(self._own_store, "close", None)
            if close_store is not None:  # a Redis store's connections
                close_store()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Runtime(policy={self.policy.name!r}, ledger={str(self.ledger.path)!r})"
