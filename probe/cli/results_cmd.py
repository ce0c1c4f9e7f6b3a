"""``probe results`` and ``probe reanalyze``: read (or re-judge) stored runs and print.

What reaches a terminal goes through :func:`probe.report.safe_text.terminal_stdout`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from probe.cli.options import DbOption
from probe.errors import UsageError
from probe.report.run_results import render_results
from probe.report.safe_text import terminal_stdout
from probe.run.reanalyze import reanalyze as do_reanalyze
from probe.store import Store, default_db_path


def results(
    db: DbOption = None,
    run_id: Annotated[
        str, typer.Option("--run", help="Run id (or prefix) or 'latest'.")
    ] = "latest",
    fmt: Annotated[
        str, typer.Option("--format", help="table, json or csv.", case_sensitive=False)
    ] = "table",
) -> None:
    """Show the verdict of every target of a run."""
    fmt = fmt.lower()
    if fmt not in ("table", "json", "csv"):
        raise UsageError(f"--format {fmt!r}: choose table, json or csv")
    with Store.open(str(db or default_db_path())) as store:
        rows = store.results(run_id)
    width = shutil.get_terminal_size((120, 24)).columns
    with terminal_stdout():  # json and csv are data, but not on a terminal
        typer.echo(render_results(rows, fmt, width=width), nl=False)


def reanalyze(
    db: DbOption = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Only this run (default: every run).")
    ] = None,
    asn_db: Annotated[
        Path | None, typer.Option("--asn-db", help="iptoasn TSV for ASN comparisons.")
    ] = None,
) -> None:
    """Recompute verdicts with the current classifier; earlier verdicts are kept as history."""
    summary = do_reanalyze(str(db or default_db_path()), run_id, str(asn_db) if asn_db else None)
    typer.echo(summary)


def register(app: typer.Typer) -> None:
    """Add ``results`` and ``reanalyze`` to the root app."""
    app.command("results")(results)
    app.command("reanalyze")(reanalyze)
