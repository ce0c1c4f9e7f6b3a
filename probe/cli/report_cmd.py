"""``probe report`` and ``probe compare``: parse arguments, call :mod:`probe.report`, print.

No aggregation here and no error handling: errors reach the CLI's one boundary
(:func:`probe.cli.main`): 1 = runtime error (one line on stderr, e.g. an unreadable
database), 2 = bad usage (bad time, zone, format or argument combination).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from probe.errors import UsageError
from probe.report import (
    ReportOptions,
    Window,
    build_report,
    compare,
    ooni_compare,
    write_comparison,
)
from probe.report import write_report as write_report_files
from probe.report.output import COMPARE_FORMATS, REPORT_FORMATS, check_format, write_text
from probe.report.times import parse_time, resolve_tz
from probe.store import default_db_path

DbsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--db",
        metavar="PATH",
        help="Probe database (repeat for several; runs found twice count once). "
        "Default: $PROBE_DB or the user data dir.",
    ),
]
TzOption = Annotated[
    str,
    typer.Option(
        "--tz", metavar="ZONE", help="Show times in this zone: local, UTC, Asia/Almaty, +05:00…"
    ),
]
CategoryOption = Annotated[
    list[str] | None,
    typer.Option(
        "--category", metavar="CODE", help="Only targets of this category code (repeatable)."
    ),
]


def _databases(db: list[Path] | None) -> tuple[Path, ...]:
    return tuple(db) if db else (default_db_path(),)


def report(
    db: DbsOption = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="T", help="Start (inclusive): date, ISO time or 7d."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", metavar="T", help="End (exclusive; a date means its end)."),
    ] = None,
    tz: TzOption = "local",
    category: CategoryOption = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", metavar="FORMAT", help="html, md, csv or json.", case_sensitive=False
        ),
    ] = "html",
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Output file (a directory for csv); '-' = stdout. "
            "Default: reports/report-<time>.<ext>.",
        ),
    ] = None,
) -> None:
    """Write a reachability report: summary, targets, timelines, network health, changes."""
    zone = resolve_tz(tz)
    check_format(fmt, REPORT_FORMATS)
    now = dt.datetime.now(dt.UTC)
    start = parse_time(since, zone, now=now) if since else None
    end = parse_time(until, zone, end=True, now=now) if until else None
    if start and end and start >= end:
        raise UsageError("--since must be before --until")
    options = ReportOptions(_databases(db), zone, start, end, tuple(category or ()), now)
    built = build_report(options)
    paths = write_report_files(built, fmt, out)
    if len(paths) == 1:
        typer.echo(str(paths[0]))
    elif paths:
        typer.echo(str(paths[0].parent))


def compare_cmd(
    runs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[BEFORE AFTER]", help=" two run ids (or unique prefixes, latest, previous)."
        ),
    ] = None,
    db: DbsOption = None,
    since: Annotated[
        list[str] | None,
        typer.Option("--since", metavar="T", help="Start of a period; give twice (before, after)."),
    ] = None,
    until: Annotated[
        list[str] | None,
        typer.Option("--until", metavar="T", help="End of a period; give twice or not at all."),
    ] = None,
    tz: TzOption = "local",
    category: CategoryOption = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", metavar="FORMAT", help="table, md, csv, json or html.", case_sensitive=False
        ),
    ] = "table",
    out: Annotated[
        str | None, typer.Option("--out", metavar="PATH", help="Output file (default stdout).")
    ] = None,
    ooni: Annotated[
        bool,
        typer.Option("--ooni", help="Ours next to OONI's for every imported measurement: an "
                     "agreement matrix and every disagreement (table, md, csv or json)."),
    ] = False,
) -> None:
    """What changed between two runs or two periods: newly blocked, unblocked, method
    changed, still blocked. Without arguments: the previous run vs the latest. With --ooni:
    our verdicts beside OONI's own for imported measurements."""
    if ooni:
        if runs or since or until or category:
            raise UsageError("--ooni compares every imported measurement: give no runs, "
                             "periods or categories")
        fmt = check_format(fmt, ooni_compare.FORMATS)
        text = ooni_compare.render(ooni_compare.compare_ooni(_databases(db)), fmt)
        for path in write_text(text, out):
            typer.echo(str(path))
        return
    zone = resolve_tz(tz)
    check_format(fmt, COMPARE_FORMATS)
    pair, periods = _compare_args(runs or [], since or [], until or [], zone)
    result = compare(
        _databases(db), zone, runs=pair, periods=periods, categories=tuple(category or ())
    )
    paths = write_comparison(result, fmt, out)
    for path in paths:
        typer.echo(str(path))


def _compare_args(
    runs: list[str], since: list[str], until: list[str], zone: dt.tzinfo
) -> tuple[tuple[str, str] | None, tuple[Window, Window] | None]:
    if runs and (since or until):
        raise UsageError("give two runs or --since/--until periods, not both")
    if since or until:
        if len(since) != 2 or len(until) not in (0, 2):
            raise UsageError("periods: give --since twice and --until twice or not at all")
        now = dt.datetime.now(dt.UTC)
        starts = [parse_time(s, zone, now=now) for s in since]
        if until:
            ends: list[dt.datetime | None] = [parse_time(u, zone, end=True, now=now) for u in until]
        else:
            ends = [starts[1], None]
        windows = (Window(starts[0], ends[0]), Window(starts[1], ends[1]))
        for w in windows:
            if w.start and w.end and w.start >= w.end:
                raise UsageError("each --since must be before its --until")
        return None, windows
    if len(runs) not in (0, 2):
        raise UsageError("give exactly two runs: BEFORE AFTER")
    pair = (runs[0], runs[1]) if runs else ("previous", "latest")
    return pair, None


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``compare`` to the ``probe`` app."""
    app.command("report")(report)
    app.command("compare")(compare_cmd)
