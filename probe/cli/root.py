"""The `probe` root app: registers every command group and holds the one error boundary.

Command bodies parse, call one library function and render; they catch nothing. Errors are
caught once, in :func:`main`: a :class:`~probe.errors.UsageError` prints one line and exits 2,
any other :class:`~probe.errors.ProbeError` prints ``probe: error: …`` and exits 1 (also when
it arrives wrapped in an exception group from a task group), Ctrl-C exits 130 and anything
else is a bug that keeps its traceback. Exit status 0 = the command completed (whatever it
found). Every error line is one line (newlines and control characters folded to spaces) of at
most :data:`MAX_ERROR_LINE` characters, whatever the error carried (a path, a peer's text, a
config value): here, the one place every error line passes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from probe.cli import (
    collector_cmd,
    config_cmd,
    helper_cmd,
    import_cmd,
    results_cmd,
    run_cmd,
    targets_cmd,
    trace_cmd,
)
from probe.cli import config as run_config
from probe.cli import export_cmd as cli_export
from probe.cli import report_cmd as cli_report
from probe.cli.sim_cmd import app as sim_app
from probe.errors import ProbeError, TargetListError, UsageError, probe_error_in
from probe.report.safe_text import for_terminal

app = typer.Typer(
    help="Internet censorship measurement probe: tells blocking from outages and shutdowns.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
run_cmd.register(app)
results_cmd.register(app)
trace_cmd.register(app)
app.add_typer(targets_cmd.app, name="targets")
app.add_typer(helper_cmd.app, name="helper")
app.add_typer(config_cmd.app, name="config")
# Commands that live beside their library: reports, exports and the simulated network.
cli_report.register(app)
cli_export.register(app)
import_cmd.register(app)
collector_cmd.register(app)
app.add_typer(sim_app, name="sim", help="The simulated censoring network.")


#: Longest error line printed (a longer one loses its middle: the start says what failed, the
#: end says why, and a long path or peer text in between is what gets cut).
MAX_ERROR_LINE = 400
_TAIL = 120


def one_error_line(text: str) -> str:
    """``text`` as one printable line of at most :data:`MAX_ERROR_LINE` characters."""
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(line) <= MAX_ERROR_LINE:
        return line
    return line[:MAX_ERROR_LINE - _TAIL - 1] + "…" + line[-_TAIL:]


def error_lines(error: ProbeError) -> list[str]:
    """How a tool error is shown on stderr: one line, after the lines of a multi-problem one
    (every bad row of a target list, every bad setting of a config)."""
    if isinstance(error, TargetListError):
        return [*error.problems, f"probe: error: {error.summary}"]
    if isinstance(error, run_config.ConfigError) and error.problems:
        return [f"probe: error: {problem}" for problem in error.problems]
    return [f"probe: error: {error}"]


def exit_status(exc: BaseException) -> int:
    """Report ``exc`` on stderr and return the exit status; re-raise it when it is a bug.

    ``UsageError`` → 2, any other ``ProbeError`` → 1, ``KeyboardInterrupt`` → 130. An
    exception group is unwrapped when everything in it is a ProbeError (or Ctrl-C); a group
    holding anything else is re-raised so the bug keeps its traceback.
    """
    if isinstance(exc, BaseExceptionGroup):
        interrupted, rest = exc.split(KeyboardInterrupt)
        if interrupted is not None:
            return 130
        assert rest is not None
        _, bugs = rest.split(ProbeError)
        if bugs is not None:
            raise exc
    if isinstance(exc, KeyboardInterrupt):
        return 130
    error = probe_error_in(exc)
    if error is None:
        raise exc
    for line in error_lines(error):
        print(one_error_line(for_terminal(line)), file=sys.stderr, flush=True)
    return 2 if isinstance(error, UsageError) else 1


def main(argv: Sequence[str] | None = None, *, command: typer.Typer | None = None) -> None:
    """Run the `probe` command line (``argv``: default ``sys.argv[1:]``) and exit.

    The one error boundary of the CLI (see the module docstring). ``command``: another typer
    app to run behind the same boundary (tests of a command group); default the root app.
    """
    try:
        (command or app)(args=list(argv) if argv is not None else None, prog_name="probe")
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the one boundary
        sys.exit(exit_status(exc))


if __name__ == "__main__":
    main()
