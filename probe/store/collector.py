"""The collector's database: enrolled probes, and received measurements stored as in a probe's
(the storage side of :mod:`probe.collector`; SQL lives in the store).

Rules (issue 16, docs/collector.md):

* The file is a probe database (created and migrated by :meth:`probe.store.Store.open`, WAL),
  so every read command (``report``, ``compare``, ``export``, ``reanalyze``) reads it as it is;
  the collector's own tables are ``collector_probes`` and ``collector_received`` (schema v7).
* One writer: one connection, used by one thread at a time (the server runs every call here on
  a single worker thread); every write is one ``BEGIN IMMEDIATE`` transaction.
* Ids are namespaced per probe: a probe's run ``R`` and measurement ``M`` are stored as
  ``R@P`` and ``M@P`` where ``P`` is the probe id its *token* authenticates, never one the
  upload names, so no probe can write over another's records. A measurement already received
  from that probe is a duplicate: acknowledged, not stored again (a replayed batch changes
  nothing).
* Tokens are random (``secrets``), shown once at enrolment; only their SHA-256 is stored.
  Probe ids are random too (``p`` + 16 hex), derived from nothing personal.
* The peer address the server saw (unless loopback) is scrubbed from what is stored (defence
  in depth: the probe's database is scrubbed already) and is never stored or logged by
  default.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import ipaddress
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.errors import ProbeError, StorageError
from probe.model import Measurement, Verdict, utcnow_iso
from probe.store import rows
from probe.store.db import Store
from probe.store.privacy import Scrubber
from probe.store.readonly import BUSY_TIMEOUT_MS, one_line

_VARS = 900
#: Tables written per received measurement, parents first.
_TABLES = ("measurements", "dns_queries", "tcp_connects", "tls_handshakes", "certificates",
           "http_requests", "controls", "verdicts", "collector_received")


class AuthError(ProbeError):
    """A token that is unknown (``status`` 401), revoked or expired (403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Received:
    """One checked record of an upload (:func:`probe.collector.validation.check_record`):
    ids as the probe knows them, its run row (``probe.jsonl/1`` run fields), the records."""

    measurement_id: str
    run: dict[str, Any]
    measurement: Measurement
    verdict: Verdict | None
    verdict_created_at: str | None


@dataclass(frozen=True, slots=True)
class Enrolment:
    probe_id: str
    token: str
    expires_at: str | None


@dataclass(frozen=True, slots=True)
class Stored:
    """What one batch did: ids as the probe knows them."""

    accepted: tuple[str, ...]
    duplicates: tuple[str, ...]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def namespaced(original_id: str, probe_id: str) -> str:
    return f"{original_id}@{probe_id}"


class CollectorStore:
    """The collector's database file. Not thread-safe by design: one writer thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        Store.open(self.path).close()  # create / migrate to the current schema
        try:
            self.conn = sqlite3.connect(str(self.path), isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as e:
            raise StorageError(f"cannot open collector database {self.path}: "
                               f"{one_line(e)}") from e
        self.conn.row_factory = sqlite3.Row

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __enter__(self) -> CollectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StorageError(f"cannot {action} in {self.path}: {one_line(e)}") from e

    # --- enrolment ------------------------------------------------------------------------

    def enroll(self, label: str | None = None, ttl_days: float | None = None) -> Enrolment:
        """A new probe id and its token (shown once; only its hash is kept)."""
        probe_id = f"p{secrets.token_hex(8)}"
        token = secrets.token_urlsafe(32)
        now = dt.datetime.now(dt.UTC)
        expires = None if ttl_days is None else (now + dt.timedelta(days=ttl_days)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ")
        with self._write("enrol a probe") as conn:
            conn.execute("INSERT INTO collector_probes (probe_id, token_sha256, label, "
                         "enrolled_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                         (probe_id, token_hash(token), label, utcnow_iso(), expires))
        return Enrolment(probe_id, token, expires)

    def revoke(self, probe_id: str) -> bool:
        """Revoke a probe's token; False = no such probe (or already revoked)."""
        with self._write("revoke a probe") as conn:
            cur = conn.execute("UPDATE collector_probes SET revoked_at = ? WHERE probe_id = ? "
                               "AND revoked_at IS NULL", (utcnow_iso(), probe_id))
        return cur.rowcount > 0

    def probes(self) -> list[dict[str, Any]]:
        """Every enrolled probe with the measurements received from it."""
        return [dict(r) for r in self.conn.execute(
            "SELECT p.probe_id, p.label, p.enrolled_at, p.expires_at, p.revoked_at, "
            "(SELECT count(*) FROM collector_received r WHERE r.probe_id = p.probe_id) "
            "AS received FROM collector_probes p ORDER BY p.enrolled_at")]

    def authenticate(self, token: str, now: dt.datetime | None = None) -> str:
        """The probe id of a valid token; AuthError otherwise."""
        digest = token_hash(token)
        row = self.conn.execute("SELECT probe_id, token_sha256, expires_at, revoked_at FROM "
                                "collector_probes WHERE token_sha256 = ?", (digest,)).fetchone()
        if row is None or not hmac.compare_digest(row["token_sha256"], digest):
            raise AuthError("unknown token", 401)
        if row["revoked_at"] is not None:
            raise AuthError("token revoked", 403)
        if row["expires_at"] is not None:
            now = now or dt.datetime.now(dt.UTC)
            if dt.datetime.fromisoformat(row["expires_at"].replace("Z", "+00:00")) <= now:
                raise AuthError("token expired", 403)
        return str(row["probe_id"])

    # --- measurements ---------------------------------------------------------------------

    def store_batch(self, probe_id: str, batch_id: str, records: Sequence[Received],
                    peer: str | None = None) -> Stored:
        """Store the new records of one batch in one transaction; see the module docstring."""
        scrub = Scrubber([peer] if peer and not _loopback(peer) else [])
        now = utcnow_iso()
        accepted: list[str] = []
        duplicates: list[str] = []
        with self._write("store an upload") as conn:
            wanted = {namespaced(r.measurement_id, probe_id): r for r in records}
            have = self._existing(conn, list(wanted))
            by_table: dict[str, list[rows.Row]] = {t: [] for t in _TABLES}
            runs: dict[str, rows.Row] = {}
            for nid, r in wanted.items():
                if nid in have:
                    duplicates.append(r.measurement_id)
                    continue
                have.add(nid)
                accepted.append(r.measurement_id)
                run = r.run
                nrun = namespaced(run["run_id"], probe_id)
                runs[nrun] = rows.run_row(
                    nrun, run["started_at"], run["probe_version"], run.get("settings") or {},
                    run["targets_total"], status=run["status"],
                    finished_at=run.get("finished_at"), last_seen_at=now,
                    probe_asn=run.get("probe_asn"), probe_cc=run.get("probe_cc"),
                    network_name=run.get("network_name"))
                m = scrub.measurement(r.measurement)
                by_table["measurements"].append(rows.measurement_row(nid, nrun, m))
                by_table["dns_queries"] += rows.dns_rows(nid, m)
                by_table["tcp_connects"] += rows.tcp_rows(nid, m)
                by_table["tls_handshakes"] += rows.tls_rows(nid, m)
                by_table["certificates"] += rows.certificate_rows(nid, m)
                by_table["http_requests"] += rows.http_rows(nid, m)
                by_table["controls"] += rows.control_rows(nid, m)
                if r.verdict is not None:
                    by_table["verdicts"].append(rows.verdict_row(
                        nid, scrub.verdict(r.verdict), r.verdict_created_at or now))
                by_table["collector_received"].append(rows.new_row(
                    "collector_received", measurement_id=nid, probe_id=probe_id,
                    original_id=r.measurement_id, batch_id=batch_id, received_at=now))
            if runs:
                found = scrub.rows(list(runs.values()))
                _insert(conn, "runs", found,
                        " ON CONFLICT (run_id) DO UPDATE SET finished_at = excluded.finished_at,"
                        " status = excluded.status, targets_total = excluded.targets_total,"
                        " last_seen_at = excluded.last_seen_at")
            for table in _TABLES:
                if by_table[table]:
                    _insert(conn, table, by_table[table])
            # the schema's outbox trigger queued them: a collector does not upload further
            new = [namespaced(a, probe_id) for a in accepted]
            for i in range(0, len(new), _VARS):
                part = new[i:i + _VARS]
                conn.execute(f"DELETE FROM outbox WHERE measurement_id IN "
                             f"({','.join('?' * len(part))})", part)
        return Stored(tuple(accepted), tuple(duplicates))

    @staticmethod
    def _existing(conn: sqlite3.Connection, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(ids), _VARS):
            part = ids[i:i + _VARS]
            found.update(r[0] for r in conn.execute(
                f"SELECT measurement_id FROM measurements WHERE measurement_id IN "
                f"({','.join('?' * len(part))})", part))
        return found

    def counts(self) -> dict[str, int]:
        """Measurements received per probe id."""
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT probe_id, count(*) FROM collector_received GROUP BY probe_id")}


def _loopback(address: str) -> bool:
    """A peer on this machine identifies nobody (and loopback worlds' sites live there)."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _insert(conn: sqlite3.Connection, table: str, found: Sequence[rows.Row],
            tail: str = "") -> None:
    names = list(found[0])
    conn.executemany(
        f"INSERT INTO {table} ({', '.join(names)}) "
        f"VALUES ({', '.join(':' + n for n in names)}){tail}", found)
