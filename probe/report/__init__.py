"""Reachability reports: aggregations over probe databases and their renderers (read-only).

Public API, used by ``probe report`` / ``probe compare`` (:mod:`probe.cli.report_cmd`) and the
benchmark: :func:`build_report` with :class:`ReportOptions` → :class:`Report`;
:func:`write_report`; :func:`compare` → :class:`Comparison`; :func:`write_comparison`.
Reports never touch the network and never write to the databases they read.

Flow: ``workspace`` (read-only load, grouped in SQL) → ``aggregate`` (SQL) → ``build``
(records) → ``tables`` → ``render_html`` / ``render_md`` / ``render_csv`` / ``render_json``.
"""

from collections.abc import Sequence
from pathlib import Path

from probe.report.build import ReportOptions, build_report
from probe.report.compare import compare
from probe.report.output import write_comparison, write_report
from probe.report.records import Comparison, Report
from probe.report.times import resolve_tz
from probe.report.workspace import Window


def quick_report(
    databases: Sequence[str | Path],
    fmt: str = "html",
    out: str | None = None,
    tz: str | None = None,
) -> list[Path]:
    """Report on everything in ``databases`` (e.g. at the end of ``make demo``); returns the
    files written (default under ``reports/``). Raises ProbeError."""
    opts = ReportOptions(tuple(Path(d) for d in databases), resolve_tz(tz))
    return write_report(build_report(opts), fmt, out)


__all__ = [
    "Comparison",
    "Report",
    "ReportOptions",
    "Window",
    "build_report",
    "compare",
    "quick_report",
    "write_comparison",
    "write_report",
]
