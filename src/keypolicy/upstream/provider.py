"""The provider model: limits, admission, usage, latency and faults, in one sans-clock object.

:class:`Provider` judges requests the way OpenAI does. A request draws on every bucket of its
model in its project and in the organization (RPM, TPM, RPD, TPD, where limits exist). It is
admitted only if every one has room, and then charged one request and ``prompt + max_output * n``
tokens (prompt tokens only for embeddings). When its answer is complete the driver settles it,
and (if the provider gives unused tokens back) the token charge is corrected to actual usage. A
request larger than a whole limit is refused as "Request too large"; a request that does not fit
now gets a 429 stating the wait. How it counts where OpenAI does not say (whether unused tokens
are given back at settlement, whether a refused request counts, whether per-minute limits are
spent in slices) is the limits' :class:`~keypolicy.upstream.accounting.Accounting`.

Nothing here reads a clock, sleeps or does I/O: every call takes ``now`` (seconds, any epoch, not
decreasing), and every random draw comes from the generator given, in call order. One seed and
one sequence of calls give one result. The simulator calls it in virtual time; the mock server in
scaled wall time.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Final

from keypolicy.upstream import errors, validation
from keypolicy.upstream.batches import BatchQueue, derived_rng
from keypolicy.upstream.buckets import Bucket
from keypolicy.upstream.caching import PromptCache
from keypolicy.upstream.durations import go_duration, stated_seconds
from keypolicy.upstream.faults import FaultKind
from keypolicy.upstream.limits import DIMENSIONS, ORGANIZATION, WINDOW, Dimension, ProviderLimits
from keypolicy.upstream.outcome import Hit, Outcome, RateLimitNumbers, Timing, Usage
from keypolicy.upstream.quota import UsageQuota
from keypolicy.upstream.requests import UpstreamRequest
from keypolicy.upstream.settings import ProviderSettings

__all__ = ["Draw", "Provider"]

_HEADER_DIMENSIONS: Final[tuple[tuple[Dimension, str], ...]] = (
    ("rpm", "requests"),
    ("tpm", "tokens"),
)


@dataclass(frozen=True, slots=True, init=False)
class Draw:
    """One bucket a request draws on: its scope (project or ``*``), dimension and amount."""

    scope: str
    dimension: Dimension
    bucket: Bucket
    amount: int

    def __init__(
        self,
        scope: str,
        dimension: Dimension,
        bucket: Bucket,
        amount: int,
    ) -> None:
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "dimension", dimension)
        object.__setattr__(self, "bucket", bucket)
        object.__setattr__(self, "amount", amount)


@dataclass(slots=True, init=False)
class _Charge:
    """What an admitted request was charged (tokens), and what it will be settled at."""

    token_buckets: list[Bucket]
    charged: int
    actual: int

    def __init__(
        self,
        token_buckets: list[Bucket],
        charged: int,
        actual: int,
    ) -> None:
        self.token_buckets = token_buckets
        self.charged = charged
        self.actual = actual


class Provider:
    """A model of OpenAI's limits and answers, for one organization."""

    def __init__(
        self,
        limits: ProviderLimits,
        settings: ProviderSettings | None = None,
        rng: random.Random | None = None,
        *,
        header_text: bool = True,
        origin: float = 0.0,
    ) -> None:
        self.limits = limits
        # Whether a successful answer carries its rate-limit headers as text. The simulator
        # reads ``Outcome.rate_limits`` (the same numbers) and turns this off: writing Go
        # durations only to parse them back cost about 5% of a simulated request. Failures
        # always carry their headers (``retry-after`` and the rest).
        self.header_text = header_text
        self.settings = settings or ProviderSettings()
        self.rng = rng if rng is not None else random.Random(0)
        self._buckets: dict[tuple[str, str, Dimension], Bucket | None] = {}
        # Per (project, model): the buckets a request draws on, and those its headers show.
        # project -> model -> the plan (nested, not tuple keys: looked up on every request)
        self._plans: dict[str, dict[str, tuple[tuple[str, Dimension, Bucket, bool], ...]]] = {}
        self._shown: dict[str, dict[str, tuple[tuple[Bucket, str, str, str, str], ...]]] = {}
        self._tickets: dict[int, _Charge] = {}
        self._served: dict[str, dict[str, bool]] = {}  # project -> model -> declared
        self._seq = itertools.count(1)
        # How it counts (the policy's assumption, unless the limits were given other rules).
        self._refund = limits.accounting.refund_unused
        self._count_failed = limits.accounting.count_failed
        s = self.settings
        self._cache = PromptCache(s.cache_ttl, s.chars_per_token) if s.prompt_caching else None
        # The monthly usage limit (``origin``: the epoch time of time 0, to know the month).
        self.quota = (
            UsageQuota(limits.usage_limit, limits.price, origin)
            if limits.usage_limit is not None
            else None
        )
        # The Batch API's queue and timing, drawing from a generator of its own: batches leave
        # every other draw of a run as it was.
        self.batches = BatchQueue(
            s.batch, limits.tier, limits.organization_id, derived_rng(self.rng, "batches")
        )

    # -- the requests ---------------------------------------------------------------------------

    def submit(self, request: UpstreamRequest, now: float) -> Outcome:
        """Judge ``request`` arriving at ``now`` (seconds); charge it if admitted.

        A dated snapshot is judged as its family (its limits, its caps); a model the project
        cannot call is a 404, and a request the API would refuse by its sizes a 400, both
        before any limit is looked at (nothing is charged): :mod:`~keypolicy.upstream.validation`.
        """
        asked = request.model
        request = validation.as_family(request)
        if not self.serves(request.project, request.model):
            return Outcome("model_not_found", 404, error=errors.model_not_found(asked))
        invalid = validation.check_request(request)
        if invalid is not None:
            return Outcome("invalid_request", 400, error=invalid)
        fault = self.settings.faults.draw(self.rng)
        # Out of credit (a drawn fault), or past the month's usage limit: nothing is charged.
        if fault == "insufficient_quota" or (self.quota is not None and self.quota.exhausted(now)):
            return Outcome(
                "insufficient_quota",
                429,
                self.headers(request.project, request.model, now),
                errors.insufficient_quota(),
            )
        if fault == "bare_429":
            where = self._where(ORGANIZATION)
            return Outcome(fault, 429, {}, errors.rate_limit_without_wait(request.model, where))
        draws = self.draws(request, now)
        refusal = self._refusal(request, draws, now)
        if refusal is not None:
            return refusal
        return self._admit(request, draws, fault, now)

    def settle(self, ticket: int, now: float) -> None:
        """The answer of ``ticket`` is complete at ``now``: correct its tokens to actual usage,
        if the provider gives unused tokens back (``Accounting.refund_unused``).

        Settling a ticket twice, or one never issued, does nothing.
        """
        charge = self._tickets.pop(ticket, None)
        if charge is None or not self._refund:  # without refunds, the admission charge stands
            return
        delta = charge.actual - charge.charged
        if delta:
            for bucket in charge.token_buckets:
                bucket.correct(delta, now)

    def out_of_quota(self, now: float) -> bool:
        """Whether the month's usage limit is spent at ``now``: every call, a batch's creation
        included, is refused with ``insufficient_quota`` until the month ends."""
        return self.quota is not None and self.quota.exhausted(now)

    def bill_batch(self, model: str, usage: Usage, now: float) -> None:
        """Count a served Batch API request (at batch prices) against the monthly usage limit."""
        if self.quota is not None:
            self.quota.bill(model, usage, now, batch=True)

    @property
    def open_tickets(self) -> int:
        """Admitted requests not settled yet."""
        return len(self._tickets)

    def charge(self, request: UpstreamRequest) -> int:
        """Tokens charged at admission: the prompt (as the limiter counts it:
        ``rate_prompt_tokens`` where set) plus the maximum output of every choice."""
        prompt = request.rate_prompt_tokens
        if prompt is None:
            prompt = request.prompt_tokens
        if request.endpoint == "embeddings":
            return prompt
        most = request.max_output
        if most is None:
            most = self.settings.default_max_output
        return prompt + most * request.n

    def usage(self, request: UpstreamRequest, now: float) -> Usage:
        """Draw the usage of ``request`` (as :meth:`submit` does for an admitted one).

        A request that names a shared prefix is matched by that name even with
        ``prompt_caching`` off: the setting is off by default only because a request without
        text cannot be matched, and one that names its prefix can (the simulator's, from a
        profile's ``shared_prefix``). Text is still matched only with the setting on.
        """
        if request.endpoint == "embeddings":
            return Usage(request.prompt_tokens)
        cached = request.cached_tokens
        if cached is None:
            cached = 0
            cache = self._cache
            if request.shared_prefix_tokens > 0:
                if cache is None:
                    s = self.settings
                    cache = PromptCache(s.cache_ttl, s.chars_per_token, match_text=False)
                    self._cache = cache
                cached = cache.lookup_shared(
                    request.shared_prefix,
                    request.model,
                    request.shared_prefix_tokens,
                    request.prompt_tokens,
                    now,
                )
            elif cache is not None:
                cached = cache.lookup(request.prompt, request.prompt_tokens, now)
        choices = self._completions(request)
        return Usage(
            request.prompt_tokens, sum(choices), min(cached, request.prompt_tokens), choices
        )

    def _completions(self, request: UpstreamRequest) -> tuple[int, ...]:
        if request.completion_tokens is not None:
            if request.n == 1:
                return (request.completion_tokens,)
            share, extra = divmod(request.completion_tokens, request.n)
            return tuple(share + (1 if i < extra else 0) for i in range(request.n))
        most = request.max_output
        if most is None:
            most = self.settings.default_max_output
        if most <= 0:
            return (0,) * request.n
        a, b = self.settings.completion_shape
        return tuple(
            min(most, max(1, round(most * self.rng.betavariate(a, b)))) for _ in range(request.n)
        )

    # -- the buckets ----------------------------------------------------------------------------

    def serves(self, project: str, model: str) -> bool:
        """Whether a key of ``project`` may call ``model`` at all."""
        if self.settings.undeclared_models == "unlimited":
            return True
        by_model = self._served.get(project)
        if by_model is None:
            by_model = self._served[project] = {}
        known = by_model.get(model)
        if known is None:  # limits do not change (buckets are cached the same way)
            known = by_model[model] = self.limits.declares(project, model)
        return known

    def bucket(self, scope: str, model: str, dimension: Dimension, now: float) -> Bucket | None:
        """The bucket of ``model`` in ``scope`` for ``dimension``, or ``None`` without a limit."""
        key = (scope, model, dimension)
        if key not in self._buckets:
            limits = self.limits.limits(scope, model)
            limit = limits.get(dimension) if limits is not None else None
            quantum = self.limits.quantum(scope, model, dimension)
            self._buckets[key] = (
                None
                if limit is None
                else Bucket.create(
                    limit, WINDOW[dimension], now, quantum, unit=dimension in ("rpm", "rpd")
                )
            )
        return self._buckets[key]

    def draws(self, request: UpstreamRequest, now: float) -> list[Draw]:
        """Every bucket ``request`` draws on, the project's first, and how much."""
        tokens = self.charge(request)
        by_model = self._plans.get(request.project)
        if by_model is None:
            by_model = self._plans[request.project] = {}
        plan = by_model.get(request.model)
        if plan is None:
            plan = tuple(
                (scope, dim, bucket, dim in ("rpm", "rpd"))
                for scope in (request.project, ORGANIZATION)
                for dim in DIMENSIONS
                if (bucket := self.bucket(scope, request.model, dim, now)) is not None
            )
            by_model[request.model] = plan
        return [Draw(s, d, bucket, 1 if unit else tokens) for s, d, bucket, unit in plan]

    def headers(self, project: str, model: str, now: float) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers: the per-minute limits of ``model`` for ``project``.

        The project's buckets are shown, or the organization's where the project has none;
        a dimension without any limit has no headers.
        """
        headers = {}
        for bucket, limit_name, limit, remaining_name, reset_name in self._shown_plan(
            project, model, now
        ):
            headers[limit_name] = limit
            headers[remaining_name] = str(bucket.remaining(now))
            headers[reset_name] = go_duration(bucket.reset(now))
        return headers

    def rate_limits(self, project: str, model: str, now: float) -> RateLimitNumbers:
        """What :meth:`headers` states as numbers: the limits and what remains, requests then
        tokens (``None`` where it shows no header). Read back from the headers, they are these."""
        limit_requests = limit_tokens = remaining_requests = remaining_tokens = None
        reset_requests = reset_tokens = None
        for bucket, limit_name, _, _, _ in self._shown_plan(project, model, now):
            reset = stated_seconds(bucket.reset(now))  # as its header states it
            if limit_name == "x-ratelimit-limit-requests":
                limit_requests = float(bucket.limit)
                remaining_requests = float(bucket.remaining(now))
                reset_requests = reset
            else:
                limit_tokens = float(bucket.limit)
                remaining_tokens = float(bucket.remaining(now))
                reset_tokens = reset
        return (
            limit_requests,
            limit_tokens,
            remaining_requests,
            remaining_tokens,
            reset_requests,
            reset_tokens,
        )

    def _shown_plan(
        self, project: str, model: str, now: float
    ) -> tuple[tuple[Bucket, str, str, str, str], ...]:
        by_model = self._shown.get(project)
        if by_model is None:
            by_model = self._shown[project] = {}
        shown = by_model.get(model)
        if shown is None:
            found = []
            for dim, unit in _HEADER_DIMENSIONS:
                bucket = self.bucket(project, model, dim, now) or self.bucket(
                    ORGANIZATION, model, dim, now
                )
                if bucket is not None:
                    found.append(
                        (
                            bucket,
                            f"x-ratelimit-limit-{unit}",
                            str(bucket.limit),
                            f"x-ratelimit-remaining-{unit}",
                            f"x-ratelimit-reset-{unit}",
                        )
                    )
            shown = by_model[model] = tuple(found)
        return shown

    def _where(self, scope: str) -> str:
        if scope != ORGANIZATION and self.settings.project_in_message:
            return f"project {scope}"
        return f"organization {self.limits.organization_id}"

    # -- refusing and admitting -----------------------------------------------------------------

    def _refusal(self, request: UpstreamRequest, draws: list[Draw], now: float) -> Outcome | None:
        for d in draws:
            if d.bucket.too_large(d.amount):
                body = errors.request_too_large(
                    request.model, self._where(d.scope), d.dimension, d.bucket.limit, d.amount
                )
                whole = Hit(d.dimension, d.scope, d.bucket.limit, 0.0, d.amount, math.inf)
                headers = self.headers(request.project, request.model, now)
                return Outcome("too_large", 429, headers, body, hit=whole)
        hit = self._longest_wait(draws, now)
        if hit is None:
            return None
        if self._count_failed:
            # The refused request counts one request per minute (Accounting.count_failed),
            # before the wait is stated: a client that waits as told finds room for its retry.
            for d in draws:
                if d.dimension == "rpm":
                    d.bucket.correct(1, now)
            hit = self._longest_wait(draws, now) or hit
        return self._rate_limited(request, hit, now)

    def _longest_wait(self, draws: list[Draw], now: float) -> Hit | None:
        """The first of the longest waits among the draws that do not fit now, if any."""
        hit: Hit | None = None
        for d in draws:  # no list while everything fits
            if not d.bucket.fits(d.amount, now):
                found = self._hit(d, now)
                if hit is None or found.wait > hit.wait:
                    hit = found
        return hit

    @staticmethod
    def _hit(d: Draw, now: float) -> Hit:
        return Hit(
            d.dimension,
            d.scope,
            d.bucket.limit,
            d.bucket.shown_used(now),
            d.amount,
            d.bucket.wait(d.amount, now),
        )

    def _rate_limited(self, request: UpstreamRequest, hit: Hit, now: float) -> Outcome:
        used = math.ceil(hit.used - 1e-9)
        body = errors.rate_limit_reached(
            request.model,
            self._where(hit.scope),
            hit.dimension,
            hit.limit,
            used,
            hit.requested,
            hit.wait,
        )
        headers = self.headers(request.project, request.model, now)
        if self.settings.retry_after:
            headers["retry-after"] = str(max(1, math.ceil(hit.wait - 1e-9)))
        return Outcome("rate_limited", 429, headers, body, hit=hit)

    def _admit(
        self, request: UpstreamRequest, draws: list[Draw], fault: FaultKind | None, now: float
    ) -> Outcome:
        for d in draws:
            d.bucket.draw(d.amount, now)
        usage = self.usage(request, now)
        timing = self.settings.latency.timing(request.model, usage.completion_tokens, self.rng)
        failed = fault in ("server_error", "timeout", "disconnect")
        ticket = next(self._seq)
        token_buckets = [d.bucket for d in draws if d.dimension in ("tpm", "tpd")]
        actual = 0 if failed else usage.total_tokens
        if self.quota is not None and not failed:
            self.quota.bill(request.model, usage, now)
        self._tickets[ticket] = _Charge(token_buckets, self.charge(request), actual)
        if fault is None and not self.header_text:
            numbers = self.rate_limits(request.project, request.model, now)
            return Outcome("ok", 200, None, None, usage, timing, ticket, None, numbers)
        headers = self.headers(request.project, request.model, now)
        if fault is None or fault == "malformed":
            numbers = self.rate_limits(request.project, request.model, now)
            return Outcome(fault or "ok", 200, headers, None, usage, timing, ticket, None, numbers)
        if fault == "server_error":
            status = self.rng.choice((500, 502, 503))
            first = Timing(timing.first_token, timing.first_token)
            return Outcome(fault, status, headers, errors.server_error(status), None, first, ticket)
        if fault == "timeout":
            delay = self.settings.faults.timeout_delay
            return Outcome(fault, 0, {}, None, None, Timing(delay, delay), ticket)
        first = Timing(timing.first_token, timing.first_token)
        return Outcome("disconnect", 0, headers, None, None, first, ticket)
