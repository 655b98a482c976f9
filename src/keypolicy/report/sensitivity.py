"""Headroom and sensitivity: what more traffic or less capacity does to each option.

Both take simulations the report cannot make: whoever runs them (``keypolicy compare``) puts
them in the summary, and the report shows what it finds there.

- ``summary["headroom"]``: :class:`keypolicy.sim.headroom.Headroom` as a dict (``growth``: the
  traffic factor with no critical refusal; ``growth_fails_at``; ``limits``: the share of the
  declared limits the provider may fall to; ``limits_fail_at``; ``precision``; ``seeds``).
- ``summary["sensitivity"]``: a list of scenarios, each ``{"label", "traffic", "limits",
  "domains", "totals"}``: the same option simulated with traffic times ``traffic`` and the
  limits times ``limits``, ``domains`` and ``totals`` as in a summary (numbers plain or runs
  combined). Critical refusals are counted from ``domains`` by the report's own rule
  (:meth:`keypolicy.report.facts.Variant.critical_domains`); a scenario may instead give
  ``critical_refused`` and ``refused`` directly.
"""

from __future__ import annotations

from typing import Any

from keypolicy.report.facts import Variant
from keypolicy.report.tables import Cell, Row, Table
from keypolicy.report.values import count, interval, mean, percent

__all__ = ["headroom_cell", "headroom_of", "sensitivity_table"]


def headroom_of(v: Variant) -> dict[str, Any] | None:
    """The option's headroom, if it was computed."""
    found = v.summary.get("headroom")
    return found if isinstance(found, dict) else None


def headroom_cell(v: Variant) -> Cell:
    """The headline's headroom: traffic growth before the first critical refusal."""
    found = headroom_of(v)
    if found is None:
        return Cell("not computed", "see the note below", muted=True)
    growth, fails = found.get("growth"), found.get("growth_fails_at")
    limits = found.get("limits")
    shrink = (
        f"limits may fall {percent(1 - float(limits))}"
        if limits is not None and float(limits) < 0.995
        else "no room for lower limits"
    )
    if growth is None:
        return Cell("none", "critical requests refused even at less traffic", warn=True)
    growth = float(growth)
    if growth < 1:
        return Cell("none", f"critical refusals today; safe at ×{growth:.2f} traffic", warn=True)
    if fails is None:
        return Cell(f"≥ +{percent(growth - 1)}", f"traffic ×{growth:.2f} or more; {shrink}")
    return Cell(
        f"< +{percent(float(fails) - 1)}",
        f"none refused at ×{growth:.2f} traffic, some at ×{float(fails):.2f}; {shrink}",
        warn=float(fails) < 1.25,
    )


def _refusals(v: Variant, scenario: dict[str, Any]) -> tuple[Any, Any]:
    """Critical and all refusals of a scenario: given, or counted from its rows."""
    if "critical_refused" in scenario:
        return scenario["critical_refused"], scenario.get("refused")
    rows = scenario.get("domains") or {}
    critical = sum(mean(rows.get(d, {}).get("rejected")) for d in v.critical_domains())
    return critical, (scenario.get("totals") or {}).get("rejected")


def sensitivity_table(variants: list[Variant]) -> Table | None:
    """A row per scenario, a column per option: critical refusals (all refusals beneath); None
    when no option carries scenarios."""
    scenarios: dict[str, dict[str, dict[str, Any]]] = {}
    for v in variants:
        for s in v.summary.get("sensitivity") or []:
            scenarios.setdefault(str(s.get("label")), {})[v.name] = s
    if not scenarios:
        return None
    rows = []
    for label, per in scenarios.items():
        cells = []
        for v in variants:
            s = per.get(v.name)
            if s is None:
                cells.append(Cell("–"))
                continue
            critical, refused = _refusals(v, s)
            ci = interval(critical)
            cells.append(
                Cell(
                    count(mean(critical)),
                    f"{count(mean(refused))} refused in all",
                    warn=mean(critical) >= 0.5,
                    ci=f"± {count(ci)}" if ci else "",
                )
            )
        rows.append(Row(label, cells))
    return Table(
        "sensitivity",
        "Sensitivity: critical requests refused if the day is busier or the provider grants less",
        ["", *(v.name for v in variants)],
        rows,
        "Each scenario simulated on the same seeds: traffic grown with the same shape (more "
        "arrivals, same bursts), or every limit of the policy scaled down at the provider.",
    )
