"""Bulk writes of imported measurements: rows as tuples in fixed column lists, one transaction.

Responsibility: the fast path of ``probe import`` into the store. The row builders here make
exactly the values :mod:`probe.store.rows` makes (same encodings; tests/store/test_bulk.py
checks them against those builders column by column) but as plain tuples in the column order
of :data:`COLUMNS`, without the per-row dict and schema lookups of
:func:`probe.store.rows.new_row`: worker processes build them, pickle them cheaply to the one
writer, and :func:`save_imports` hands them to ``executemany`` with one prepared statement
per table, inside one transaction (:meth:`probe.store.Store` ``_write``).

Privacy is the store's, as for every write: the rows of each measurement pass the store's
:class:`~probe.store.privacy.Scrubber` (its literal prefilter over the measurement's text and
bytes, then, only when that may hold an address, each of its rows is checked and scrubbed as a
value) — the same rows are scrubbed as by :meth:`probe.store.privacy.Scrubber.rows`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from probe.model import Measurement, Provenance, Verdict
from probe.store.db import Store
from probe.store.privacy import Scrubber

Row = tuple[Any, ...]

#: Tables an imported measurement's rows go to, parents first (the order of an item's rows). No
#: quic_handshakes: no OONI test the importer maps carries QUIC observations.
TABLES = ("measurements", "dns_queries", "tcp_connects", "tls_handshakes", "certificates",
          "http_requests", "controls", "verdicts", "imports")

#: The columns of each tuple, in order (the columns :mod:`probe.store.rows` fills; SQLite
#: assigns ``verdict_id``).
COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": ("run_id", "started_at", "finished_at", "last_seen_at", "probe_version",
             "settings", "status", "targets_total", "probe_asn", "probe_cc", "network_name"),
    "measurements": ("measurement_id", "run_id", "url", "hostname", "scheme", "port", "path",
                     "category", "source", "started_at", "finished_at", "extra", "test_name"),
    "dns_queries": ("measurement_id", "idx", "tx_id", "hostname", "query_type", "engine",
                    "resolver", "t0", "t", "failure", "rcode", "answers", "response_index"),
    "tcp_connects": ("measurement_id", "idx", "tx_id", "ip", "port", "t0", "t", "failure"),
    "tls_handshakes": ("measurement_id", "idx", "tx_id", "ip", "port", "server_name", "t0",
                       "t", "failure", "tls_version", "cipher_suite", "alpn", "verified",
                       "verify_error"),
    "certificates": ("measurement_id", "tls_idx", "tx_id", "position", "der", "sha256",
                     "spki_sha256", "subject", "issuer", "not_before", "not_after", "san"),
    "http_requests": ("measurement_id", "idx", "tx_id", "url", "method", "ip", "port", "t0",
                      "t", "failure", "redirect_index", "request_headers", "status",
                      "headers", "body", "body_length", "body_sha256", "body_truncated",
                      "title", "location", "received_bytes", "last_byte_t", "transport"),
    "controls": ("measurement_id", "idx", "data"),
    "verdicts": ("measurement_id", "verdict", "method", "confidence", "evidence", "details",
                 "analysis_version", "created_at", "is_current"),
    "imports": ("measurement_id", "source", "origin", "dedup_key", "report_id",
                "measurement_uid", "software_name", "software_version", "test_name",
                "test_version", "probe_asn", "probe_cc", "probe_network_name", "resolver_ip",
                "resolver_asn", "ooni_blocking", "ooni_accessible", "ooni_flags", "missing",
                "imported_at"),
}

#: :func:`probe.store.rows.to_json` with its encoder made once: ``json.dumps`` with
#: arguments builds a new encoder per call, which cost ~4 µs of each of the ~9 JSON columns
#: of an imported measurement (tests/ingest/test_throughput.py checks the texts are equal).
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _json_text(value: Any) -> str:
    """:func:`_json` of arrays and objects whose leaves are strings, ints, booleans or None
    (header lists, SANs, DNS answers, imported control answers), by orjson: ~5 × faster,
    and the same text for every such value (compact, UTF-8 kept, the same escapes:
    tests/ingest/test_throughput.py checks every code point). Floats are never given to it
    (orjson spells some differently); what orjson refuses (a lone surrogate, an integer
    beyond 64 bits, a type JSON has not) is left to :func:`_json`."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        return _json(value)


