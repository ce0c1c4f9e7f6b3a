"""Options shared by several commands (one spelling and one help text each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Config file (default: $PROBE_CONFIG, else "
                 "<user config dir>/config.toml).", show_default=False),
]

DbOption = Annotated[
    Path | None,
    typer.Option("--db", envvar="PROBE_DB", help="SQLite database (default: user data dir)."),
]
