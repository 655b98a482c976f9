"""Usage per domain, key, model, project or pool, from a ledger: ``keypolicy usage``.

The same table is a ``pandas.DataFrame`` from Python::

    from keypolicy.ledger import read_ledger
    from keypolicy.usage import usage_table

    table = usage_table(read_ledger("keypolicy-usage.sqlite"), by="key", since_s=86_400)
    table.iloc[0]  # the key used most in the last day (the last row is the total)

The fleet's ledger reads the same way (``read_ledger("postgresql://127.0.0.1/keypolicy")``);
``read_ledger(..., since=time.time() - 86_400)`` asks its index for the last day alone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from rich.table import Table

from keypolicy.records import OUTCOMES

if TYPE_CHECKING:
    import pandas  # type: ignore[import-untyped]  # pandas ships no stubs; pandas-stubs absent

    from keypolicy.policy.model import Policy

__all__ = [
    "COLUMNS",
    "GROUPS",
    "NOT_SENT",
    "Group",
    "usage_answer",
    "usage_console_table",
    "usage_table",
]

Group = Literal["domain", "key", "model", "project", "pool"]
GROUPS: Final = get_args(Group)
TOTAL: Final = "total"
COLUMNS: Final = (
    "requests",
    "share",
    *OUTCOMES,
    "retries",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "cost_usd",
    "wait_p50_s",
    "wait_p95_s",
    "wait_max_s",
    "estimated",
)
"""After the group's own column: ``requests``; ``share`` of all requests (0..1); a count per
outcome (:data:`~keypolicy.records.OUTCOMES`); ``retries`` (attempts beyond the first); tokens
used; ``cost_usd``; waits in seconds of the requests answered ``ok`` (linear quantiles, as the
simulator's summaries); ``estimated``: records whose usage keypolicy estimated."""


def usage_table(
    frame: pandas.DataFrame,
    by: str = "domain",
    since_s: float | None = None,
    now: float | None = None,
    policy: Policy | None = None,
) -> pandas.DataFrame:
    """Aggregate ledger rows (:func:`keypolicy.ledger.read_ledger`) by ``by`` (one of
    :data:`GROUPS`): one row per group, most requests first, then a ``total`` row; columns:
    ``by``, then :data:`COLUMNS`. ``since_s`` keeps records that finished in the last
    ``since_s`` seconds before ``now`` (epoch seconds; the wall clock if None). Grouping by
    ``pool`` needs the ``policy`` (records name domains; the policy maps them to pools: a
    domain it lacks is in pool ``?``). No rows when no record is left. ValueError otherwise."""
    import pandas as pd  # noqa: PLC0415 - imported where used, as read_ledger does

    if by not in GROUPS:
        raise ValueError(f"cannot group by {by!r}: choose one of {', '.join(GROUPS)}")
    if by == "pool" and policy is None:
        raise ValueError(
            "grouping by pool needs the policy (--policy P): records name domains, "
            "and the policy says which pool each domain uses"
        )
    if since_s is not None:
        cutoff = (time.time() if now is None else now) - since_s
        frame = frame[frame["finished"] >= cutoff]
    if frame.empty:
        return pd.DataFrame(columns=[by, *COLUMNS])
    work = pd.DataFrame(
        {
            by: _groups(frame, by, policy),
            "requests": 1,
            **{o: (frame["outcome"] == o).astype("int64") for o in OUTCOMES},
            "retries": (frame["attempts"] - 1).clip(lower=0),
            "prompt_tokens": frame["prompt_tokens"],
            "cached_tokens": frame["cached_tokens"],
            "completion_tokens": frame["completion_tokens"],
            "cost_usd": frame["cost_usd"],
            "estimated": frame["usage_estimated"].astype("int64"),
        }
    )
    waits = frame["wait_s"].where(frame["outcome"] == "ok")  # NaN: not counted in the waits
    work["wait"] = waits
    rows = _aggregate(work.groupby(by, sort=False))
    rows = rows.sort_values(["requests", by], ascending=[False, True], kind="stable")
    total = _aggregate(work.assign(**{by: TOTAL}).groupby(by))
    table = pd.concat([rows, total], ignore_index=True)
    table["share"] = table["requests"] / len(work)
    return table[[by, *COLUMNS]]


def _groups(frame: pandas.DataFrame, by: str, policy: Policy | None) -> pandas.Series:
    if by in ("key", "project"):  # a call refused before it was sent went out on no key
        return frame[by].where(frame[by] != "", NOT_SENT)
    if by != "pool":
        return frame[by]
    assert policy is not None  # checked by the caller
    pools = {name: domain.pool for name, domain in policy.domains.items()}
    return frame["domain"].map(lambda d: pools.get(d, "?"))


NOT_SENT: Final = "(not sent)"
"""The key and project of calls refused before they were sent."""

_SUMMED: Final = (
    "requests",
    *OUTCOMES,
    "retries",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "cost_usd",
    "estimated",
)
_WAITS: Final = ["wait_p50_s", "wait_p95_s", "wait_max_s"]


def _aggregate(grouped: Any) -> pandas.DataFrame:
    """Sums per group, and the waits' p50, p95 (linear) and max (0 for a group with none)."""
    sums = grouped[list(_SUMMED)].sum()
    wait = grouped["wait"]
    sums["wait_p50_s"] = wait.quantile(0.50)
    sums["wait_p95_s"] = wait.quantile(0.95)
    sums["wait_max_s"] = wait.max()
    sums[_WAITS] = sums[_WAITS].fillna(0.0)
    return sums.reset_index()


_HEADERS: Final = {
    "requests": "requests",
    "share": "share",
    "ok": "ok",
    "upstream_429": "429 gave up",
    "rejected": "rejected",
    "deferred": "deferred",
    "budget_exhausted": "budget out",
    "error": "error",
    "retries": "retries",
    "prompt_tokens": "prompt tok",
    "cached_tokens": "cached tok",
    "completion_tokens": "compl. tok",
    "cost_usd": "cost",
    "wait_p50_s": "wait p50",
    "wait_p95_s": "wait p95",
    "wait_max_s": "wait max",
    "estimated": "estimated",
}


def _cell(name: str, value: Any) -> str:
    if name == "share":
        return f"{value:.1%}"
    if name == "cost_usd":
        return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
    if name.startswith("wait_"):
        return _seconds(value)
    return f"{int(value):,}"


def _seconds(value: float) -> str:
    """A wait for people: ``0``, ``0.3 ms``, ``42 ms``, ``1.25 s``, ``3.0 min``."""
    if not value:
        return "0"
    if value < 1:
        return f"{value * 1000:.2g} ms" if value < 0.01 else f"{value * 1000:.0f} ms"
    return f"{value:.3g} s" if value < 120 else f"{value / 60:.1f} min"


def usage_console_table(table: pandas.DataFrame, by: str) -> Table:
    """A :func:`usage_table` for the terminal (rich), the total row set apart."""
    out = Table(title=f"usage by {by}", header_style="bold")
    out.add_column(by)
    for name in COLUMNS:
        out.add_column(_HEADERS[name], justify="right")
    last = len(table) - 1
    for index, row in enumerate(table.itertuples(index=False)):
        values = row._asdict()
        out.add_row(
            str(values[by]),
            *(_cell(name, values[name]) for name in COLUMNS),
            end_section=index == last - 1,
            style="bold" if index == last else None,
        )
    return out


def usage_answer(table: pandas.DataFrame, by: str) -> str:
    """The monitoring questions answered in words from a non-empty :func:`usage_table`: which
    group is used most, which cost most, how many 429s, rejections and deferrals."""
    rows, total = table.iloc[:-1], table.iloc[-1]
    top = rows.iloc[0]
    dear = rows.loc[rows["cost_usd"].idxmax()]
    parts = [
        f"Most used {by}: {top[by]} ({int(top['requests']):,} of "
        f"{int(total['requests']):,} requests, {top['share']:.0%}).",
        f"Most expensive: {dear[by]} ({_cell('cost_usd', dear['cost_usd'])} of "
        f"{_cell('cost_usd', total['cost_usd'])}).",
        f"Gave up on upstream 429s: {int(total['upstream_429']):,}; rejected by the policy: "
        f"{int(total['rejected']):,}; budget exhausted: {int(total['budget_exhausted']):,}; "
        f"deferred: {int(total['deferred']):,}; errors: {int(total['error']):,}; "
        f"retries: {int(total['retries']):,}.",
    ]
    if total["estimated"]:
        parts.append(
            f"Usage of {int(total['estimated']):,} request(s) is keypolicy's estimate "
            "(the provider reported none)."
        )
    return " ".join(parts)
