"""``probe targets validate|list``: check and print target lists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from probe import applists
from probe import targets as target_lists
from probe.errors import ProbeError
from probe.measure.torlist import FORMATS as TOR_FORMATS

app = typer.Typer(help="Check and list target lists.", no_args_is_help=True)


@app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(help="Target lists, or endpoint and Tor "
                                                "lists (NAME.toml, targets/apps).")],
) -> None:
    """Report every bad row as FILE:LINE: reason; exit 1 if any."""
    problems = [p for f in files for p in (
        applists.validate_app_list(f, TOR_FORMATS) if f.suffix == ".toml"
        else target_lists.validate_file(str(f)))]
    for problem in problems:
        typer.echo(problem)
    if problems:
        raise ProbeError(f"{len(problems)} problems")
    typer.echo(f"ok: {', '.join(str(f) for f in files)}")


@app.command("list")
def list_targets(
    sources: Annotated[list[str], typer.Argument(help="URLs and/or target list files.")],
    category: Annotated[
        list[str] | None, typer.Option("--category", help="Only these category codes.")
    ] = None,
) -> None:
    """Print the normalised, de-duplicated targets (url, category)."""
    found = target_lists.load_sources(sources, set(category) if category else None)
    for t in found:
        typer.echo(f"{t.url}\t{t.category or '-'}")
