"""Load the runs, verdicts and health rounds a report needs from probe databases, read-only.

Rules for this module:

* Source databases are opened with the store's read-only opener (:mod:`probe.store.readonly`:
  ``mode=ro``, attached one at a time to the store's in-memory scratch database, with a busy
  timeout), so a report can be made while ``probe run`` or ``probe watch`` is writing the same
  file in WAL mode. Nothing is ever written to a source.
* Everything is copied once into compact in-memory tables (integer keys, verdict codes); all
  aggregations then run as SQL over those tables (:mod:`probe.report.aggregate`).
* Runs are de-duplicated across files by ``run_id`` (ids are globally unique): the copy with
  the most measurements wins, ties go to the file named first.
* ``health_samples`` may be absent (older databases); runs without samples get a network state
  derived from their verdicts instead (mostly ``shutdown`` → that shutdown, else ``whole``).
* A run's ``settings`` are never read: they can hold addresses, and reports carry none.

Workspace tables (all in the in-memory ``main`` schema):

``networks(net_idx, asn, cc, name, label)``;
``runs(run_idx, run_id, src, started_at, finished_at, status, net_idx, period, bucket, t)``
with ``run_idx`` ordered by start time and ``t`` the start as Unix seconds;
``targets(target_idx, url, hostname, category)``;
``cells(period, net_idx, target_idx, bucket, verdict, method, n, first_run, last_run)``: the
current verdicts already grouped while they are read (``verdict`` is an index into
:data:`probe.report.vocab.VERDICTS`; ``n`` measurements; ``first_run``/``last_run`` the first
and last ``run_idx`` with that verdict and method in the cell) — a year of hourly runs of 100
targets is ~1M verdicts but only ~100k cells;
``rounds(run_idx, net_idx, period, t, state, source)``, one row per health round.

A single verdict (evidence, confidence, the page it got) is fetched back from its source by
``(run_idx, target_idx)`` with :meth:`Workspace.details` — only for the rows a report shows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from probe.errors import StorageError
from probe.report.run_results import trace_note
from probe.report.scrub import normalise_addresses
from probe.report.times import UTC, parse_utc
from probe.report.vocab import VERDICT_CODE
from probe.store import readonly

_T = TypeVar("_T")

_REQUIRED_TABLES = ("runs", "measurements", "verdicts")
#: Page cache of the in-memory workspace (KiB) and memory-mapped reads of sources (bytes).
CACHE_KIB = 262_144
MMAP_BYTES = 1 << 32

_SCHEMA = """
CREATE TABLE sources (src INTEGER PRIMARY KEY, name TEXT NOT NULL, has_health INTEGER NOT NULL);
CREATE TABLE networks (
    net_idx INTEGER PRIMARY KEY, asn INTEGER, cc TEXT, name TEXT, label TEXT NOT NULL
);
CREATE TABLE runs (
    run_idx INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, src INTEGER NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL,
    net_idx INTEGER NOT NULL, period INTEGER NOT NULL, bucket INTEGER NOT NULL DEFAULT 0,
    t REAL NOT NULL
);
CREATE TABLE targets (
    target_idx INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE, hostname TEXT NOT NULL,
    category TEXT, seen_at TEXT NOT NULL
);
CREATE TABLE cells (
    period INTEGER NOT NULL, net_idx INTEGER NOT NULL, target_idx INTEGER NOT NULL,
    bucket INTEGER NOT NULL, verdict INTEGER NOT NULL, method TEXT, n INTEGER NOT NULL,
    first_run INTEGER NOT NULL, last_run INTEGER NOT NULL
);
CREATE TABLE rounds (
    run_idx INTEGER NOT NULL, net_idx INTEGER NOT NULL, period INTEGER NOT NULL,
    t REAL NOT NULL, state TEXT NOT NULL, source TEXT NOT NULL
);
"""

_VERDICT_CASE = (
    "CASE v.verdict "
    + " ".join(f"WHEN '{name}' THEN {code}" for name, code in VERDICT_CODE.items())
    + f" ELSE {VERDICT_CODE['inconclusive']} END"
)

#: The rules of probe.classify.health.infer_state, as SQL over per-round scope counts and
#: ``portal_same``, the most portal checks of the round that got one same unexpected answer
#: (first match wins). tests/test_report_aggregate.py checks both agree on every combination.
STATE_CASE_SQL = """
CASE
  WHEN portal_same >= 2 THEN 'captive_portal'
  WHEN intl_up > 0 OR ctl_up > 0 THEN 'whole'
  WHEN gw_up + gw_down > 0 AND gw_up = 0 AND res_up + dom_up = 0 THEN 'local_outage'
  WHEN intl_up + intl_down + ctl_up + ctl_down = 0 THEN 'unknown'
  WHEN dom_up > 0 AND dom_down = 0 THEN 'shutdown.international'
  WHEN dom_up > 0 AND dom_down > 0 THEN 'shutdown.allowlist'
  ELSE 'shutdown.full'
