"""Tables of the report, as plain data for the templates.

Per variant: a table per domain, pool, project and key. Side by side (several variants): a
column per variant, a row per measure (totals, then per domain), the best value in each row
marked. With several runs a cell shows the mean and, under it, the 95% interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keypolicy.report.facts import Variant
from keypolicy.report.headline import headline_numbers
from keypolicy.report.values import count, exhaustion, interval, mean, money, seconds

__all__ = ["Cell", "Column", "Row", "Table", "compare_tables", "variant_tables"]


@dataclass(frozen=True, slots=True)
class Column:
    """A measure: its field in a summary row, heading, format and which way is better."""

    field: str
    head: str
    fmt: Callable[[float], str]
    better: str = ""  # "low", "high" or "" (neither: not marked)


COLUMNS = [
    Column("requests", "requests", count),
    Column("ok", "ok", count, "high"),
    Column("upstream_429", "429s", count, "low"),
    Column("retries", "retries", count, "low"),
    Column("rejected", "rejected", count, "low"),
    Column("deferred", "deferred", count),
    Column("batch", "batch", count),
    Column("wait_p50_s", "p50 wait", seconds, "low"),
    Column("wait_p95_s", "p95 wait", seconds, "low"),
    Column("wait_p99_s", "p99 wait", seconds, "low"),
    Column("wait_max_s", "max wait", seconds, "low"),
    Column("cost_usd", "cost", money, "low"),
    Column("budget_exhausted_at", "budget out", count),
]


@dataclass(frozen=True, slots=True)
class Cell:
    """A table cell: its text, a second line (the interval), whether it is the row's best."""

    text: str
    sub: str = ""
    best: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    """A labelled row; ``group`` starts a new block (its heading spans the table)."""

    label: str
    cells: list[Cell]
    group: str = ""
    total: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    """A table with a caption, column headings and rows."""

    key: str
    caption: str
    head: list[str]
    rows: list[Row] = field(default_factory=list)
    note: str = ""


def _cell(value: Any, column: Column) -> Cell:
    if column.field == "budget_exhausted_at":
        out = exhaustion(value)
        if out is None:
            return Cell("–")
        return Cell(out.clock, f"{out.runs}/{out.of} runs" if out.of > 1 else "")
    ci = interval(value)
    return Cell(column.fmt(mean(value)), f"± {column.fmt(ci)}" if ci else "")


def variant_tables(v: Variant) -> list[Table]:
    """Per domain (with the total), pool, project and key tables of one variant."""
    tables = []
    head = [c.head for c in COLUMNS]
    for section, label in (
        ("domains", "domain"),
        ("pools", "pool"),
        ("projects", "project"),
        ("keys", "key"),
    ):
        rows = [
            Row(name, [_cell(row.get(c.field), c) for c in COLUMNS])
            for name, row in v.rows(section).items()
        ]
        if section == "domains":
            totals = v.summary.get("totals", {})
            rows.append(Row("all", [_cell(totals.get(c.field), c) for c in COLUMNS], total=True))
        note = ""
        if section in ("projects", "keys"):
            note = "Requests rejected before a key was chosen count for their domain and pool only."
        tables.append(Table(f"{v.name}-{section}", f"By {label}", [label, *head], rows, note))
    return tables


def _marked(values: list[float], texts: list[Cell], better: str) -> list[Cell]:
    """Mark the best cells of a row (all of them when tied), unless every value is the same."""
    if not better or len(values) < 2 or max(values) - min(values) < 1e-9:
        return texts
    target = min(values) if better == "low" else max(values)
    tol = max(abs(target) * 1e-3, 1e-9)
    return [Cell(c.text, c.sub, abs(x - target) <= tol) for x, c in zip(values, texts, strict=True)]


def _row(
    label: str,
    variants: list[Variant],
    get: Callable[[Variant], Any],
    column: Column,
    group: str = "",
) -> Row:
    raw = [get(v) for v in variants]
    cells = [_cell(x, column) for x in raw]
    return Row(label, _marked([mean(x) for x in raw], cells, column.better), group)


def _getter(domain: str, field: str) -> Callable[[Variant], Any]:
    def get(v: Variant) -> Any:
        row = v.summary.get("totals", {}) if domain == "all" else v.rows("domains").get(domain, {})
        return row.get(field)

    return get


def compare_tables(variants: list[Variant]) -> list[Table]:
    """The headline numbers side by side, then each measure per domain side by side."""
    names = [v.name for v in variants]
    numbers = [headline_numbers(v) for v in variants]
    head_rows = []
    for i, first in enumerate(numbers[0]):
        cells = [Cell(n[i].text, n[i].detail) for n in numbers]
        scores = [n[i].score for n in numbers]
        better = "" if first.key == "cost" and len(set(scores)) == 1 else "low"
        head_rows.append(Row(first.label, _marked(scores, cells, better)))
    headline = Table("compare-headline", "The five numbers", ["", *names], head_rows)
    domains = list(dict.fromkeys(d for v in variants for d in v.rows("domains")))
    rows: list[Row] = []
    same: list[str] = []
    for column in COLUMNS:
        if column.field in ("requests", "batch", "budget_exhausted_at", "wait_p50_s"):
            continue
        group = [
            _row(
                domain,
                variants,
                _getter(domain, column.field),
                column,
                column.head if i == 0 else "",
            )
            for i, domain in enumerate([*domains, "all"])
        ]
        if column.better and not any(c.best for r in group for c in r.cells):
            same.append(column.head)
            continue
        rows += group
    note = "The best value in each row is marked; rows where every variant is equal are not."
    if same:
        note += f" Equal in every variant, for every domain: {', '.join(same)}."
    detail = Table("compare-domains", "Per domain, side by side", ["", *names], rows, note)
    return [headline, detail]
