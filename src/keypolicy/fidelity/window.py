"""A slice of traffic: the arrivals of ``[begin, end)`` seconds after its start, from the seed.

The whole traffic is generated (so a slice has exactly the arrivals the whole day has in it, the
same seed giving the same ones) and those outside the slice are dropped; the slice starts at its
own first moment, on the wall clock (calendar budgets and windows see the real time of day).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta

from keypolicy.sim.arrival import Arrival
from keypolicy.sim.traffic import Traffic, TrafficError

__all__ = ["TrafficWindow", "only_domains"]


class TrafficWindow:
    """``traffic`` from ``begin`` to ``end`` seconds after its start (a :class:`Traffic`)."""

    def __init__(
        self,
        traffic: Traffic,
        begin: float,
        end: float,
        domains: set[str] | None = None,
    ) -> None:
        if not (0 <= begin < end and math.isfinite(begin)):
            raise TrafficError([f"a window runs from a time to a later one, not {begin}-{end} s"])
        self.traffic, self.begin = traffic, begin
        self.end = min(end, traffic.duration_s)
        self.kept = domains
        self.name = f"{traffic.name}[{begin:g}s-{self.end:g}s]"
        self.description = f"{traffic.description} (from {begin:g} s to {self.end:g} s)"
        self.start = traffic.start + timedelta(seconds=begin)
        self.duration_s = self.end - begin

    def domains(self) -> set[str]:
        every = self.traffic.domains()
        return every if self.kept is None else every & self.kept

    def models(self) -> dict[str, set[str]]:
        return {d: m for d, m in self.traffic.models().items() if d in self.domains()}

    def arrivals(self, seed: int) -> Iterator[Arrival]:
        begin, end, kept = self.begin, self.end, self.kept
        for a in self.traffic.arrivals(seed):
            if a.time >= end:
                return
            if a.time < begin or (kept is not None and a.domain not in kept):
                continue
            yield Arrival(
                a.time - begin,
                a.domain,
                a.prompt_tokens,
                a.max_output_tokens,
                a.completion_tokens,
                a.model,
                a.shared_prefix,
            )


def only_domains(traffic: Traffic, domains: set[str]) -> TrafficWindow:
    """``traffic`` whole, with only the arrivals of ``domains``."""
    return TrafficWindow(traffic, 0.0, traffic.duration_s, domains)
