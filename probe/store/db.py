"""The probe's SQLite database: open (with migrations), write runs/measurements/verdicts, read.

Rules for this module:

* Every write is one ``BEGIN IMMEDIATE`` transaction: a measurement, all its observations and
  its verdict land together or not at all, so a crash or a full disk loses at most the target
  being written and never leaves half a measurement behind.
* The volunteer's own addresses never reach the file: every write method passes what it writes
  through the store's :class:`~probe.store.privacy.Scrubber` (the host's interface addresses,
  the ``own_addresses`` given to :meth:`Store.open`, and the public address learnt from control
  answers' ``client_address``, which is itself dropped). A library caller cannot skip it.
* Every ``sqlite3`` (or OS) error becomes :class:`~probe.errors.StorageError` with a one-line
  message naming the database path; callers never see ``sqlite3`` exceptions.
* :meth:`Store.open` creates and migrates; :meth:`Store.open_readonly` only reads (the
  checked ``mode=ro`` opener of :mod:`probe.store.readonly`) and refuses every write.
* One connection per Store, usable from any thread (the runner writes from a worker thread to
  keep SQLite off the event loop); a lock serialises access.
* Ids are globally unique text so databases from many volunteers merge without clashes:
  ``run_id`` = ``YYYYMMDDTHHMMSSZ-<8 hex>`` (sorts by start time), ``measurement_id`` =
  ``YYYYMMDDTHHMMSSZ-<16 hex>`` from the measurement's own start.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import platformdirs
import sqlite_utils

from probe import __version__
from probe.errors import StorageError
from probe.model import (
    HealthSample,
    HealthScope,
    Measurement,
    Provenance,
    TraceObservation,
    Verdict,
    utcnow_iso,
)
from probe.store import rows, schema
from probe.store.privacy import Scrubber
from probe.store.readonly import BUSY_TIMEOUT_S, connect_readonly, is_file, on_readonly_media
from probe.store.readonly import one_line as _one_line

#: Run statuses (the ``runs.status`` CHECK constraint).
RUN_STATUSES = ("running", "completed", "interrupted")
#: Measurements loaded per query batch by :meth:`Store.iter_measurements`.
_PAGE = 200


def default_db_path() -> Path:
    """``$PROBE_DB`` if set, else ``<user data dir>/probe.db`` (e.g. ~/.local/share/probe)."""
    env = os.environ.get("PROBE_DB")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("probe")) / "probe.db"


def _compact_time(iso: str | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ`` for an ISO 8601 instant (now when missing or unparsable)."""
    when = dt.datetime.now(dt.UTC)
    if iso:
        with contextlib.suppress(ValueError):
            parsed = dt.datetime.fromisoformat(iso)
            when = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _later(seconds: float) -> str:
    """The instant ``seconds`` from now, as stored (ISO 8601 UTC, microseconds, ``Z``)."""
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_run_id() -> str:
    """A fresh run id: UTC start second plus 32 random bits."""
    return f"{_compact_time()}-{secrets.token_hex(4)}"


def new_measurement_id(started_at: str | None = None) -> str:
    """A fresh measurement id: the measurement's start second plus 64 random bits."""
    return f"{_compact_time(started_at)}-{secrets.token_hex(8)}"


