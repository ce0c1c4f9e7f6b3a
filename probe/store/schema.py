"""The SQLite schema and its migrations: everything about the shape of a probe database.

Rules for this module:

* The schema is versioned by the ``schema_migrations`` table (one row per applied version).
  :data:`MIGRATIONS` is an ordered tuple; ``MIGRATIONS[i]`` takes a database from version ``i``
  to ``i + 1``. A released migration is never edited: change the schema by appending one.
* Tables are flat and readable with plain ``sqlite3`` by analysts: one row per observation,
  one column per record field. JSON (text) columns are used only for lists and free-form
  objects (DNS answers, header pairs, SANs, settings, control answers, verdict details).
* Booleans are ``INTEGER`` 0/1 (NULL where the record says ``None``); times are ISO 8601 UTC
  text; observation ``t0``/``t`` are seconds relative to the measurement's ``started_at``.
* ``idx`` columns keep the order of the record tuples so a measurement round-trips exactly.
* Tables are not ``STRICT``: SQLite older than 3.37 cannot open STRICT tables at all, and
  analysts must be able to open these files with whatever sqlite3 they have.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlite_utils

from probe.errors import StorageError
from probe.model import utcnow_iso

MIGRATIONS_TABLE = "schema_migrations"

_MIGRATIONS_DDL = f"""
CREATE TABLE {MIGRATIONS_TABLE} (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``apply`` runs inside the migration transaction."""

    version: int
    name: str
    apply: Callable[[sqlite_utils.Database], None]


# --- version 1: the initial schema ----------------------------------------------------------

_V1: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,            -- YYYYMMDDTHHMMSSZ-<8 hex>, sorts by start time
        started_at TEXT NOT NULL,
        finished_at TEXT,                   -- NULL = still running or crashed
        last_seen_at TEXT NOT NULL,         -- heartbeat: start, each saved measurement, finish
        probe_version TEXT NOT NULL,
        settings TEXT NOT NULL DEFAULT '{}',  -- JSON object
        status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'interrupted')),
        targets_total INTEGER NOT NULL,
        probe_asn INTEGER,                  -- NULL = unknown
        probe_cc TEXT,                      -- NULL = unknown
        network_name TEXT                   -- NULL = unknown
    )
    """,
    "CREATE INDEX runs_started_at ON runs (started_at)",
    """
    CREATE TABLE measurements (
        measurement_id TEXT PRIMARY KEY,    -- YYYYMMDDTHHMMSSZ-<16 hex>
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        url TEXT NOT NULL,
        hostname TEXT NOT NULL,
        scheme TEXT NOT NULL,
        port INTEGER NOT NULL,
        path TEXT NOT NULL,
        category TEXT,                      -- NULL = not given
        source TEXT,                        -- FILE:LINE, NULL = command line
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        extra TEXT NOT NULL DEFAULT '{}'    -- JSON object
    )
    """,
    "CREATE INDEX measurements_run_id ON measurements (run_id)",
    "CREATE INDEX measurements_started_at ON measurements (started_at)",
    "CREATE INDEX measurements_url ON measurements (url)",
    """
    CREATE TABLE dns_queries (
        measurement_id TEXT NOT NULL REFERENCES measurements (measurement_id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        tx_id INTEGER NOT NULL,
        hostname TEXT NOT NULL,
        query_type TEXT NOT NULL,
        engine TEXT NOT NULL,               -- system | udp | doh
        resolver TEXT NOT NULL,
        t0 REAL NOT NULL,
        t REAL NOT NULL,
        failure TEXT,                       -- NULL = success
        rcode TEXT,                         -- NULL = no DNS message seen
        answers TEXT NOT NULL DEFAULT '[]', -- JSON [{"rtype", "value", "ttl"}]
        response_index INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (measurement_id, idx)
    )
    """,
    """
    CREATE TABLE tcp_connects (
        measurement_id TEXT NOT NULL REFERENCES measurements (measurement_id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        tx_id INTEGER NOT NULL,
        ip TEXT NOT NULL,
        port INTEGER NOT NULL,
        t0 REAL NOT NULL,
        t REAL NOT NULL,
        failure TEXT,
        PRIMARY KEY (measurement_id, idx)
    )
    """,
    """
    CREATE TABLE tls_handshakes (
        measurement_id TEXT NOT NULL REFERENCES measurements (measurement_id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        tx_id INTEGER NOT NULL,
        ip TEXT NOT NULL,
        port INTEGER NOT NULL,
        server_name TEXT NOT NULL,
        t0 REAL NOT NULL,
        t REAL NOT NULL,
        failure TEXT,
        tls_version TEXT,
        cipher_suite TEXT,
        alpn TEXT,
        verified INTEGER,                   -- 0/1, NULL = not attempted
        verify_error TEXT,
        PRIMARY KEY (measurement_id, idx)
    )
    """,
    """
    CREATE TABLE certificates (
        measurement_id TEXT NOT NULL,
        tls_idx INTEGER NOT NULL,           -- tls_handshakes.idx of the handshake
        tx_id INTEGER NOT NULL,
        position INTEGER NOT NULL,          -- 0 = leaf
        der BLOB NOT NULL,
        sha256 TEXT NOT NULL,
        spki_sha256 TEXT NOT NULL,
        subject TEXT NOT NULL,
        issuer TEXT NOT NULL,
        not_before TEXT NOT NULL,
        not_after TEXT NOT NULL,
        san TEXT NOT NULL DEFAULT '[]',     -- JSON list of names
        PRIMARY KEY (measurement_id, tls_idx, position),
        FOREIGN KEY (measurement_id, tls_idx)
            REFERENCES tls_handshakes (measurement_id, idx) ON DELETE CASCADE
    )
    """,
    "CREATE INDEX certificates_sha256 ON certificates (sha256)",
    "CREATE INDEX certificates_spki_sha256 ON certificates (spki_sha256)",
    """
    CREATE TABLE http_requests (
        measurement_id TEXT NOT NULL REFERENCES measurements (measurement_id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        tx_id INTEGER NOT NULL,
        url TEXT NOT NULL,
        method TEXT NOT NULL,
        ip TEXT,
        port INTEGER NOT NULL,
        t0 REAL NOT NULL,
        t REAL NOT NULL,
        failure TEXT,
        redirect_index INTEGER NOT NULL DEFAULT 0,
        request_headers TEXT NOT NULL DEFAULT '[]',  -- JSON [[name, value], ...]
        status INTEGER,                     -- NULL = no response
        headers TEXT NOT NULL DEFAULT '[]', -- JSON [[name, value], ...], order and duplicates kept
        body BLOB,                          -- NULL = not stored or no response
        body_length INTEGER,
        body_sha256 TEXT,
        body_truncated INTEGER NOT NULL DEFAULT 0,
        title TEXT,
        location TEXT,                      -- NULL = not a redirect
        PRIMARY KEY (measurement_id, idx)
    )
    """,
    "CREATE INDEX http_requests_body_sha256 ON http_requests (body_sha256)",
    """
    CREATE TABLE controls (
        measurement_id TEXT NOT NULL REFERENCES measurements (measurement_id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        data TEXT NOT NULL,                 -- JSON object, as returned by the control client
        PRIMARY KEY (measurement_id, idx)
    )
    """,
    """
    CREATE TABLE verdicts (
        verdict_id INTEGER PRIMARY KEY AUTOINCREMENT,
        measurement_id TEXT NOT NULL REFERENCES measurements (measurement_id) ON DELETE CASCADE,
        verdict TEXT NOT NULL CHECK (verdict IN ('ok', 'blocked', 'intercepted', 'throttled',
                                                 'down', 'shutdown', 'inconclusive')),
        method TEXT,                        -- NULL = not applicable (ok)
        confidence REAL NOT NULL CHECK (confidence BETWEEN 0 AND 1),
        evidence TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}', -- JSON object
        analysis_version TEXT NOT NULL,
        created_at TEXT NOT NULL,
        is_current INTEGER NOT NULL DEFAULT 1 CHECK (is_current IN (0, 1))
    )
    """,
    "CREATE INDEX verdicts_measurement_current ON verdicts (measurement_id, is_current)",
    # At most one current verdict per measurement, enforced by the database itself.
    "CREATE UNIQUE INDEX verdicts_one_current ON verdicts (measurement_id) WHERE is_current = 1",
)


