"""Showing simulation results in a terminal: a progress bar while it runs, tables after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["comparison_tables", "invalid_note", "progress_bar", "summary_tables"]


@contextmanager
def progress_bar(
    console: Console, labels: list[str], total_s: float
) -> Iterator[Callable[[int, int, float], None]]:
    """A bar per label over simulated time; yields ``update(label_index, run, seconds)``."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[at]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks = [bar.add_task(label, total=total_s, at="") for label in labels]

        def update(index: int, run: int, seconds: float) -> None:
            hours = min(seconds, total_s) / 3600
            bar.update(
                tasks[index],
                completed=min(seconds, total_s),
                at=f"run {run + 1}, {hours:4.1f}h simulated",
            )

        yield update  # a variant's bar fills when told so: an interrupted one stays where it was


def _num(value: Any, digits: int = 0, money: bool = False) -> str:
    if isinstance(value, dict):
        if "mean" in value:
            text = _num(value["mean"], digits, money)
            return f"{text} ± {_num(value['ci95'], digits, money)}" if value["ci95"] else text
        if "earliest" in value:
            return f"{value['earliest'][11:16]} ({value['runs']}/{value['of']} runs)"
    if value is None:
        return "-"
    if isinstance(value, str):
        return value[11:16] if len(value) > 16 and value[10] == "T" else value
    if money:
        return f"${value:,.2f}"
    return f"{value:,.{digits}f}"


_COLUMNS = [
    ("requests", "requests", 0, False),
    ("ok", "ok", 0, False),
    ("upstream_429", "429s", 0, False),
    ("retries", "retries", 0, False),
    ("rejected", "rejected", 0, False),
    ("deferred", "deferred", 0, False),
    ("wait_p95_s", "p95 wait s", 2, False),
    ("wait_p99_s", "p99 wait s", 2, False),
    ("cost_usd", "cost", 2, True),
    ("budget_exhausted_at", "budget out", 0, False),
]


def invalid_note(summary: dict[str, Any]) -> str | None:
    """A warning when requests were refused as invalid for their model (``invalid_request``:
    the provider would answer them with a 400), saying how many and why; else ``None``."""
    count = (summary.get("totals", {}).get("reasons") or {}).get("invalid_request")
    if isinstance(count, dict):  # several runs: the mean
        count = count.get("mean")
    if not count:
        return None
    return (
        f"warning: {_num(count)} request(s) refused as invalid for their model, never sent "
        "(invalid_request: max_tokens above the model's output cap or negative, or the prompt "
        "plus max_tokens above its context window; OpenAI answers these with a 400). The "
        "records' reason column says which"
    )


def summary_tables(summary: dict[str, Any]) -> list[Table]:
    """Per domain, per project and per key tables of one policy's summary (the first one's
    caption warns of requests refused as invalid, if any)."""
    title = f"{summary['policy']}: {summary['runs']} run(s), seed {summary['seed']}"
    tables = []
    for section, label in (("domains", "domain"), ("projects", "project"), ("keys", "key")):
        table = Table(title=f"{title} — by {label}" if section == "domains" else f"by {label}")
        if section == "domains":
            table.caption = invalid_note(summary)
            table.caption_style = "bold yellow"
        table.add_column(label)
        for _, head, _, _ in _COLUMNS:
            table.add_column(head, justify="right")
        rows = (
            {**summary[section], "TOTAL": summary["totals"]}
            if section == "domains"
            else summary[section]
        )
        for name, row in rows.items():
            table.add_row(name, *(_num(row.get(k), d, m) for k, _, d, m in _COLUMNS))
        tables.append(table)
    return tables


def comparison_tables(variants: dict[str, dict[str, Any]]) -> list[Table]:
    """One table per measure: a row per domain, a column per policy variant."""
    names = list(variants)
    domains = list(dict.fromkeys(d for v in variants.values() for d in v["domains"]))
    tables = []
    notes = [
        f"{name}: {note.removeprefix('warning: ')}"
        for name, summary in variants.items()
        if (note := invalid_note(summary)) is not None
    ]
    for key, head, digits, money in _COLUMNS[2:]:
        table = Table(title=head)
        if key == "rejected" and notes:
            table.caption = "warning: " + "; ".join(notes)
            table.caption_style = "bold yellow"
        table.add_column("domain")
        for name in names:
            table.add_column(name, justify="right")
        for domain in [*domains, "TOTAL"]:
            cells = []
            for name in names:
                row = (
                    variants[name]["totals"]
                    if domain == "TOTAL"
                    else variants[name]["domains"].get(domain, {})
                )
                cells.append(_num(row.get(key), digits, money))
            table.add_row(domain, *cells)
        tables.append(table)
    keys = list(dict.fromkeys(k for v in variants.values() for k in v.get("keys", {})))
    if keys:  # which key is used most
        table = Table(title="requests by key")
        table.add_column("key")
        for name in names:
            table.add_column(name, justify="right")
        for key in keys:
            table.add_row(
                key,
                *(_num(variants[n].get("keys", {}).get(key, {}).get("requests")) for n in names),
            )
        tables.append(table)
    return tables
