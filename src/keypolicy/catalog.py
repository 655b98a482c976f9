"""The built-in, dated catalog of OpenAI models: prices, context sizes and published limits.

Plain data, importable by the sans-I/O core. Prices are US dollars per million tokens at the
standard (synchronous) tier; the Batch API costs half. Prices and limits change: the catalog
carries the date they were checked (``CATALOG_DATE``), and a policy's ``pricing.overrides`` wins
over any entry here.

``max_rpm``/``max_tpm`` are the highest published per-model limits (usage tier 5) and serve only the
lint that flags a policy declaring more than any account can have.

Dated snapshots (``gpt-4o-2024-08-06``) are served under their family's name too: OpenAI's
rate-limit guide lists them with their family, sharing its limits, and they share its prices and
window sizes. :func:`family` resolves a snapshot to its family, and is the one place that does:
pricing, the compiled limits, the engine's check of what a domain may call and the provider model
all go through it. So a domain that may call ``gpt-4o`` may call ``gpt-4o-2024-08-06``, charged
to ``gpt-4o``'s limits at ``gpt-4o``'s prices. ``gpt-4o-2024-05-13`` is no such snapshot: it has
prices and an output cap of its own, so it is a model of its own here (a policy that uses it names
it and declares its limits).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BATCH_DISCOUNT",
    "CATALOG",
    "CATALOG_DATE",
    "SNAPSHOTS",
    "TIERS",
    "ModelInfo",
    "TierInfo",
    "batch_queue_limit",
    "family",
    "model_info",
]

CATALOG_DATE = "2025-08-07"
"""When the prices and limits below were checked against OpenAI's pricing and limits pages."""

BATCH_DISCOUNT = 0.5
"""The Batch API bills input and output at this fraction of the standard price."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model's prices (USD per 1M tokens), window sizes (tokens) and tier-5 limits.

    ``context_window`` bounds the prompt plus ``max_output_tokens`` of one request (for an
    embeddings model: the tokens of one input); ``max_output`` is the most output tokens one
    request may ask for (0: the model writes none, an embeddings model).
    """

    input: float
    cached_input: float
    output: float
    context_window: int
    max_output: int
    max_rpm: int
    max_tpm: int


CATALOG: dict[str, ModelInfo] = {
    "gpt-5": ModelInfo(1.25, 0.125, 10.00, 400_000, 128_000, 15_000, 40_000_000),
    "gpt-5-mini": ModelInfo(0.25, 0.025, 2.00, 400_000, 128_000, 30_000, 180_000_000),
    "gpt-5-nano": ModelInfo(0.05, 0.005, 0.40, 400_000, 128_000, 30_000, 180_000_000),
    "gpt-4.1": ModelInfo(2.00, 0.50, 8.00, 1_047_576, 32_768, 10_000, 30_000_000),
    "gpt-4.1-mini": ModelInfo(0.40, 0.10, 1.60, 1_047_576, 32_768, 30_000, 150_000_000),
    "gpt-4.1-nano": ModelInfo(0.10, 0.025, 0.40, 1_047_576, 32_768, 30_000, 150_000_000),
    "gpt-4o": ModelInfo(2.50, 1.25, 10.00, 128_000, 16_384, 10_000, 30_000_000),
    # Prices and output cap of its own (no cached-input discount): a model of its own here, though
    # OpenAI counts it under gpt-4o's limits (see the module docstring).
    "gpt-4o-2024-05-13": ModelInfo(5.00, 5.00, 15.00, 128_000, 4_096, 10_000, 30_000_000),
    "gpt-4o-mini": ModelInfo(0.15, 0.075, 0.60, 128_000, 16_384, 30_000, 150_000_000),
    "o3": ModelInfo(2.00, 0.50, 8.00, 200_000, 100_000, 10_000, 30_000_000),
    "o4-mini": ModelInfo(1.10, 0.275, 4.40, 200_000, 100_000, 30_000, 150_000_000),
    # 8,192 tokens per input, as the API's 400 states it: "This model's maximum context length
    # is 8192 tokens, however you requested 8610 tokens (8610 in your prompt; 0 for the
    # completion)" (github.com/pingcap/autoflow/issues/265, text-embedding-3-small, 2024).
    "text-embedding-3-small": ModelInfo(0.02, 0.02, 0.0, 8_192, 0, 10_000, 10_000_000),
    "text-embedding-3-large": ModelInfo(0.13, 0.13, 0.0, 8_192, 0, 10_000, 10_000_000),
}

