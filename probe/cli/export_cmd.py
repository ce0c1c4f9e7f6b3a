"""The ``probe export`` command and the ``probe db`` sub-app (``probe db merge``).

Thin wrappers: parse the options, call :func:`probe.export.export` or
:func:`probe.store.merge.merge`, print a one-line summary on stderr. Errors reach the CLI's
one boundary (:func:`probe.cli.main`): 1 = a tool error (one line, ``probe: error: …``),
2 = bad usage. :func:`register` adds both to the root typer app.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from probe.export import Selection, export, parse_bound
from probe.report.safe_text import terminal_stdout
from probe.store import default_db_path
from probe.store.merge import merge


class ExportFormat(enum.StrEnum):
    """``--format`` choices (see docs/data.md)."""

    JSONL = "jsonl"
    OONI = "ooni"
    CSV = "csv"
    PARQUET = "parquet"

DbOption = Annotated[
    Path | None,
    typer.Option("--db", envvar="PROBE_DB", help="SQLite database (default: user data dir)."),
]


def export_command(
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", "-f", case_sensitive=False,
                     help="jsonl (lossless), ooni (OONI web_connectivity), csv (verdicts) "
                          "or parquet (partitioned dataset directory)."),
    ],
    db: DbOption = None,
    run: Annotated[
        str | None, typer.Option("--run", help="Only this run (id, unique prefix or latest).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Measurements started at or after T (UTC date, "
                                     "date-time or 24h/7d)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Measurements started before T (a date includes that "
                                     "whole day)."),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option("--out", "-o", help="Output file (directory for parquet); '-' = stdout. "
                                         "Default: reports/probe-export-<time>.<ext>."),
    ] = None,
    lossless: Annotated[
        bool,
        typer.Option("--lossless", help="parquet: also the records and runs tables (every "
                                        "stored row, bodies and DER included), which "
                                        "'probe reanalyze --parquet' judges again."),
    ] = False,
) -> None:
    """Export measurements, observations and verdicts for other tools."""
    selection = Selection(
        run=run,
        since=parse_bound(since) if since else None,
        until=parse_bound(until, end=True) if until else None,
    )
    with terminal_stdout():  # --out - on a terminal: no escape sequence from stored text
        summary = export(db or default_db_path(), fmt.value, out, selection, lossless)
    if fmt is ExportFormat.PARQUET:
        detail = ", ".join(f"{n} {table}" for table, n in summary.rows.items())
        typer.echo(f"exported {detail} to {summary.out}", err=True)
    else:
        typer.echo(f"exported {summary.measurements} measurements to {summary.out}", err=True)


def merge_command(
    out: Annotated[Path, typer.Argument(help="Database to merge into (created if missing).")],
    inputs: Annotated[list[Path], typer.Argument(help="Volunteers' databases (read-only).")],
) -> None:
    """Merge databases into OUT: every run not already there, with all its data."""
    reports = merge(out, inputs)
    for r in reports:
        if r.is_output:
            typer.echo(f"{r.path}: is the output database, nothing to do", err=True)
            continue
        line = (f"{r.path}: {len(r.added)} runs added ({r.count('measurements')} measurements,"
                f" {r.count('verdicts')} verdicts), {len(r.skipped)} already in {out}")
        typer.echo(line, err=True)
        for run_id in r.differing:
            typer.echo(f"{r.path}: warning: run {run_id} was skipped but its copy in {out} "
                       "has a different number of measurements", err=True)


def register(app: typer.Typer) -> None:
    """Add ``export`` and the ``db`` sub-app (``db merge``) to the root app."""
    app.command("export")(export_command)
    db_app = typer.Typer(help="Work on probe databases (merge volunteers' files).",
                         no_args_is_help=True)
    db_app.command("merge")(merge_command)
    app.add_typer(db_app, name="db")
