"""The probe's upload queue: which stored measurements still have to reach the collector.

Rules for this module (issue 16, docs/collector.md):

* A measurement is queued by the database itself, in the transaction that stores it (the
  ``outbox_enqueue`` trigger of schema version 7), so nothing finished can be missed, whatever
  writes it; imported measurements (someone else's) are dequeued by another trigger.
* A batch is *claimed* before it is sent: its rows get a ``batch_id`` in one transaction, so a
  probe killed mid-upload resends the same batch under the same id (the collector answers a
  replay with the same acknowledgement) before it starts a new one.
* Rows are marked sent only after the collector acknowledged them, in one transaction
  (:meth:`Outbox.mark_sent`); a failed attempt only counts and notes the error. Together with
  the collector's de-duplication by measurement id: nothing lost, nothing stored twice.
* Reading what to send goes through :class:`probe.store.Store` (the scrubbed records exactly
  as stored): this module holds only the queue's SQL.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from probe.errors import StorageError
from probe.model import utcnow_iso
from probe.store.db import Store
from probe.store.readonly import one_line

_VARS = 900


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """What ``probe upload --status`` shows."""

    pending: int
    in_flight: int          # pending rows already claimed by a batch (resent first)
    sent: int
    refused: int            # refused for good by the collector (kept, never resent)
    oldest_pending: str | None
    last_sent: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Batch:
    """A claimed batch: its id and the measurement ids in it (queue order)."""

    batch_id: str
    measurement_ids: tuple[str, ...]


def new_batch_id() -> str:
    return f"b{secrets.token_hex(12)}"


class Outbox:
    """The queue of one probe database (wraps an open :class:`Store`)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @contextlib.contextmanager
    def _conn(self, action: str, write: bool) -> Iterator[sqlite3.Connection]:
        store = self.store
        with store._lock:  # noqa: SLF001 - the store's own package
            store._check_open()  # noqa: SLF001
            if write and store.readonly:
                raise StorageError(f"cannot {action}: database {store.path} is open read-only")
            conn = store.db.conn
            try:
                if write:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield conn
                        conn.execute("COMMIT")
                    except BaseException:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                        raise
                else:
                    yield conn
            except sqlite3.Error as e:
                raise StorageError(
                    f"cannot {action} in database {store.path}: {one_line(e)}") from e

    def status(self) -> OutboxStatus:
        with self._conn("read the upload queue", write=False) as conn:
            row = conn.execute(
                "SELECT sum(sent_at IS NULL AND refused IS NULL), "
                "sum(sent_at IS NULL AND refused IS NULL AND batch_id IS NOT NULL), "
                "sum(sent_at IS NOT NULL), sum(refused IS NOT NULL), "
                "min(CASE WHEN sent_at IS NULL AND refused IS NULL THEN queued_at END), "
                "max(sent_at) FROM outbox").fetchone()
            err = conn.execute(
                "SELECT last_error FROM outbox WHERE sent_at IS NULL AND last_error IS NOT NULL "
                "ORDER BY rowid DESC LIMIT 1").fetchone()
        return OutboxStatus(int(row[0] or 0), int(row[1] or 0), int(row[2] or 0),
                            int(row[3] or 0), row[4], row[5], err[0] if err else None)

    def claim(self, limit: int) -> Batch | None:
        """The next batch to send: an unacknowledged claimed batch first (resume after a
        crash), else up to ``limit`` unclaimed pending rows, claimed under a new batch id.
        None = nothing pending."""
        with self._conn("claim an upload batch", write=True) as conn:
            row = conn.execute(
                "SELECT batch_id FROM outbox WHERE sent_at IS NULL AND batch_id IS NOT NULL "
                "ORDER BY rowid LIMIT 1").fetchone()
            if row is not None:
                ids = [r[0] for r in conn.execute(
                    "SELECT measurement_id FROM outbox WHERE batch_id = ? AND sent_at IS NULL "
                    "ORDER BY rowid", (row[0],))]
                return Batch(row[0], tuple(ids))
            ids = [r[0] for r in conn.execute(
                "SELECT measurement_id FROM outbox WHERE sent_at IS NULL AND refused IS NULL "
                "ORDER BY rowid LIMIT ?", (int(limit),))]
            if not ids:
                return None
            batch_id = new_batch_id()
            self._update(conn, "UPDATE outbox SET batch_id = ? WHERE measurement_id IN ({})",
                         (batch_id,), ids)
            return Batch(batch_id, tuple(ids))

    def mark_sent(self, batch: Batch, acknowledged: Sequence[str],
                  refused: dict[str, str] | None = None) -> int:
        """Mark the acknowledged ids of ``batch`` sent and the ``refused`` ones (id → the
        collector's reason) refused, in one transaction; ids of the batch the collector
        neither acknowledged nor refused go back to the queue unclaimed. Returns rows marked
        sent."""
        now = utcnow_iso()
        mine = set(batch.measurement_ids)
        acked = set(acknowledged) & mine
        refused = {k: v for k, v in (refused or {}).items() if k in mine and k not in acked}
        rest = [m for m in batch.measurement_ids if m not in acked and m not in refused]
        with self._conn("mark uploaded measurements", write=True) as conn:
            n = self._update(
                conn, "UPDATE outbox SET sent_at = ?, last_error = NULL "
                "WHERE sent_at IS NULL AND measurement_id IN ({})", (now,), sorted(acked))
            conn.executemany("UPDATE outbox SET refused = ?, batch_id = NULL "
                             "WHERE measurement_id = ?",
                             [(reason[:300], mid) for mid, reason in refused.items()])
            self._update(conn, "UPDATE outbox SET batch_id = NULL WHERE measurement_id IN ({})",
                         (), rest)
        return n

    def note_failure(self, batch: Batch, error: str, *, release: bool = False) -> None:
        """Count a failed attempt and keep its error (one line). ``release``: the collector
        refused the batch for good, so its rows are unclaimed (they are not resent as this
        batch; they stay pending and visible in ``--status``)."""
        line = error.splitlines()[0][:300] if error else "error"
        with self._conn("note an upload failure", write=True) as conn:
            self._update(conn, "UPDATE outbox SET attempts = attempts + 1, last_error = ?"
                         + (", batch_id = NULL" if release else "")
                         + " WHERE measurement_id IN ({})", (line,), batch.measurement_ids)

    @staticmethod
    def _update(conn: sqlite3.Connection, sql: str, head: tuple[object, ...],
                ids: Sequence[str]) -> int:
        n = 0
        for i in range(0, len(ids), _VARS):
            part = list(ids[i:i + _VARS])
            cur = conn.execute(sql.format(",".join("?" * len(part))), (*head, *part))
            n += max(cur.rowcount, 0)
        return n

    def upload_context(self, ids: Sequence[str]) -> dict[str, tuple[dict[str, object],
                                                                     str | None]]:
        """For each of ``ids``: its run row (``settings`` parsed) and its current verdict's
        ``created_at`` (None = no verdict), what an upload sends beside the measurement."""
        out: dict[str, tuple[dict[str, object], str | None]] = {}
        runs: dict[str, dict[str, object]] = {}
        with self._conn("read measurements to upload", write=False) as conn:
            for i in range(0, len(ids), _VARS):
                part = list(ids[i:i + _VARS])
                found = conn.execute(
                    f"SELECT m.measurement_id, m.run_id, v.created_at FROM measurements m "
                    f"LEFT JOIN verdicts v ON v.measurement_id = m.measurement_id "
                    f"AND v.is_current = 1 WHERE m.measurement_id IN "
                    f"({','.join('?' * len(part))})", part).fetchall()
                for mid, run_id, created_at in found:
                    if run_id not in runs:
                        cur = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
                        names = [d[0] for d in cur.description]
                        run = dict(zip(names, cur.fetchone(), strict=True))
                        run["settings"] = json.loads(run.get("settings") or "{}")
                        runs[run_id] = run
                    out[mid] = (runs[run_id], created_at)
        return out
