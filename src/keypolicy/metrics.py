"""What a run measured (a simulation, or the runtime's ledger): counts, waits, costs per domain,
pool, project and key, and time series per minute for the reports.

Fed one record per request and a few events (429s, retries, admissions); turned into the summary
JSON documented in README.md by :meth:`Metrics.summary`.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from keypolicy.records import UsageRecord

__all__ = ["Metrics", "percentile"]


def percentile(values: array[float] | list[float], q: float, zeros: int = 0) -> float:
    """The ``q`` quantile (0..1) by linear interpolation of ``values`` plus ``zeros`` more
    values of 0.0 (kept as a count: most requests wait for nothing); 0.0 for no values.

    Sorted in numpy over the array's own buffer, so ten million waits cost 80 MB, not a list
    of ten million float objects."""
    return _quantile(np.sort(np.asarray(values, dtype=np.float64)), q, zeros)


def _quantile(ordered: np.ndarray[Any, np.dtype[np.float64]], q: float, zeros: int) -> float:
    """:func:`percentile` over values already sorted (several quantiles, one sort)."""
    count = len(ordered) + zeros
    if not count:
        return 0.0
    pos = (count - 1) * q
    low = math.floor(pos)
    high = min(low + 1, count - 1)

    def at(i: int) -> float:
        # The zeros come first (waits are never negative), then the sorted values.
        return 0.0 if i < zeros else float(ordered[i - zeros])

    return at(low) + (at(high) - at(low)) * (pos - low)


@dataclass
class _Tally:
    requests: int = 0
    ok: int = 0
    upstream_429: int = 0
    retries: int = 0
    rejected: int = 0
    deferred: int = 0
    batch: int = 0
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    waits: array[float] = field(default_factory=lambda: array("d"))  # the non-zero ones
    zero_waits: int = 0
    max_wait: float = 0.0
    budget_exhausted_at: float | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)  # why requests ended unanswered

    def add(self, r: UsageRecord) -> None:
        self.requests += 1
        self.outcomes[r.outcome] = self.outcomes.get(r.outcome, 0) + 1
        if r.outcome not in ("ok", "deferred"):
            code = r.reason.partition(":")[0]  # "<RejectReason>: <message>"
            self.reasons[code] = self.reasons.get(code, 0) + 1
        self.ok += r.outcome == "ok"
        self.rejected += r.outcome in ("rejected", "budget_exhausted")
        self.deferred += r.deferred
        self.batch += r.batch
        self.cost_usd += r.cost_usd
        self.prompt_tokens += r.prompt_tokens
        self.cached_tokens += r.cached_tokens
        self.completion_tokens += r.completion_tokens
        if r.outcome == "ok":
            wait = r.wait_s
            if wait > 0.0:
                self.waits.append(wait)
                self.max_wait = max(self.max_wait, wait)
            else:
                self.zero_waits += 1
        if r.outcome == "budget_exhausted" and (
            self.budget_exhausted_at is None or r.finished < self.budget_exhausted_at
        ):
            self.budget_exhausted_at = r.finished  # the earliest, in whatever order records come

    @staticmethod
    def merged(parts: list[_Tally]) -> _Tally:
        """One tally of everything ``parts`` counted (as if each record had been added to it)."""
        out = _Tally()
        for t in parts:
            out.requests += t.requests
            out.ok += t.ok
            out.upstream_429 += t.upstream_429
            out.retries += t.retries
            out.rejected += t.rejected
            out.deferred += t.deferred
            out.batch += t.batch
            out.prompt_tokens += t.prompt_tokens
            out.cached_tokens += t.cached_tokens
            out.completion_tokens += t.completion_tokens
            out.waits.extend(t.waits)
            out.zero_waits += t.zero_waits
            out.max_wait = max(out.max_wait, t.max_wait)
            if t.budget_exhausted_at is not None and (
                out.budget_exhausted_at is None or t.budget_exhausted_at < out.budget_exhausted_at
            ):
                out.budget_exhausted_at = t.budget_exhausted_at
            for outcome, n in t.outcomes.items():
                out.outcomes[outcome] = out.outcomes.get(outcome, 0) + n
            for reason, n in t.reasons.items():
                out.reasons[reason] = out.reasons.get(reason, 0) + n
        out.cost_usd = math.fsum(t.cost_usd for t in parts)
        return out

    def as_dict(self, zone: ZoneInfo) -> dict[str, Any]:
        exhausted = (
            datetime.fromtimestamp(self.budget_exhausted_at, zone).isoformat(timespec="seconds")
            if self.budget_exhausted_at is not None
            else None
        )
        ordered = np.sort(np.asarray(self.waits, dtype=np.float64))  # one sort, three quantiles
        return {
            "requests": self.requests,
            "ok": self.ok,
            "upstream_429": self.upstream_429,
            "retries": self.retries,
            "rejected": self.rejected,
            "deferred": self.deferred,
            "batch": self.batch,
            "wait_p50_s": round(_quantile(ordered, 0.50, self.zero_waits), 4),
            "wait_p95_s": round(_quantile(ordered, 0.95, self.zero_waits), 4),
            "wait_p99_s": round(_quantile(ordered, 0.99, self.zero_waits), 4),
            "wait_max_s": round(self.max_wait, 4),
            "cost_usd": round(self.cost_usd, 6),
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "budget_exhausted_at": exhausted,
            "outcomes": dict(sorted(self.outcomes.items())),
            "reasons": dict(sorted(self.reasons.items())),
        }


SERIES_DAYS = 31
"""The longest span whose per-minute series a summary holds (a month of minutes)."""


class _PerMinute:
    """Named series of one value per minute since the start, each kept in hours (8 bytes a
    minute): only the hours something happened in take memory, so a trace with gaps of years
    costs what its busy hours cost. Minutes before the start are dropped.

    Each series keeps the minute it is in (the clock only moves on) in a native accumulator,
    written to its day when the series moves to a later minute: a request then costs
    arithmetic, not array item reads and writes. Sums come out exactly as if added in place.
    """

    def __init__(self, typecode: str) -> None:
        self.typecode = typecode
        self._series: dict[str, _Series] = {}

    def _at(self, name: str, minute: int) -> _Series:
        """The series ``name``, holding the value of ``minute`` (minute >= 0)."""
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = _Series(self.typecode)
        if series.minute != minute:
            series.move(minute)
        return series

    def add(self, name: str, minute: int, value: float) -> None:
        if minute >= 0:
            self._at(name, minute).value += value

    def set(self, name: str, minute: int, value: float) -> None:
        if minute >= 0:
            self._at(name, minute).value = value

    def most(self, name: str, minute: int, value: float) -> None:
        if minute >= 0:
            series = self._at(name, minute)
            if value > series.value:  # noqa: PLR1730 (cheaper than max(), every answer)
                series.value = value

    def dense(self, minutes: int) -> dict[str, list[Any]]:
        """Each series as a list over ``minutes`` minutes (zeros where nothing happened)."""
        out = {}
        for name, series in sorted(self._series.items()):
            series.close()
            values: list[Any] = [0] * minutes
            for first, hour in series.hours.items():
                count = min(HOUR_MINUTES, minutes - first)
                if count > 0:
                    values[first : first + count] = [round(v, 6) for v in hour[:count]]
            out[name] = values
        return out


DAY_MINUTES = 1440
HOUR_MINUTES = 60


class _Series:
    """One series: its values per minute, by hour, and the minute it is in with its value so
    far (its hour is ``row``, which begins at minute ``first``)."""

    def __init__(self, typecode: str) -> None:
        self.typecode = typecode
        self.integers = typecode == "q"
        self.hours: dict[int, array[Any]] = {}  # first minute of an hour -> its values
        self.row: array[Any] = array(typecode)
        self.first = -HOUR_MINUTES  # no hour open yet
        self.minute = -1  # the open minute (-1: none yet)
        self.value = 0.0

    def close(self) -> None:
        """Write the open minute's value to its hour."""
        if self.minute >= 0:
            value = int(self.value) if self.integers else self.value
            self.row[self.minute - self.first] = value

    def move(self, minute: int) -> None:
        """Close the open minute and open ``minute`` (and its hour, zeros when new)."""
        self.close()
        first = minute - minute % HOUR_MINUTES
        if first != self.first:
            row = self.hours.get(first)
            if row is None:
                row = self.hours[first] = array(self.typecode, bytes(8 * HOUR_MINUTES))
            self.row, self.first = row, first
        self.minute = minute
        self.value = self.row[minute - first]


