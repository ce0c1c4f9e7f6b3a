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
    with Store.open_existing(str(db or default_db_path())) as store:  # never creates a file
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
    dask: Annotated[bool, typer.Option(
        "--dask", help="Judge on Dask's distributed scheduler (a local cluster unless "
        "--scheduler).")] = False,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="tcp://HOST:PORT of a running Dask scheduler (implies --dask).",
        show_default=False)] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, help="Worker processes of the local Dask cluster.")] = 2,
    archive: Annotated[list[str] | None, typer.Option(
        "--archive", help="Instead of the database: OONI .jsonl.gz files or archive "
        "directories (repeatable), judged on Dask into the Parquet dataset --out.",
        show_default=False)] = None,
    parquet: Annotated[Path | None, typer.Option(
        "--parquet", help="Instead of the database: a lossless Parquet dataset ('probe export "
        "--format parquet --lossless'), judged on Dask into the Parquet dataset --out.",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="With --archive or --parquet: the Parquet dataset directory to write.",
        show_default=False)] = None,
) -> None:
    """Recompute verdicts with the current classifier; earlier verdicts are kept as history."""
    if parquet is not None:
        from probe.run.distributed import reanalyze_parquet

        if archive or run_id:
            raise UsageError("--parquet goes with neither --archive nor --run")
        if out is None:
            raise UsageError("--parquet needs --out DIR (the Parquet dataset to write)")
        typer.echo(reanalyze_parquet(str(parquet), str(out), str(asn_db) if asn_db else None,
                                     scheduler=scheduler, workers=workers).summary())
        return
    if archive:
        from probe.run.distributed import analyze_archive

        if out is None:
            raise UsageError("--archive needs --out DIR (the Parquet dataset to write)")
        typer.echo(analyze_archive(archive, str(out), scheduler=scheduler,
                                   workers=workers).summary())
        return
    if out is not None:
        raise UsageError("--out goes with --archive or --parquet")
    if dask or scheduler:
        from probe.run.distributed import reanalyze as dask_reanalyze

        typer.echo(dask_reanalyze(str(db or default_db_path()), run_id,
                                  str(asn_db) if asn_db else None, scheduler=scheduler,
                                  workers=workers))
        return
    summary = do_reanalyze(str(db or default_db_path()), run_id, str(asn_db) if asn_db else None)
    typer.echo(summary)


def register(app: typer.Typer) -> None:
    """Add ``results`` and ``reanalyze`` to the root app."""
    app.command("results")(results)
    app.command("reanalyze")(reanalyze)
