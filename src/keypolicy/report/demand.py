"""Demand against each limit: per project and model, and for the organization per model, the
tokens and requests admitted per minute as a share of the TPM and RPM limits.

Shares put every panel on one scale (100% is the limit), so a project pinned at its limit next
to one idling at a fifth of its own shows capacity stranded by fixed slices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keypolicy.policy.model import Limits, Policy
from keypolicy.report.charts import HLine, Series, line_chart, nice_max
from keypolicy.report.layout import STEP, Context, Figure, Panel, downsample, peak

__all__ = ["Use", "demand_figure", "limit_use"]

TOKENS, REQUESTS, LIMIT = "#2f6db5", "#8a5cc2", "#b42318"


@dataclass(frozen=True, slots=True)
class Use:
    """Per-minute use of one project's model (or the organization's), full resolution."""

    key: str
    tokens: list[float]
    requests: list[float]
    tpm: float
    rpm: float

    def shares(self, step: int = 1) -> tuple[list[float], list[float]]:
        """Tokens as a share of TPM and requests of RPM (empty where there is no limit)."""
        tok, req = downsample(self.tokens, step), downsample(self.requests, step)
        return (
            [v / self.tpm for v in tok] if self.tpm else [],
            [v / self.rpm for v in req] if self.rpm else [],
        )

    @property
    def limits_text(self) -> str:
        """``TPM 800,000 · RPM 5,000``; empty without limits."""
        parts = [
            f"TPM {self.tpm:,.0f}" if self.tpm else "",
            f"RPM {self.rpm:,.0f}" if self.rpm else "",
        ]
        return " · ".join(p for p in parts if p)


def _limits(limits: Limits | None) -> tuple[float, float]:
    if limits is None:
        return 0.0, 0.0
    return float(limits.tpm or 0), float(limits.rpm or 0)


def limit_use(
    tokens: dict[str, list[float]], requests: dict[str, list[float]], policy: Policy | None
) -> list[Use]:
    """Use of every ``project/model`` in the series, then of the organization per model."""
    uses: list[Use] = []
    org: dict[str, tuple[list[float], list[float]]] = {}
    for key in sorted(tokens):
        project, _, model = key.partition("/")
        tok = tokens[key]
        req = requests.get(key) or [0.0] * len(tok)
        found = policy.projects.get(project) if policy else None
        uses.append(Use(key, tok, req, *_limits(found.models.get(model) if found else None)))
        total = org.setdefault(model, ([0.0] * len(tok), [0.0] * len(tok)))
        for i, value in enumerate(tok):
            total[0][i] += value
            total[1][i] += req[i] if i < len(req) else 0.0
    if policy is not None and policy.organization is not None:
        for model, (tok, req) in sorted(org.items()):
            tpm, rpm = _limits(policy.organization.models.get(model))
            if tpm or rpm:
                uses.append(Use(f"organization/{model}", tok, req, tpm, rpm))
    return uses


def _tokens(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    return f"{value / 1e3:.0f}k" if value >= 1e3 else f"{value:.0f}"


def _share(value: float) -> str:
    return f"{value * 100:.0f}%"


def demand_figure(ctx: Context) -> Figure:
    """The demand figure: a row per project/model (organization rows last), a column per variant."""
    cells: dict[str, dict[str, Use]] = {}
    for name in ctx.names:
        tokens, requests = (
            ctx.series(name, "admitted_tokens"),
            ctx.series(name, "admitted_requests"),
        )
        for use in limit_use(tokens, requests, ctx.policies.get(name)):
            cells.setdefault(use.key, {})[name] = use
    relative = any(u.tpm or u.rpm for row in cells.values() for u in row.values())
    drawn = {
        key: {
            n: (u.shares(STEP) if relative else (downsample(u.tokens, STEP), []))
            for n, u in row.items()
        }
        for key, row in cells.items()
    }
    top = max(
        (max(t + r, default=0.0) for row in drawn.values() for t, r in row.values()), default=0.0
    )
    y_max = nice_max(max(top, 1.0) if relative else top)
    fmt: Callable[[float], str] = _share if relative else _tokens
    order = sorted(cells, key=lambda k: (k.partition("/")[2], not k.startswith("organization/"), k))
    rows: list[list[Panel | None]] = []
    for key in order:
        row: list[Panel | None] = []
        for name in ctx.names:
            found = cells[key].get(name)
            if found is None:
                row.append(None)
                continue
            tok, req = drawn[key][name]
            row.append(_panel(ctx, name, found, tok, req, y_max, fmt))
        rows.append(row)
    what = "as a share of each limit" if relative else "(no limits known: no policy given)"
    records = any((r.get("about") or {}).get("records_note") for r in ctx.results.values())
    charged = (
        "Tokens are what the requests used (prompt + completion), as records carry them."
        if records
        else "Tokens are charged at admission (prompt + max_tokens); unused max_tokens are given "
        "back when the response completes, so a spike may pass 100% without a 429."
    )
    org = (
        " The organization's panels (first for each model) add up its projects."
        if any(k.startswith("organization/") for k in cells)
        else ""
    )
    return Figure(
        "demand",
        "Demand against each limit",
        f"Tokens and requests admitted per minute {what}, per project and model.{org} {charged} "
        "Each point is the busiest minute of 5; every panel has the same scale.",
        ctx.names,
        rows,
        [("tokens (share of TPM)", TOKENS), ("requests (share of RPM)", REQUESTS), ("limit", LIMIT)]
        if relative
        else [("tokens per minute", TOKENS)],
        stacked=True,
    )


def _panel(
    ctx: Context,
    name: str,
    use: Use,
    tok: list[float],
    req: list[float],
    y_max: float,
    fmt: Callable[[float], str],
) -> Panel:
    caption = use.key.replace("/", " · ")
    high, at = peak(tok, ctx.start, STEP)
    limits = use.limits_text
    if not tok:
        note = f"{limits} · no TPM limit: requests only" if limits else "nothing to draw"
    else:
        note = (
            f"{limits} · tokens peak at {fmt(high)} at {at}"
            if limits
            else f"peak {fmt(high)} tokens/min at {at}"
        )
    desc = f"Admitted per minute on {caption}" + (f" against {limits}" if limits else "")
    chart = ctx.chart(f"{name}: demand on {caption}", f"{desc}; {note}.", STEP, y_max, fmt)
    lines = [Series("tokens", tok, TOKENS), Series("requests", req, REQUESTS, dash=True)]
    refs = [HLine(1.0, "limit", LIMIT)] if limits else []
    return Panel(caption, line_chart(chart, lines, refs, fill_first=True), note)
