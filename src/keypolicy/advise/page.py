"""The advice as a report section: one self-contained HTML file (inline SVG, no script, nothing
from the network), for a planning meeting.

- a chart of cost per day against critical risk (critical requests refused a day, on a
  logarithmic scale from zero): every candidate drawn (hollow: estimated by the screen only;
  filled: simulated in full), the front marked and numbered by rank, the current grouping ringed;
- the front as a table: scores with their 95% intervals, cost a month, structure, headroom;
- where the current grouping stands, and how the search went.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from keypolicy.advise.document import current_place
from keypolicy.advise.scores import Scores
from keypolicy.advise.search import Advice
from keypolicy.summary import DAYS_A_MONTH

__all__ = ["advice_html", "write_html"]

_W, _H = 720, 420
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 20, 50

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th:nth-child(2), td:nth-child(2) { text-align: left; }
tr.current td { background: #fff6dd; }
.note { color: #555; font-size: .92em; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
@media print { body { margin: 0; } }
"""


def _y(value: float) -> float:
    return math.log10(1 + max(value, 0.0))


def _chart(advice: Advice) -> str:
    points: list[tuple[int, Scores, bool]] = [
        (i, advice.scores.get(i) or advice.screened[i], i in advice.scores)
        for i in range(len(advice.candidates))
        if i in advice.scores or i in advice.screened
    ]
    xs = [s.mean("cost") for _, s, _ in points]
    ys = [_y(s.mean("critical")) for _, s, _ in points]
    x0, x1 = min(xs), max(xs)
    if x1 - x0 < 1e-9:
        x0, x1 = x0 - 1, x1 + 1
    pad = (x1 - x0) * 0.05
    x0, x1 = x0 - pad, x1 + pad
    y1 = max(*ys, 1.0) * 1.08

    def px(x: float) -> float:
        return _LEFT + (x - x0) / (x1 - x0) * (_W - _LEFT - _RIGHT)

    def py(y: float) -> float:
        return _H - _BOTTOM - y / y1 * (_H - _TOP - _BOTTOM)

    parts = [
        f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" '
        'aria-label="cost per day against critical requests refused">'
    ]
    parts.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{_W - _LEFT - _RIGHT}" '
        f'height="{_H - _TOP - _BOTTOM}" fill="none" stroke="#bbb"/>'
    )
    tick = 0
    while _y(tick) <= y1:
        y = py(_y(tick))
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
        )
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:,}</text>')
        tick = 1 if tick == 0 else tick * 10
    for k in range(6):
        x = x0 + (x1 - x0) * k / 5
        parts.append(
            f'<text x="{px(x):.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle">${x:,.0f}</text>'
        )
    parts.append(
        f'<text x="{(_LEFT + _W - _RIGHT) / 2}" y="{_H - 10}" text-anchor="middle">'
        "cost per day (USD)</text>"
    )
    parts.append(
        f'<text transform="translate(14 {(_TOP + _H - _BOTTOM) / 2}) rotate(-90)" '
        'text-anchor="middle">critical requests refused a day (log scale)</text>'
    )
    for i, scores, full in sorted(points, key=lambda p: p[0] in advice.front):
        x, y = px(scores.mean("cost")), py(_y(scores.mean("critical")))
        title = escape(advice.candidates[i].label)
        if i in advice.front:
            rank = advice.front.index(i) + 1
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="#c0392b">'
                f"<title>#{rank} {title}</title></circle>"
            )
            parts.append(f'<text x="{x + 8:.1f}" y="{y - 6:.1f}">#{rank}</text>')
        else:
            fill = "#7f8c8d" if full else "none"
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{fill}" '
                f'stroke="#7f8c8d"><title>{title}</title></circle>'
            )
        if i == advice.current:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="11" fill="none" '
                'stroke="#e67e22" stroke-width="2"><title>current</title></circle>'
            )
            parts.append(f'<text x="{x + 13:.1f}" y="{y + 14:.1f}" fill="#e67e22">current</text>')
    parts.append("</svg>")
    return "".join(parts)


