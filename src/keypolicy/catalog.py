"""The built-in, dated catalog of OpenAI models: prices, context sizes and published limits.

Plain data, importable by the sans-I/O core. Prices are US dollars per million tokens at the
standard (synchronous) tier; the Batch API costs half. Prices and limits change: the catalog
carries the date they were checked (``CATALOG_DATE``), and a policy's ``pricing.overrides`` wins
over any entry here.

``max_rpm``/``max_tpm`` are the highest published per-model limits (usage tier 5) and serve only the
lint that flags a policy declaring more than any account can have.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BATCH_DISCOUNT", "CATALOG", "CATALOG_DATE", "ModelInfo"]

CATALOG_DATE = "2025-08-07"
"""When the prices and limits below were checked against OpenAI's pricing and limits pages."""

BATCH_DISCOUNT = 0.5
"""The Batch API bills input and output at this fraction of the standard price."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model's prices (USD per 1M tokens), window sizes (tokens) and tier-5 limits."""

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
    "gpt-4o-mini": ModelInfo(0.15, 0.075, 0.60, 128_000, 16_384, 30_000, 150_000_000),
    "o3": ModelInfo(2.00, 0.50, 8.00, 200_000, 100_000, 10_000, 30_000_000),
    "o4-mini": ModelInfo(1.10, 0.275, 4.40, 200_000, 100_000, 30_000, 150_000_000),
    "text-embedding-3-small": ModelInfo(0.02, 0.02, 0.0, 8_191, 0, 10_000, 10_000_000),
    "text-embedding-3-large": ModelInfo(0.13, 0.13, 0.0, 8_191, 0, 10_000, 10_000_000),
}
