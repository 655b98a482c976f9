"""What a request costs, in US dollars, from its tokens and the compiled price table."""

from __future__ import annotations

from keypolicy.core.config import Price

__all__ = ["actual_cost", "estimated_cost", "format_usd"]


def estimated_cost(
    price: Price, prompt: int, max_output: int, n: int, batch: bool, discount: float
) -> float:
    """The most a request can cost: every prompt token uncached, every choice at full length."""
    cost = prompt * price.input + max_output * n * price.output
    return cost * discount if batch else cost


def actual_cost(
    price: Price, prompt: int, cached: int, completion: int, batch: bool, discount: float
) -> float:
    """What a settled request costs; cached prompt tokens at the cached price."""
    cached = min(max(cached, 0), prompt)
    cost = (prompt - cached) * price.input + cached * price.cached_input
    cost += completion * price.output
    return cost * discount if batch else cost


def format_usd(amount: float) -> str:
    """Dollars for people: ``$1,234.50`` from a dollar up, ``$0.000975`` below one."""
    if abs(amount) >= 1 or amount == 0:
        return f"${amount:,.2f}"
    return "$" + f"{amount:.6f}".rstrip("0")
