"""``probe config show``: every effective `probe run` setting and where it came from."""

from __future__ import annotations

from typing import Annotated

import typer

from probe.cli import config as run_config
from probe.cli.options import ConfigOption
from probe.errors import UsageError

app = typer.Typer(help="Configuration: config file and PROBE_* variables.", no_args_is_help=True)


@app.command("show")
def show(
    config_file: ConfigOption = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Print every effective `probe run` setting and where it came from."""
    if fmt not in ("table", "json"):
        raise UsageError(f"--format {fmt!r}: choose table or json")
    typer.echo(run_config.render(run_config.load({}, config_file), fmt), nl=False)
