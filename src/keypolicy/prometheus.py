"""Prometheus counters of live usage (the extra ``keypolicy[prometheus]``).

The same numbers as ``keypolicy usage``, under the same label names (``domain``, ``key``,
``project``, ``model``, ``outcome``), counted as requests end rather than read from the ledger:

- ``keypolicy_requests_total{domain, key, project, model, outcome}``
- ``keypolicy_tokens_total{domain, key, project, model, kind}`` (kind: prompt, cached,
  completion)
- ``keypolicy_cost_usd_total{domain, key, project, model}``
- ``keypolicy_wait_seconds{domain}``: a histogram of the waits of requests answered ``ok``
- ``keypolicy_retries_total{domain}``: attempts beyond the first
- ``keypolicy_upstream_429_total{domain, project}``: every 429 answer the provider gave
- ``keypolicy_usage_estimated_total{domain}``: requests whose usage keypolicy estimated

Keys appear by alias, never a secret.
"""

from __future__ import annotations

from typing import Final

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
except ImportError as exc:  # pragma: no cover - exercised by hiding the module in a test
    raise ImportError(
        "keypolicy.prometheus needs prometheus_client: pip install 'keypolicy[prometheus]'"
    ) from exc

from keypolicy.records import UsageRecord

__all__ = ["WAIT_BUCKETS", "PrometheusMetrics"]

WAIT_BUCKETS: Final = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Bounds of the wait histogram, in seconds."""
_WHO: Final = ("domain", "key", "project", "model")


class PrometheusMetrics:
    """The counters above, registered in ``registry`` (prometheus_client's default registry if
    None: then only one instance per process, as with any metric). Thread-safe."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        into = REGISTRY if registry is None else registry
        self.requests = Counter(
            "keypolicy_requests", "Requests ended, by outcome.", [*_WHO, "outcome"], registry=into
        )
        self.tokens = Counter(
            "keypolicy_tokens", "Tokens used, by kind.", [*_WHO, "kind"], registry=into
        )
        self.cost = Counter("keypolicy_cost_usd", "Cost in USD.", list(_WHO), registry=into)
        self.wait = Histogram(
            "keypolicy_wait_seconds",
            "Seconds requests answered ok waited for admission.",
            ["domain"],
            buckets=WAIT_BUCKETS,
            registry=into,
        )
        self.retries = Counter(
            "keypolicy_retries", "Attempts beyond the first.", ["domain"], registry=into
        )
        self.upstream_429 = Counter(
            "keypolicy_upstream_429",
            "429 answers from the provider.",
            ["domain", "project"],
            registry=into,
        )
        self.estimated = Counter(
            "keypolicy_usage_estimated",
            "Requests whose usage keypolicy estimated (the provider reported none).",
            ["domain"],
            registry=into,
        )

    def record(self, record: UsageRecord) -> None:
        """Count one ended request (its record, as written to the ledger)."""
        who = (record.domain, record.key, record.project, record.model)
        self.requests.labels(*who, record.outcome).inc()
        for kind, count in (
            ("prompt", record.prompt_tokens),
            ("cached", record.cached_tokens),
            ("completion", record.completion_tokens),
        ):
            if count:
                self.tokens.labels(*who, kind).inc(count)
        if record.cost_usd:
            self.cost.labels(*who).inc(record.cost_usd)
        if record.outcome == "ok":
            self.wait.labels(record.domain).observe(record.wait_s)
        if record.usage_estimated:
            self.estimated.labels(record.domain).inc()

    def retry(self, domain: str) -> None:
        """Count one retry (an attempt beyond the first) of a request of ``domain``."""
        self.retries.labels(domain).inc()

    def rate_limited(self, domain: str, project: str) -> None:
        """Count one 429 answer from the provider, for ``domain`` on ``project``'s limits."""
        self.upstream_429.labels(domain, project).inc()
