"""Merge volunteers' probe databases into one (``probe db merge OUT IN...``).

Responsibility: copying whole runs — the run, its measurements, every observation, every
verdict version and its health samples — from input databases into one output database.

Rules:

* Run ids and measurement ids are globally unique, so a run is copied as it is (ids kept) and
  a run whose ``run_id`` is already in OUT is skipped: no duplicates, and merging the same
  inputs again changes nothing (idempotent). OUT may itself be a copy of one of the inputs.
* OUT is created (or migrated) to the current schema with :meth:`probe.store.Store.open`.
  Inputs are opened read-only (``file:…?mode=ro``) and checked *before anything is copied*:
  a missing file, a file that is not a probe database or one written by a newer probe stops
  the merge with a one-line error naming the file, and OUT is left untouched.
* Each input is copied in one transaction with ``ATTACH`` + ``INSERT … SELECT`` (fast: no
  rows pass through Python); a failure rolls that input back entirely, so OUT never holds half
  an input. Inputs of an older schema are fine: the columns both sides have are copied, a
  table the input lacks (e.g. ``health_samples`` before schema 2) is simply skipped.
* Verdicts get new ``verdict_id`` values in OUT but keep their order, ``created_at`` and
  ``is_current``, so a measurement's verdict history reads the same.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from probe.errors import StorageError
from probe.store.db import Store
from probe.store.readonly import BUSY_TIMEOUT_MS, connect_readonly, one_line, uri

#: Tables copied per measurement, parents before children (foreign keys are enforced).
MEASUREMENT_CHILDREN: tuple[str, ...] = (
    "dns_queries", "tcp_connects", "tls_handshakes", "certificates", "http_requests",
    "controls", "verdicts", "imports", "quic_handshakes",
)


@dataclass(frozen=True, slots=True)
class InputReport:
    """What merging one input did.

    ``skipped``: runs already in OUT. ``differing``: the skipped runs whose copy in OUT has a
    different number of measurements than the input's (e.g. merged while still running).
    ``rows`` counts the rows added per table. ``is_output``: the input *is* OUT (nothing to do).
    """

    path: str
    added: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    differing: tuple[str, ...] = ()
    rows: tuple[tuple[str, int], ...] = ()
    is_output: bool = False

    def count(self, table: str) -> int:
        return dict(self.rows).get(table, 0)


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def merge(out: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]]) -> list[
        InputReport]:
    """Merge ``inputs`` into ``out`` (created if missing); one report per input, in order.

    Raises StorageError naming the offending file when an input is unusable (before anything
    is written) or when copying an input fails (that input rolled back; inputs before it stay
    merged, and running the merge again completes the rest).
    """
    out_path = Path(out).expanduser()
    in_paths = [Path(p).expanduser() for p in inputs]
    for p in in_paths:  # check every input before touching OUT
        connect_readonly(p).close()
    Store.open(out_path).close()  # create / migrate OUT to the current schema
    try:
        conn = sqlite3.connect(uri(out_path), uri=True, isolation_level=None)
    except sqlite3.Error as e:
        raise StorageError(f"cannot open database {out_path}: {one_line(e)}") from e
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        reports = []
        for p in in_paths:
            if _same_file(p, out_path):
                reports.append(InputReport(str(p), is_output=True))
                continue
            reports.append(_merge_one(conn, p))
        return reports
    finally:
        conn.close()


def _columns(conn: sqlite3.Connection, schema_name: str, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA {schema_name}.table_info({table})")]


def _merge_one(conn: sqlite3.Connection, path: Path) -> InputReport:
    try:
        conn.execute("ATTACH DATABASE ? AS src", (uri(path, "ro"),))
    except sqlite3.Error as e:
        raise StorageError(f"cannot read database {path}: {one_line(e)}") from e
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            report = _copy(conn, path)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as e:
        raise StorageError(
            f"cannot merge {path}: {one_line(e)} (nothing of it was merged)"
        ) from e
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("DROP TABLE IF EXISTS temp.merge_runs")
            conn.execute("DROP TABLE IF EXISTS temp.merge_measurements")
        with contextlib.suppress(sqlite3.Error):
            conn.execute("DETACH DATABASE src")
    return report


def _copy(conn: sqlite3.Connection, path: Path) -> InputReport:
    """Copy the runs of ``src`` that ``main`` lacks; runs inside the caller's transaction."""
    src_tables = {r[0] for r in conn.execute(
        "SELECT name FROM src.sqlite_master WHERE type = 'table'")}
    conn.execute("CREATE TEMP TABLE merge_runs (run_id TEXT PRIMARY KEY)")
    conn.execute(
        "INSERT INTO temp.merge_runs SELECT run_id FROM src.runs "
        "WHERE run_id NOT IN (SELECT run_id FROM main.runs)"
    )
    added = tuple(r[0] for r in conn.execute("SELECT run_id FROM temp.merge_runs ORDER BY 1"))
    skipped = tuple(r[0] for r in conn.execute(
        "SELECT run_id FROM src.runs WHERE run_id IN (SELECT run_id FROM main.runs) ORDER BY 1"))
    differing = tuple(r[0] for r in conn.execute(
        """
        SELECT r.run_id FROM src.runs r WHERE r.run_id IN (SELECT run_id FROM main.runs)
          AND (SELECT count(*) FROM src.measurements m WHERE m.run_id = r.run_id)
           != (SELECT count(*) FROM main.measurements m WHERE m.run_id = r.run_id)
        ORDER BY 1
        """))
    conn.execute("CREATE TEMP TABLE merge_measurements (measurement_id TEXT PRIMARY KEY)")
    conn.execute(
        "INSERT INTO temp.merge_measurements SELECT measurement_id FROM src.measurements "
        "WHERE run_id IN (SELECT run_id FROM temp.merge_runs)"
    )
    counts: list[tuple[str, int]] = []

    def copy(table: str, where: str, order: str, exclude: tuple[str, ...] = ()) -> None:
        if table not in src_tables:
            return
        theirs = set(_columns(conn, "src", table))
        cols = ", ".join(c for c in _columns(conn, "main", table)
                         if c in theirs and c not in exclude)
        cursor = conn.execute(
            f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM src.{table} "
            f"WHERE {where} ORDER BY {order}"
        )
        counts.append((table, max(cursor.rowcount, 0)))

    in_runs = "run_id IN (SELECT run_id FROM temp.merge_runs)"
    in_measurements = "measurement_id IN (SELECT measurement_id FROM temp.merge_measurements)"
    copy("runs", in_runs, "run_id")
    copy("measurements", in_runs, "rowid")
    for table in MEASUREMENT_CHILDREN:
        if table == "verdicts":
            copy(table, in_measurements, "verdict_id", exclude=("verdict_id",))
        else:
            copy(table, in_measurements, "rowid")
    copy("health_samples", in_runs, "rowid")
    # traces of measured targets travel with their run (a trace of a URL never measured has no
    # run and stays with the volunteer's own database)
    copy("traces", in_runs, "trace_id", exclude=("trace_id",))
    return InputReport(str(path), added, skipped, differing, tuple(counts))
