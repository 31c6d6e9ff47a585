"""The run's report (kept importable here; the code lives in `edgeprune.reporting`)."""

from __future__ import annotations

from edgeprune.reporting.report import Report, environment, final_comparison

__all__ = ["Report", "environment", "final_comparison"]