SNAPSHOTS: dict[str, str] = {
    "gpt-5-2025-08-07": "gpt-5",
    "gpt-5-mini-2025-08-07": "gpt-5-mini",
    "gpt-5-nano-2025-08-07": "gpt-5-nano",
    "gpt-4.1-2025-04-14": "gpt-4.1",
    "gpt-4.1-mini-2025-04-14": "gpt-4.1-mini",
    "gpt-4.1-nano-2025-04-14": "gpt-4.1-nano",
    "gpt-4o-2024-08-06": "gpt-4o",
    "gpt-4o-2024-11-20": "gpt-4o",
    "gpt-4o-mini-2024-07-18": "gpt-4o-mini",
    "o3-2025-04-16": "o3",
    "o4-mini-2025-04-16": "o4-mini",
}
"""Dated snapshot -> its family: the snapshots OpenAI serves under the family's limits, prices
and window sizes (as checked on ``CATALOG_DATE``)."""


def family(model: str) -> str:
    """The model whose limits, prices and window sizes ``model`` shares: its family if it is a
    dated snapshot of one (:data:`SNAPSHOTS`), else ``model`` itself."""
    return SNAPSHOTS.get(model, model)


def model_info(model: str) -> ModelInfo | None:
    """The catalog's entry for ``model`` or its family; ``None`` for a model it does not know."""
    return CATALOG.get(family(model))


@dataclass(frozen=True, slots=True)
class TierInfo:
    """What an OpenAI usage tier allows an organization besides its per-model rate limits.

    ``usage_limit`` is the most the organization may spend in a calendar month (USD): past it
    every call is refused with ``insufficient_quota`` until the month ends. ``batch_queue`` is
    the most prompt tokens the organization may have enqueued in the Batch API at once, per
    model family (a family missing here has no published figure: not enforced).
    """

    usage_limit: float
    batch_queue: dict[str, int]


TIERS: dict[int, TierInfo] = {
    # Usage limits from the rate-limit guide's tier table (help center and forum copies of it,
    # 2024-2025); tier 5's has read $10,000, $50,000 and $200,000 at different dates: the most
    # recent is used, and a policy may state its own (organization.usage_limit).
    # Batch queue limits (enqueued prompt tokens) from the same guide's per-model tables.
    1: TierInfo(100.0, {"gpt-4o": 90_000, "gpt-4o-mini": 2_000_000, "gpt-4.1": 90_000}),
    2: TierInfo(500.0, {"gpt-4o": 1_350_000, "gpt-4o-mini": 20_000_000, "gpt-4.1": 1_350_000}),
    3: TierInfo(1_000.0, {"gpt-4o": 50_000_000, "gpt-4o-mini": 40_000_000, "gpt-4.1": 50_000_000}),
    4: TierInfo(
        5_000.0, {"gpt-4o": 200_000_000, "gpt-4o-mini": 1_000_000_000, "gpt-4.1": 200_000_000}
    ),
    5: TierInfo(
        200_000.0,
        {"gpt-4o": 5_000_000_000, "gpt-4o-mini": 15_000_000_000, "gpt-4.1": 5_000_000_000},
    ),
}
"""Usage tier -> its monthly usage limit and Batch API queue limits (as checked on
``CATALOG_DATE``)."""


def batch_queue_limit(tier: int | None, model: str) -> int | None:
    """Prompt tokens ``model`` (or its family) may have enqueued in the Batch API at ``tier``;
    ``None`` where no figure is known (no tier, or a model the table does not list)."""
    info = TIERS.get(tier) if tier is not None else None
    return None if info is None else info.batch_queue.get(family(model))
