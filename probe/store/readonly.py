"""Read-only access to probe databases: the one opener every reader of a probe file uses.

Reports, exports, ``probe db merge`` (its inputs) and the benchmark read probe databases
through this module and never open them any other way. Rules for this module:

* A probe database is opened through a ``file:…?mode=ro`` URI with a busy timeout, so it can
  be read while ``probe run`` or ``probe watch`` writes the same file (WAL mode); nothing is
  ever written to it (no migration, no WAL switch).
* It is checked before use: a file that is missing, is not SQLite, is not a probe database or
  was written by a newer probe is refused (attached databases too: a report refuses a newer
  schema like every other reader).
* A database on read-only media (a mounted backup, a read-only bind mount, a directory the
  reader cannot write) can be read even in WAL mode: when ``mode=ro`` cannot open it because
  SQLite cannot create its ``-shm``/``-wal`` files there, it is opened ``immutable=1`` (no
  locks, no WAL; SQLite's documentation, "Read-Only Databases" in wal.html and the
  ``immutable`` URI parameter in uri.html: safe because nothing can write a file there).
* Every ``sqlite3`` or OS error becomes :class:`~probe.errors.StorageError` with a one-line
  message naming the database path; callers never see ``sqlite3`` exceptions.
* Aggregations that need scratch tables (reports) get an in-memory :func:`scratch_database`
  and :func:`attached` probe databases, read-only, one at a time.
"""

from __future__ import annotations

import contextlib
import os
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


def uri(path: str | Path, mode: str | None = None, *, immutable: bool = False) -> str:
    """The ``file:`` URI of ``path`` (absolute, percent-encoded), with ``?mode=`` if given
    and ``immutable=1`` when asked (read-only media only: SQLite then takes no locks)."""
    params = ([f"mode={mode}"] if mode else []) + (["immutable=1"] if immutable else [])
    return f"file:{quote(str(Path(path).expanduser().resolve()))}" + (
        "?" + "&".join(params) if params else "")


def is_file(path: Path) -> bool:
    """``path.is_file()``, False instead of an OSError (a name too long, a loop of links)."""
    try:
        return path.is_file()
    except OSError:
        return False


def on_readonly_media(path: str | Path) -> bool:
    """True when nothing can create files beside ``path`` (its ``-shm``/``-wal``): a
    read-only file system or a directory this process may not write."""
    directory = Path(path).expanduser().resolve().parent
    return not os.access(directory, os.W_OK)


def _check(conn: sqlite3.Connection) -> None:
    version = schema.current_version(sqlite_utils.Database(conn, execute_plugins=False))
    if version == 0:
        raise StorageError("not a probe database (it is empty)")
    schema.check_supported(version, schema.MIGRATIONS)


def _connect(p: Path, immutable: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(uri(p, "ro", immutable=immutable), uri=True, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _check(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    """A checked read-only connection to the probe database at ``path``.

    Autocommit (``isolation_level=None``), usable from any thread. StorageError naming the
    file when it is missing, unreadable, not a probe database or newer than this probe.
    """
    p = Path(path).expanduser()
    if not is_file(p):
        raise StorageError(f"cannot open database {p}: no such file")
    try:
        try:
            return _connect(p, immutable=False)
        except sqlite3.OperationalError:
            if not on_readonly_media(p):
                raise
            return _connect(p, immutable=True)  # WAL on read-only media: no -shm possible
    except StorageError as e:
        raise StorageError(f"cannot read database {p}: {e}") from e
    except (sqlite3.Error, OSError) as e:
        raise StorageError(f"cannot read database {p}: {one_line(e)}") from e


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


def _attach_checked(conn: sqlite3.Connection, p: Path, alias: str) -> None:
    """ATTACH ``p`` as ``alias`` (immutable on read-only media) and check its schema
    version; detached again when the check fails."""
    for immutable in (False, True):
        try:
            conn.execute(f"ATTACH DATABASE ? AS {alias}", (uri(p, "ro", immutable=immutable),))
        except sqlite3.OperationalError:
            if immutable or not on_readonly_media(p):
                raise
            continue
        try:
            version = _attached_version(conn, alias)
        except sqlite3.OperationalError:
            conn.execute(f"DETACH DATABASE {alias}")
            if immutable or not on_readonly_media(p):
                raise
            continue
        except BaseException:
            conn.execute(f"DETACH DATABASE {alias}")
            raise
        try:
            schema.check_supported(version, schema.MIGRATIONS)
        except StorageError:
            conn.execute(f"DETACH DATABASE {alias}")
            raise
        return


def _attached_version(conn: sqlite3.Connection, alias: str) -> int:
    """The schema version of the attached database ``alias`` (0 = no migrations table)."""
    found = conn.execute(f"SELECT 1 FROM {alias}.sqlite_master WHERE type = 'table' "
                         f"AND name = ?", (schema.MIGRATIONS_TABLE,)).fetchone()
    if found is None:
        return 0
    row = conn.execute(f"SELECT max(version) FROM {alias}.{schema.MIGRATIONS_TABLE}").fetchone()
    return int(row[0] or 0)


@contextlib.contextmanager
def attached(conn: sqlite3.Connection, path: str | Path, alias: str) -> Iterator[str]:
    """Attach the probe database at ``path`` read-only to ``conn`` as ``alias`` for the block.

    Yields the alias. Opening errors, and a database that is not a probe database or is
    newer than this probe → StorageError ``cannot open database … read-only``; ``sqlite3``
    errors inside the block → StorageError ``cannot read database …``. An open transaction is
    committed and the database detached on the way out. On read-only media the database is
    attached ``immutable=1`` (see the module docstring).
    """
    p = Path(path).expanduser()
    try:
        _attach_checked(conn, p, alias)
    except StorageError as e:
        raise StorageError(f"cannot open database {p} read-only: {e}") from e
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
