"""Choosing the order in which a pool's keys are tried, by the pool's strategy.

Deterministic: ties go to the key listed first. ``round_robin`` and ``weighted`` keep a little
state per pool (a pointer, smooth weighted round-robin credits); that state is per process, on
purpose: it only spreads load, it guards no limit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["Selector"]

T = TypeVar("T")


class Selector:
    """Orders candidate keys for one pool."""

    def __init__(self, strategy: str, keys: Sequence[int], weights: Sequence[float]) -> None:
        self.strategy = strategy
        self.keys = tuple(keys)
        self._weights = dict(zip(keys, weights, strict=True))
        self._credits = dict.fromkeys(keys, 0.0)
        self._next = 0
        self._pos = {k: i for i, k in enumerate(self.keys)}

    def rotated(self, items: list[T]) -> list[T]:
        """``items``, one per key in the pool's order, from the next key on: :meth:`turn` of
        every key, for things that stand for the keys."""
        if len(items) != len(self.keys):
            raise ValueError("rotated needs one item per key of the pool")
        return [*items[self._next :], *items[: self._next]]

    def turn(self, candidates: list[int]) -> list[int]:
        """Candidates by turn only (keys that share every limit): from the next key on."""
        if len(candidates) == len(self.keys):  # all open: the pool's order, rotated
            return self.rotated(list(self.keys))
        pos = self._pos
        n = len(self.keys)
        return sorted(candidates, key=lambda k: (pos[k] - self._next) % n)

    def order(self, candidates: list[int], headroom: Callable[[int], float]) -> list[int]:
        """Candidates in the order to try them. ``headroom(key)``: share left after admission."""
        if len(candidates) <= 1:
            return candidates
        pos = self._pos
        n = len(self.keys)
        if self.strategy == "least_loaded":
            # Keys of one project have equal headroom: take turns among them, so that the usage
            # of each key (and its audit trail) stays meaningful.
            return sorted(
                candidates, key=lambda k: (-round(headroom(k), 9), (pos[k] - self._next) % n)
            )
        if self.strategy == "round_robin":
            return sorted(candidates, key=lambda k: (pos[k] - self._next) % n)
        # weighted: smooth weighted round-robin (nginx's): the key with the most credit goes first
        return sorted(candidates, key=lambda k: -(self._credits[k] + self._weights[k]))

    def chosen(self, key: int) -> None:
        """Record that ``key`` was used, so the next choice moves on."""
        if self.strategy in ("round_robin", "least_loaded"):
            self._next = (self._pos[key] + 1) % len(self.keys)
        elif self.strategy == "weighted":
            for k in self.keys:
                self._credits[k] += self._weights[k]
            self._credits[key] -= sum(self._weights.values())
