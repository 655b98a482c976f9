"""Fidelity: what the simulator predicted against what the runtime did, domain by domain.

Both sides are read into the same :class:`Figures` (per domain and ``total``): requests by
outcome, upstream 429s, deferrals, wait p50 and p95 of the answered requests, cost. From usage
records (the simulator's ``--records`` file, the runtime's ledger) or from a simulation's summary
JSON (``--json``). :func:`compare` lines them up as :class:`Check` rows, each with its relative
error and whether it meets the goal of issue 17:

- cost within 1%;
- upstream 429s and deferrals within 5% or 3 requests, whichever is larger: the error is taken
  against the prediction or :data:`COUNT_FLOOR` (60) requests, whichever is larger, so that 3
  requests are 5% of the floor;
- wait p95 within 10%, against the prediction or :data:`WAIT_FLOOR_S` (1 s), whichever is
  larger: a wait predicted as 0 and observed as 30 ms of HTTP and runtime overhead is 3%, not
  infinitely wrong.

Requests by outcome and wait p50 are shown with their error but judged against no goal.

Upstream 429s from records: every attempt but the last of each request (with no faults injected
every retry follows a 429), plus the last attempt of each that ended ``upstream_429``. A summary
JSON counts them as the simulator saw them; records are the better input for both sides.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from keypolicy.metrics import percentile
from keypolicy.recordfiles import iter_usage_records
from keypolicy.records import OUTCOMES, UsageRecord

__all__ = [
    "COUNT_FLOOR",
    "GOALS",
    "TOTAL",
    "Check",
    "Comparison",
    "FidelityInputError",
    "Figures",
    "compare",
    "fidelity_line",
    "figures_from_records",
    "figures_from_summary",
    "read_figures",
    "relative_error",
]

TOTAL: Final = "total"
"""The row of every domain together."""

COUNT_FLOOR: Final = 60.0
"""Requests: a count's error is taken against at least this many (5% of it is 3 requests)."""

WAIT_FLOOR_S: Final = 1.0
"""Seconds: a wait's error is taken against at least this much."""

COST_FLOOR_USD: Final = 0.01
"""USD: a cost's error is taken against at least this much."""

GOALS: Final[dict[str, float]] = {
    "cost_usd": 0.01,
    "upstream_429s": 0.05,
    "deferred": 0.05,
    "wait_p95_s": 0.10,
}
"""The largest relative error each judged metric may have (issue 17's goals)."""

_FLOORS: Final[dict[str, float]] = {"cost_usd": COST_FLOOR_USD, "wait_p50_s": WAIT_FLOOR_S}
_FLOORS["wait_p95_s"] = WAIT_FLOOR_S


_FIELDS: Final = frozenset(
    ("requests", "upstream_429s", "deferred", "wait_p50_s", "wait_p95_s", "cost_usd")
)


class FidelityInputError(ValueError):
    """A side cannot be read: the message names the file, where, and what to do."""


@dataclass
class Figures:
    """One domain's (or the total's) figures. Waits in seconds, of the answered requests
    (``ok``); cost in USD; ``outcomes`` counts requests by their record outcome."""

    requests: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    upstream_429s: int = 0
    deferred: int = 0
    wait_p50_s: float = 0.0
    wait_p95_s: float = 0.0
    cost_usd: float = 0.0

    def value(self, metric: str) -> float:
        """The figure named ``metric`` (an outcome's name counts requests with it)."""
        if metric in _FIELDS:
            return float(getattr(self, metric))
        if metric in OUTCOMES:
            return float(self.outcomes.get(metric, 0))
        raise KeyError(f"no figure {metric!r}")


def figures_from_records(records: Iterable[UsageRecord]) -> dict[str, Figures]:
    """Figures per domain and :data:`TOTAL` from usage records (either driver's)."""
    figures: dict[str, Figures] = {}
    waits: dict[str, list[float]] = {}
    for r in records:
        for name in (r.domain, TOTAL):
            f = figures.get(name)
            if f is None:
                f = figures[name] = Figures()
                waits[name] = []
            f.requests += 1
            f.outcomes[r.outcome] = f.outcomes.get(r.outcome, 0) + 1
            f.upstream_429s += max(r.attempts - 1, 0) + (r.outcome == "upstream_429")
            f.deferred += r.deferred
            f.cost_usd += r.cost_usd
            if r.outcome == "ok":
                waits[name].append(max(r.wait_s, 0.0))
    for name, f in figures.items():
        f.wait_p50_s = percentile(waits[name], 0.50)
        f.wait_p95_s = percentile(waits[name], 0.95)
    return figures


