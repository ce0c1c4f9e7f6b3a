"""Read a probe database for export, read-only, in bounded pages ordered by start time.

Responsibility: everything an exporter (or ``probe db merge``) needs to *read* from a probe
database, and nothing else. Rules for this module:

* Databases are opened with the store's read-only opener (:meth:`probe.store.Store.open_readonly`:
  ``mode=ro``, busy timeout, checked first; a file that is missing, is not SQLite, is not a
  probe database or was written by a newer probe is refused with a one-line
  :class:`~probe.errors.StorageError` naming the file). Nothing is ever written to a source.
* One export reads one snapshot: :meth:`Source.snapshot` holds a read transaction, so a probe
  writing the same file meanwhile (WAL mode) neither blocks nor changes what is exported.
* Measurements stream in pages of :data:`PAGE_SIZE`, ordered by ``(started_at,
  measurement_id)`` with keyset pagination; each page fetches its observation rows with one
  ``IN (...)`` query per table. Memory is bounded by one page whatever the database's size.
* Records are rebuilt with :mod:`probe.store.rows`, the store's own row ↔ record mapping, so an
  exported measurement is *equal* to the one the probe stored.
* ``--since`` is inclusive, ``--until`` exclusive, both UTC; they filter measurements on
  ``started_at`` and health samples on ``at``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.errors import StorageError, UsageError
from probe.model import Measurement, Verdict
from probe.store import Store, rows
from probe.store.readonly import reading

Row = dict[str, Any]

#: Measurements per page (each page also loads every observation of its measurements).
PAGE_SIZE = 500
#: Observation tables keyed by ``(measurement_id, idx)``, in record order.
OBSERVATION_TABLES: tuple[str, ...] = (
    "dns_queries", "tcp_connects", "tls_handshakes", "http_requests", "controls",
    "quic_handshakes",
)
_RELATIVE = re.compile(r"^(\d+)\s*(m|min|h|d|w)$", re.IGNORECASE)
_UNIT_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def iso_utc(when: dt.datetime) -> str:
    """``when`` in the store's own spelling (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), so stored
    instants compare with it as plain text."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_bound(text: str, *, end: bool = False, now: dt.datetime | None = None) -> str:
    """``--since``/``--until`` text → an ISO UTC bound; raises UsageError on bad input.

    Accepts an ISO 8601 date or date-time (no zone = UTC), or a span back from now (``90m``,
    ``24h``, ``7d``, ``2w``). A date alone is the start of that UTC day, or for ``end``
    (``--until``) the end of it, so ``--until 2022-01-10`` includes the 10th.
    """
    raw = text.strip()
    now = now or dt.datetime.now(dt.UTC)
    m = _RELATIVE.match(raw)
    if m:
        return iso_utc(now - dt.timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)
                                                                                  .lower()]))
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return iso_utc(start + dt.timedelta(days=1) if end else start)
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(
            f"bad time {text!r}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM] or 24h/7d/2w"
        ) from None
    return iso_utc(when if when.tzinfo else when.replace(tzinfo=dt.UTC))


@dataclass(frozen=True, slots=True)
class Selection:
    """Which measurements to export.

    ``run``: a full run id, a unique prefix or ``latest``; None = every run.
    ``since``/``until``: ISO UTC bounds from :func:`parse_bound`; None = unbounded.
    """

    run: str | None = None
    since: str | None = None
    until: str | None = None


@dataclass(slots=True)
class Page:
    """One page of measurement rows with every row that hangs off them.

    ``children[table][measurement_id]`` holds that table's rows in record order (certificates
    under ``certificates``, ordered by ``tls_idx, position``); ``verdicts[measurement_id]``
    the verdict rows (only the current one, or every version oldest first).
    """

    measurements: list[Row]
    children: dict[str, dict[str, list[Row]]] = field(default_factory=dict)
    verdicts: dict[str, list[Row]] = field(default_factory=dict)

    def rows_of(self, table: str, measurement_id: str) -> list[Row]:
        return self.children.get(table, {}).get(measurement_id, [])


@dataclass(frozen=True, slots=True)
class Record:
    """One stored measurement, rebuilt exactly, with its run row and current verdict row.

    ``verdict_row`` None = stored without a verdict. ``run`` is the ``runs`` row with
    ``settings`` parsed.
    """

    measurement_id: str
    run: Row
    measurement: Measurement
    verdict: Verdict | None
    verdict_row: Row | None