def _cell(scores: Scores, name: str) -> str:
    e = scores.values[name]
    if name == "cost":
        text = f"${e.mean:,.2f}"
    elif name == "wait":
        text = f"{e.mean:.2f}"
    else:
        text = f"{e.mean:,.1f}".removesuffix(".0")
    if e.ci95 >= 0.005:
        text += f" <small>±{e.ci95:,.2f}</small>"
    return text


def _table(advice: Advice) -> str:
    head = (
        "#",
        "grouping",
        "critical refused",
        "p99 / max_wait",
        "refused",
        "429s",
        "late deferrals",
        "cost / day",
        "cost / month",
        "blast radius",
        "projects",
        "keys",
        "traffic growth",
        "limits may shrink",
    )
    rows = ["<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    shown = list(advice.front)
    if advice.current not in shown:
        shown.append(advice.current)
    for i in shown:
        c, s = advice.candidates[i], advice.scores[i]
        room = advice.headroom.get(i)
        growth = shrink = "–"
        if room is not None:
            if room.growth is None:
                growth = "none"
            else:
                growth = f"×{room.growth:.2f}" + ("+" if room.growth_fails_at is None else "")
            shrink = "0%" if room.limits is None else f"{1 - room.limits:.0%}"
        rank = str(advice.front.index(i) + 1) if i in advice.front else "–"
        label = escape(c.label) + (" <em>(current)</em>" if i == advice.current else "")
        cells = [
            rank,
            label,
            *(_cell(s, n) for n in ("critical", "wait", "refused", "throttled", "late", "cost")),
            f"${s.mean('cost') * DAYS_A_MONTH:,.0f}",
            str(c.blast_radius),
            str(len(set(c.projects.values()))),
            str(c.key_count),
            growth,
            shrink,
        ]
        css = ' class="current"' if i == advice.current else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{v}</td>" for v in cells) + "</tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


def advice_html(advice: Advice, traffic: str) -> str:
    """The whole page."""
    screen = advice.screen
    if screen is None or screen.skipped:
        how = (
            f"All {len(advice.candidates)} groupings were simulated in full, each on "
            f"{len(advice.seeds)} seeds of the same arrivals ({advice.runs:,} runs)."
        )
    else:
        how = (
            f"{len(advice.candidates)} groupings. Screen: the domains fall into "
            f"{screen.components} components that share no limit; the {screen.pools} distinct "
            f"parts of the candidates in them were simulated apart ({screen.runs:,} runs), a "
            f"candidate estimated as its parts merged. {screen.simulated} candidates were then "
            "simulated in full (the current grouping, the screened front, and every candidate "
            f"within the screen's error margin); {screen.dropped} were dropped as beaten "
            f"beyond that margin. {advice.runs:,} runs in all."
        )
    best = advice.candidates[advice.front[0]]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Which keys to merge: {escape(advice.base.name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Which keys to merge: {escape(advice.base.name)} on {escape(traffic)}</h1>",
        f"<p><strong>Recommended: {escape(best.label)}.</strong> "
        f"{escape(current_place(advice))}</p>",
        "<h2>Cost against critical risk</h2>",
        _chart(advice),
        "<p class=note>Red, numbered: the front (no other grouping is at least as good on every "
        "score and better on one), by rank. Grey: simulated in full, beaten. Hollow: estimated "
        "by the screen only. Ringed: the current grouping.</p>",
        "<h2>The front</h2>",
        _table(advice),
        f"<p class=note>Means over {len(advice.seeds)} seeds (± half the 95% interval), per day "
        f"of traffic; a month is {DAYS_A_MONTH:g} days. Critical classes: "
        f"{escape(', '.join(advice.critical))}. Ranked by "
        f"{escape(', '.join(advice.settings.order))} (in that order). Headroom: growth of "
        "the traffic (more arrivals of the same shape) and shrinking of the provider's limits "
        "before the first critical refusal, on every seed; "
        "“+” where the search's bound was reached.</p>",
        "<h2>How it was searched</h2>",
        f"<p>{escape(how)} Limits rule: {escape(advice.settings.rule)}.</p>",
        "</body></html>\n",
    ]
    return "".join(parts)


def write_html(advice: Advice, traffic: str, out: Path) -> None:
    """Write :func:`advice_html` to ``out`` whole (a temporary file renamed over it)."""
    target = out.resolve()
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(advice_html(advice, traffic), encoding="utf-8")
    tmp.replace(target)
