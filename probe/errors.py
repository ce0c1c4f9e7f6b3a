"""The probe's tool errors: one tree rooted in :class:`ProbeError`, caught once by the CLI.

A blocked or unreachable site is a *result*, never an exception. These classes are for the
tool itself going wrong: bad input, unusable storage, missing privileges. Every error the
tool raises on purpose derives from :class:`ProbeError`, so the command line's one boundary
(``probe.cli.main``) prints it as one line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ProbeError(Exception):
    """Base of every error the CLI reports as a one-line message (exit status 1)."""


class UsageError(ProbeError):
    """Raised for bad usage that typer cannot detect: a bad argument combination, a missing
    file named on the command line, consent not given (exit status 2)."""


class InvalidValue(UsageError, ValueError):
    """Raised when one value given to the tool is malformed: a URL, a duration, a category
    filter, a limit. Also a :class:`ValueError`, so code validating values the usual Python
    way (``except ValueError``) keeps working (exit status 2)."""


class TargetListError(ProbeError):
    """Raised when a target list has bad rows; ``problems`` holds every ``FILE:LINE: reason``
    and ``summary`` the one line that follows them on the command line."""

    def __init__(self, problems: list[str], summary: str | None = None) -> None:
        self.problems = problems
        self.summary = summary or f"bad target list ({len(problems)} problems)"
        first = problems[0] if problems else "empty target list"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)


class StorageError(ProbeError):
    """Raised when the database cannot be opened, migrated or written (disk full, read-only)."""


class PrivilegeError(ProbeError):
    """Raised when an operation needs root / CAP_NET_ADMIN / CAP_NET_RAW and lacks it."""


def probe_error_in(exc: BaseException) -> ProbeError | None:
    """The :class:`ProbeError` that ``exc`` is, or that an exception group carries (the first,
    depth first); None when there is none. Task groups wrap a worker's error in a group; this
    lets one boundary report it like a plain one."""
    if isinstance(exc, ProbeError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = probe_error_in(inner)
            if found is not None:
                return found
    return None
