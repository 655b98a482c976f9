"""The Pareto front of the candidates, and its ranking.

Scores are compared on a grid: a mean counts as ``floor(mean / resolution)`` steps (see
:mod:`keypolicy.advise.scores`), so that two candidates within one resolution of each other on
a score are equal there. Candidate A *dominates* B when A is no worse on every objective and
better on one (on the grid); the front is every candidate nobody dominates. Being a strict
partial order on grid values, dominance is transitive: a candidate off the front is dominated
by one on it.

The front is ranked lexicographically by an order of what matters (default
:data:`keypolicy.advise.scores.DEFAULT_RANK`: critical safety first, then cost, then
simplicity), grid values again, ties by the enumeration's order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from keypolicy.advise.scores import METRICS, Scores

__all__ = ["Objectives", "dominates", "front", "rank"]

Grid = tuple[int, ...]


@dataclass(frozen=True)
class Objectives:
    """The scores the front is made of, with the resolution each is compared at."""

    names: tuple[str, ...]
    resolution: Mapping[str, float]
    origin: Mapping[str, float] = field(default_factory=dict)  # a grid line per score (0)

    @classmethod
    def default(cls, names: Sequence[str] | None = None, **resolution: float) -> Objectives:
        """Every score (or ``names``), at the default resolutions unless given."""
        chosen = tuple(names) if names else tuple(METRICS)
        unknown = [n for n in (*chosen, *resolution) if n not in METRICS]
        if unknown:
            raise ValueError(
                f"unknown score {', '.join(unknown)}: the scores are {', '.join(METRICS)}"
            )
        return cls(chosen, {n: resolution.get(n, METRICS[n].resolution) for n in METRICS})

    def with_cost_step(self, usd: float, centre: float) -> Objectives:
        """These objectives with cost compared in steps of ``usd`` (if no step was given), the
        current grouping's cost ``centre`` in the middle of its step: a candidate costing the
        same up to a rounding error, or a cent, is never a step apart from it."""
        if self.resolution["cost"] > 0:
            return self
        step = max(usd, 1e-9)
        return Objectives(
            self.names,
            {**self.resolution, "cost": step},
            {**self.origin, "cost": centre - step / 2},
        )

    def grid(
        self,
        scores: Scores,
        names: Sequence[str] | None = None,
        shift: Mapping[str, float] | None = None,
    ) -> Grid:
        """The scores' means on the grid, in the order of ``names`` (default: the objectives);
        ``shift`` adds to each mean first (a bound: mean ± error; no score is below 0, so
        neither is a bound)."""
        moved = shift or {}
        return tuple(
            math.floor(
                (max(scores.mean(n) + moved.get(n, 0.0), 0.0) - self.origin.get(n, 0.0))
                / self.resolution[n]
                + 1e-6  # sums added in another order differ in their last bits: not a step
            )
            for n in names or self.names
        )


def dominates(a: Grid, b: Grid) -> bool:
    """Whether ``a`` is no worse than ``b`` everywhere and better somewhere."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def front(grids: Mapping[int, Grid]) -> list[int]:
    """The candidates (by index) no other dominates, in index order."""
    items = sorted(grids.items())
    return [i for i, g in items if not any(dominates(h, g) for j, h in items if j != i)]


def rank(
    members: Sequence[int],
    scores: Mapping[int, Scores],
    objectives: Objectives,
    order: Sequence[str],
) -> list[int]:
    """``members`` ordered by ``order`` (score names, most important first), on the grid."""
    return sorted(members, key=lambda i: (objectives.grid(scores[i], order), i))
