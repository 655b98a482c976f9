"""HTML reports for planning meetings: one self-contained file with inline SVG charts.

``render_report(results, out, policies=...)`` writes the report of one simulation or of several
policy variants; ``records_summary(path, policy)`` rebuilds a summary from usage records, so a
report can be drawn from what the runtime (or a simulation) recorded.
"""

from keypolicy.report.records import records_summary
from keypolicy.report.render import render_html, render_report

__all__ = ["records_summary", "render_html", "render_report"]
