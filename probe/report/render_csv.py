"""CSV output: one CSV text per table of the report (``targets.csv``, ``changes.csv``…).

Header row = the stable column keys of :mod:`probe.report.tables`; times are ISO 8601 in the
report's zone. Text that came from the network can start with ``=``, ``+``, ``-`` or ``@``,
which spreadsheets run as a formula: such cells are prefixed with ``'`` (OWASP's advice,
:func:`probe.report.safe_text.csv_cell`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from probe.report.records import Comparison, Report
from probe.report.render_json import iso_local
from probe.report.safe_text import csv_cell
from probe.report.tables import Cell, Table, comparison_tables, report_tables
from probe.report.times import resolve_tz


def csv_value(value: Cell, tz: dt.tzinfo) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return iso_local(value, tz)
    if isinstance(value, str):
        return str(csv_cell(value))
    return str(value)


def table_csv(table: Table, tz: dt.tzinfo) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.keys)
    for row in table.rows:
        w.writerow([csv_value(row.get(k), tz) for k in table.keys])
    return buf.getvalue()


def render_csv(report: Report) -> dict[str, str]:
    """``{table name: CSV text}`` for every table of the report."""
    tz = resolve_tz(report.meta.tz)
    return {t.name: table_csv(t, tz) for t in report_tables(report)}


def render_comparison_csv(comparison: Comparison) -> str:
    """The change rows of a comparison as one CSV (the summary is for humans)."""
    tz = resolve_tz(comparison.tz)
    return table_csv(comparison_tables(comparison)[1], tz)


def concatenated(tables: dict[str, str]) -> str:
    """Several CSVs in one stream (for stdout): each preceded by a ``# name`` line."""
    return "\n".join(f"# {name}\n{text}" for name, text in tables.items())