def _bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def run_row(run_id: str, started_at: str, probe_version: str, settings: Mapping[str, Any],
            total: int, *, status: str, finished_at: str | None, probe_asn: int | None,
            probe_cc: str | None, network_name: str | None) -> Row:
    """One ``runs`` tuple (:func:`probe.store.rows.run_row`; ``last_seen_at`` = the start)."""
    return (run_id, started_at, finished_at, started_at, probe_version, _json(settings),
            status, int(total), probe_asn, probe_cc, network_name)


def measurement_rows(mid: str, run_id: str, m: Measurement, v: Verdict, p: Provenance,
                     at: str) -> tuple[list[Row], ...]:
    """Every row of one imported measurement, by table in :data:`TABLES` order: the
    measurement, its observations, its verdict (``created_at`` = ``at``) and its provenance
    (``imported_at`` = ``at``). Tuples are encoded as JSON arrays, as the lists of
    :mod:`probe.store.rows` are (the same text, without copying them into lists). An imported
    measurement's ``extra`` and control answers hold only strings, ints, booleans and None
    (:func:`probe.ingest.mapper.control` builds them so), hence :func:`_json_text`
    (tests/ingest/test_throughput.py checks the corpus's texts); the verdict's details may
    hold floats, hence :func:`_json`."""
    t = m.target
    return (
        [(mid, run_id, t.url, t.hostname, t.scheme, t.port, t.path, t.category, t.source,
          m.started_at, m.finished_at, _json_text(m.extra), t.test_name)],
        [(mid, i, d.tx_id, d.hostname, d.query_type, d.engine, d.resolver, d.t0, d.t,
          d.failure, d.rcode,
          _json_text([{"rtype": a.rtype, "value": a.value, "ttl": a.ttl}
                      for a in d.answers]),
          d.response_index) for i, d in enumerate(m.dns)],
        [(mid, i, c.tx_id, c.ip, c.port, c.t0, c.t, c.failure) for i, c in enumerate(m.tcp)],
        [(mid, i, h.tx_id, h.ip, h.port, h.server_name, h.t0, h.t, h.failure, h.tls_version,
          h.cipher_suite, h.alpn, _bool(h.verified), h.verify_error)
         for i, h in enumerate(m.tls)],
        [(mid, i, h.tx_id, position, bytes(c.der), c.sha256, c.spki_sha256, c.subject,
          c.issuer, c.not_before, c.not_after, _json_text(c.san))
         for i, h in enumerate(m.tls) for position, c in enumerate(h.certificates)],
        [(mid, i, h.tx_id, h.url, h.method, h.ip, h.port, h.t0, h.t, h.failure,
          h.redirect_index, _json_text(h.request_headers), h.status, _json_text(h.headers),
          None if h.body is None else bytes(h.body),
          h.body_length, h.body_sha256, int(h.body_truncated), h.title, h.location,
          h.received_bytes, h.last_byte_t, transport)
         for i, (h, transport) in enumerate(
             [*((h, "tcp") for h in m.http), *((h, "quic") for h in m.http3)])],
        [(mid, i, _json_text(c)) for i, c in enumerate(m.control)],
        [(mid, v.verdict.value, v.method, float(v.confidence), v.evidence, _json(v.details),
          v.analysis_version, at, 1)],
        [import_row(mid, p, at)],
    )


def import_row(mid: str, p: Provenance, imported_at: str) -> Row:
    """One ``imports`` tuple (:func:`probe.store.rows.import_row`)."""
    dumps = json.dumps
    return (mid, p.source, p.origin, p.dedup_key, p.report_id, p.measurement_uid,
            p.software_name, p.software_version, p.test_name, p.test_version, p.probe_asn,
            p.probe_cc, p.probe_network_name, p.resolver_ip, p.resolver_asn,
            dumps(p.ooni_blocking), dumps(p.ooni_accessible), p.ooni_flags,
            dumps(list(p.missing)), imported_at)