class Metrics:
    """Aggregates for one simulation run (one policy, one seed)."""

    def __init__(
        self, start: float, zone: str, pools: dict[str, str], priorities: dict[str, str]
    ) -> None:
        self.start = start
        self.zone = ZoneInfo(zone)
        self._pool_of = pools  # domain -> pool
        self._priority_of = priorities  # domain -> class
        # One tally per (domain, project, key) a request ended on, nested in that order; the
        # domains', pools', projects', keys' and the totals' tallies are merged from these when
        # the summary is made (one tally per record instead of five).
        self._cells: dict[str, dict[str, dict[str, _Tally]]] = {}
        self._limited: dict[tuple[str, str], int] = {}  # 429s by (domain, project)
        self._retried: dict[str, int] = {}  # retries by domain
        # Per minute since the start: the series the reports draw.
        self.arrivals = _PerMinute("q")  # by domain
        self.admitted_tokens = _PerMinute("d")  # by project/model
        self.admitted_requests = _PerMinute("q")  # by project/model
        self.rate_limited = _PerMinute("q")  # by domain
        self.queued = _PerMinute("q")  # by class
        self.spend = _PerMinute("d")  # by domain
        self.waits = _PerMinute("d")  # the longest wait, by class
        self.refused = _PerMinute("q")  # requests refused (by the policy or a budget), by domain
        self.used_tokens = _PerMinute("d")  # tokens answered requests used, by project/model
        self.alerts: list[dict[str, Any]] = []
        self.minutes = 0
        self._series_names: dict[str, dict[str, str]] = {}  # project -> model -> "project/model"

    def _minute(self, at: float) -> int:
        minute = int((at - self.start) // 60)
        if minute >= self.minutes:
            self.minutes = minute + 1
        return minute

    def arrival(self, domain: str, at: float) -> None:
        """A request arrived."""
        self.arrivals.add(domain, self._minute(at), 1)

    def _series_name(self, project: str, model: str) -> str:
        """``project/model``, made once per pair."""
        names = self._series_names.get(project)
        if names is None:
            names = self._series_names[project] = {}
        series = names.get(model)
        if series is None:
            series = names[model] = f"{project}/{model}"
        return series

    def admitted(self, project: str, model: str, tokens: int, at: float) -> None:
        """An attempt went out, charging ``tokens`` against the project's limits."""
        series = self._series_name(project, model)
        minute = self._minute(at)
        self.admitted_tokens.add(series, minute, tokens)
        self.admitted_requests.add(series, minute, 1)

    def rate_limit(self, domain: str, project: str, at: float) -> None:
        """The provider answered 429 (any attempt)."""
        self._limited[domain, project] = self._limited.get((domain, project), 0) + 1
        self.rate_limited.add(domain, self._minute(at), 1)

    def retry(self, domain: str) -> None:
        """An attempt will be retried."""
        self._retried[domain] = self._retried.get(domain, 0) + 1

    def queue_depth(self, by_class: dict[str, int], at: float) -> None:
        """Requests queued per priority class, sampled once a minute."""
        minute = self._minute(at)
        for name, depth in by_class.items():
            self.queued.set(name, minute, depth)

    def alert(self, budget: str, threshold: float, spent: float, at: float) -> None:
        """A budget crossed an alert threshold."""
        when = datetime.fromtimestamp(at, self.zone).isoformat(timespec="seconds")
        self.alerts.append(
            {"budget": budget, "threshold": threshold, "spent_usd": round(spent, 6), "at": when}
        )

    def record(self, r: UsageRecord) -> None:
        """A request ended."""
        by_project = self._cells.get(r.domain)
        if by_project is None:
            by_project = self._cells[r.domain] = {}
        by_key = by_project.get(r.project)
        if by_key is None:
            by_key = by_project[r.project] = {}
        cell = by_key.get(r.key)
        if cell is None:
            cell = by_key[r.key] = _Tally()
        cell.add(r)
        minute = self._minute(r.finished)
        self.spend.add(r.domain, minute, r.cost_usd)
        if r.outcome == "ok":
            self.waits.most(self._priority_of.get(r.domain, "?"), minute, r.wait_s)
            if r.project:
                used = r.prompt_tokens + r.completion_tokens
                self.used_tokens.add(self._series_name(r.project, r.model), minute, used)
        elif r.outcome in ("rejected", "budget_exhausted"):
            self.refused.add(r.domain, minute, 1)

    def summary(self) -> dict[str, Any]:
        """The summary of this run (see README.md for the schema)."""
        domains: dict[str, list[_Tally]] = {}
        pools: dict[str, list[_Tally]] = {}
        projects: dict[str, list[_Tally]] = {}
        keys: dict[str, list[_Tally]] = {}
        every: list[_Tally] = []
        for domain, by_project in self._cells.items():
            for project, by_key in by_project.items():
                for key, cell in by_key.items():
                    domains.setdefault(domain, []).append(cell)
                    pools.setdefault(self._pool_of.get(domain, "?"), []).append(cell)
                    if project:
                        projects.setdefault(project, []).append(cell)
                    if key:
                        keys.setdefault(key, []).append(cell)
                    every.append(cell)
        # 429s and retries happen to attempts: counted by domain (and project), not by key.
        extra: list[tuple[_Tally, str, str]] = []
        for (domain, project), n in self._limited.items():
            t = _Tally(upstream_429=n)
            extra.append((t, domain, project))
        for domain, n in self._retried.items():
            extra.append((_Tally(retries=n), domain, ""))
        for t, domain, project in extra:
            domains.setdefault(domain, []).append(t)
            pools.setdefault(self._pool_of.get(domain, "?"), []).append(t)
            if project:
                projects.setdefault(project, []).append(t)
            every.append(t)

        def table(parts: dict[str, list[_Tally]]) -> dict[str, Any]:
            return {n: _Tally.merged(ts).as_dict(self.zone) for n, ts in sorted(parts.items())}

        return {
            "domains": table(domains),
            "pools": table(pools),
            "projects": table(projects),
            "keys": table(keys),
            "totals": _Tally.merged(every).as_dict(self.zone),
            "alerts": self.alerts,
        }

    def series(self) -> dict[str, Any]:
        """Per-minute series, each a dense list over the simulated minutes; left out (with the
        reason in ``omitted``) when the traffic spans more than ``SERIES_DAYS`` days."""
        if self.minutes > SERIES_DAYS * DAY_MINUTES:
            days = self.minutes / DAY_MINUTES
            return {
                "minutes": 0,
                "omitted": f"the traffic spans {days:,.0f} days: per-minute series are kept "
                f"for spans up to {SERIES_DAYS} days (replay a shorter stretch to see them)",
            }
        return {
            "minutes": self.minutes,
            "arrivals": self.arrivals.dense(self.minutes),
            "admitted_tokens": self.admitted_tokens.dense(self.minutes),
            "admitted_requests": self.admitted_requests.dense(self.minutes),
            "rate_limited": self.rate_limited.dense(self.minutes),
            "queued": self.queued.dense(self.minutes),
            "spend_usd": self.spend.dense(self.minutes),
            "max_wait_s": self.waits.dense(self.minutes),
            "refused": self.refused.dense(self.minutes),
            "used_tokens": self.used_tokens.dense(self.minutes),
        }
