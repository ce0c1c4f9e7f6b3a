"""Where an export goes: default paths under ``reports/``, stdout, and all-or-nothing writes.

Responsibility: the output side of an export, no formatting. A file (or the Parquet dataset
directory) is first written under a temporary name next to its destination and renamed into
place only once complete, so an interrupted export never leaves a half-written file that looks
finished. ``-`` means standard output (text formats only).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from probe.errors import ProbeError, UsageError

#: Where exports land when ``--out`` is not given (relative to the working directory).
DEFAULT_DIR = Path("reports")
EXTENSIONS = {"jsonl": ".jsonl", "ooni": ".ooni.jsonl", "csv": ".csv", "parquet": ""}
STDOUT = "-"


class ExportError(ProbeError):
    """Raised when an export cannot be written (destination exists, unwritable)."""


def default_path(fmt: str, now: dt.datetime | None = None) -> Path:
    """``reports/probe-export-<UTC time>.<ext>`` (a directory ``…-parquet`` for parquet)."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    if fmt == "parquet":
        return DEFAULT_DIR / f"probe-export-{stamp}-parquet"
    return DEFAULT_DIR / f"probe-export-{stamp}{EXTENSIONS[fmt]}"


def _temp_sibling(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.tmp-{secrets.token_hex(4)}")


@contextlib.contextmanager
def text_output(out: str | Path) -> Iterator[TextIO]:
    """A text stream for ``out`` (``-`` = stdout), renamed into place on success only."""
    if str(out) == STDOUT:
        yield sys.stdout
        sys.stdout.flush()
        return
    dest = Path(out)
    if dest.is_dir():
        raise ExportError(f"--out {dest} is a directory")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_sibling(dest)
        stream = open(tmp, "w", encoding="utf-8", newline="")  # closed below, then renamed
    except OSError as e:
        raise ExportError(f"cannot write {dest}: {e.strerror or e}") from e
    try:
        with stream:
            yield stream
        os.replace(tmp, dest)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"cannot write {dest}: {e.strerror or e}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def directory_output(out: str | Path) -> Iterator[Path]:
    """A fresh directory to fill, moved to ``out`` on success; ``out`` must not hold files."""
    if str(out) == STDOUT:
        raise UsageError("--out -: a Parquet dataset is a directory, give a path")
    dest = Path(out)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ExportError(f"--out {dest} already exists; choose a new directory")
    tmp = _temp_sibling(dest)
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise ExportError(f"cannot write {dest}: {e.strerror or e}") from e
    try:
        yield tmp
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(f"cannot write {dest}: {e.strerror or e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