def _sql(table: str, conflict: str = "") -> str:
    cols = COLUMNS[table]
    return (f"INSERT {conflict} INTO {table} ({', '.join(cols)}) "
            f"VALUES ({', '.join('?' * len(cols))})")


_SQL = {t: _sql(t) for t in TABLES}
_RUNS_SQL = _sql("runs", "OR IGNORE")
#: Most ``?`` placeholders in one statement (SQLite's historical default limit is 999).
_VARS = 900


#: Values at least this long are checked one by one, each distinct value once per chunk
#: (:class:`_Gate`); shorter ones are joined and checked together.
BIG = 64


class _Gate:
    """The scrub check of one chunk's measurements: whether one may hold an address.

    Values are read as :meth:`probe.store.privacy.Scrubber.rows` reads them: text as it is,
    bytes as UTF-8 (undecodable bytes kept) and, when they hold NUL bytes, also as
    UTF-16/32 (by :meth:`~probe.store.privacy.Scrubber.scrub_bytes` itself). The check is
    :meth:`~probe.store.privacy.Scrubber.might_hold`, which is certain when it says no; an
    address is spelled inside one value, never across two (the scrub itself works value by
    value), so a measurement none of whose values may hold one holds none. Long values
    (bodies, certificates, control answers, header lists, verdict details) recur across the
    measurements of an archive file (the same block page, chain or answer), and the check
    scans every character with a few case-insensitive patterns (~8 ns a character each): so
    each distinct long value is checked once per chunk, and the short values of a
    measurement are joined and checked together. The memo lives for one
    :func:`save_imports` call (the scrubber cannot change meanwhile) and holds only values
    the chunk holds anyway.
    """

    def __init__(self, scrubber: Scrubber) -> None:
        self.scrubber = scrubber
        self.seen: dict[str | bytes, bool] = {}

    def _bytes(self, v: bytes) -> bool:
        if b"\x00" in v:  # UTF-16/32 readings too: only the scrub itself knows them all
            return self.scrubber.scrub_bytes(v) != v
        return self.scrubber.might_hold(v.decode("utf-8", "surrogateescape"))

    def may_hold(self, tables: Sequence[list[Row]]) -> bool:
        seen = self.seen
        short: list[str] = []
        keep = short.append
        for found in tables:
            for r in found:
                for v in r:
                    # Exact types first (~140 values a measurement; a subclass of str or
                    # bytes, which rows never hold, takes the same path by isinstance).
                    kind = type(v)
                    if kind is str:
                        if len(v) < BIG:
                            keep(v)
                            continue
                    elif kind is bytes:
                        if len(v) < BIG and b"\x00" not in v:
                            keep(v.decode("utf-8", "surrogateescape"))
                            continue
                    elif v is None or kind is int or kind is float:
                        continue
                    elif isinstance(v, str):
                        if len(v) < BIG:
                            keep(v)
                            continue
                    elif isinstance(v, bytes):
                        if len(v) < BIG and b"\x00" not in v:
                            keep(v.decode("utf-8", "surrogateescape"))
                            continue
                    else:
                        continue
                    hit = seen.get(v)
                    if hit is None:
                        hit = seen[v] = (self.scrubber.might_hold(v) if isinstance(v, str)
                                         else self._bytes(v))
                    if hit:
                        return True
        return self.scrubber.might_hold("\x00".join(short))


def scrubbed(scrubber: Scrubber, tables: Sequence[list[Row]],
             gate: _Gate | None = None) -> Sequence[list[Row]]:
    """One measurement's rows with the volunteer's addresses scrubbed (the very same lists
    when none may hold one: :class:`_Gate` over all its values first, then row by row, as
    :meth:`~probe.store.privacy.Scrubber.rows` does)."""
    check = gate or _Gate(scrubber)
    if not check.may_hold(tables):
        return tables
    return [[scrubber.value(r) if check.may_hold(([r],)) else r for r in found]
            for found in tables]