END
"""


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open UTC interval ``[start, end)``; None = unbounded on that side."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def contains(self, when: dt.datetime) -> bool:
        return (self.start is None or when >= self.start) and (self.end is None or when < self.end)


@dataclass(frozen=True, slots=True)
class Run:
    """One selected run (after de-duplication). ``period`` = index of the window it fell in."""

    run_idx: int
    run_id: str
    src: int
    started_at: dt.datetime
    status: str
    net_idx: int
    period: int


@dataclass(frozen=True, slots=True)
class Network:
    net_idx: int
    asn: int | None
    cc: str | None
    name: str | None
    label: str


@dataclass(frozen=True, slots=True)
class VerdictDetail:
    """One stored verdict with its evidence and the final page of its measurement."""

    verdict: str
    method: str | None
    confidence: float
    evidence: str
    measured_at: dt.datetime
    title: str | None
    server: str | None
    addresses: frozenset[str]
    censor: str | None = None  # what packet-level traces located (issue 8); None = no trace


def network_label(asn: int | None, cc: str | None, name: str | None) -> str:
    """``AS9198 Kazakhtelecom (KZ)``; ``unknown network`` when nothing is known."""
    parts = []
    if asn is not None:
        parts.append(f"AS{asn}")
    if name:
        parts.append(" ".join(str(name).split()))
    label = " ".join(parts) or "unknown network"
    return f"{label} ({cc})" if cc else label


class Workspace:
    """The in-memory copy a report is computed from. Use :meth:`open`, then the loaders."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [Path(p).expanduser() for p in paths]
        self.conn = readonly.scratch_database("probe-report")
        # GROUP BY over ~1M joined rows sorts in memory instead of spilling to temp files.
        self.conn.execute("PRAGMA temp_store = MEMORY")
        self.conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        self.conn.executescript(_SCHEMA)
        self.runs: list[Run] = []
        self.networks: list[Network] = []
        self.status_counts: dict[str, int] = {}

    # --- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open(cls, paths: Sequence[str | Path]) -> Workspace:
        """Check that every path is a readable probe database; StorageError otherwise."""
        if not paths:
            raise StorageError("no database given")
        ws = cls(paths)
        seen: set[Path] = set()
        unique = []
        for p in ws.paths:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                unique.append(p)
        ws.paths = unique
        try:
            for src, p in enumerate(ws.paths):
                if not readonly.is_file(p):  # False, not OSError, for a name too long
                    raise StorageError(f"no database {p}")
                with ws.attached(src) as alias:
                    tables = {
                        r[0]
                        for r in ws.conn.execute(
                            f"SELECT name FROM {alias}.sqlite_master WHERE type = 'table'"
                        )
                    }
                missing = [t for t in _REQUIRED_TABLES if t not in tables]
                if missing:
                    raise StorageError(f"{p} is not a probe database (no {', '.join(missing)})")
                ws.conn.execute(
                    "INSERT INTO sources (src, name, has_health) VALUES (?, ?, ?)",
                    (src, p.name, int("health_samples" in tables)),
                )
        except BaseException:
            ws.close()
            raise
        return ws

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def attached(self, src: int) -> Iterator[str]:
        """Attach source ``src`` read-only as ``s<src>`` for the block; errors → StorageError."""
        with readonly.attached(self.conn, self.paths[src], f"s{src}") as alias:
            self.conn.execute(f"PRAGMA {alias}.mmap_size = {MMAP_BYTES}")
            yield alias

    # --- loading ---------------------------------------------------------------------------

    def load_runs(self, windows: Sequence[Window], run_ids: Sequence[str] | None = None) -> None:
        """Select runs: those starting inside a window (``period`` = its index), or, with
        ``run_ids``, exactly those runs (``period`` = position; full ids or unique prefixes).
        """
        copies: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # run_id -> [(src, row)]
        for src in range(len(self.paths)):
            with self.attached(src) as alias:
                for run_id, started, finished, status, asn, cc, name in self.conn.execute(
                    f"SELECT run_id, started_at, finished_at, status, probe_asn, probe_cc, "
                    f"network_name FROM {alias}.runs"
                ):
                    row = {
                        "started_at": started,
                        "finished_at": finished,
                        "status": status,
                        "asn": asn,
                        "cc": cc,
                        "name": name,
                    }
                    copies.setdefault(run_id, []).append((src, row))
        found = {rid: self._fullest(rid, versions) for rid, versions in copies.items()}
        selected: list[tuple[dt.datetime, str, int, dict[str, Any], int]] = []
        if run_ids is not None:
            for period, wanted in enumerate(run_ids):
                rid = _resolve_run(wanted, found)
                src, row = found[rid]
                selected.append((parse_utc(row["started_at"]), rid, src, row, period))
        else:
            for rid, (src, row) in found.items():
                started = parse_utc(row["started_at"])
                for period, window in enumerate(windows):
                    if window.contains(started):
                        selected.append((started, rid, src, row, period))
                        break
        selected.sort(key=lambda s: (s[0], s[1]))
        # When one run is compared with itself, keep both periods apart.
        if run_ids is not None and len({s[1] for s in selected}) < len(selected):
            raise StorageError("BEFORE and AFTER are the same run")
        nets: dict[tuple[Any, Any, Any], int] = {}
        for run_idx, (started, rid, src, row, period) in enumerate(selected):
            key = (row["asn"], row["cc"], row["name"])
            if key not in nets:
                nets[key] = len(nets)
                self.networks.append(Network(len(self.networks), *key, network_label(*key)))
            net_idx = nets[key]
            self.runs.append(Run(run_idx, rid, src, started, row["status"], net_idx, period))
            self.status_counts[row["status"]] = self.status_counts.get(row["status"], 0) + 1
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT INTO networks (net_idx, asn, cc, name, label) VALUES (?, ?, ?, ?, ?)",
            [(n.net_idx, n.asn, n.cc, n.name, n.label) for n in self.networks],
        )
        self.conn.executemany(
            "INSERT INTO runs (run_idx, run_id, src, started_at, finished_at, status, net_idx, "
            "period, t) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.run_idx,
                    r.run_id,
                    r.src,
                    s[3]["started_at"],
                    s[3]["finished_at"],
                    r.status,
                    r.net_idx,
                    r.period,
                    r.started_at.timestamp(),
                )
                for r, s in zip(self.runs, selected, strict=True)
            ],
        )
        self.conn.execute("COMMIT")

    def _fullest(
        self, run_id: str, versions: list[tuple[int, dict[str, Any]]]
    ) -> tuple[int, dict[str, Any]]:
        """The copy of a run found in several files that holds the most measurements."""
        if len(versions) == 1:
            return versions[0]
        best, best_n = versions[0], -1
        for src, row in versions:
            with self.attached(src) as alias:
                n = self.conn.execute(
                    f"SELECT count(*) FROM {alias}.measurements WHERE run_id = ?", (run_id,)
                ).fetchone()[0]
            if n > best_n:
                best, best_n = (src, row), n
        return best

    def set_buckets(self, buckets: Iterable[tuple[int, int]]) -> None:
        """Assign timeline buckets: ``(run_idx, bucket)`` pairs (before :meth:`load_facts`)."""
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "UPDATE runs SET bucket = ? WHERE run_idx = ?", [(b, r) for r, b in buckets]
        )
        self.conn.execute("COMMIT")

    def load_verdicts(self, categories: Iterable[str] | None = None) -> None:
        """Read the current verdicts of the selected runs (optionally only some categories),
        grouped into ``cells`` as they are read, then the health rounds."""
        cats = sorted({c.upper() for c in categories}) if categories else []
        cat_sql = f" AND m.category IN ({','.join('?' * len(cats))})" if cats else ""
        sources = sorted({r.src for r in self.runs})
        self.conn.execute("CREATE TEMP TABLE raw_cells AS SELECT * FROM cells WHERE 0")
        for src in sources:
            with self.attached(src) as alias:
                self.conn.execute("BEGIN")  # one read snapshot of this source
                # Every URL of the file (via the url index: no table scan), with the hostname
                # and category of its latest measurement; URLs without verdicts are harmless.
                self.conn.execute(
                    f"""
                    INSERT INTO targets (url, hostname, category, seen_at)
                    SELECT u.url, l.hostname, l.category, l.started_at
                    FROM (SELECT DISTINCT url FROM {alias}.measurements) u
                    JOIN {alias}.measurements l ON l.rowid = (
                        SELECT rowid FROM {alias}.measurements x WHERE x.url = u.url
                        ORDER BY rowid DESC LIMIT 1)
                    WHERE true
                    ON CONFLICT (url) DO UPDATE SET
                        hostname = CASE WHEN excluded.seen_at > seen_at
                                        THEN excluded.hostname ELSE hostname END,
                        category = CASE WHEN excluded.seen_at > seen_at
                                        THEN excluded.category ELSE category END,
                        seen_at = max(seen_at, excluded.seen_at)
                    """
                )
                self.conn.execute(
                    f"""
                    INSERT INTO raw_cells
                    SELECT r.period, r.net_idx, t.target_idx, r.bucket, {_VERDICT_CASE},
                           v.method, count(*), min(r.run_idx), max(r.run_idx)
                    FROM runs r
                    CROSS JOIN {alias}.measurements m ON m.run_id = r.run_id
                    CROSS JOIN {alias}.verdicts v
                         ON v.measurement_id = m.measurement_id AND v.is_current = 1
                    CROSS JOIN targets t ON t.url = m.url
                    WHERE r.src = ?{cat_sql}
                    GROUP BY 1, 2, 3, 4, 5, 6
                    """,
                    [src, *cats],
                )
                self.conn.execute("COMMIT")
        # Two files may hold runs of the same network and day: merge their groups.
        self.conn.execute(
            """
            INSERT INTO cells
            SELECT period, net_idx, target_idx, bucket, verdict, method, sum(n),
                   min(first_run), max(last_run)
            FROM temp.raw_cells
            GROUP BY period, net_idx, target_idx, bucket, verdict, method
            """
        )
        self.conn.execute("DROP TABLE temp.raw_cells")
        self._load_rounds(sources, cat_sql, cats)

    def _load_rounds(self, sources: Sequence[int], cat_sql: str, cats: Sequence[str]) -> None:
        has_health = {
            src for (src,) in self.conn.execute("SELECT src FROM sources WHERE has_health = 1")
        }
        scope_sums = ", ".join(
            f"sum(h.scope = '{scope}' AND h.failure IS NULL) AS {short}_up, "
            f"sum(h.scope = '{scope}' AND h.failure IS NOT NULL) AS {short}_down"
            for scope, short in (
                ("gateway", "gw"),
                ("resolver", "res"),
                ("domestic", "dom"),
                ("international", "intl"),
                ("control", "ctl"),
            )
        )
        for src in sources:
            if src not in has_health:
                continue
            with self.attached(src) as alias:
                portal = self._portal_sql(alias)
                rows = self.conn.execute(
                    f"""
                    WITH portal AS ({portal})
                    SELECT run_idx, net_idx, period, at, {STATE_CASE_SQL} AS state FROM (
                        SELECT r.run_idx, r.net_idx, r.period, min(h.at) AS at, {scope_sums},
                               coalesce(max(p.same), 0) AS portal_same
                        FROM {alias}.health_samples h JOIN runs r ON r.run_id = h.run_id
                        LEFT JOIN portal p ON p.run_id = h.run_id
                            AND p.sec = substr(h.at, 1, 19) AND p.phase = h.phase
                        WHERE r.src = ?
                        GROUP BY r.run_idx, substr(h.at, 1, 19), h.phase
                    )
                    """,
                    (src,),
                ).fetchall()
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "INSERT INTO rounds (run_idx, net_idx, period, t, state, source) "
                "VALUES (?, ?, ?, ?, ?, 'canaries')",
                [(ri, ni, p, parse_utc(at).timestamp(), st) for ri, ni, p, at, st in rows],
            )
            self.conn.execute("COMMIT")
        # Runs without canary samples (older databases): the state their verdicts show.
        covered = {ri for (ri,) in self.conn.execute("SELECT DISTINCT run_idx FROM rounds")}
        missing = [r for r in self.runs if r.run_idx not in covered]
        if not missing:
            return
        self.conn.execute("CREATE TEMP TABLE bare_runs (run_idx INTEGER PRIMARY KEY)")
        self.conn.executemany(
            "INSERT INTO temp.bare_runs VALUES (?)", [(r.run_idx,) for r in missing]
        )
        mix: dict[int, dict[tuple[str, str | None], int]] = {}
        for src in sorted({r.src for r in missing}):
            with self.attached(src) as alias:
                for run_idx, verdict, method, n in self.conn.execute(
                    f"""
                    SELECT r.run_idx, v.verdict, v.method, count(*)
                    FROM temp.bare_runs b CROSS JOIN runs r ON r.run_idx = b.run_idx
                    CROSS JOIN {alias}.measurements m ON m.run_id = r.run_id
                    CROSS JOIN {alias}.verdicts v
                         ON v.measurement_id = m.measurement_id AND v.is_current = 1
                    WHERE r.src = ?{cat_sql}
                    GROUP BY r.run_idx, v.verdict, v.method
                    """,
                    [src, *cats],
                ):
                    mix.setdefault(run_idx, {})[(verdict, method)] = n
        self.conn.execute("DROP TABLE temp.bare_runs")
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT INTO rounds (run_idx, net_idx, period, t, state, source) "
            "VALUES (?, ?, ?, ?, ?, 'verdicts')",
            [
                (r.run_idx, r.net_idx, r.period, r.started_at.timestamp(), state_from_verdicts(m))
                for r in missing
                if (m := mix.get(r.run_idx))
            ],
        )
        self.conn.execute("COMMIT")

    # --- details for the few rows a report shows -------------------------------------------

    def details(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], VerdictDetail]:
        """The current verdict of target ``target_idx`` in run ``run_idx``, with evidence,
        measurement time, final page title/Server header and the addresses the measurement
        contacted, for ``(run_idx, target_idx)`` pairs (missing pairs are left out)."""
        wanted = set(keys)
        run_of = {r.run_idx: r for r in self.runs}
        url_of = dict(self.conn.execute("SELECT target_idx, url FROM targets").fetchall())
        by_src: dict[int, list[tuple[int, int]]] = {}
        for run_idx, target_idx in wanted:
            by_src.setdefault(run_of[run_idx].src, []).append((run_idx, target_idx))
        out: dict[tuple[int, int], VerdictDetail] = {}
        for src, pairs in by_src.items():
            with self.attached(src) as alias:
                tables = {
                    r[0]
                    for r in self.conn.execute(
                        f"SELECT name FROM {alias}.sqlite_master WHERE type = 'table'"
                    )
                }
                self.conn.execute("BEGIN")
                self.conn.execute(
                    "CREATE TEMP TABLE wanted (run_idx INTEGER, target_idx INTEGER, "
                    "run_id TEXT, url TEXT)"
                )
                self.conn.executemany(
                    "INSERT INTO temp.wanted VALUES (?, ?, ?, ?)",
                    [(ri, ti, run_of[ri].run_id, url_of[ti]) for ri, ti in pairs],
                )
                base = self.conn.execute(
                    f"""
                    SELECT w.run_idx, w.target_idx, v.verdict, v.method, v.confidence,
                           v.evidence, m.measurement_id, m.started_at
                    FROM temp.wanted w
                    CROSS JOIN {alias}.measurements m ON m.run_id = w.run_id AND +m.url = w.url
                    CROSS JOIN {alias}.verdicts v
                         ON v.measurement_id = m.measurement_id AND v.is_current = 1
                    ORDER BY m.rowid
                    """
                ).fetchall()
                self.conn.execute("DROP TABLE temp.wanted")
                self.conn.execute("COMMIT")
                pages, addrs = self._observations(alias, tables, [b[6] for b in base])
                censors = self._traces(alias, tables, [b[6] for b in base])
            for ri, ti, verdict, method, conf, evidence, mid, started in base:
                title, server = pages.get(mid, (None, None))
                out[(ri, ti)] = VerdictDetail(
                    verdict=verdict,
                    method=method,
                    confidence=float(conf),
                    evidence=evidence or "",
                    measured_at=parse_utc(started),
                    title=title,
                    server=server,
                    addresses=normalise_addresses(addrs.get(mid, ())),
                    censor=censors.get(mid),
                )
        return out

    def _portal_sql(self, alias: str) -> str:
        """Per round (run, second, phase): the most distinct portal checks that got one same
        unexpected answer (probe.classify.health.portal_signature). Databases from before
        schema 11 have no ``unexpected`` column: no round of theirs is captive."""
        columns = {row[1] for row in self.conn.execute(
            f"PRAGMA {alias}.table_info(health_samples)")}
        if "unexpected" not in columns:
            return "SELECT NULL AS run_id, NULL AS sec, NULL AS phase, 0 AS same WHERE 0"
        return (
            "SELECT run_id, sec, phase, max(n) AS same FROM ("
            " SELECT run_id, substr(at, 1, 19) AS sec, phase, count(DISTINCT target) AS n"
            f" FROM {alias}.health_samples"
            " WHERE scope = 'portal' AND failure IS NULL AND unexpected IS NOT NULL"
            " GROUP BY run_id, substr(at, 1, 19), phase, unexpected)"
            " GROUP BY run_id, sec, phase")

    def _traces(self, alias: str, tables: set[str], mids: Sequence[str]) -> dict[str, str]:
        """Per measurement, a note of where its packet-level traces located the censor."""

        if "traces" not in tables:  # databases from before schema 3
            return {}
        found: dict[str, list[dict[str, object]]] = {}
        for chunk in _chunks(list(mids), 500):
            marks = ",".join("?" * len(chunk))
            for mid, kind, result, signature, hop in self.conn.execute(
                f"SELECT measurement_id, kind, result, signature, hop FROM {alias}.traces "
                f"WHERE measurement_id IN ({marks}) ORDER BY trace_id",
                chunk,
            ):
                found.setdefault(mid, []).append(
                    {"kind": kind, "result": result, "signature": signature, "hop": hop})
        return {mid: note for mid, ts in found.items() if (note := trace_note(ts))}

    def _observations(
        self, alias: str, tables: set[str], mids: Sequence[str]
    ) -> tuple[dict[str, tuple[str | None, str | None]], dict[str, list[str]]]:
        pages: dict[str, tuple[str | None, str | None]] = {}
        addrs: dict[str, list[str]] = {}
        for chunk in _chunks(list(mids), 500):
            marks = ",".join("?" * len(chunk))
            if "http_requests" in tables:
                for mid, ip, status, headers, title in self.conn.execute(
                    f"SELECT measurement_id, ip, status, headers, title "
                    f"FROM {alias}.http_requests WHERE measurement_id IN ({marks}) "
                    f"ORDER BY measurement_id, idx",
                    chunk,
                ):
                    addrs.setdefault(mid, []).append(ip)
                    if status is not None:  # the last hop that got an answer wins
                        pages[mid] = (title, _header(headers, "server"))
            for table in ("tcp_connects", "tls_handshakes"):
                if table in tables:
                    for mid, ip in self.conn.execute(
                        f"SELECT measurement_id, ip FROM {alias}.{table} "
                        f"WHERE measurement_id IN ({marks})",
                        chunk,
                    ):
                        addrs.setdefault(mid, []).append(ip)
            if "dns_queries" in tables:
                for mid, resolver, answers in self.conn.execute(
                    f"SELECT measurement_id, resolver, answers FROM {alias}.dns_queries "
                    f"WHERE measurement_id IN ({marks})",
                    chunk,
                ):
                    found = addrs.setdefault(mid, [])
                    found.append(resolver)
                    with contextlib.suppress(ValueError, TypeError, AttributeError):
                        found.extend(str(a.get("value")) for a in json.loads(answers or "[]"))
        return pages, addrs

    # --- facts about the selection -----------------------------------------------------------

    def run_times(self, period: int) -> tuple[dt.datetime | None, dt.datetime | None]:
        starts = [r.started_at for r in self.runs if r.period == period]
        return (min(starts), max(starts)) if starts else (None, None)