def _v1_initial(db: sqlite_utils.Database) -> None:
    for statement in _V1:
        db.execute(statement)


_V2 = (
    """
    CREATE TABLE health_samples (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        at TEXT NOT NULL,                   -- ISO 8601 UTC, when the canary probe started
        phase TEXT NOT NULL CHECK (phase IN ('before', 'during', 'after')),
        scope TEXT NOT NULL CHECK (scope IN ('gateway', 'resolver', 'domestic',
                                             'international', 'control')),
        target TEXT NOT NULL,               -- the canary: URL, host or IP
        elapsed REAL NOT NULL,
        failure TEXT                        -- NULL = the canary answered
    )
    """,
    "CREATE INDEX health_samples_run_at ON health_samples (run_id, at)",
)


def _v2_health(db: sqlite_utils.Database) -> None:
    for statement in _V2:
        db.execute(statement)


_V3 = (
    """
    CREATE TABLE traces (
        trace_id INTEGER PRIMARY KEY AUTOINCREMENT,
        -- the measurement it explains; NULL = a `probe trace` of a URL the database never measured
        measurement_id TEXT REFERENCES measurements (measurement_id) ON DELETE CASCADE,
        run_id TEXT REFERENCES runs (run_id),  -- the measurement's run; NULL likewise
        url TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('dns', 'tls', 'http', 'tcp')),
        target TEXT NOT NULL,               -- the address probed (dns: the silent address)
        port INTEGER NOT NULL,
        name TEXT,                          -- triggering SNI / Host / query name; NULL for tcp
        innocuous TEXT,                     -- the comparison name (tcp: another address)
        started_at TEXT NOT NULL,
        elapsed REAL NOT NULL,
        failure TEXT,                       -- NULL = the trace ran
        result TEXT,                        -- located | injected | not_injected | answering |
                                            -- not_blocked | not_located; NULL = failed
        signature TEXT,                     -- reset | drop | eof | blockpage | cert | unreachable
                                            -- | answer | injected; NULL = none seen
        trigger_ttl INTEGER,                -- first TTL showing it; NULL = never
        hop INTEGER,                        -- the censor's hop from the probe; NULL = not located
        hop_address TEXT,                   -- the router at that hop; NULL = unknown
        path TEXT NOT NULL DEFAULT '[]',    -- JSON [{"ttl", "address"}] time-exceeded sources
        probes TEXT NOT NULL DEFAULT '[]',  -- JSON [{"ttl", "variant", "outcome", "source",
                                            --         "reply_ttl", "note"}]
        answers TEXT NOT NULL DEFAULT '[]', -- JSON list of injected addresses (dns)
        details TEXT NOT NULL DEFAULT '{}'  -- JSON object
    )
    """,
    "CREATE INDEX traces_measurement_id ON traces (measurement_id)",
    "CREATE INDEX traces_run_id ON traces (run_id)",
)


