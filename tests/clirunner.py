"""typer's CliRunner, routed through the CLI's one error boundary (``probe.cli.main``).

Command bodies no longer catch errors; ``main`` does. ``CliRunner().invoke(app, args)`` here
runs ``main(args, command=app)`` inside typer's test isolation, so a test sees the same
one-line messages and exit codes as a user of the installed ``probe`` command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from unittest import mock

import click.testing
import typer
import typer.testing
from typer.main import get_command

from probe.cli.root import main


class _ThroughMain:
    """Looks like a click command to click's runner; its ``main`` is ``probe.cli.main``."""

    def __init__(self, app: typer.Typer) -> None:
        self.app = app
        self.name = get_command(app).name

    def main(self, args: Sequence[str] = (), prog_name: str | None = None, **_: Any) -> None:
        main(list(args), command=self.app)


class CliRunner(typer.testing.CliRunner):
    """``invoke(app, args)`` through :func:`probe.cli.main`'s error boundary."""

    def invoke(self, app: typer.Typer, *args: Any, **kwargs: Any) -> click.testing.Result:  # type: ignore[override]
        # typer's runner turns the app into a click command with this function; hand it an
        # object whose ``main`` is probe's instead (same isolation, same Result).
        with mock.patch.object(typer.testing, "_get_command", _ThroughMain):
            return super().invoke(app, *args, **kwargs)
