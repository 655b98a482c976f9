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
from keypolicy.report.governance import shape
from keypolicy.report.values import count, exhaustion, interval, mean, money, seconds

__all__ = ["Cell", "Column", "Row", "Table", "compare_table", "domain_order", "variant_tables"]


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
    warn: bool = False  # a value that calls for attention (a refusal, a budget running out)
    ci: str = ""  # "± 34": the 95% interval, shown beside the value
    muted: bool = False  # not a measured value ("not computed")


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


def domain_order(v: Variant, names: list[str]) -> list[str]:
    """Domains by priority (the most urgent class first), then by cost (the dearest first)."""
    order = [p.name for p in v.policy.priorities] if v.policy is not None else []
    order += list(v.summary.get("priority_order") or [])

    def key(domain: str) -> tuple[int, float, str]:
        cls = v.priority_of(domain)
        rank = order.index(cls) if cls in order else len(order)
        return rank, -v.value("domains", domain, "cost_usd"), domain

    return sorted(names, key=key)


def _nonzero(columns: list[Column], rows: list[dict[str, Any]]) -> list[Column]:
    """The columns with a value other than zero somewhere (requests and cost always)."""
    return [
        c
        for c in columns
        if c.field in ("requests", "cost_usd")
        or any(mean(r.get(c.field)) for r in rows)
        or (c.field == "budget_exhausted_at" and any(r.get(c.field) for r in rows))
    ]


def _one_each(v: Variant, section: str) -> bool:
    """Whether every pool (project, key) of the option carries exactly one domain, its rows
    then repeating the domain table under other names."""
    if v.policy is None:
        return False
    s = shape(v.policy)
    groups = {
        "pools": {
            p: [d for d, spec in v.policy.domains.items() if spec.pool == p] for p in v.policy.pools
        },
        "projects": s.domains_by_project,
        "keys": s.domains_by_key,
    }[section]
    return all(len(domains) == 1 for domains in groups.values())


def variant_tables(v: Variant) -> list[Table]:
    """Per domain (with the total), pool, project and key tables of one variant; rows by
    priority and cost, columns zero everywhere left out (named in the note). A pool, project or
    key table that would repeat the domain table (one domain each) is left out."""
    tables = []
    for section, label in (
        ("domains", "domain"),
        ("pools", "pool"),
        ("projects", "project"),
        ("keys", "key"),
    ):
        if section != "domains" and _one_each(v, section):
            continue
        data = v.rows(section)
        names = (
            domain_order(v, list(data))
            if section == "domains"
            else sorted(data, key=lambda n: -mean(data[n].get("cost_usd")))
        )
        shown = [*data.values(), *([v.summary.get("totals", {})] if section == "domains" else [])]
        columns = _nonzero(COLUMNS, shown)
        rows = [Row(n, [_cell(data[n].get(c.field), c) for c in columns]) for n in names]
        if section == "domains":
            totals = v.summary.get("totals", {})
            rows.append(Row("all", [_cell(totals.get(c.field), c) for c in columns], total=True))
        notes = []
        if section in ("projects", "keys"):
            notes.append(
                "Requests rejected before a key was chosen count for their domain and pool only."
            )
        zero = [c.head for c in COLUMNS if c not in columns]
        if zero:
            notes.append(f"Zero throughout, left out: {', '.join(zero)}.")
        head = [label, *(c.head for c in columns)]
        tables.append(Table(f"{v.name}-{section}", f"By {label}", head, rows, " ".join(notes)))
    return tables


def _marked(cells: list[Cell], values: list[float], cis: list[float], better: str) -> list[Cell]:
    """Star the best cells of a row, only where the options differ beyond rounding (the texts
    differ) and beyond noise (more than the two extremes' 95% intervals added)."""
    if not better or len(values) < 2 or len({c.text for c in cells}) == 1:
        return cells
    pick = min if better == "low" else max
    best = pick(range(len(values)), key=lambda i: values[i] if better == "low" else -values[i])
    worst = max(range(len(values)), key=lambda i: abs(values[i] - values[best]))
    if abs(values[worst] - values[best]) <= cis[best] + cis[worst]:
        return cells
    return [Cell(c.text, c.sub, c.text == cells[best].text, c.warn) for c in cells]


def _row(
    label: str,
    variants: list[Variant],
    get: Callable[[Variant], Any],
    column: Column,
    group: str = "",
) -> Row:
    raw = [get(v) for v in variants]
    cells = [_cell(x, column) for x in raw]
    marked = _marked(cells, [mean(x) for x in raw], [interval(x) for x in raw], column.better)
    return Row(label, marked, group)


def _getter(domain: str, field: str) -> Callable[[Variant], Any]:
    def get(v: Variant) -> Any:
        row = v.summary.get("totals", {}) if domain == "all" else v.rows("domains").get(domain, {})
        return row.get(field)

    return get


def compare_table(variants: list[Variant]) -> Table:
    """Each measure per domain side by side: only the rows where the options differ (as shown),
    domains by priority and cost; measures equal everywhere are named in the note."""
    names = [v.name for v in variants]
    domains = domain_order(
        variants[0], list(dict.fromkeys(d for v in variants for d in v.rows("domains")))
    )
    rows: list[Row] = []
    same: list[str] = []
    for column in COLUMNS:
        if column.field in ("requests", "batch", "budget_exhausted_at", "wait_p50_s"):
            continue
        group = [
            _row(domain, variants, _getter(domain, column.field), column)
            for domain in [*domains, "all"]
        ]
        differ = [r for r in group if len({c.text for c in r.cells}) > 1]
        if not differ:
            same.append(column.head)
            continue
        first = differ[0]
        rows.append(Row(first.label, first.cells, column.head))
        rows += differ[1:]
    note = (
        "Only the functions where the options differ are shown; the best value in a row is "
        "starred where it differs beyond rounding and noise."
    )
    if same:
        note += f" The same in every option, for every function: {', '.join(same)}."
    return Table(
        "compare-domains", "Per function, where the options differ", ["", *names], rows, note
    )