def import_measurement_id(started_at: str, dedup_key: str) -> str:
    """The id of an imported measurement: its start second plus 64 bits of a hash of its
    ``dedup_key`` — deterministic, so the same measurement imported anywhere (any worker
    count, any database) gets the same id, and still unique per measurement."""
    digest = hashlib.sha256(dedup_key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{_compact_time(started_at)}-{digest}"


#: Most ``?`` placeholders in one statement (SQLite's historical default limit is 999).
_VARS = 900


class Store:
    """A probe database. Create with :meth:`Store.open`; close with :meth:`close` (or ``with``)."""

    def __init__(self, db: sqlite_utils.Database, path: Path, *,
                 own_addresses: Iterable[str] = (), readonly: bool = False) -> None:
        self.db = db  # the sqlite-utils handle, for read-only queries by report code
        self.path = path
        self.readonly = readonly
        self._own = tuple(own_addresses)
        self._scrubber: Scrubber | None = None  # built at the first write
        self._leases: dict[str, tuple[str, float]] = {}  # run_id -> (owner token, seconds)
        self._lock = threading.RLock()
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], own_addresses: Iterable[str] = (), *,
             create: bool = True) -> Store:
        """Open (creating it and its parent directories if needed) and migrate a database.

        ``own_addresses``: addresses of the volunteer to scrub from everything written, besides
        this host's interface addresses and those learnt from control answers. ``create``
        False: the database must exist (commands that change an existing database, such as
        ``probe reanalyze``: a mistyped path is an error, not a new empty file).
        Raises StorageError when the file cannot be created or read, is not a probe database,
        or was written by a newer probe; the file is left untouched in those cases.
        """
        p = Path(path).expanduser()
        if not create and not is_file(p):
            raise StorageError(f"cannot open database {p}: no such file")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create directory for database {p}: {_one_line(e)}") from e
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(str(p), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            db = sqlite_utils.Database(conn, execute_plugins=False)
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            db.execute("PRAGMA foreign_keys = ON")
            # Refuse foreign and newer databases before changing anything in the file.
            schema.check_supported(schema.current_version(db), schema.MIGRATIONS)
            db.enable_wal()
            db.execute("PRAGMA synchronous = NORMAL")
            schema.migrate(db)
        except StorageError as e:
            if conn is not None:
                conn.close()
            raise StorageError(f"cannot open database {p}: {e}") from e
        except (sqlite3.Error, OSError) as e:
            if conn is not None:
                conn.close()
            raise StorageError(f"cannot open database {p}: {_one_line(e)}") from e
        return cls(db, p, own_addresses=own_addresses)

    @classmethod
    def open_readonly(cls, path: str | os.PathLike[str]) -> Store:
        """Open an existing probe database to read it only (``mode=ro``, nothing migrated);
        every write method raises StorageError. StorageError when the file is missing, not a
        probe database or newer than this probe."""
        p = Path(path).expanduser()
        conn = connect_readonly(p)
        return cls(sqlite_utils.Database(conn, execute_plugins=False), p, readonly=True)

    @classmethod
    def open_existing(cls, path: str | os.PathLike[str]) -> Store:
        """Open an existing probe database to read it (``probe results``): never creates a
        file; read-only (:meth:`open_readonly`) when it has the current schema or sits on
        read-only media, else migrated first (:meth:`open` with ``create=False``), as an older
        probe's file must be before today's queries can read it. StorageError when missing,
        not a probe database or newer than this probe."""
        store = cls.open_readonly(path)
        with store._read() as db:
            current = schema.current_version(db) >= schema.SCHEMA_VERSION
        if current or on_readonly_media(store.path):
            return store
        store.close()
        return cls.open(path, create=False)

    @property
    def scrubber(self) -> Scrubber:
        """What every write passes through: this host's addresses, the ``own_addresses``
        given to :meth:`open` and those learnt from control answers."""
        with self._lock:
            if self._scrubber is None:
                self._scrubber = Scrubber.for_this_host(self._own)
            return self._scrubber

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                with contextlib.suppress(sqlite3.Error):
                    self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # --- plumbing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sqlite_utils.Database]:
        """One write transaction; any failure rolls back and becomes StorageError."""
        with self._lock:
            self._check_open()
            if self.readonly:
                raise StorageError(f"cannot {action}: database {self.path} is open read-only")
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                    self.db.commit()
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self.db.rollback()
                    raise
            except StorageError:
                raise
            except (sqlite3.Error, UnicodeError) as e:
                raise StorageError(
                    f"cannot {action} in database {self.path}: {_one_line(e)}"
                ) from e

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite_utils.Database]:
        with self._lock:
            self._check_open()
            try:
                yield self.db
            except sqlite3.Error as e:
                raise StorageError(f"cannot read database {self.path}: {_one_line(e)}") from e

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"database {self.path} is closed")

    def _resolve_run(self, db: sqlite_utils.Database, run: str) -> str:
        """A full run id from ``latest``, a full id or a unique prefix; else StorageError."""
        if run == "latest":
            row = next(
                db.query("SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1"),
                None,
            )
            if row is None:
                raise StorageError(f"no runs recorded in {self.path} yet")
            return str(row["run_id"])
        if next(db.query("SELECT 1 FROM runs WHERE run_id = ?", [run]), None):
            return run
        matches = [
            r["run_id"]
            for r in db.query(
                "SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY run_id LIMIT 6",
                [len(run), run],
            )
        ]
        if not run or not matches:
            raise StorageError(f"no run {run!r} in {self.path}")
        if len(matches) > 1:
            shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise StorageError(f"run id prefix {run!r} is ambiguous in {self.path}: {shown}")
        return str(matches[0])

    # --- runs -----------------------------------------------------------------------------

    def start_run(
        self, settings: dict[str, Any], total: int, probe_version: str | None = None
    ) -> str:
        """Record a new run in status ``running``; returns its run id.

        ``settings`` must be JSON-serialisable (anything else is stored as its ``str``).
        ``probe_version`` defaults to the installed package's version.
        """
        version = __version__ if probe_version is None else probe_version
        run_id = new_run_id()
        now = utcnow_iso()
        with self._write("start a run") as db:
            settings = self.scrubber.value(dict(settings))
            db.table("runs").insert(rows.run_row(run_id, now, version, settings, total))
        return run_id

    def set_run_network(
        self,
        run_id: str,
        *,
        probe_asn: int | None = None,
        probe_cc: str | None = None,
        network_name: str | None = None,
    ) -> None:
        """Record which network a run measured from (never the probe's own IP address)."""
        with self._write("update a run") as db:
            run_id = self._resolve_run(db, run_id)
            db.execute(
                "UPDATE runs SET probe_asn = ?, probe_cc = ?, network_name = ? WHERE run_id = ?",
                [probe_asn, self.scrubber.value(probe_cc), self.scrubber.value(network_name),
                 run_id],
            )

    def finish_run(self, run_id: str, status: str) -> None:
        """Mark a run ``completed`` or ``interrupted`` and stamp ``finished_at``; a lease this
        store holds on it is released (StorageError when it was lost: the run is someone
        else's now and is left alone)."""
        if status not in ("completed", "interrupted"):
            raise ValueError(f"bad final run status {status!r}")
        now = utcnow_iso()
        with self._write("finish a run") as db:
            run_id = self._resolve_run(db, run_id)
            self._check_lease(db, run_id)
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, last_seen_at = ? WHERE run_id = ?",
                [status, now, now, run_id],
            )
            if run_id in self._leases:
                db.execute("DELETE FROM run_leases WHERE run_id = ? AND owner = ?",
                           [run_id, self._leases[run_id][0]])
        self._leases.pop(run_id, None)

    def touch_run(self, run_id: str) -> None:
        """Heartbeat: the run's process is alive (see :meth:`mark_stale_runs_interrupted`).

        When this store holds the run's lease it is renewed, and a run marked interrupted
        meanwhile (its owner was stopped for a while) is ``running`` again; a lost lease →
        StorageError (another process took the run over: this one must stop)."""
        now = utcnow_iso()
        with self._write("update a run") as db:
            self._check_lease(db, run_id)
            db.execute("UPDATE runs SET last_seen_at = ? WHERE run_id = ?", [now, run_id])
            if run_id in self._leases:
                token, seconds = self._leases[run_id]
                db.execute("UPDATE run_leases SET expires_at = ? WHERE run_id = ? AND owner = ?",
                           [_later(seconds), run_id, token])
                db.execute("UPDATE runs SET status = 'running', finished_at = NULL "
                           "WHERE run_id = ? AND status = 'interrupted'", [run_id])

    # --- run ownership (leases; the decisions live in probe.run.lease) --------------------

    def run_claim_state(self, run: str) -> dict[str, Any]:
        """What a resumer needs to judge run ``run`` (``latest``, an id or a unique prefix):
        ``run_id``, ``status``, ``last_seen_at`` and ``lease`` (the ``run_leases`` row as a
        dict; None = no lease)."""
        with self._read() as db:
            run_id = self._resolve_run(db, run)
            row = next(db.query("SELECT run_id, status, last_seen_at FROM runs WHERE run_id = ?",
                                [run_id]))
            row["lease"] = next(db.query("SELECT * FROM run_leases WHERE run_id = ?",
                                         [run_id]), None)
        return row

    def claim_run(self, run_id: str, owner: Mapping[str, Any], expected: str | None,
                  seconds: float) -> bool:
        """Make ``owner`` (``owner`` token, ``pid``, ``host``, ``boot_id``) the owner of
        ``run_id`` for ``seconds`` (renewed by :meth:`touch_run`), as a compare-and-swap in
        one transaction: only when the current lease's token is ``expected`` (None = no
        lease) and the run is not completed. The run becomes ``running``. False when another
        process changed the lease first; from then on every write of this store to the run
        checks that it still owns it."""
        now = utcnow_iso()
        with self._write("claim a run") as db:
            current = next(db.query("SELECT owner FROM run_leases WHERE run_id = ?",
                                    [run_id]), None)
            status = next(db.query("SELECT status FROM runs WHERE run_id = ?", [run_id]), None)
            if status is None:
                raise StorageError(f"no run {run_id!r} in {self.path}")
            if (current["owner"] if current else None) != expected or (
                    status["status"] == "completed"):
                return False
            db.execute("DELETE FROM run_leases WHERE run_id = ?", [run_id])
            db.table("run_leases").insert(rows.lease_row(
                run_id, str(owner["owner"]), int(owner["pid"]), str(owner["host"]),
                str(owner["boot_id"]), now, _later(seconds)))
            db.execute("UPDATE runs SET status = 'running', finished_at = NULL, "
                       "last_seen_at = ? WHERE run_id = ?", [now, run_id])
        self._leases[run_id] = (str(owner["owner"]), seconds)
        return True

    def _check_lease(self, db: sqlite_utils.Database, run_id: str) -> None:
        """Inside a write: StorageError when this store claimed ``run_id`` and has lost it."""
        held = self._leases.get(run_id)
        if held is None:
            return
        row = next(db.query("SELECT owner FROM run_leases WHERE run_id = ?", [run_id]), None)
        if row is None or row["owner"] != held[0]:
            raise StorageError(f"run {run_id} was taken over by another probe process "
                               "(probe run --resume) while this one was stopped; this one "
                               "stops without writing more")

    def resume_run(self, run_id: str) -> str:
        """Set an interrupted run back to ``running`` so missing targets can be added to it.

        Returns the full run id. A completed run, or one another process is still running,
        cannot be resumed (StorageError).
        """
        with self._write("resume a run") as db:
            run_id = self._resolve_run(db, run_id)
            row = next(db.query("SELECT status FROM runs WHERE run_id = ?", [run_id]))
            if row["status"] != "interrupted":
                raise StorageError(f"run {run_id} is {row['status']}; only an interrupted run "
                                   "can be resumed")
            db.execute("UPDATE runs SET status = 'running', finished_at = NULL, "
                       "last_seen_at = ? WHERE run_id = ?", [utcnow_iso(), run_id])
        return run_id

    def mark_stale_runs_interrupted(self, idle_for: float = 0.0) -> list[str]:
        """Mark runs left ``running`` (by a crash or power cut) as ``interrupted``.

        Only runs whose last activity is at least ``idle_for`` seconds old are touched, so a
        caller that shares the database with a live probe can pass e.g. 600 to spare it (a
        live run that gets marked anyway is set right by its own :meth:`finish_run`).
        ``finished_at`` becomes the run's last activity. Returns the run ids marked.
        """
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=idle_for)
        cutoff_iso = cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self._write("mark stale runs") as db:
            stale = [  # the status only: a stopped owner keeps its lease (probe.run.lease)
                r["run_id"]
                for r in db.query(
                    "SELECT run_id FROM runs WHERE status = 'running' AND last_seen_at <= ? "
                    "ORDER BY run_id",
                    [cutoff_iso],
                )
            ]
            for run_id in stale:
                db.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = last_seen_at "
                    "WHERE run_id = ?",
                    [run_id],
                )
                # a lapsed lease of a crashed owner is dropped (nothing of it stays stored)
                db.execute("DELETE FROM run_leases WHERE run_id = ? AND expires_at <= ?",
                           [run_id, utcnow_iso()])
        return stale

    def latest_run_id(self) -> str | None:
        """The most recently started run, None when there are none."""
        with self._read() as db:
            row = next(
                db.query("SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1"),
                None,
            )
        return None if row is None else str(row["run_id"])

    def run_ids(self) -> list[str]:
        """Every run id, oldest first."""
        with self._read() as db:
            return [r["run_id"] for r in db.query("SELECT run_id FROM runs ORDER BY run_id")]

    def get_run(self, run_id: str = "latest") -> dict[str, Any]:
        """One run's row (``settings`` parsed) plus ``measured``: how many targets are stored.

        ``run_id`` may be ``latest`` or a unique prefix; unknown → StorageError.
        """
        with self._read() as db:
            run_id = self._resolve_run(db, run_id)
            row = next(
                db.query(
                    "SELECT runs.*, (SELECT count(*) FROM measurements m "
                    "WHERE m.run_id = runs.run_id) AS measured FROM runs WHERE run_id = ?",
                    [run_id],
                )
            )
        row["settings"] = rows.from_json(row["settings"], {})
        return row

    # --- measurements and verdicts --------------------------------------------------------

    def save_measurement(self, run_id: str, m: Measurement, verdict: Verdict | None) -> str:
        """Write one measurement, every observation and (if given) its verdict atomically.

        The volunteer's addresses are scrubbed first: the public address a control helper
        reports (``client_address``) is learnt, dropped from the answer and scrubbed from this
        and every later write. Returns the new measurement id. Unknown ``run_id`` →
        StorageError.
        """
        mid = new_measurement_id(m.started_at)
        with self._write("save a measurement") as db:
            self._insert_measurement(db, mid, run_id, m, verdict)
        return mid

    def save_import(self, run_id: str, m: Measurement, verdict: Verdict | None,
                    provenance: Provenance) -> str | None:
        """Write one imported measurement (someone else's) with its provenance, atomically,
        like :meth:`save_measurement`. Idempotent: a measurement whose ``dedup_key`` is already
        stored is not written again and None is returned; else the new measurement id."""
        mid = new_measurement_id(m.started_at)
        with self._write("save an imported measurement") as db:
            if next(db.query("SELECT 1 FROM imports WHERE dedup_key = ?",
                             [provenance.dedup_key]), None) is not None:
                return None
            self._insert_measurement(db, mid, run_id, m, verdict)
            db.table("imports").insert(rows.import_row(mid, provenance, utcnow_iso()))
        return mid

    def ensure_run(self, run_id: str, started_at: str, settings: dict[str, Any], *,
                   probe_asn: int | None = None, probe_cc: str | None = None,
                   network_name: str | None = None) -> bool:
        """Record a finished run with a caller-chosen id unless it exists (imports: one run
        per source report, so re-imports land in the same run). True = created."""
        with self._write("record an imported run") as db:
            if next(db.query("SELECT 1 FROM runs WHERE run_id = ?", [run_id]), None):
                return False
            settings = self.scrubber.value(dict(settings))
            db.table("runs").insert(rows.run_row(
                run_id, started_at, __version__, settings, 0, status="completed",
                finished_at=started_at, probe_asn=probe_asn,
                probe_cc=self.scrubber.value(probe_cc),
                network_name=self.scrubber.value(network_name)))
        return True

    def count_run(self, run_id: str) -> None:
        """Set a run's ``targets_total`` to the measurements it holds (imported runs grow)."""
        with self._write("update a run") as db:
            db.execute("UPDATE runs SET targets_total = (SELECT COUNT(*) FROM measurements "
                       "WHERE run_id = ?) WHERE run_id = ?", [run_id, run_id])

    def provenances(self, run_id: str) -> dict[str, Provenance]:
        """The provenance of every imported measurement of a run, by measurement id."""
        with self._read() as db:
            found = list(db.query(
                "SELECT i.* FROM imports i JOIN measurements m USING (measurement_id) "
                "WHERE m.run_id = ?", [run_id]))
        return {r["measurement_id"]: rows.import_from_row(r) for r in found}

    def provenance(self, measurement_id: str) -> Provenance | None:
        """The provenance of an imported measurement; None = measured by this probe."""
        with self._read() as db:
            row = next(db.query("SELECT * FROM imports WHERE measurement_id = ?",
                                [measurement_id]), None)
        return None if row is None else rows.import_from_row(row)

    def _insert_measurement(self, db: sqlite_utils.Database, mid: str, run_id: str,
                            m: Measurement, verdict: Verdict | None) -> None:
        m = self.scrubber.measurement(m)
        verdict = None if verdict is None else self.scrubber.verdict(verdict)
        if next(db.query("SELECT 1 FROM runs WHERE run_id = ?", [run_id]), None) is None:
            raise StorageError(f"no run {run_id!r} in {self.path}")
        self._check_lease(db, run_id)
        db.table("measurements").insert(rows.measurement_row(mid, run_id, m))
        for table, records in (
            ("dns_queries", rows.dns_rows(mid, m)),
            ("tcp_connects", rows.tcp_rows(mid, m)),
            ("tls_handshakes", rows.tls_rows(mid, m)),
            ("certificates", rows.certificate_rows(mid, m)),
            ("http_requests", rows.http_rows(mid, m)),
            ("controls", rows.control_rows(mid, m)),
            ("quic_handshakes", rows.quic_rows(mid, m)),
        ):
            if records:
                db.table(table).insert_all(records)
        if verdict is not None:
            db.table("verdicts").insert(rows.verdict_row(mid, verdict, utcnow_iso()))
        db.execute(
            "UPDATE runs SET last_seen_at = ? WHERE run_id = ?", [utcnow_iso(), run_id]
        )

    def save_health(self, run_id: str, samples: Iterable[HealthSample]) -> None:
        """Store one round (or more) of canary samples for a run, atomically."""
        samples = list(samples)
        if not samples:
            return
        with self._write("save health samples") as db:
            self._check_lease(db, run_id)
            records = [rows.health_row(run_id, s) for s in self.scrubber.health(samples)]
            db.table("health_samples").insert_all(records)

    def health_samples(self, run_id: str) -> list[HealthSample]:
        """Every canary sample of a run, oldest first."""
        with self._read() as db:
            run_id = self._resolve_run(db, run_id)
            return [
                HealthSample(at=r["at"], phase=r["phase"], scope=HealthScope(r["scope"]),
                             target=r["target"], elapsed=r["elapsed"], failure=r["failure"],
                             unexpected=r.get("unexpected"))
                for r in db.query(
                    "SELECT * FROM health_samples WHERE run_id = ? ORDER BY at, rowid", [run_id]
                )
            ]

    def save_verdict(self, measurement_id: str, verdict: Verdict) -> None:
        """Store a new current verdict for a measurement; earlier ones stay, not current."""
        with self._write("save a verdict") as db:
            verdict = self.scrubber.verdict(verdict)
            if (
                next(
                    db.query(
                        "SELECT 1 FROM measurements WHERE measurement_id = ?", [measurement_id]
                    ),
                    None,
                )
                is None
            ):
                raise StorageError(f"no measurement {measurement_id!r} in {self.path}")
            db.execute(
                "UPDATE verdicts SET is_current = 0 WHERE measurement_id = ? AND is_current = 1",
                [measurement_id],
            )
            db.table("verdicts").insert(rows.verdict_row(measurement_id, verdict, utcnow_iso()))

    def current_verdict(self, measurement_id: str) -> Verdict | None:
        """The current verdict of a measurement, None when it has none."""
        with self._read() as db:
            row = next(
                db.query(
                    "SELECT * FROM verdicts WHERE measurement_id = ? AND is_current = 1",
                    [measurement_id],
                ),
                None,
            )
        return None if row is None else rows.verdict_from_row(row)

    def verdict_history(self, measurement_id: str) -> list[Verdict]:
        """Every verdict ever given to a measurement, oldest first."""
        with self._read() as db:
            return [
                rows.verdict_from_row(r)
                for r in db.query(
                    "SELECT * FROM verdicts WHERE measurement_id = ? ORDER BY verdict_id",
                    [measurement_id],
                )
            ]

    def iter_measurements(self, run_id: str | None = None) -> Iterator[tuple[str, Measurement]]:
        """Yield ``(measurement_id, Measurement)`` in insertion order, rebuilt exactly.

        ``run_id`` None = every run; otherwise ``latest``, a full id or a unique prefix.
        Loads in batches and holds no lock or cursor between yields, so the caller may write
        (e.g. :meth:`save_verdict` during re-analysis) while iterating.
        """
        if run_id is not None:
            with self._read() as db:
                run_id = self._resolve_run(db, run_id)
        last_rowid = 0
        while True:
            with self._read() as db:
                where = "rowid > ?" + (" AND run_id = ?" if run_id is not None else "")
                params: list[Any] = [last_rowid] + ([run_id] if run_id is not None else [])
                page = list(
                    db.query(
                        f"SELECT rowid AS _rowid, * FROM measurements WHERE {where} "
                        f"ORDER BY rowid LIMIT {_PAGE}",
                        params,
                    )
                )
                if not page:
                    return
                last_rowid = page[-1]["_rowid"]
                built = self._build(db, page)
            yield from built

    def _build(
        self, db: sqlite_utils.Database, page: list[dict[str, Any]]
    ) -> list[tuple[str, Measurement]]:
        ids = [r["measurement_id"] for r in page]
        marks = ",".join("?" * len(ids))

        def children(table: str, order: str = "idx") -> dict[str, list[dict[str, Any]]]:
            grouped: dict[str, list[dict[str, Any]]] = {}
            for r in db.query(
                f"SELECT * FROM {table} WHERE measurement_id IN ({marks}) "
                f"ORDER BY measurement_id, {order}",
                ids,
            ):
                grouped.setdefault(r["measurement_id"], []).append(r)
            return grouped

        dns = children("dns_queries")
        tcp = children("tcp_connects")
        tls = children("tls_handshakes")
        certs = children("certificates", "tls_idx, position")
        http = children("http_requests")
        controls = children("controls")
        quic = children("quic_handshakes")
        return [
            (
                mid,
                rows.measurement_from_rows(
                    r,
                    dns.get(mid, ()),
                    tcp.get(mid, ()),
                    tls.get(mid, ()),
                    certs.get(mid, ()),
                    http.get(mid, ()),
                    controls.get(mid, ()),
                    quic.get(mid, ()),
                ),
            )
            for mid, r in zip(ids, page, strict=True)
        ]

    def measured_urls(self, run_id: str) -> set[str]:
        """The URLs already stored for a run (what ``--resume`` can skip)."""
        with self._read() as db:
            run_id = self._resolve_run(db, run_id)
            query = db.query("SELECT url FROM measurements WHERE run_id = ?", [run_id])
            return {r["url"] for r in query}

    def results(self, run: str = "latest") -> list[dict[str, Any]]:
        """One dict per measured target of a run, with its current verdict (DESIGN contract).

        A target measured again in the same run (after a cool-down, when a censor's residual
        block may have spoilt its first attempt: docs/classification.md) is shown by its
        latest measurement; the earlier one stays stored, with its own verdict, as history.

        Keys: ``run_id, measurement_id, url, hostname, category, test_name, started_at,
        finished_at,
        verdict, method, confidence, evidence, analysis_version, details`` (verdict fields are
        None for a measurement stored without a verdict). ``run`` is ``latest``, a full run
        id or a unique prefix; an unknown run → StorageError.
        """
        with self._read() as db:
            run_id = self._resolve_run(db, run)
            out = list(
                db.query(
                    """
                    SELECT m.run_id, m.measurement_id, m.url, m.hostname, m.category,
                           m.test_name, m.started_at, m.finished_at, v.verdict, v.method,
                           v.confidence, v.evidence, v.analysis_version, v.details
                    FROM measurements m
                    LEFT JOIN verdicts v
                           ON v.measurement_id = m.measurement_id AND v.is_current = 1
                    WHERE m.run_id = ?
                      AND NOT EXISTS (
                          SELECT 1 FROM measurements later
                          WHERE later.url = m.url AND later.run_id = m.run_id
                            AND later.test_name = m.test_name AND later.rowid > m.rowid)
                    ORDER BY m.started_at, m.rowid
                    """,
                    [run_id],
                )
            )
        traces = self.trace_summaries(run_id)
        for row in out:
            row["details"] = rows.from_json(row["details"], {})
            if row["measurement_id"] in traces:
                row["traces"] = traces[row["measurement_id"]]
        return out

    # --- packet-level traces (issue 8) ---------------------------------------------------

    def save_trace(self, trace: TraceObservation, url: str,
                   measurement_id: str | None = None) -> int:
        """Store one trace, linked to a measurement (and its run) when given; returns its id.

        An unknown ``measurement_id`` → StorageError.
        """
        with self._write("save a trace") as db:
            trace = self.scrubber.value(trace)
            url = self.scrubber.value(url)
            run_id = None
            if measurement_id is not None:
                row = next(db.query("SELECT run_id FROM measurements WHERE measurement_id = ?",
                                    [measurement_id]), None)
                if row is None:
                    raise StorageError(f"no measurement {measurement_id!r} in {self.path}")
                run_id = row["run_id"]
            table = db.table("traces")
            table.insert(rows.trace_row(trace, url, measurement_id, run_id))
            return int(table.last_rowid or 0)

    def latest_measurement_of(self, url: str) -> str | None:
        """The most recent measurement of ``url`` (a normalised URL); None = never measured."""
        with self._read() as db:
            row = next(db.query(
                "SELECT measurement_id FROM measurements WHERE url = ? "
                "ORDER BY started_at DESC, rowid DESC LIMIT 1", [url]), None)
        return None if row is None else str(row["measurement_id"])

    def traces(self, measurement_id: str) -> list[TraceObservation]:
        """Every trace of a measurement, oldest first."""
        with self._read() as db:
            return [rows.trace_from_row(r) for r in db.query(
                "SELECT * FROM traces WHERE measurement_id = ? ORDER BY trace_id",
                [measurement_id])]

    def run_traces(self, run_id: str) -> list[tuple[int, TraceObservation]]:
        """Every trace of a run's measurements with its id, oldest first (for re-analysis)."""
        with self._read() as db:
            return [(int(r["trace_id"]), rows.trace_from_row(r)) for r in db.query(
                "SELECT * FROM traces WHERE run_id = ? ORDER BY trace_id", [run_id])]

    def update_trace_judgement(self, trace_id: int, trace: TraceObservation) -> None:
        """Replace what a trace's judgement wrote (result, signature, trigger TTL, hop, hop
        address, details); what was measured stays as it was."""
        row = rows.trace_row(trace, "", None, None)
        judged = ("result", "signature", "trigger_ttl", "hop", "hop_address", "details")
        with self._write("re-judge a trace") as db:
            db.table("traces").update(trace_id, {k: row[k] for k in judged})

    def trace_summaries(self, run: str = "latest") -> dict[str, list[dict[str, Any]]]:
        """The traces of a run's measurements, by measurement id, as the plain fields
        ``probe results`` shows (kind, result, signature, hop, hop_address, trigger_ttl,
        target, name, path, answers)."""
        with self._read() as db:
            run_id = self._resolve_run(db, run)
            found = db.query(
                "SELECT measurement_id, kind, result, signature, hop, hop_address, trigger_ttl, "
                "target, port, name, path, answers FROM traces WHERE run_id = ? "
                "ORDER BY trace_id", [run_id])
            out: dict[str, list[dict[str, Any]]] = {}
            for r in found:
                mid = r.pop("measurement_id")
                r["path"] = rows.from_json(r["path"], [])
                r["answers"] = rows.from_json(r["answers"], [])
                out.setdefault(mid, []).append(r)
        return out

    # --- bulk rows (synthetic data, imports) ------------------------------------------------

    def insert_rows(self, batches: Iterable[Mapping[str, Sequence[rows.Row]]], *,
                    durable: bool = True) -> dict[str, int]:
        """Bulk-insert ready-made rows (from :func:`probe.store.rows.new_row` and the other
        builders), all in one transaction; returns the rows written per table.

        Each batch maps table names to rows; tables are written in the batch's order (parents
        first). Text and bytes are scrubbed like every write (a batch without any of the
        volunteer's addresses is checked in one pass). ``durable`` False skips the fsyncs
        (synthetic data that can be made again). A failure rolls everything back.
        """
        counts: dict[str, int] = {}
        if not durable:
            self._pragma("synchronous = OFF")
        try:
            with self._write("insert rows") as db:
                for batch in batches:
                    for table, found in batch.items():
                        if not found:
                            continue
                        names = [c.name for c in schema.columns(table) if c.name in found[0]]
                        sql = (f"INSERT INTO {table} ({', '.join(names)}) "
                               f"VALUES ({', '.join(':' + n for n in names)})")
                        db.conn.executemany(sql, self.scrubber.rows(found))
                        counts[table] = counts.get(table, 0) + len(found)
        finally:
            if not durable:
                self._pragma("synchronous = NORMAL")
        return counts

    # --- bulk imports (probe import at archive scale) -------------------------------------

    @staticmethod
    def _insert_many(conn: sqlite3.Connection, table: str, found: Sequence[rows.Row],
                     conflict: str = "") -> None:
        """One ``executemany`` for rows of one table (every row with the first one's keys)."""
        names = [c.name for c in schema.columns(table) if c.name in found[0]]
        conn.executemany(
            f"INSERT {conflict} INTO {table} ({', '.join(names)}) "
            f"VALUES ({', '.join(':' + n for n in names)})", found)

    def max_measurement_rowid(self) -> int:
        """The newest measurement's rowid (0 = none): measurements stored later have larger
        ones, so an import can tell what was there before it."""
        with self._read() as db:
            row = db.execute("SELECT max(rowid) FROM measurements").fetchone()
        return int(row[0] or 0)

    def imported_keys(self, networks: Iterable[tuple[int, str | None]],
                      upto_rowid: int | None = None
                      ) -> Iterator[tuple[str, int, str | None, str]]:
        """``(measurement_id, probe_asn, probe_cc, started_at)`` of every imported measurement
        measured from one of ``networks`` (``(probe_asn, probe_cc)``), in storage order, up to
        measurement rowid ``upto_rowid`` when given. Light: no observations are loaded."""
        wanted = {(asn, cc) for asn, cc in networks}
        if not wanted:
            return
        asns = sorted({asn for asn, _ in wanted})
        last = 0
        while True:
            with self._read() as db:
                params: list[Any] = [last, *asns]
                limit = "" if upto_rowid is None else " AND m.rowid <= ?"
                if upto_rowid is not None:
                    params.append(upto_rowid)
                page = db.execute(
                    "SELECT m.rowid, m.measurement_id, i.probe_asn, i.probe_cc, m.started_at "
                    "FROM imports i JOIN measurements m USING (measurement_id) "
                    f"WHERE m.rowid > ? AND i.probe_asn IN ({','.join('?' * len(asns))})"
                    f"{limit} ORDER BY m.rowid LIMIT {_PAGE * 25}", params).fetchall()
            if not page:
                return
            last = page[-1][0]
            for _, mid, asn, cc, started in page:
                if (asn, cc) in wanted:
                    yield mid, asn, cc, started

    def measurements_by_id(self, ids: Iterable[str]) -> Iterator[tuple[str, Measurement]]:
        """``(measurement_id, Measurement)`` for the given ids, loaded in pages (unknown ids
        are left out), in the order given."""
        batch: list[str] = []

        def load(part: list[str]) -> list[tuple[str, Measurement]]:
            with self._read() as db:
                found = {r["measurement_id"]: r for r in db.query(
                    f"SELECT * FROM measurements WHERE measurement_id IN "
                    f"({','.join('?' * len(part))})", part)}
                page = [found[i] for i in part if i in found]
                return self._build(db, page) if page else []

        for mid in ids:
            batch.append(mid)
            if len(batch) >= _PAGE:
                yield from load(batch)
                batch = []
        if batch:
            yield from load(batch)

    def current_verdicts(self, ids: Sequence[str]) -> dict[str, Verdict]:
        """The current verdict of each of ``ids`` that has one."""
        out: dict[str, Verdict] = {}
        with self._read() as db:
            for i in range(0, len(ids), _VARS):
                part = list(ids[i:i + _VARS])
                for r in db.query(
                        f"SELECT * FROM verdicts WHERE is_current = 1 AND measurement_id IN "
                        f"({','.join('?' * len(part))})", part):
                    out[r["measurement_id"]] = rows.verdict_from_row(r)
        return out

    def save_verdicts(self, verdicts: Sequence[tuple[str, Verdict]]) -> None:
        """Store new current verdicts for many measurements in one transaction (earlier ones
        stay, not current), like :meth:`save_verdict` each."""
        if not verdicts:
            return
        now = utcnow_iso()
        with self._write("save verdicts") as db:
            conn = db.conn
            conn.executemany("UPDATE verdicts SET is_current = 0 WHERE measurement_id = ? "
                             "AND is_current = 1", [(mid,) for mid, _ in verdicts])
            found = [rows.verdict_row(mid, self.scrubber.verdict(v), now)
                     for mid, v in verdicts]
            self._insert_many(conn, "verdicts", found)

    def checkpoint(self) -> None:
        """Move everything from the write-ahead log into the database file and empty the log
        (a file that is then copied or moved alone holds every row)."""
        self._pragma("wal_checkpoint(TRUNCATE)")

    def _pragma(self, pragma: str) -> None:
        with self._lock:
            self._check_open()
            try:
                self.db.execute(f"PRAGMA {pragma}").fetchall()
            except sqlite3.Error as e:
                raise StorageError(f"cannot set {pragma} on database {self.path}: "
                                   f"{_one_line(e)}") from e

    def drop_table(self, table: str) -> None:
        """Drop one table of the schema (a database as an older probe wrote it: e.g. without
        ``health_samples``, for tests and synthetic data)."""
        if table not in schema.tables():
            raise StorageError(f"no table {table!r} in the probe schema")
        with self._write(f"drop table {table}") as db:
            db.execute(f"DROP TABLE IF EXISTS {table}")
