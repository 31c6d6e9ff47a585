"""Reports: report.json under a versioned schema (schema.json), rendered as report.md (a job summary or a
pull-request comment) and report.html (one self-contained page with figures); the sweep over budgets.

Light to import: the renderers load matplotlib only when a figure is drawn.
"""

from __future__ import annotations

from edgeprune.reporting.report import Report, environment, final_comparison
from edgeprune.reporting.schema import SCHEMA_VERSION, errors, read_report

__all__ = ["SCHEMA_VERSION", "Report", "environment", "errors", "final_comparison", "read_report"]
