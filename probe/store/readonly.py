"""Read-only access to probe databases: the one opener every reader of a probe file uses.

Reports, exports, ``probe db merge`` (its inputs) and the benchmark read probe databases
through this module and never open them any other way. Rules for this module:

* A probe database is opened through a ``file:…?mode=ro`` URI with a busy timeout, so it can
  be read while ``probe run`` or ``probe watch`` writes the same file (WAL mode); nothing is
  ever written to it (no migration, no WAL switch).
* It is checked before use: a file that is missing, is not SQLite, is not a probe database or
  was written by a newer probe is refused.
* Every ``sqlite3`` or OS error becomes :class:`~probe.errors.StorageError` with a one-line
  message naming the database path; callers never see ``sqlite3`` exceptions.
* Aggregations that need scratch tables (reports) get an in-memory :func:`scratch_database`
  and :func:`attached` probe databases, read-only, one at a time.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import sqlite_utils

from probe.errors import StorageError
from probe.store import schema

#: How long a reader or writer waits for another process's lock before giving up.
BUSY_TIMEOUT_S = 10.0
BUSY_TIMEOUT_MS = int(BUSY_TIMEOUT_S * 1000)


def one_line(exc: BaseException) -> str:
    """An exception as one line of text (its type name when it has no message)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def uri(path: str | Path, mode: str | None = None) -> str:
    """The ``file:`` URI of ``path`` (absolute, percent-encoded), with ``?mode=`` if given."""
    return f"file:{quote(str(Path(path).expanduser().resolve()))}" + (
        f"?mode={mode}" if mode else "")


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    """A checked read-only connection to the probe database at ``path``.

    Autocommit (``isolation_level=None``), usable from any thread. StorageError naming the
    file when it is missing, unreadable, not a probe database or newer than this probe.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise StorageError(f"cannot open database {p}: no such file")
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(uri(p, "ro"), uri=True, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = schema.current_version(sqlite_utils.Database(conn, execute_plugins=False))
        if version == 0:
            raise StorageError("not a probe database (it is empty)")
        schema.check_supported(version, schema.MIGRATIONS)
    except StorageError as e:
        if conn is not None:
            conn.close()
        raise StorageError(f"cannot read database {p}: {e}") from e
    except (sqlite3.Error, OSError) as e:
        if conn is not None:
            conn.close()
        raise StorageError(f"cannot read database {p}: {one_line(e)}") from e
    return conn


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Map any ``sqlite3`` error raised in the block to StorageError naming ``path``."""
    try:
        yield
    except sqlite3.Error as e:
        raise StorageError(f"cannot read database {Path(path)}: {one_line(e)}") from e


def scratch_database(name: str = "probe-scratch") -> sqlite3.Connection:
    """A private in-memory database for scratch tables (never a probe database), autocommit,
    with the busy timeout that applies to the probe databases :func:`attached` to it."""
    try:
        conn = sqlite3.connect(f"file:{quote(name)}?mode=memory", uri=True,
                               isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.Error as e:
        raise StorageError(f"cannot create an in-memory database: {one_line(e)}") from e
    return conn


@contextlib.contextmanager
def attached(conn: sqlite3.Connection, path: str | Path, alias: str) -> Iterator[str]:
    """Attach the probe database at ``path`` read-only to ``conn`` as ``alias`` for the block.

    Yields the alias. Opening errors → StorageError ``cannot open database … read-only``;
    ``sqlite3`` errors inside the block → StorageError ``cannot read database …``. An open
    transaction is committed and the database detached on the way out.
    """
    p = Path(path).expanduser()
    try:
        conn.execute(f"ATTACH DATABASE ? AS {alias}", (uri(p, "ro"),))
    except sqlite3.Error as e:
        raise StorageError(f"cannot open database {p} read-only: {one_line(e)}") from e
    try:
        yield alias
    except sqlite3.Error as e:
        raise StorageError(f"cannot read database {p}: {one_line(e)}") from e
    finally:
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.commit()
            conn.execute(f"DETACH DATABASE {alias}")
