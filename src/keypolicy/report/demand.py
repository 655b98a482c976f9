"""Demand against each limit: per model, each project's tokens per minute as a share of its own
TPM limit, used (solid) and reserved at admission (dashed).

A row per model, a panel per option, so rows line up across options whatever their projects:
clinic-separate's three gpt-4o projects and clinic-merged's one share the gpt-4o row. Shares of
each project's own limit (100% is the limit) put projects of different sizes on one scale, and
the row's scale stops at the highest share in it, not at one scale for the whole report.

Tokens used are prompt plus completion. The summary holds them per minute (``used_tokens``)
when the simulator records them; otherwise they are estimated from the reservations per minute
times the day's ratio of tokens used to tokens reserved on that project and model (from the
domain totals), and the legend says so. Reservations are what the provider charges at
admission: prompt plus max_tokens. A minute may pass 100% without a 429: the provider's bucket
holds up to a minute of capacity saved in quieter minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from keypolicy.policy.model import Limits, Policy
from keypolicy.report.charts import HLine, Series, line_chart, nice_max
from keypolicy.report.layout import Context, Figure, Panel, downsample, peak
from keypolicy.report.palette import LIMIT, series_color
from keypolicy.report.values import mean, percent

__all__ = ["Use", "demand_figure", "limit_use", "used_ratio"]


@dataclass(frozen=True, slots=True)
class Use:
    """Per-minute reservations of one project's model (or the organization's), full resolution."""

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


def used_ratio(summary: dict[str, object], policy: Policy | None) -> dict[str, float]:
    """Per ``project/model``: tokens used (prompt + completion, the domain totals) over tokens
    reserved (the series' sum); a domain drawing on several projects is split evenly."""
    series = summary.get("series") or {}
    assert isinstance(series, dict)
    reserved = {k: sum(v) for k, v in (series.get("admitted_tokens") or {}).items()}
    domains = summary.get("domains") or {}
    assert isinstance(domains, dict)
    used: dict[str, float] = {}
    by_model: dict[str, float] = {}
    for domain, row in domains.items():
        tokens = mean(row.get("prompt_tokens")) + mean(row.get("completion_tokens"))
        spec = policy.domains.get(domain) if policy is not None else None
        if spec is None or policy is None:
            continue
        projects = list(dict.fromkeys(policy.keys[k].project for k in policy.pools[spec.pool].keys))
        for project in projects:
            key = f"{project}/{spec.model}"
            used[key] = used.get(key, 0.0) + tokens / len(projects)
        by_model[spec.model] = by_model.get(spec.model, 0.0) + tokens
    ratios = {k: min(used[k] / r, 1.0) for k, r in reserved.items() if r > 0 and k in used}
    if policy is None:  # no mapping of domains to projects: one ratio for the whole option
        everything = sum(
            mean(r.get("prompt_tokens")) + mean(r.get("completion_tokens"))
            for r in domains.values()
        )
        whole = sum(reserved.values())
        return dict.fromkeys(reserved, min(everything / whole, 1.0) if whole else 0.0)
    return ratios


def _used(ctx: Context, name: str, use: Use, ratios: dict[str, float]) -> tuple[list[float], bool]:
    """Tokens used per minute on ``use``'s project and model, and whether they are estimated."""
    recorded = ctx.series(name, "used_tokens").get(use.key)
    if recorded:
        return list(recorded), False
    ratio = ratios.get(use.key, 0.0)
    return [v * ratio for v in use.tokens], True


@dataclass(frozen=True, slots=True)
class _Cell:
    """One option's projects of one model, downsampled to shares of their limits."""

    lines: list[Series]
    notes: list[str]
    top: float


def _cell(ctx: Context, name: str, model: str, uses: list[Use], org: Use | None) -> _Cell:
    ratios = used_ratio(ctx.results[name], ctx.policies.get(name))
    lines: list[Series] = []
    notes = []
    top = 0.0
    for i, use in enumerate(uses):
        project = use.key.partition("/")[0]
        color = series_color(i)
        used, _ = _used(ctx, name, use, ratios)
        used_share = [v / use.tpm for v in downsample(used, ctx.step)]
        reserved_share, _ = use.shares(ctx.step)
        lines.append(Series(f"{project} used", used_share, color))
        lines.append(Series(f"{project} reserved", reserved_share, color, dash=True, thin=True))
        high, at = peak(used_share, ctx.start, ctx.step)
        notes.append(
            f"{project} ({use.limits_text}): used peaks at {percent(high)} at {at}, "
            f"reserved at {percent(max(reserved_share, default=0.0))}"
        )
        top = max(top, high, max(reserved_share, default=0.0))
    if org is not None and org.tpm:
        notes.append(
            f"organization: {percent(max(org.shares()[0], default=0.0))} of its {model} TPM at most"
        )
    return _Cell(lines, notes, top)


def demand_figure(ctx: Context) -> Figure:
    """A row per model, a panel per option: each project's use of its own TPM limit."""
    per_option: dict[str, list[Use]] = {}
    models: list[str] = []
    for name in ctx.names:
        found = limit_use(
            ctx.series(name, "admitted_tokens"),
            ctx.series(name, "admitted_requests"),
            ctx.policies.get(name),
        )
        per_option[name] = found
        models = list(dict.fromkeys([*models, *(u.key.partition("/")[2] for u in found)]))
    # Models in the order the policies' domains name them (the most urgent work first, as
    # the policy writes it), models only the series know after them.
    named = [
        d.model for name in ctx.names if (p := ctx.policies.get(name)) for d in p.domains.values()
    ]
    models = sorted(models, key=lambda m: named.index(m) if m in named else len(named))
    limited = {u.key for uses in per_option.values() for u in uses if u.tpm}
    if not limited:
        return Figure(
            "demand",
            "Demand against each limit",
            "",
            ctx.names,
            [],
            message="No TPM limits are known (no policy given): demand is not drawn against them.",
        )
    rows: list[list[Panel | None]] = []
    estimated = False
    for model in models:
        cells: dict[str, _Cell] = {}
        for name in ctx.names:
            uses = [
                u
                for u in per_option[name]
                if u.tpm and u.key.endswith(f"/{model}") and not u.key.startswith("organization/")
            ]
            org = next((u for u in per_option[name] if u.key == f"organization/{model}"), None)
            if uses:
                cells[name] = _cell(ctx, name, model, uses, org)
                estimated = estimated or not ctx.series(name, "used_tokens")
        if not cells:
            continue
        y_max = nice_max(max([1.0, *(c.top for c in cells.values())]))
        row: list[Panel | None] = []
        for name in ctx.names:
            cell = cells.get(name)
            if cell is None:
                row.append(None)
                continue
            note = "; ".join(cell.notes)
            chart = ctx.chart(
                f"{name}: {model} tokens per minute against each project's TPM limit",
                f"Tokens used (solid) and reserved at admission (dashed) per minute, as a share "
                f"of each project's TPM limit; {note}.",
                ctx.step,
                y_max,
                _share,
            )
            svg = line_chart(chart, cell.lines, [HLine(1.0, "limit", LIMIT)])
            legend = [(s.label.removesuffix(" used"), s.color) for s in cell.lines[::2]]
            row.append(Panel(model, svg, note, legend))
        rows.append(row)
    how = (
        "Tokens used per minute are estimated: the reservations times the day's ratio of tokens "
        "used to tokens reserved on that project (the summary holds no per-minute use). "
        if estimated
        else ""
    )
    return Figure(
        "demand",
        "Demand against each limit",
        "A row per model, a panel per option: each project's tokens per minute as a share of "
        "its own TPM limit (100%, the dashed black line). Solid: tokens used (prompt + "
        "completion). Dashed, thin: tokens reserved at admission (prompt + max_tokens), what "
        "the provider charges first; a minute may pass 100% without a 429, since the "
        f"provider's bucket keeps capacity saved in quieter minutes. {how}Each point is the "
        "busiest minute of 5; panels in a row share their scale.",
        ctx.names,
        rows,
        [("tokens used", "#444444"), ("reserved (dashed)", "#999999"), ("limit", LIMIT)],
        summary=True,
    )


def _share(value: float) -> str:
    return f"{value * 100:.0f}%"
