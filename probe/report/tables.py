"""The report as named tables: the one tabular form behind the Markdown, CSV and JSON outputs
(and the HTML per-target table), so every format carries the same content.

A cell holds ``str``, ``int``, ``float``, ``None`` or an aware ``datetime``; each renderer
formats datetimes in the report's zone its own way and escapes text for its own format.
Column keys are stable (other tools read the CSV/JSON); headers are for humans.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from probe.report.records import ChangeRow, Comparison, Report
from probe.report.times import fmt_duration
from probe.report.vocab import CHANGE_LABEL, CUT_STATES, VERDICTS, state_look, verdict_look

Cell = str | int | float | dt.datetime | None


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (key, header)
    rows: list[dict[str, Cell]]

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.columns]


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def summary_table(r: Report) -> Table:
    s, m = r.summary, r.meta
    rows: list[tuple[str, Cell]] = [
        ("period_start", m.since or m.first_run),
        ("period_end", m.until or m.last_run),
        ("first_run", m.first_run),
        ("last_run", m.last_run),
        ("time_zone", m.tz),
        ("databases", ", ".join(m.databases)),
        ("categories", ", ".join(m.categories) or "all"),
        ("targets", s.targets),
        ("runs", s.runs),
        *((f"runs_{k}", v) for k, v in s.runs_by_status.items()),
        ("networks", s.networks),
        ("measurements", s.measurements),
        *((f"verdict_{v}", s.verdicts.get(v, 0)) for v in VERDICTS),
        ("targets_interfered", s.targets_interfered),
        ("targets_interfered_now", s.targets_interfered_now),
        ("cut_hours", round(s.cut_seconds / 3600, 1)),
        ("health_source", m.health_source),
        ("timeline_unit", m.timeline_unit),
        ("generated_at", m.generated_at),
    ]
    return Table(
        "summary",
        "Summary",
        (("metric", "metric"), ("value", "value")),
        [{"metric": k, "value": v} for k, v in rows],
    )


def verdicts_table(r: Report) -> Table:
    total = r.summary.measurements
    return Table(
        "verdicts",
        "Verdicts",
        (
            ("verdict", "verdict"),
            ("label", "meaning"),
            ("measurements", "measurements"),
            ("percent", "%"),
        ),
        [
            {
                "verdict": v,
                "label": verdict_look(v).label,
                "measurements": n,
                "percent": _pct(n, total),
            }
            for v, n in r.summary.verdicts.items()
        ],
    )


TARGET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("url", "target"),
    ("category", "category"),
    ("verdict", "status"),
    ("method", "method"),
    ("confidence", "confidence"),
    ("network", "seen on"),
    ("networks_interfered", "networks interfered"),
    ("networks", "networks measured"),
    ("measured_at", "measured"),
    ("first_blocked", "first seen blocked"),
    ("last_blocked", "last seen blocked"),
    ("interfered", "measurements interfered"),
    ("measurements", "measurements"),
    ("evidence", "evidence"),
    ("title", "page title"),
    ("server", "server header"),
)


def targets_table(r: Report) -> Table:
    return Table(
        "targets",
        "Targets",
        TARGET_COLUMNS,
        [
            {
                "url": t.url,
                "category": t.category,
                "verdict": t.verdict,
                "method": t.method,
                "confidence": t.confidence,
                "network": t.network,
                "networks_interfered": t.networks_interfered,
                "networks": t.networks,
                "measured_at": t.measured_at,
                "first_blocked": t.first_blocked,
                "last_blocked": t.last_blocked,
                "interfered": t.interfered,
                "measurements": t.measurements,
                "evidence": t.evidence,
                "title": t.title,
                "server": t.server,
            }
            for t in r.targets
        ],
    )


def networks_table(r: Report) -> Table:
    return Table(
        "networks",
        "Networks",
        (
            ("network", "network"),
            ("asn", "ASN"),
            ("cc", "country"),
            ("runs", "runs"),
            ("measurements", "measurements"),
            ("first_run", "first run"),
            ("last_run", "last run"),
            *((v, v) for v in VERDICTS),
            ("cut_hours", "cut (h)"),
        ),
        [
            {
                "network": n.label,
                "asn": n.asn,
                "cc": n.cc,
                "runs": n.runs,
                "measurements": n.measurements,
                "first_run": n.first_run,
                "last_run": n.last_run,
                **n.verdicts,
                "cut_hours": round(n.cut_seconds / 3600, 1),
            }
            for n in r.networks
        ],
    )


def cuts_table(r: Report) -> Table:
    return Table(
        "cuts",
        "Network cuts",
        (
            ("network", "network"),
            ("state", "state"),
            ("label", "meaning"),
            ("start", "from"),
            ("end", "until"),
            ("duration", "duration"),
            ("hours", "hours"),
            ("rounds", "health rounds"),
            ("source", "evidence"),
        ),
        [
            {
                "network": h.network,
                "state": h.state,
                "label": state_look(h.state).label,
                "start": h.start,
                "end": h.end,
                "duration": fmt_duration(h.seconds),
                "hours": round(h.seconds / 3600, 2),
                "rounds": h.rounds,
                "source": h.source,
            }
            for h in r.health
            if h.state in CUT_STATES
        ],
    )


def health_table(r: Report) -> Table:
    return Table(
        "health",
        "Network health timeline",
        (
            ("network", "network"),
            ("state", "state"),
            ("start", "from"),
            ("end", "until"),
            ("rounds", "health rounds"),
            ("source", "evidence"),
        ),
        [
            {
                "network": h.network,
                "state": h.state,
                "start": h.start,
                "end": h.end,
                "rounds": h.rounds,
                "source": h.source,
            }
            for h in r.health
        ],
    )


def timeline_table(r: Report) -> Table:
    return Table(
        "timeline",
        "Timeline per target",
        (
            ("network", "network"),
            ("url", "target"),
            ("start", "from"),
            ("end", "until"),
            ("verdict", "verdict"),
            ("method", "method"),
            ("cells", "cells"),
            ("measurements", "measurements"),
        ),
        [
            {
                "network": s.network,
                "url": s.url,
                "start": s.start,
                "end": s.end,
                "verdict": s.verdict,
                "method": s.method,
                "cells": s.cells,
                "measurements": s.measurements,
            }
            for s in r.timeline
        ],
    )


def network_timeline_table(r: Report) -> Table:
    return Table(
        "network_timeline",
        "Timeline per network",
        (("network", "network"), ("start", "from"), ("end", "until"), *((v, v) for v in VERDICTS)),
        [
            {"network": b.network, "start": b.start, "end": b.end, **b.verdicts}
            for b in r.network_timeline
        ],
    )


def categories_table(r: Report) -> Table:
    return Table(
        "categories",
        "By category",
        (
            ("category", "category"),
            ("targets", "targets"),
            ("targets_interfered", "targets interfered"),
            ("measurements", "measurements"),
            *((v, v) for v in VERDICTS),
        ),
        [
            {
                "category": c.category,
                "targets": c.targets,
                "targets_interfered": c.targets_interfered,
                "measurements": c.measurements,
                **c.verdicts,
            }
            for c in r.categories
        ],
    )


def methods_table(r: Report) -> Table:
    return Table(
        "methods",
        "By method",
        (
            ("verdict", "verdict"),
            ("method", "method"),
            ("measurements", "measurements"),
            ("targets", "targets"),
            ("networks", "networks"),
            ("first_seen", "first seen"),
            ("last_seen", "last seen"),
        ),
        [
            {
                "verdict": m.verdict,
                "method": m.method,
                "measurements": m.measurements,
                "targets": m.targets,
                "networks": m.networks,
                "first_seen": m.first_seen,
                "last_seen": m.last_seen,
            }
            for m in r.methods
        ],
    )


def comparison_table(r: Report) -> Table:
    return Table(
        "comparison",
        "Status per network",
        (
            ("url", "target"),
            ("network", "network"),
            ("verdict", "status"),
            ("method", "method"),
            ("at", "measured"),
        ),
        [
            {"url": url, "network": net, "verdict": s.verdict, "method": s.method, "at": s.at}
            for (net, url), s in sorted(r.comparison.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        ],
    )


CHANGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("change", "change"),
    ("network", "network"),
    ("url", "target"),
    ("category", "category"),
    ("before_verdict", "before"),
    ("before_method", "before: method"),
    ("before_at", "before: measured"),
    ("after_verdict", "after"),
    ("after_method", "after: method"),
    ("after_at", "after: measured"),
    ("evidence", "evidence (after)"),
)


def change_rows(rows: Sequence[ChangeRow]) -> list[dict[str, Cell]]:
    return [
        {
            "change": c.change,
            "network": c.network,
            "url": c.url,
            "category": c.category,
            "before_verdict": c.before.verdict if c.before else None,
            "before_method": c.before.method if c.before else None,
            "before_at": c.before.at if c.before else None,
            "after_verdict": c.after.verdict if c.after else None,
            "after_method": c.after.method if c.after else None,
            "after_at": c.after.at if c.after else None,
            "evidence": c.after.evidence if c.after else None,
        }
        for c in rows
    ]


def changes_table(r: Report) -> Table:
    return Table("changes", "What changed", CHANGE_COLUMNS, change_rows(r.changes))


def report_tables(r: Report) -> list[Table]:
    """Every table of a report, in display order."""
    return [
        summary_table(r),
        verdicts_table(r),
        targets_table(r),
        changes_table(r),
        cuts_table(r),
        health_table(r),
        networks_table(r),
        comparison_table(r),
        categories_table(r),
        methods_table(r),
        timeline_table(r),
        network_timeline_table(r),
    ]


def comparison_tables(c: Comparison) -> list[Table]:
    """``probe compare`` as tables: a summary and the change rows."""
    keys = (
        CHANGE_COLUMNS
        if any(r.network for r in c.rows)
        else tuple(col for col in CHANGE_COLUMNS if col[0] != "network")
    )
    summary = Table(
        "summary",
        "Compared",
        (("metric", "metric"), ("value", "value")),
        [
            {"metric": "before", "value": c.before_label},
            {"metric": "after", "value": c.after_label},
            {"metric": "time_zone", "value": c.tz},
            {"metric": "targets_before", "value": c.before_targets},
            {"metric": "targets_after", "value": c.after_targets},
            *(_row(metric=k, value=v) for k, v in c.counts.items()),
        ],
    )
    return [summary, Table("changes", "Changes", keys, change_rows(c.rows))]


def _row(**cells: Cell) -> dict[str, Cell]:
    return dict(cells)


def change_label(change: str) -> str:
    return CHANGE_LABEL.get(change, change)