class Source:
    """A probe database opened read-only for export. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.store = Store.open_readonly(self.path)
        self.conn = self.store.db.conn
        self.tables = {
            r["name"] for r in self._execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        self._runs: dict[str, Row] = {}

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Hold one read transaction: everything read inside sees one state of the file."""
        self._execute("BEGIN")
        try:
            yield
        finally:
            with contextlib.suppress(StorageError):
                self._execute("COMMIT")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with reading(self.path):
            cursor = self.conn.execute(sql, params)
            if cursor.description is None:  # BEGIN, COMMIT…
                return []
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor]

    # --- runs -----------------------------------------------------------------------------

    def resolve_run(self, run: str) -> str:
        """A full run id from ``latest``, a full id or a unique prefix; else StorageError."""
        return str(self.store.get_run(run)["run_id"])

    def run(self, run_id: str) -> Row:
        """The ``runs`` row of ``run_id`` (``settings`` parsed), cached."""
        row = self._runs.get(run_id)
        if row is None:
            found = self._execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
            if not found:
                raise StorageError(f"measurement of unknown run {run_id!r} in {self.path}")
            row = found[0]
            row["settings"] = rows.from_json(row["settings"], {})
            self._runs[run_id] = row
        return row

    def _columns(self, table: str, without: str) -> str:
        names = [r["name"] for r in self._execute(f"PRAGMA table_info({table})")]
        return ", ".join(n for n in names if n != without)

    def _filters(self, sel: Selection, time_column: str, alias: str) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if sel.run is not None:
            where.append(f"{alias}.run_id = ?")
            params.append(self.resolve_run(sel.run))
        if sel.since is not None:
            where.append(f"{alias}.{time_column} >= ?")
            params.append(sel.since)
        if sel.until is not None:
            where.append(f"{alias}.{time_column} < ?")
            params.append(sel.until)
        return " AND ".join(where), params

    # --- measurements ---------------------------------------------------------------------

    def pages(
        self,
        sel: Selection,
        *,
        observations: bool = True,
        bodies: bool = True,
        all_verdicts: bool = False,
        page_size: int | None = None,
    ) -> Iterator[Page]:
        """Pages of selected measurements, oldest first, with their rows.

        ``observations`` False loads only the measurement and verdict rows. ``bodies`` False
        leaves HTTP bodies and certificate DER in the database (hashes only).
        ``all_verdicts`` True loads every verdict version instead of only the current one.
        ``page_size`` None = :data:`PAGE_SIZE`.
        """
        size = page_size or PAGE_SIZE
        extra, params = self._filters(sel, "started_at", "m")
        where = "(m.started_at, m.measurement_id) > (?, ?)" + (f" AND {extra}" if extra else "")
        last: tuple[str, str] = ("", "")
        while True:
            page = self._execute(
                f"SELECT m.* FROM measurements m WHERE {where} "
                "ORDER BY m.started_at, m.measurement_id LIMIT ?",
                [*last, *params, size],
            )
            if not page:
                return
            last = (page[-1]["started_at"], page[-1]["measurement_id"])
            yield self._fill(page, observations=observations, bodies=bodies,
                             all_verdicts=all_verdicts)

    def _fill(self, page: list[Row], *, observations: bool, bodies: bool,
              all_verdicts: bool) -> Page:
        ids = [r["measurement_id"] for r in page]
        marks = ",".join("?" * len(ids))
        out = Page(page)

        def load(table: str, columns: str = "*", order: str = "idx") -> None:
            grouped: dict[str, list[Row]] = {}
            for r in self._execute(
                f"SELECT {columns} FROM {table} WHERE measurement_id IN ({marks}) "
                f"ORDER BY measurement_id, {order}",
                ids,
            ):
                grouped.setdefault(r["measurement_id"], []).append(r)
            out.children[table] = grouped

        for table in OBSERVATION_TABLES if observations else ():
            if table == "http_requests" and not bodies:
                load(table, self._columns(table, without="body")
                     + ", body IS NOT NULL AS body_stored")
            else:
                load(table)
        if observations:
            cert_columns = "*" if bodies else self._columns("certificates", without="der")
            load("certificates", cert_columns, "tls_idx, position")
        current = "" if all_verdicts else " AND is_current = 1"
        for r in self._execute(
            f"SELECT * FROM verdicts WHERE measurement_id IN ({marks}){current} "
            "ORDER BY measurement_id, verdict_id",
            ids,
        ):
            out.verdicts.setdefault(r["measurement_id"], []).append(r)
        return out

    def records(self, sel: Selection, page_size: int | None = None) -> Iterator[Record]:
        """Every selected measurement rebuilt exactly, with its run and current verdict."""
        for page in self.pages(sel, page_size=page_size):
            for m in page.measurements:
                mid = m["measurement_id"]
                measurement = rows.measurement_from_rows(
                    m,
                    page.rows_of("dns_queries", mid),
                    page.rows_of("tcp_connects", mid),
                    page.rows_of("tls_handshakes", mid),
                    page.rows_of("certificates", mid),
                    page.rows_of("http_requests", mid),
                    page.rows_of("controls", mid),
                    page.rows_of("quic_handshakes", mid),
                )
                found = page.verdicts.get(mid)
                vrow = found[-1] if found else None
                yield Record(
                    measurement_id=mid,
                    run=self.run(m["run_id"]),
                    measurement=measurement,
                    verdict=None if vrow is None else rows.verdict_from_row(vrow),
                    verdict_row=vrow,
                )

    def import_rows(self, ids: Sequence[str]) -> dict[str, Row]:
        """The ``imports`` rows (provenance) of those of ``ids`` that were imported."""
        if "imports" not in self.tables or not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return {r["measurement_id"]: r for r in self._execute(
            f"SELECT * FROM imports WHERE measurement_id IN ({marks})", list(ids))}

    # --- health ---------------------------------------------------------------------------

    def health_rows(self, sel: Selection, batch: int = 5000) -> Iterator[list[Row]]:
        """Batches of selected health samples, oldest first (``at``, then insertion order).

        One sorted cursor (SQLite's sorter spills to disk), so memory stays at one batch.
        Empty for databases older than the ``health_samples`` table.
        """
        if "health_samples" not in self.tables:
            return
        extra, params = self._filters(sel, "at", "h")
        with reading(self.path):
            cursor = self.conn.execute(
                "SELECT h.* FROM health_samples h"
                + (f" WHERE {extra}" if extra else "")
                + " ORDER BY h.at, h.rowid",
                params,
            )
            names = [d[0] for d in cursor.description]
            while True:
                chunk = cursor.fetchmany(batch)
                if not chunk:
                    return
                yield [dict(zip(names, r, strict=True)) for r in chunk]
