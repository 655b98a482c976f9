"""The fidelity table in the terminal (rich): one section per domain, then the total."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from keypolicy.fidelity.compare import Comparison

__all__ = ["fidelity_table", "show"]

_LABELS = {
    "requests": "requests",
    "ok": "ok",
    "rejected": "rejected",
    "budget_exhausted": "budget exhausted",
    "error": "error",
    "upstream_429": "gave up on 429s",
    "upstream_429s": "upstream 429s",
    "deferred": "deferred",
    "wait_p50_s": "wait p50 s",
    "wait_p95_s": "wait p95 s",
    "cost_usd": "cost $",
}


def _number(metric: str, value: float) -> str:
    if metric == "cost_usd":
        return f"{value:,.4f}"
    if metric.startswith("wait_"):
        return f"{value:,.3f}"
    return f"{value:,.0f}"


def fidelity_table(comparison: Comparison, title: str = "predicted vs observed") -> Table:
    """The comparison as a rich table: figure, predicted, observed, relative error, goal."""
    table = Table(title=title)
    for name, justify in [
        ("domain", "left"),
        ("figure", "left"),
        ("predicted", "right"),
        ("observed", "right"),
        ("rel. error", "right"),
        ("goal", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    previous = None
    for row in comparison.table_data():
        if previous is not None and row["domain"] != previous:
            table.add_section()
        metric, goal, within = row["metric"], row["goal"], row["within"]
        verdict = "" if goal is None else f"{goal:.0%} " + ("ok" if within else "MISSED")
        style = "red" if within is False else None
        table.add_row(
            row["domain"] if row["domain"] != previous else "",
            _LABELS.get(metric, metric),
            _number(metric, row["predicted"]),
            _number(metric, row["observed"]),
            f"{row['rel_err']:+.2%}",
            verdict,
            style=style,
        )
        previous = row["domain"]
    return table


def show(comparison: Comparison, console: Console | None = None, title: str = "") -> None:
    """Print the table, and which domains only one side has."""
    console = console or Console()
    console.print(fidelity_table(comparison, title or "predicted vs observed"))
    if comparison.only_predicted:
        console.print(f"only predicted (never observed): {', '.join(comparison.only_predicted)}")
    if comparison.only_observed:
        console.print(f"only observed (never predicted): {', '.join(comparison.only_observed)}")
