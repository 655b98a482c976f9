"""Groupings of domains into pools: the set partitions that honour the user's constraints.

``together`` groups are merged first (a domain in two of them joins both groups into one);
then every set partition of those blocks is produced once, by its *restricted growth string*
(block ``i`` goes to a pool already opened by an earlier block, or opens the next one), with
``apart`` pairs never in one pool and at most ``max_pools`` pools. Six free domains make the
Bell number B6 = 203 groupings; seven, 877; eight, 4,140.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["ConstraintError", "Constraints", "Grouping", "bell", "count_groupings", "groupings"]

Grouping = tuple[frozenset[str], ...]
"""Pools as sets of domain names; pools sorted by their first domain (alphabetically)."""


class ConstraintError(ValueError):
    """Constraints that name unknown domains or contradict each other."""


@dataclass(frozen=True)
class Constraints:
    """What every grouping must honour.

    ``apart``: groups of domains no two of which may share a pool; ``together``: groups that
    must share one; ``max_pools``: the most pools (None: any number).
    """

    apart: tuple[frozenset[str], ...] = ()
    together: tuple[frozenset[str], ...] = ()
    max_pools: int | None = None

    def check(self, domains: Sequence[str]) -> None:
        """Raise :class:`ConstraintError` for a domain not in ``domains``, a pair both apart
        and together, or a ``max_pools`` below 1 or below what ``apart`` needs."""
        known = set(domains)
        for flag, groups in (("--apart", self.apart), ("--together", self.together)):
            for group in groups:
                unknown = sorted(group - known)
                if unknown:
                    raise ConstraintError(
                        f"{flag} {','.join(sorted(group))}: unknown domain "
                        f"{', '.join(unknown)} (the policy's domains: {', '.join(sorted(known))})"
                    )
                if len(group) < 2:
                    raise ConstraintError(f"{flag} {','.join(group)}: name two domains or more")
        blocks = _blocks(list(domains), self.together)
        for group in self.apart:
            for block in blocks:
                both = sorted(group & block)
                if len(both) > 1:
                    raise ConstraintError(
                        f"--apart {','.join(sorted(group))} contradicts --together: "
                        f"{' and '.join(both)} must share a pool and must not"
                    )
        if self.max_pools is not None:
            needed = max((len(g) for g in self.apart), default=1)
            if self.max_pools < needed:
                raise ConstraintError(
                    f"--max-pools {self.max_pools}: --apart needs at least {needed} pools"
                )

    def allows(self, pools: Grouping) -> bool:
        """Whether a grouping honours every constraint."""
        if self.max_pools is not None and len(pools) > self.max_pools:
            return False
        for pool in pools:
            if any(len(pool & g) > 1 for g in self.apart):
                return False
        return all(any(g <= pool for pool in pools) for g in self.together)


def _blocks(domains: list[str], together: Sequence[frozenset[str]]) -> list[frozenset[str]]:
    """Domains grouped by ``together`` (transitively), each other domain alone; in the order
    of each block's first domain in ``domains``."""
    blocks: list[set[str]] = [{d} for d in domains]
    for group in together:
        joined = [b for b in blocks if b & group]
        merged = set().union(*joined) if joined else set()
        blocks = [b for b in blocks if not b & group] + [merged]
    order = {d: i for i, d in enumerate(domains)}
    return sorted((frozenset(b) for b in blocks), key=lambda b: min(order[d] for d in b))


def groupings(domains: Sequence[str], constraints: Constraints | None = None) -> Iterator[Grouping]:
    """Every grouping of ``domains`` into pools that honours ``constraints``, each once, in a
    fixed order (the first: every block in a pool of its own)."""
    rules = constraints or Constraints()
    names = sorted(domains)
    blocks = _blocks(names, rules.together)
    limit = rules.max_pools or len(blocks)
    pools: list[set[str]] = []

    def place(i: int) -> Iterator[Grouping]:
        if i == len(blocks):
            yield tuple(sorted((frozenset(p) for p in pools), key=min))
            return
        block = blocks[i]
        if len(pools) < limit and not _clash(block, rules.apart):
            pools.append(set(block))
            yield from place(i + 1)
            pools.pop()
        for opened in pools:
            if not _clash(opened | block, rules.apart):
                opened.update(block)
                yield from place(i + 1)
                opened.difference_update(block)

    # Opening a new pool first makes the first grouping "each block alone".
    yield from place(0)


def _clash(pool: set[str] | frozenset[str], apart: Sequence[frozenset[str]]) -> bool:
    return any(len(pool & group) > 1 for group in apart)


def count_groupings(
    domains: Sequence[str], constraints: Constraints | None = None, *, stop_at: int | None = None
) -> int:
    """How many groupings :func:`groupings` makes (counting stops past ``stop_at``)."""
    count = 0
    for _ in groupings(domains, constraints):
        count += 1
        if stop_at is not None and count > stop_at:
            break
    return count


def bell(n: int) -> int:
    """The Bell number B(n): the ways to group ``n`` domains with no constraint."""
    row = [1]
    for _ in range(n):
        nxt = [row[-1]]
        for value in row:
            nxt.append(nxt[-1] + value)
        row = nxt
    return row[0]
