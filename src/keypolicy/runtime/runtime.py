"""The runtime: a policy enforced on live ``openai`` calls, in the service that makes them.

``Runtime`` holds one engine (behind one lock), the keys' secrets, a timer and the usage ledger.
It hands out real ``openai.OpenAI`` / ``openai.AsyncOpenAI`` clients whose HTTP transport is a
:class:`~keypolicy.runtime.transport.PolicyTransport` for one domain: every call the client makes
passes the policy there (key choice, limits, priority queue, budgets, retries, deferral), and
ends as one usage record in the ledger.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import secrets as _random
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

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

if TYPE_CHECKING:
    from keypolicy.jobs import Job, JobSettings
    from keypolicy.jobs.handle import Board
    from keypolicy.jobs.store import JobStore
    from keypolicy.jobs.worker import Worker

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

    Deferred jobs (:meth:`defer`, :meth:`jobs`; :mod:`keypolicy.jobs`) queue in the ledger's
    database and are run by a worker thread of this runtime: started at the first
    :meth:`defer`, or at once if the queue holds unfinished jobs (a restart), unless
    ``jobs_worker=False`` (a standalone ``keypolicy worker`` runs them; ``True`` starts it at
    once). ``job_settings``: the worker's :class:`~keypolicy.jobs.JobSettings`.
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
        jobs_worker: bool | None = None,
        job_settings: JobSettings | None = None,
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
        # Deferred jobs (rt.defer): the queue opens, and the worker starts, when first needed;
        # at once if asked (jobs_worker=True), or if jobs are left unfinished in the queue.
        self._jobs_worker = jobs_worker
        self._job_settings = job_settings
        self._job_store: JobStore | None = None
        self._job_board: Board | None = None
        self._worker: Worker | None = None
        self._jobs_lock = threading.Lock()
        if jobs_worker or (jobs_worker is None and self._jobs_left()):
            self._start_worker()

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

    # ------------------------------------------------------------------ deferred jobs

    def defer(
        self, domain: str, endpoint: str, body: dict[str, Any], key: str | None = None
    ) -> Job:
        """Queue a job for ``domain`` (a ``defer: queue`` or ``defer: batch`` domain): a call
        of ``endpoint`` (``chat.completions``, ``responses``, ``embeddings``) with the JSON
        ``body`` the openai client would send (``model`` defaults to the domain's). It runs
        when the policy says (see README, "Work that can wait"), and survives restarts.

        ``key``: an idempotency key: deferring again with the same key returns the job
        already queued with it (``ValueError`` if its domain, endpoint or body differ).
        Raises ``PolicyRejected`` (reason ``invalid_request`` or ``model_not_allowed``, with
        the API's reason) for a body the endpoint would refuse, ``ValueError`` for a domain
        that does not defer."""
        from keypolicy.jobs.handle import Job  # noqa: PLC0415 - jobs load when used
        from keypolicy.jobs.model import JobRecord  # noqa: PLC0415
        from keypolicy.jobs.validate import check_job  # noqa: PLC0415

        self._check(domain)
        config = self.engine.config
        checked = check_job(config, domain, endpoint, body)
        spec = config.domains[domain]
        now = self.clock.now()
        record = JobRecord(
            # Ids sort in the order jobs were made (the queue lists them so): the real time in
            # ns, then random bits.
            id=f"job_{time.time_ns():016x}{_random.token_hex(4)}",
            key=key,
            domain=domain,
            endpoint=endpoint,
            mode="batch" if spec.defer == "batch" else "queue",
            model=str(checked.body["model"]),
            body=checked.body,
            status="waiting",
            created=now,
            deadline=now + spec.defer_deadline,
            not_before=now,
            prompt_tokens=checked.estimate.prompt_tokens,
        )
        store, board = self._jobs_queue()
        found, new = store.add(record)
        if not new and (found.domain, found.endpoint, found.body) != (
            domain,
            endpoint,
            checked.body,
        ):
            raise ValueError(
                f"idempotency key {key!r} was used for job {found.id} of domain "
                f"{found.domain!r} with another body: give this job a key of its own"
            )
        worker = self._start_worker()
        if worker is not None:
            worker.poke()
        return Job(found, store, board)

    def jobs(
        self,
        status: str | list[str] | None = None,
        domain: str | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs in the queue, oldest first: of ``status`` (one, or a list; all if ``None``),
        of ``domain``, at most ``limit``. They outlive the process that deferred them."""
        from keypolicy.jobs.handle import Job  # noqa: PLC0415
        from keypolicy.jobs.model import STATUSES  # noqa: PLC0415

        statuses = [status] if isinstance(status, str) else status
        for name in statuses or ():
            if name not in STATUSES:
                raise ValueError(f"no job status {name!r}: one of {', '.join(STATUSES)}")
        store, board = self._jobs_queue()
        return [Job(r, store, board) for r in store.find(statuses, domain, limit)]

    def job(self, job_id: str) -> Job | None:
        """The job ``job_id``, if the queue has it."""
        from keypolicy.jobs.handle import Job  # noqa: PLC0415

        store, board = self._jobs_queue()
        record = store.get(job_id)
        return None if record is None else Job(record, store, board)

    def _jobs_queue(self) -> tuple[JobStore, Board]:
        """The job queue in the ledger's database (opened on first use)."""
        from keypolicy.jobs.handle import Board  # noqa: PLC0415
        from keypolicy.jobs.store import open_job_store  # noqa: PLC0415

        if self.closed:
            raise RuntimeError("this keypolicy Runtime is closed")
        with self._jobs_lock:
            if self._job_store is None:
                self._job_store = open_job_store(self.ledger.path)
                self._job_board = Board()
            assert self._job_board is not None
            return self._job_store, self._job_board

    def _jobs_left(self) -> bool:
        """Whether the policy defers and its queue holds unfinished jobs (a restart)."""
        from keypolicy.jobs.store import unfinished_jobs  # noqa: PLC0415

        defers = any(d.defer.mode != "never" for d in self.policy.domains.values())
        return defers and unfinished_jobs(self.ledger.path) > 0

    def _start_worker(self) -> Worker | None:
        """The in-process worker, started if it is not (unless ``jobs_worker=False``)."""
        from keypolicy.jobs.settings import RuntimeParts  # noqa: PLC0415
        from keypolicy.jobs.worker import Worker  # noqa: PLC0415

        if self._jobs_worker is False:
            return None
        store, board = self._jobs_queue()
        with self._jobs_lock:
            if self._worker is None:
                parts = RuntimeParts(
                    policy=self.policy,
                    config=self.engine.config,
                    conductor=self._conductor,
                    clock=self.clock,
                    keys=self._keys,
                    base_url=self.base_url,
                    ledger=self.ledger,
                    call_transport=self._job_transport,
                    write=self._write,
                )
                self._worker = Worker(parts, store, board, self._job_settings)
                self._worker.start()
            return self._worker

    def _job_transport(
        self, domain: str, inner: httpx2.AsyncBaseTransport, write: Any
    ) -> httpx2.AsyncBaseTransport:
        """The policy's asyncio transport for a job's call of ``domain``: a live call's path,
        its record handed to ``write`` (the job's end writes it)."""
        return AsyncPolicyTransport(dataclasses.replace(self._context, write=write), domain, inner)

    def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()

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
        rt.aclose()`` instead, which lets the loop's own calls finish meanwhile. The jobs
        worker stops first: jobs not sent wait in the queue for the next worker."""
        self._stop_worker()
        if not self._begin_close():
            return
        deadline = time.monotonic() + drain_s
        while self.pending_calls and time.monotonic() < deadline:
            time.sleep(0.01)
        self._end_close()

    async def aclose(self, drain_s: float = 10.0) -> None:
        """:meth:`close` for asyncio: waits for calls in flight without blocking the loop."""
        await asyncio.to_thread(self._stop_worker)
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
            if self._job_store is not None:
                self._job_store.close()
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
