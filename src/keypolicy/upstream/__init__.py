"""A model of the provider (OpenAI): its limits, answers, latency and faults.

Written independently of :mod:`keypolicy.core`: it judges the core's decisions, so it shares no
code with it. The simulator drives it in virtual time, the mock server (:mod:`keypolicy.mock`) in
scaled wall time; both call :meth:`Provider.submit` when a request arrives and
:meth:`Provider.settle` when its answer is complete, passing ``now`` in seconds.
"""

from keypolicy.upstream.accounting import ACCOUNTING_RULES, Accounting, parse_assumption
from keypolicy.upstream.batches import BatchQueue, BatchSettings, Enqueued, QueueFull
from keypolicy.upstream.buckets import Bucket
from keypolicy.upstream.caching import PromptCache
from keypolicy.upstream.durations import go_duration, milliseconds
from keypolicy.upstream.faults import FaultKind, FaultSettings
from keypolicy.upstream.latency import DEFAULT_SPEEDS, LatencySettings, ModelSpeed
from keypolicy.upstream.limits import (
    DEFAULT_ORGANIZATION_ID,
    DIMENSIONS,
    ORGANIZATION,
    Dimension,
    ModelLimits,
    ProviderLimits,
    parse_limit_override,
)
from keypolicy.upstream.outcome import Hit, Kind, Outcome, Timing, Usage
from keypolicy.upstream.provider import Draw, Provider
from keypolicy.upstream.requests import (
    EXTENSION_FIELD,
    Endpoint,
    ExactCounts,
    UpstreamRequest,
    estimate_tokens,
    prompt_text,
    request_from_body,
    split_extension,
)
from keypolicy.upstream.settings import ProviderSettings

__all__ = [
    "ACCOUNTING_RULES",
    "DEFAULT_ORGANIZATION_ID",
    "DEFAULT_SPEEDS",
    "DIMENSIONS",
    "EXTENSION_FIELD",
    "ORGANIZATION",
    "Accounting",
    "BatchQueue",
    "BatchSettings",
    "Bucket",
    "Dimension",
    "Draw",
    "Endpoint",
    "Enqueued",
    "ExactCounts",
    "FaultKind",
    "FaultSettings",
    "Hit",
    "Kind",
    "LatencySettings",
    "ModelLimits",
    "ModelSpeed",
    "Outcome",
    "PromptCache",
    "Provider",
    "ProviderLimits",
    "ProviderSettings",
    "QueueFull",
    "Timing",
    "UpstreamRequest",
    "Usage",
    "estimate_tokens",
    "go_duration",
    "milliseconds",
    "parse_assumption",
    "parse_limit_override",
    "prompt_text",
    "request_from_body",
    "split_extension",
]
