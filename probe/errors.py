"""The probe's tool errors: one base class the CLI catches once and prints as one line.

A blocked or unreachable site is a *result*, never an exception. These classes are for the
tool itself going wrong: bad input, unusable storage, missing privileges.
"""

from __future__ import annotations


class ProbeError(Exception):
    """Base of every error the CLI reports as a one-line message (exit status 1)."""


class UsageError(ProbeError):
    """Raised for bad command-line usage that typer cannot detect (exit status 2)."""


class TargetListError(ProbeError):
    """Raised when a target list has bad rows; ``problems`` holds every ``FILE:LINE: reason``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        first = problems[0] if problems else "empty target list"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)


class StorageError(ProbeError):
    """Raised when the database cannot be opened, migrated or written (disk full, read-only)."""


class PrivilegeError(ProbeError):
    """Raised when an operation needs root / CAP_NET_ADMIN / CAP_NET_RAW and lacks it."""
