"""probe import ooni: parse arguments, call the importer, print each skipped document and a
summary."""

from __future__ import annotations

from typing import Annotated

import typer

from probe.cli.options import DbOption
from probe.ingest import import_ooni
from probe.report.safe_text import for_terminal
from probe.store import Store, default_db_path

app = typer.Typer(help="Import other people's measurements and judge them with our classifier.",
                  no_args_is_help=True)


@app.command("ooni")
def ooni(
    paths: Annotated[list[str], typer.Argument(
        help="OONI measurements: .json, .jsonl, .jsonl.gz, directories in the layout of "
             "OONI's archive (raw/YYYYMMDD/HH/CC/TESTNAME/), or - for standard input.")],
    db: DbOption = None,
) -> None:
    """Import OONI measurements (idempotent) and judge each with our classifier."""

    def problem(origin: str, why: str) -> None:
        typer.echo(for_terminal(f"{origin}: skipped: {why}"), err=True)

    with Store.open(str(db or default_db_path())) as store:
        result = import_ooni(store, paths, on_problem=problem)
    typer.echo(result.summary())


def register(app_: typer.Typer) -> None:
    """Add ``import`` (with its ``ooni`` source) to the root app."""
    app_.add_typer(app, name="import")
