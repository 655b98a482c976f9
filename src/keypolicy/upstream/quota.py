"""The organization's monthly usage limit: past it, every call is refused until the month ends.

OpenAI gives every usage tier a monthly usage limit (tier 3: $1,000; see
:data:`keypolicy.catalog.TIERS`). Once an organization's spend in the calendar month passes it,
every request is answered ``429 insufficient_quota`` until the next month begins (the forum's
reading of the tier table: "the whole account will be cut off from spending ... at that monthly
limit"). Months are counted in UTC, as OpenAI's billing is.

The provider bills what it served at the prices it knows (the policy's own, else the catalog's;
batch requests at the batch discount). A simulation starts its month with nothing spent: a
simulated day that begins mid-month is optimistic by what was spent before it, which is why
``simulate`` also compares the spend it projects for a whole month with the limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from keypolicy.catalog import BATCH_DISCOUNT

if TYPE_CHECKING:  # outcome imports limits, which imports Price from here
    from keypolicy.upstream.outcome import Usage

__all__ = ["Price", "UsageQuota", "month_bounds"]


@dataclass(frozen=True, slots=True)
class Price:
    """What one token costs (USD): prompt, cached prompt, completion."""

    input: float
    cached_input: float
    output: float

    @classmethod
    def per_million(cls, input: float, cached_input: float | None, output: float) -> Price:
        """A price stated, as OpenAI does, per million tokens (cached: as input if unset)."""
        cached = input if cached_input is None else cached_input
        return cls(input / 1e6, cached / 1e6, output / 1e6)

    def cost(self, usage: Usage) -> float:
        """What ``usage`` costs at this price."""
        fresh = usage.prompt_tokens - usage.cached_tokens
        return (
            fresh * self.input
            + usage.cached_tokens * self.cached_input
            + usage.completion_tokens * self.output
        )


def month_bounds(t: float) -> tuple[float, float]:
    """The UTC calendar month holding epoch time ``t``: (start, end) in epoch seconds."""
    at = datetime.fromtimestamp(t, UTC)
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.timestamp(), start.replace(year=year, month=month).timestamp()


class UsageQuota:
    """Spend in the current month against the monthly usage ``limit`` (USD).

    ``price_of(model)`` gives a model's price (``None``: not billed, a model nobody prices).
    ``origin``: the epoch time of the provider's time 0 (the simulator counts seconds from the
    traffic's start; the mock server passes epoch seconds and an origin of 0).
    """

    def __init__(
        self, limit: float, price_of: Callable[[str], Price | None], origin: float = 0.0
    ) -> None:
        self.limit = limit
        self.origin = origin
        self._price_of = price_of
        self._prices: dict[str, Price | None] = {}
        self._start = 0.0
        self._end = -1.0  # no month yet: the first call opens one
        self.spent = 0.0
        """USD billed in the current month."""

    def _month(self, now: float) -> None:
        """Move to the month holding ``now`` (spend starts again at 0 in a new month)."""
        t = self.origin + now
        if self._start <= t < self._end:
            return
        self._start, self._end = month_bounds(t)
        self.spent = 0.0

    def exhausted(self, now: float) -> bool:
        """Whether this month's spend has reached the limit at ``now``."""
        self._month(now)
        return self.spent >= self.limit

    def resets_in(self, now: float) -> float:
        """Seconds from ``now`` until the month ends (and the quota with it)."""
        self._month(now)
        return self._end - (self.origin + now)

    def bill(self, model: str, usage: Usage, now: float, *, batch: bool = False) -> float:
        """Add what ``usage`` of ``model`` costs (at the batch discount for a batch request) to
        this month's spend; returns that cost."""
        self._month(now)
        if model not in self._prices:
            self._prices[model] = self._price_of(model)
        price = self._prices[model]
        if price is None:
            return 0.0
        cost = price.cost(usage) * (BATCH_DISCOUNT if batch else 1.0)
        self.spent += cost
        return cost