def _v3_traces(db: sqlite_utils.Database) -> None:
    for statement in _V3:
        db.execute(statement)


def _v4_test_name(db: sqlite_utils.Database) -> None:
    # The kind of test that measured the input (docs/kinds.md); every row before this
    # migration was a web test.
    db.execute("ALTER TABLE measurements ADD COLUMN test_name TEXT NOT NULL "
               "DEFAULT 'web_connectivity'")


_V5 = (
    """
    CREATE TABLE imports (
        measurement_id TEXT PRIMARY KEY REFERENCES measurements (measurement_id) ON DELETE CASCADE,
        source TEXT NOT NULL,               -- who measured it: 'ooni'
        origin TEXT NOT NULL,               -- FILE:LINE it was read from ('-:LINE' = stdin)
        dedup_key TEXT NOT NULL UNIQUE,     -- measurement_uid, else sha256(report_id|input|start)
        report_id TEXT,                     -- NULL = not in the document
        measurement_uid TEXT,               -- NULL = not in the document (older data)
        software_name TEXT,
        software_version TEXT,
        test_name TEXT NOT NULL,            -- the source's own test name (web_connectivity…)
        test_version TEXT,
        probe_asn INTEGER,                  -- NULL = unknown (AS0)
        probe_cc TEXT,                      -- NULL = unknown (ZZ)
        probe_network_name TEXT,
        resolver_ip TEXT,
        resolver_asn INTEGER,
        ooni_blocking TEXT,                 -- JSON of test_keys.blocking (false, "dns", null…)
        ooni_accessible TEXT,               -- JSON of test_keys.accessible (true, false, null)
        ooni_flags INTEGER,                 -- test_keys.x_blocking_flags (0.5); NULL = absent
        missing TEXT NOT NULL DEFAULT '[]', -- JSON: evidence our own probe would have had
        imported_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX imports_report_id ON imports (report_id)",
    "CREATE INDEX imports_network ON imports (probe_asn, probe_cc)",
)


def _v5_imports(db: sqlite_utils.Database) -> None:
    # Other people's measurements (OONI's archive) stored beside our own, with their provenance
    # and the source's own verdict (issue 12): one row per imported measurement.
    for statement in _V5:
        db.execute(statement)


def _v6_http_progress(db: sqlite_utils.Database) -> None:
    # How far a response got (issue 12: a transfer that froze after N bytes is told from one
    # still trickling in at the deadline). NULL in rows written before: not recorded.
    db.execute("ALTER TABLE http_requests ADD COLUMN received_bytes INTEGER")
    db.execute("ALTER TABLE http_requests ADD COLUMN last_byte_t REAL")


_V7 = (
    """
    CREATE TABLE run_leases (
        run_id TEXT PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE,
        owner TEXT NOT NULL,                -- random token of the owning process's claim
        pid INTEGER NOT NULL,               -- the owner's process id on its machine
        host TEXT NOT NULL,                 -- hash of the owner's host name (never the name)
        boot_id TEXT NOT NULL,              -- the owner machine's boot id ('' = unknown)
        claimed_at TEXT NOT NULL,
        expires_at TEXT NOT NULL            -- renewed by the owner's heartbeat
    )
    """,
)


def _v7_run_leases(db: sqlite_utils.Database) -> None:
    # One owner per run (issue 13): a run being measured holds a lease, renewed by its writer;
    # `probe run --resume` takes it over only from a dead owner, in one transaction, so a
    # stopped (not dead) process and its resumer never both measure the run. Deleted when the
    # run finishes; never merged or exported.
    for statement in _V7:
        db.execute(statement)


_V8 = (
    # The probe's upload queue (issue 16): one row per measurement this probe made, queued in
    # the transaction that stores it (trigger), dequeued when it is imported (someone else's).
    # ``batch_id`` is set when the row is put in a batch (a resend after a crash reuses it);
    # ``sent_at`` only once the collector acknowledged the batch.
    """
    CREATE TABLE outbox (
        measurement_id TEXT PRIMARY KEY REFERENCES measurements (measurement_id)
            ON DELETE CASCADE,
        queued_at TEXT NOT NULL,
        batch_id TEXT,                      -- NULL = not yet in a batch
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,                    -- NULL = none
        refused TEXT,                       -- the collector's reason for refusing it for good
        sent_at TEXT                        -- NULL = pending (or refused)
    )
    """,
    "CREATE INDEX outbox_pending ON outbox (sent_at, batch_id)",
    """
    CREATE TRIGGER outbox_enqueue AFTER INSERT ON measurements
    BEGIN
        INSERT OR IGNORE INTO outbox (measurement_id, queued_at)
        VALUES (NEW.measurement_id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
    END
    """,
    """
    CREATE TRIGGER outbox_skip_imports AFTER INSERT ON imports
    BEGIN
        DELETE FROM outbox WHERE measurement_id = NEW.measurement_id;
    END
    """,
    # Measurements stored before this version are queued too (a volunteer enrolling later
    # uploads their history), imported ones excepted.
    """
    INSERT OR IGNORE INTO outbox (measurement_id, queued_at)
    SELECT measurement_id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM measurements
    WHERE measurement_id NOT IN (SELECT measurement_id FROM imports)
    """,
    # The collector's side (probe/collector/): enrolled probes (only a hash of each token is
    # kept) and the provenance of every received measurement. Empty in a probe's database.
    """
    CREATE TABLE collector_probes (
        probe_id TEXT PRIMARY KEY,          -- pseudonymous, random: p + 16 hex
        token_sha256 TEXT NOT NULL UNIQUE,
        label TEXT,                         -- the analyst's own note; NULL = none
        enrolled_at TEXT NOT NULL,
        expires_at TEXT,                    -- NULL = never
        revoked_at TEXT                     -- NULL = valid
    )
    """,
    """
    CREATE TABLE collector_received (
        measurement_id TEXT PRIMARY KEY REFERENCES measurements (measurement_id)
            ON DELETE CASCADE,              -- namespaced: <probe's id>@<probe_id>
        probe_id TEXT NOT NULL,
        original_id TEXT NOT NULL,          -- the id in the probe's own database
        batch_id TEXT NOT NULL,
        received_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX collector_received_probe ON collector_received (probe_id, batch_id)",
)


def _v8_outbox(db: sqlite_utils.Database) -> None:
    for statement in _V8:
        db.execute(statement)


_V9 = (
    """
    CREATE TABLE quic_handshakes (
        measurement_id TEXT NOT NULL REFERENCES measurements (measurement_id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        tx_id INTEGER NOT NULL,             -- shared with its HTTP/3 request, if any
        ip TEXT NOT NULL,
        port INTEGER NOT NULL,
        server_name TEXT NOT NULL,
        t0 REAL NOT NULL,
        t REAL NOT NULL,
        failure TEXT,
        quic_version TEXT,                  -- QUICv1, QUICv2 or the number in hex
        alpn TEXT,
        verified INTEGER,                   -- 0/1, NULL = not attempted
        verify_error TEXT,
        certificates TEXT NOT NULL DEFAULT '[]',  -- JSON list, leaf first: the certificates
                                            -- table's columns, der as hex
        PRIMARY KEY (measurement_id, idx)
    )
    """,
    # 'tcp' = HTTP/1.1 over the measured TCP (+TLS) connection, 'quic' = HTTP/3
    "ALTER TABLE http_requests ADD COLUMN transport TEXT NOT NULL DEFAULT 'tcp'",
)


def _v9_quic(db: sqlite_utils.Database) -> None:
    # QUIC and HTTP/3 (issue 15): one row per QUIC handshake, its chain inline (the
    # certificates table is keyed to tls_handshakes); HTTP/3 requests are http_requests rows
    # with transport 'quic', so every reader of that table that ignores the column still
    # sees one row per request.
    for statement in _V9:
        db.execute(statement)


_V10 = (
    "DROP TRIGGER IF EXISTS outbox_enqueue",
    # The same trigger as schema 8's, but it does not fire for an imported measurement (the
    # OONI importer marks every one with extra {"source": "ooni"}: probe.ingest.mapper), which
    # outbox_skip_imports would dequeue again as soon as its provenance row is inserted: an
    # insert and a delete of the outbox per imported measurement (~30 µs of the import's
    # ~900). outbox_skip_imports stays: it still dequeues an imported measurement without
    # that mark. A CASE, so an extra that is not JSON is queued rather than an error.
    """
    CREATE TRIGGER outbox_enqueue AFTER INSERT ON measurements
    WHEN CASE WHEN json_valid(NEW.extra)
              THEN json_extract(NEW.extra, '$.source') IS NOT 'ooni' ELSE 1 END
    BEGIN
        INSERT OR IGNORE INTO outbox (measurement_id, queued_at)
        VALUES (NEW.measurement_id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
    END
    """,
)


def _v10_outbox_skips_imports(db: sqlite_utils.Database) -> None:
    for statement in _V10:
        db.execute(statement)


_PORTAL = (
    # SQLite cannot widen a CHECK constraint in place: the table is rebuilt with the 'portal'
    # scope allowed and the new column, its rows copied in order (rowid kept).
    """
    CREATE TABLE health_samples_portal (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        at TEXT NOT NULL,                   -- ISO 8601 UTC, when the canary probe started
        phase TEXT NOT NULL CHECK (phase IN ('before', 'during', 'after')),
        scope TEXT NOT NULL CHECK (scope IN ('gateway', 'resolver', 'domestic',
                                             'international', 'control', 'portal')),
        target TEXT NOT NULL,               -- the canary: URL, host or IP
        elapsed REAL NOT NULL,
        failure TEXT,                       -- NULL = the canary answered
        unexpected TEXT                     -- a portal check's unexpected answer, in short
    )
    """,
    "INSERT INTO health_samples_portal (rowid, run_id, at, phase, scope, target, elapsed, "
    "failure) SELECT rowid, run_id, at, phase, scope, target, elapsed, failure "
    "FROM health_samples ORDER BY rowid",
    "DROP TABLE health_samples",
    "ALTER TABLE health_samples_portal RENAME TO health_samples",
    "CREATE INDEX health_samples_run_at ON health_samples (run_id, at)",
)


def _portal_health(db: sqlite_utils.Database) -> None:
    # Captive portals: canaries of scope 'portal' (the OSes' portal checks) and what they got
    # instead of their known answer (health_samples.unexpected, NULL = the known answer, a
    # failure or another scope).
    for statement in _PORTAL:
        db.execute(statement)


#: Every migration, in order. ``MIGRATIONS[i].version == i + 1``. Append only.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _v1_initial),
    Migration(2, "network health samples, report indexes", _v2_health),
    Migration(3, "packet-level traces (censor localisation, DNS injection)", _v3_traces),
    Migration(4, "kinds of test: measurements.test_name", _v4_test_name),
    Migration(5, "imported measurements and their provenance", _v5_imports),
    Migration(6, "HTTP progress: bytes received and the time of the last byte",
              _v6_http_progress),
    Migration(7, "run leases: one owner per run", _v7_run_leases),
    Migration(8, "upload outbox; collector enrolment and provenance", _v8_outbox),
    Migration(9, "QUIC handshakes; HTTP/3 requests (http_requests.transport)", _v9_quic),
    Migration(10, "the outbox trigger does not queue imported measurements",
              _v10_outbox_skips_imports),
    Migration(11, "captive portals: the 'portal' canary scope, health_samples.unexpected",
              _portal_health),
)

#: The schema version this code writes.
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(db: sqlite_utils.Database) -> int:
    """The schema version of ``db``: 0 for an empty database.

    Raises StorageError for a database that has tables but is not a probe database.
    """
    tables = {
        row["name"]
        for row in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not row["name"].startswith("sqlite_")
    }
    if MIGRATIONS_TABLE not in tables:
        if tables:
            names = ", ".join(sorted(tables)[:5])
            raise StorageError(f"not a probe database (it has other tables: {names})")
        return 0
    row = next(db.query(f"SELECT max(version) AS v FROM {MIGRATIONS_TABLE}"))
    return int(row["v"] or 0)


def check_supported(version: int, migrations: Sequence[Migration]) -> None:
    """Raise StorageError when ``version`` is newer than the code knows about."""
    if version > len(migrations):
        raise StorageError(
            f"database schema version {version} is newer than this probe supports "
            f"({len(migrations)}); upgrade probe to read it"
        )


def migrate(
    db: sqlite_utils.Database, migrations: Sequence[Migration] | None = None
) -> tuple[int, int]:
    """Bring ``db`` up to the newest version in ``migrations`` (default :data:`MIGRATIONS`).

    Pending migrations run in one ``BEGIN IMMEDIATE`` transaction together with their
    ``schema_migrations`` rows, so a failure leaves the database exactly as it was and two
    processes opening the same file cannot both migrate it. Returns (old, new) versions.
    Raises StorageError for a newer or foreign database; sqlite3 errors propagate.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    for i, migration in enumerate(migrations):
        if migration.version != i + 1:
            raise ValueError(f"migration #{i} has version {migration.version}, expected {i + 1}")
    before = current_version(db)
    check_supported(before, migrations)
    if before == len(migrations):
        return before, before
    db.execute("BEGIN IMMEDIATE")
    try:
        version = current_version(db)  # re-read under the write lock
        check_supported(version, migrations)
        if version == 0 and not db.table(MIGRATIONS_TABLE).exists():
            db.execute(_MIGRATIONS_DDL)
        for migration in migrations[version:]:
            migration.apply(db)
            db.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utcnow_iso()),
            )
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return before, len(migrations)


# --- the shape of the current schema, for the row builders -----------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the current schema: its name, whether it may be NULL, its default
    (``None`` = NULL or none) and whether SQLite assigns it (an ``INTEGER PRIMARY KEY``)."""

    name: str
    not_null: bool
    default: object
    assigned: bool


def _default(sql: str | None) -> object:
    """A column's ``DEFAULT`` clause (SQL text) as a Python value."""
    if sql is None or sql.upper() == "NULL":
        return None
    if sql.startswith("'") and sql.endswith("'"):
        return sql[1:-1].replace("''", "'")
    try:
        return int(sql)
    except ValueError:
        return float(sql)


@functools.cache
def _shape() -> dict[str, tuple[Column, ...]]:
    conn = sqlite3.connect(":memory:")
    try:
        db = sqlite_utils.Database(conn, execute_plugins=False)
        migrate(db)
        shape = {}
        for (table,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"):
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            single_pk = sum(1 for r in info if r[5]) == 1
            shape[table] = tuple(
                Column(name=r[1], not_null=bool(r[3]), default=_default(r[4]),
                       assigned=single_pk and bool(r[5]) and r[2].upper() == "INTEGER")
                for r in info)
        return shape
    finally:
        conn.close()


def tables() -> tuple[str, ...]:
    """Every table of the current schema, by name."""
    return tuple(sorted(_shape()))


def columns(table: str) -> tuple[Column, ...]:
    """The columns of ``table`` in the current schema, in order (read once from the migrations
    applied to an in-memory database: the schema above is the only place they are spelled).
    An unknown table → KeyError."""
    return _shape()[table]
