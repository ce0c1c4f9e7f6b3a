"""Markdown output: the report as a document for a blog post or an issue.

Tables are GitHub-flavoured Markdown; timelines are text strips in code blocks (one character
per run or time bucket, see :mod:`probe.report.strips`). Every cell is escaped: HTML-special
characters become entities and Markdown syntax is backslash-escaped, so a hostile page title
cannot inject markup, links or images into the post. Times are shown in the report's zone.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from probe.report import strips
from probe.report.records import Comparison, Report
from probe.report.tables import (
    Cell,
    Table,
    categories_table,
    change_label,
    changes_table,
    comparison_tables,
    cuts_table,
    methods_table,
    networks_table,
    targets_table,
    verdicts_table,
)
from probe.report.times import fmt_duration, fmt_local, resolve_tz
from probe.report.vocab import verdict_look

_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}|~#!])")


def md_escape(text: str) -> str:
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def code_safe(text: str) -> str:
    """A label for a fenced code block: no backticks (they could close the fence) and no
    angle brackets (in case a renderer does not treat the block as code)."""
    text = text.replace("`", "'").replace("<", "\u2039").replace(">", "\u203a")
    return " ".join(text.replace("&", "+").split())


def md_cell(value: Cell, tz: dt.tzinfo) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return fmt_local(value, tz)
    if isinstance(value, float):
        return f"{value:g}"
    return md_escape(str(value))


def md_table(table: Table, tz: dt.tzinfo, keys: Sequence[str] | None = None) -> str:
    keys = list(keys or table.keys)
    headers = dict(table.columns)
    if not table.rows:
        return "_none_\n"
    lines = [
        "| " + " | ".join(md_escape(headers[k]) for k in keys) + " |",
        "|" + "|".join("---" for _ in keys) + "|",
    ]
    for row in table.rows:
        lines.append("| " + " | ".join(md_cell(row.get(k), tz) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def _period(report: Report, tz: dt.tzinfo) -> str:
    m = report.meta
    start = m.since or m.first_run
    end = m.until or m.last_run
    if start is None:
        return "no runs"
    return f"{fmt_local(start, tz)} → {fmt_local(end, tz)} ({m.tz})"


def render_md(report: Report) -> str:
    tz = resolve_tz(report.meta.tz)
    s, m = report.summary, report.meta
    out: list[str] = []
    add = out.append
    add("# Reachability report\n")
    add(
        f"**Period:** {md_escape(_period(report, tz))} · **targets:** {s.targets} · "
        f"**runs:** {s.runs} · **networks:** {s.networks} · **measurements:** {s.measurements}"
        f" · **databases:** {md_escape(', '.join(m.databases))}"
        + (f" · **categories:** {md_escape(', '.join(m.categories))}" if m.categories else "")
        + "\n"
    )
    cut = (
        f"The network was cut for {fmt_duration(s.cut_seconds)} in total"
        + (f" across {s.networks} networks." if s.networks > 1 else ".")
        if s.cut_seconds
        else "The network was never cut."
    )
    add(
        f"{s.targets_interfered_now} of {s.targets} targets are blocked, intercepted or "
        f"throttled now ({s.targets_interfered} at some point in the period). {cut}\n"
    )
    add("## Verdicts\n")
    add(md_table(verdicts_table(report), tz))

    add("## Network health\n")
    add(_health_strips(report, tz))
    add("### Cuts\n")
    add(
        md_table(cuts_table(report), tz, ["network", "label", "start", "end", "duration", "source"])
    )

    add("## Targets\n")
    add(_targets(report, tz))

    add("## What changed\n")
    add(f"Compared: {md_escape(m.baseline)}.\n")
    changes = changes_table(report)
    for row in changes.rows:
        row["change"] = change_label(str(row["change"]))
    add(
        md_table(
            changes,
            tz,
            [
                "change",
                "network",
                "url",
                "before_verdict",
                "before_method",
                "after_verdict",
                "after_method",
                "after_at",
            ],
        )
    )

    add("## Timeline per target\n")
    add(_target_strips(report, tz))

    if len(report.networks) > 1:
        add("## Comparison across networks\n")
        add(md_table(networks_table(report), tz))
        add(_pivot(report))

    add("## By category\n")
    add(md_table(categories_table(report), tz))
    add("## By method\n")
    add(md_table(methods_table(report), tz))
    add(
        f"\n_Generated {fmt_local(m.generated_at, tz)} ({m.tz}) by probe. A target's status is "
        "its latest conclusive verdict on each network (a network shutdown says nothing about "
        "a site), the most severe across networks. Addresses other than those the "
        "measurements contacted are replaced by [ip]._\n"
    )
    return "\n".join(out)


def _targets(report: Report, tz: dt.tzinfo) -> str:
    table = targets_table(report)
    for row in table.rows:
        row["verdict"] = f"{row['verdict']}"
        nets = row.get("networks") or 0
        row["networks_interfered"] = f"{row['networks_interfered']}/{nets}"
        row["interfered"] = f"{row['interfered']}/{row['measurements']}"
    keys = [
        "url",
        "category",
        "verdict",
        "method",
        "confidence",
        "networks_interfered",
        "first_blocked",
        "last_blocked",
        "interfered",
        "evidence",
        "title",
    ]
    return md_table(table, tz, keys)


def _axis(report: Report, network: str, tz: dt.tzinfo) -> str:
    cells = report.cells.get(network, [])
    if not cells:
        return "no runs"
    unit = "run" if report.meta.timeline_unit == "run" else report.meta.timeline_unit
    return f"{fmt_local(cells[0][0], tz)} → {fmt_local(cells[-1][1], tz)}, one column per {unit}"


def _health_strips(report: Report, tz: dt.tzinfo) -> str:
    if not report.health:
        return "_no health data_\n"
    lines = ["```", "legend: " + strips.state_legend()]
    for net in report.cells:
        lines.append("")
        lines.append(code_safe(f"{net}: {_axis(report, net, tz)}"))
        lines.append(strips.health_strip(report, net))
    lines.append("```")
    return "\n".join(lines) + "\n"


def _target_strips(report: Report, tz: dt.tzinfo) -> str:
    lines = ["```", "legend: " + strips.verdict_legend()]
    width = min(48, max((len(code_safe(u)) for u in report.target_urls), default=10))
    for net in report.cells:
        lines.append("")
        lines.append(code_safe(f"{net}: {_axis(report, net, tz)}"))
        lines.append(f"{'network health':<{width}} |{strips.health_strip(report, net)}|")
        lines.append(f"{'all targets':<{width}} |{strips.network_strip(report, net)}|")
        for url in report.target_urls:
            label = code_safe(url)
            if len(label) > width:
                label = label[: width - 1] + "…"
            lines.append(f"{label:<{width}} |{strips.target_strip(report, net, url)}|")
    lines.append("```")
    return "\n".join(lines) + "\n"


def _pivot(report: Report) -> str:
    nets = [n.label for n in report.networks]
    lines = [
        "| target | " + " | ".join(md_escape(n) for n in nets) + " |",
        "|---|" + "|".join("---" for _ in nets) + "|",
    ]
    for url in report.target_urls:
        cells = []
        for n in nets:
            st = report.comparison.get((n, url))
            if st is None:
                cells.append("")
            else:
                label = verdict_look(st.verdict).label
                cells.append(md_escape(f"{label} ({st.method})" if st.method else label))
        lines.append(f"| {md_escape(url)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_comparison_md(comparison: Comparison) -> str:
    tz = resolve_tz(comparison.tz)
    summary, changes = comparison_tables(comparison)
    for row in changes.rows:
        row["change"] = change_label(str(row["change"]))
    counts = ", ".join(f"{n} {change_label(k)}" for k, n in comparison.counts.items() if n)
    return "\n".join(
        [
            "# What changed\n",
            f"**Before:** {md_escape(comparison.before_label)}  ",
            f"**After:** {md_escape(comparison.after_label)}  ",
            f"**Times:** {md_escape(comparison.tz)}\n",
            (counts or "No changes.") + "\n",
            md_table(changes, tz),
        ]
    )
