"""How a run's progress looks on stderr: a rich progress bar on a terminal, plain lines else.

Plain lines (stderr not a terminal: logs, cron, tests) are one per finished target,
``[done/total] URL verdict method``; the closing summary line is the same in both modes.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from probe.model import Target, Verdict
from probe.run.engine import RunProgress


class RunDisplay:
    """The progress callback of a run, and its closing line (:meth:`finish`)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.progress: RunProgress | None = None
        self._bar: Progress | None = None
        self._task: int | None = None

    def __call__(self, p: RunProgress, target: Target | None, verdict: Verdict | None) -> None:
        self.progress = p
        if self.quiet:
            return
        if target is None:
            typer.echo(f"run {p.run_id}: measuring {p.total} targets", err=True)
            if self.tty:
                self._start_bar(p)
            return
        if self._bar is not None and self._task is not None:
            counts = " ".join(f"{k} {v}" for k, v in sorted(p.verdicts.items()))
            self._bar.update(self._task, completed=p.done, counts=counts)  # type: ignore[arg-type]
        elif verdict is not None and not self.tty:
            method = f" {verdict.method}" if verdict.method else ""
            line = f"[{p.done}/{p.total}] {target.url} {verdict.verdict.value}{method}"
            typer.echo(line, err=True)

    def _start_bar(self, p: RunProgress) -> None:
        self._bar = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._task = self._bar.add_task(  # type: ignore[assignment]
            f"run {p.run_id[:8]}", total=p.total, completed=p.done, counts="")
        self._bar.start()

    def finish(self) -> None:
        """Stop the bar and print ``run ID completed|INTERRUPTED: done/total … (counts)``."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        p = self.progress
        if p is None:
            return
        counts = ", ".join(f"{v} {k}" for k, v in sorted(p.verdicts.items())) or "nothing"
        state = "INTERRUPTED" if p.interrupted else "completed"
        typer.echo(
            f"run {p.run_id} {state}: {p.done}/{p.total} targets in {p.elapsed:.1f}s ({counts})",
            err=True,
        )