def figures_from_summary(summary: Mapping[str, Any], where: str = "summary") -> dict[str, Figures]:
    """Figures from a simulation's summary JSON (one run: means are taken if it combined
    several). Raises :class:`FidelityInputError` if it is not one."""
    domains, totals = summary.get("domains"), summary.get("totals")
    if not isinstance(domains, Mapping) or not isinstance(totals, Mapping):
        raise FidelityInputError(
            f"{where}: not a simulation summary (no 'domains' and 'totals'): give the JSON "
            "that `keypolicy simulate --json` writes, or a records file or ledger"
        )

    def number(tally: Mapping[str, Any], name: str, at: str) -> float:
        value = tally.get(name, 0)
        if isinstance(value, Mapping):  # several runs combined: their mean
            value = value.get("mean", 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FidelityInputError(f"{where}: {at}.{name}: a number, not {value!r}")
        return float(value)

    figures: dict[str, Figures] = {}
    for name, tally, at in [
        *((str(d), t, f"domains.{d}") for d, t in domains.items()),
        (TOTAL, totals, "totals"),
    ]:
        if not isinstance(tally, Mapping):
            raise FidelityInputError(f"{where}: {at}: a mapping of figures, not {tally!r}")
        outcomes = tally.get("outcomes") or {}
        figures[name] = Figures(
            requests=round(number(tally, "requests", at)),
            outcomes={str(k): round(number(outcomes, k, f"{at}.outcomes")) for k in outcomes},
            upstream_429s=round(number(tally, "upstream_429", at)),
            deferred=round(number(tally, "deferred", at)),
            wait_p50_s=number(tally, "wait_p50_s", at),
            wait_p95_s=number(tally, "wait_p95_s", at),
            cost_usd=number(tally, "cost_usd", at),
        )
    return figures


def read_figures(path: str | Path) -> dict[str, Figures]:
    """Figures from a file: a summary JSON (``.json``), else usage records (CSV, Parquet,
    SQLite or JSON-lines ledger). Raises :class:`FidelityInputError`."""
    path = Path(path)
    if not path.exists():
        raise FidelityInputError(f"{path}: no such file (give a records file, ledger or summary)")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise FidelityInputError(f"{path}: cannot be read ({exc})") from None
        except json.JSONDecodeError as exc:
            raise FidelityInputError(
                f"{path}:{exc.lineno}:{exc.colno}: not JSON ({exc.msg}); give the summary "
                "`keypolicy simulate --json` writes"
            ) from None
        if not isinstance(data, Mapping):
            raise FidelityInputError(f"{path}: not a simulation summary (a JSON object)")
        return figures_from_summary(data, str(path))
    try:
        figures = figures_from_records(iter_usage_records(path))
    except ValueError as exc:  # DataFileError: file, line, column and what to do
        raise FidelityInputError(str(exc)) from None
    if not figures:
        raise FidelityInputError(f"{path}: holds no records: nothing to compare")
    return figures


@dataclass(frozen=True)
class Check:
    """One figure of one domain on both sides: ``rel_err`` is (observed - predicted) over the
    prediction or the metric's floor, whichever is larger; ``goal`` the largest allowed
    (``None``: shown, not judged)."""

    domain: str
    metric: str
    predicted: float
    observed: float
    rel_err: float
    goal: float | None

    @property
    def within(self) -> bool | None:
        """Whether the goal is met (``None`` without a goal)."""
        return None if self.goal is None else abs(self.rel_err) <= self.goal


def relative_error(metric: str, predicted: float, observed: float) -> float:
    """(observed - predicted) / max(predicted, the metric's floor)."""
    floor = _FLOORS.get(metric, COUNT_FLOOR)
    base = max(abs(predicted), floor)
    return (observed - predicted) / base if base > 0 else 0.0


_SHOWN: Final[tuple[str, ...]] = (
    "requests", "ok", "rejected", "budget_exhausted", "error", "upstream_429", "upstream_429s",
    "deferred", "wait_p50_s", "wait_p95_s", "cost_usd",
)  # fmt: skip
"""Outcomes first (``upstream_429``: requests given up after 429s; ``deferred`` here counts
requests ever deferred, not the outcome), then 429s seen, deferrals, waits and cost."""


@dataclass(frozen=True)
class Comparison:
    """Every check, domain by domain (then the total); what the report renders."""

    checks: tuple[Check, ...]
    only_predicted: tuple[str, ...] = ()
    only_observed: tuple[str, ...] = ()

    def worst(self, metric: str) -> float:
        """The largest relative error (by size, sign kept) of ``metric`` over the rows."""
        errors = [c.rel_err for c in self.checks if c.metric == metric]
        return max(errors, key=abs, default=0.0)

    def total(self, metric: str) -> Check:
        """The total's check of ``metric``."""
        return next(c for c in self.checks if c.domain == TOTAL and c.metric == metric)

    @property
    def within(self) -> bool:
        """Whether every judged figure meets its goal."""
        return all(c.within is not False for c in self.checks)

    def table_data(self) -> list[dict[str, Any]]:
        """One row per domain and metric, as the terminal table and the report show them."""
        return [
            {
                "domain": c.domain,
                "metric": c.metric,
                "predicted": c.predicted,
                "observed": c.observed,
                "rel_err": c.rel_err,
                "goal": c.goal,
                "within": c.within,
            }
            for c in self.checks
        ]

    def as_dict(self) -> dict[str, Any]:
        """The JSON ``keypolicy fidelity --json`` writes."""
        return {
            "within_goals": self.within,
            "goals": dict(GOALS),
            "floors": {"count": COUNT_FLOOR, "wait_s": WAIT_FLOOR_S, "cost_usd": COST_FLOOR_USD},
            "worst": {m: self.worst(m) for m in GOALS},
            "only_predicted": list(self.only_predicted),
            "only_observed": list(self.only_observed),
            "rows": self.table_data(),
        }


def compare(predicted: Mapping[str, Figures], observed: Mapping[str, Figures]) -> Comparison:
    """Line up both sides' figures, domain by domain (sorted) and then :data:`TOTAL`. A domain
    on one side only is compared with zeros, and named in ``only_predicted``/``only_observed``."""
    names = [*sorted((set(predicted) | set(observed)) - {TOTAL}), TOTAL]
    empty = Figures()
    checks = []
    for name in names:
        p, o = predicted.get(name, empty), observed.get(name, empty)
        for metric in _SHOWN:
            pv, ov = p.value(metric), o.value(metric)
            checks.append(
                Check(name, metric, pv, ov, relative_error(metric, pv, ov), GOALS.get(metric))
            )
    return Comparison(
        tuple(checks),
        tuple(sorted(set(predicted) - set(observed))),
        tuple(sorted(set(observed) - set(predicted))),
    )


def fidelity_line(comparisons: Iterable[Comparison], *, totals: bool = True) -> str:
    """The one line a benchmark ends with: the worst relative error of each judged metric
    over ``comparisons`` (signed; floors as in :func:`relative_error`), of their totals (or,
    with ``totals`` false, of any row, domains included)."""
    every = list(comparisons)

    def worst(metric: str) -> float:
        values = [c.total(metric).rel_err if totals else c.worst(metric) for c in every]
        return max(values, key=abs, default=0.0)

    def fmt(x: float) -> str:
        return "inf" if math.isinf(x) else f"{x:+.4f}"

    return (
        f"fidelity cost_rel_err={fmt(worst('cost_usd'))} "
        f"upstream_429_rel_err={fmt(worst('upstream_429s'))} "
        f"deferred_rel_err={fmt(worst('deferred'))} "
        f"wait_p95_rel_err={fmt(worst('wait_p95_s'))}"
    )
