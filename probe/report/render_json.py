"""JSON output: every table of the report (or of a comparison) in one document.

The summary is an object (metric → value); every other table is an array of row objects with
the column keys of :mod:`probe.report.tables`. Times are ISO 8601 in the report's zone (with
its offset), so they are exact and show the analyst's local time at once.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from probe.report.records import Comparison, Report
from probe.report.tables import Cell, Table, comparison_tables, report_tables
from probe.report.times import resolve_tz

FORMAT_VERSION = 1


def iso_local(value: dt.datetime, tz: dt.tzinfo) -> str:
    return value.astimezone(tz).replace(microsecond=0).isoformat()


def json_value(value: Cell, tz: dt.tzinfo) -> Any:
    if isinstance(value, dt.datetime):
        return iso_local(value, tz)
    return value


def _document(kind: str, tables: list[Table], tz: dt.tzinfo, extra: dict[str, Any]) -> str:
    doc: dict[str, Any] = {"format": f"probe-{kind}", "version": FORMAT_VERSION, **extra}
    for t in tables:
        rows = [{k: json_value(row.get(k), tz) for k in t.keys} for row in t.rows]
        if t.name == "summary":
            doc["summary"] = {str(r["metric"]): r["value"] for r in rows}
        else:
            doc[t.name] = rows
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def render_json(report: Report) -> str:
    tz = resolve_tz(report.meta.tz)
    return _document("report", report_tables(report), tz, {"baseline": report.meta.baseline})


def render_comparison_json(comparison: Comparison) -> str:
    return _document("compare", comparison_tables(comparison), resolve_tz(comparison.tz), {})
