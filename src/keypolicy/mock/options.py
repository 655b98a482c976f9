"""The mock server's options, as the command line gives them, and the settings they make.

Rates are probabilities per request (0 to 1); durations are model seconds (``--speed`` divides
them on the wall clock).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from keypolicy.upstream import (
    BatchSettings,
    FaultSettings,
    LatencySettings,
    ModelSpeed,
    ProviderSettings,
)

__all__ = ["MockOptions"]


@dataclass(frozen=True)
class MockOptions:
    """Everything about the mock server besides the policy, host, port, speed and seed.

    - ``limit_factor``, ``limits``: the provider's real limits relative to the declared ones
      (see :meth:`keypolicy.upstream.ProviderLimits.from_policy`; ``limits`` holds
      ``PROJECT/MODEL:rpm=500,tpm=200k`` specifications, project ``*`` for the organization).
    - ``latency``: False answers at once; ``ttft`` (seconds) and ``tokens_per_second`` replace
      every model's speed; ``jitter`` is the log-normal noise; ``latency_scale`` multiplies it all.
    - fault rates: ``error_rate`` (500/502/503), ``timeout_rate`` (hang ``timeout_delay`` s),
      ``disconnect_rate``, ``bare_429_rate``, ``malformed_rate``, ``quota_rate``.
    - ``assume``: ``RULE=VALUE`` specifications (``refund_unused=true``, ``quantum_tokens=1s``):
      the mock counts by these accounting rules instead of the policy's (the simulator's
      ``--assume``, one value each), so a live mismatch can be staged.
    - ``retry_after``, ``prompt_caching``, ``chars_per_token``,
      ``default_max_output``: see :class:`keypolicy.upstream.ProviderSettings`.
    - ``batch_median``, ``batch_p95``: how long a batch takes (model seconds): the median and
      95th percentile of the log-normal it is drawn from (:class:`~keypolicy.upstream.
      BatchSettings`; its defaults where unset, ``batch_p95`` keeping their ratio to a median
      given alone). ``batch_delay``: every batch takes exactly this long instead.
    - ``organization_id``: the ``org-...`` in 429 messages (default: the policy's, or a mock id).
    """

    limit_factor: float = 1.0
    limits: tuple[str, ...] = ()
    organization_id: str | None = None
    latency: bool = True
    ttft: float | None = None
    tokens_per_second: float | None = None
    jitter: float = 0.25
    latency_scale: float = 1.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    disconnect_rate: float = 0.0
    bare_429_rate: float = 0.0
    malformed_rate: float = 0.0
    quota_rate: float = 0.0
    timeout_delay: float = 600.0
    retry_after: bool = False
    prompt_caching: bool = False
    assume: tuple[str, ...] = ()
    chars_per_token: float = 4.0
    default_max_output: int = 512
    batch_delay: float | None = None
    batch_median: float | None = None
    batch_p95: float | None = None

    def latency_settings(self) -> LatencySettings:
        """Latency as the options set it."""
        if not self.latency:
            return LatencySettings.instant()
        settings = LatencySettings(jitter=self.jitter, scale=self.latency_scale)
        if self.ttft is None and self.tokens_per_second is None:
            return settings
        models = {
            name: ModelSpeed(
                speed.ttft if self.ttft is None else self.ttft,
                speed.tokens_per_second
                if self.tokens_per_second is None
                else self.tokens_per_second,
            )
            for name, speed in {**settings.models, "": settings.default}.items()
        }
        default = models.pop("")
        return replace(settings, models=models, default=default)

    def fault_settings(self) -> FaultSettings:
        """Faults as the options set them."""
        return FaultSettings(
            insufficient_quota=self.quota_rate,
            bare_429=self.bare_429_rate,
            server_error=self.error_rate,
            timeout=self.timeout_rate,
            disconnect=self.disconnect_rate,
            malformed=self.malformed_rate,
            timeout_delay=self.timeout_delay,
        )

    def batch_settings(self) -> BatchSettings:
        """Batch times as the options set them."""
        default = BatchSettings()
        median = default.median if self.batch_median is None else self.batch_median
        p95 = self.batch_p95
        if p95 is None:
            p95 = median * default.p95 / default.median
        return BatchSettings(median, p95, default.window, self.batch_delay)

    def provider_settings(self) -> ProviderSettings:
        """The provider model's settings."""
        return ProviderSettings(
            chars_per_token=self.chars_per_token,
            default_max_output=self.default_max_output,
            prompt_caching=self.prompt_caching,
            retry_after=self.retry_after,
            latency=self.latency_settings(),
            faults=self.fault_settings(),
            batch=self.batch_settings(),
        )