def state_from_verdicts(mix: dict[tuple[str, str | None], int]) -> str:
    """A run's network state from its verdicts when it has no health samples: mostly
    ``shutdown`` → the most frequent shutdown method, mostly ``local_outage`` or
    ``captive_portal`` → that, else ``whole``."""
    total = sum(mix.values())
    shut = {m: n for (v, m), n in mix.items() if v == "shutdown"}
    if sum(shut.values()) * 2 > total:
        best = max(sorted(shut, key=str), key=lambda m: shut[m])
        return best if best and best.startswith("shutdown.") else "shutdown.full"
    if mix.get(("inconclusive", "local_outage"), 0) * 2 > total:
        return "local_outage"
    if mix.get(("inconclusive", "captive_portal"), 0) * 2 > total:
        return "captive_portal"
    return "whole"


def _header(headers_json: str | None, name: str) -> str | None:
    try:
        pairs = json.loads(headers_json or "[]")
    except ValueError:
        return None
    for pair in pairs:
        if isinstance(pair, list | tuple) and len(pair) == 2 and str(pair[0]).lower() == name:
            return str(pair[1])
    return None


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _resolve_run(wanted: str, found: dict[str, tuple[int, dict[str, Any]]]) -> str:
    """A run id from a full id, a unique prefix, ``latest`` or ``previous`` (the run before
    the latest on the same network); StorageError."""
    if wanted in ("latest", "previous"):
        ordered = sorted(found, key=lambda rid: (parse_utc(found[rid][1]["started_at"]), rid))
        if not ordered:
            raise StorageError("no runs recorded yet")
        if wanted == "latest":
            return ordered[-1]

        def net(rid: str) -> tuple[Any, Any, Any]:
            row = found[rid][1]
            return row["asn"], row["cc"], row["name"]

        same = [rid for rid in ordered[:-1] if net(rid) == net(ordered[-1])]
        if not same:
            raise StorageError("no previous run on the network of the latest run")
        return same[-1]
    if wanted in found:
        return wanted
    matches = sorted(rid for rid in found if rid.startswith(wanted))
    if not wanted or not matches:
        raise StorageError(f"no run {wanted!r}")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise StorageError(f"run id prefix {wanted!r} is ambiguous: {shown}")
    return matches[0]


def utc_now() -> dt.datetime:
    return dt.datetime.now(UTC)