#: SQLite's page cache during a bulk import, KiB (``PRAGMA cache_size`` takes KiB as a
#: negative number; its default is 2,000 KiB). Each imported measurement inserts into ~20
#: B-trees at places given by hashes (measurement ids, dedup keys, body and certificate
#: digests); once those indexes outgrow the cache, every insert reads pages back from the OS.
IMPORT_CACHE_KIB = 32_768
#: WAL pages between automatic checkpoints during a bulk import (SQLite's default: 1,000). A
#: checkpoint copies every page changed since the last one into the database; the hot index
#: pages change in every transaction, so fewer checkpoints copy them fewer times. Durability
#: is the same (each transaction is committed to the WAL as before); the WAL grows to at most
#: ~64 MiB (4 KiB pages) between checkpoints.
IMPORT_WAL_PAGES = 16_384


@contextlib.contextmanager
def import_settings(store: Store) -> Iterator[None]:
    """The store's connection tuned for a bulk import while the block runs (a larger page
    cache, fewer WAL checkpoints), its previous settings restored afterwards. Measured at
    80,000 imported measurements (writer alone, 128 MiB): ~213 → ~184 µs of CPU a
    measurement; the 100k bench measured 32 MiB as good as 128 (docs/import.md, session 4
    round 3), so the smaller. Neither setting changes what is stored or when it is
    durable."""
    conn = store.db.conn
    with store._lock:
        cache = conn.execute("PRAGMA cache_size").fetchone()[0]
        wal = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        conn.execute(f"PRAGMA cache_size = {-IMPORT_CACHE_KIB}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {IMPORT_WAL_PAGES}")
    try:
        yield
    finally:
        with store._lock, contextlib.suppress(Exception):
            conn.execute(f"PRAGMA cache_size = {int(cache)}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {int(wal)}")


def save_imports(store: Store, runs: Sequence[Row],
                 items: Sequence[tuple[str, str, Sequence[list[Row]]]]) -> list[bool]:
    """Store many imported measurements in one transaction, idempotently; returns, per item,
    whether it was stored (False = its ``dedup_key`` was already stored, or came earlier in
    ``items``). ``runs``: :func:`run_row` tuples, inserted unless their id exists; ``items``:
    ``(dedup_key, run_id, rows by table)`` (:func:`measurement_rows`). Each run's
    ``targets_total`` grows by the measurements stored into it. A failure rolls the whole
    batch back (:class:`~probe.errors.StorageError`)."""
    scrubber = store.scrubber
    gate = _Gate(scrubber)
    stored: list[bool] = []
    with store._write("save imported measurements") as db:  # the store's own transaction
        conn = db.conn
        if runs:
            conn.executemany(_RUNS_SQL, [scrubbed(scrubber, [[r]])[0][0] for r in runs])
        keys = [k for k, _, _ in items]
        seen: set[str] = set()
        for i in range(0, len(keys), _VARS):
            part = keys[i:i + _VARS]
            seen.update(r[0] for r in conn.execute(
                f"SELECT dedup_key FROM imports WHERE dedup_key IN "
                f"({','.join('?' * len(part))})", part))
        by_table: list[list[Row]] = [[] for _ in TABLES]
        per_run: dict[str, int] = {}
        for key, run_id, tables in items:
            if key in seen:
                stored.append(False)
                continue
            seen.add(key)
            stored.append(True)
            for into, found in zip(by_table, scrubbed(scrubber, tables, gate),
                                   strict=True):
                into += found
            per_run[run_id] = per_run.get(run_id, 0) + 1
        for table, found in zip(TABLES, by_table, strict=True):
            if found:
                conn.executemany(_SQL[table], found)
        conn.executemany("UPDATE runs SET targets_total = targets_total + ? WHERE run_id = ?",
                         [(n, r) for r, n in per_run.items()])
    return stored


__all__ = ["COLUMNS", "IMPORT_CACHE_KIB", "IMPORT_WAL_PAGES", "TABLES", "import_row",
           "import_settings", "measurement_rows", "run_row", "save_imports",
           "scrubbed"]
