"""Tests for probe.store: exact round-trips, migrations, error mapping, verdict history, results."""

from __future__ import annotations

import dataclasses
import re
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from probe.errors import StorageError
from probe.model import (
    Certificate,
    DNSAnswer,
    DNSObservation,
    HTTPObservation,
    Measurement,
    Target,
    TCPObservation,
    TLSObservation,
    Verdict,
    VerdictKind,
)
from probe.store import SCHEMA_VERSION, Store, default_db_path, schema
from probe.store import db as store_db

RESULT_KEYS = {
    "run_id",
    "url",
    "hostname",
    "category",
    "started_at",
    "verdict",
    "method",
    "confidence",
    "evidence",
    "analysis_version",
    "details",
}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

# --- builders -------------------------------------------------------------------------------

TARGET = Target(
    url="https://example.test/",
    hostname="example.test",
    scheme="https",
    port=443,
    path="/",
    category="NEWS",
    source="kz.csv:3",
)

CERT_LEAF = Certificate(
    der=bytes(range(256)) + b"\x00\xff",
    sha256="aa" * 32,
    spki_sha256="bb" * 32,
    subject="CN=example.test",
    issuer="CN=Test CA",
    not_before="2026-01-01T00:00:00Z",
    not_after="2027-01-01T00:00:00Z",
    san=("example.test", "www.example.test"),
)
CERT_CA = Certificate(
    der=b"\x30\x82\x01\x00ca",
    sha256="cc" * 32,
    spki_sha256="dd" * 32,
    subject="CN=Test CA",
    issuer="CN=Test CA",
    not_before="2025-01-01T00:00:00Z",
    not_after="2035-01-01T00:00:00Z",
)


def full_measurement(**changes: Any) -> Measurement:
    """A measurement with every observation kind and the awkward values (None, b"", dups)."""
    m = Measurement(
        target=TARGET,
        started_at="2026-11-21T10:15:00.123456Z",
        finished_at="2026-11-21T10:15:03.000001Z",
        dns=(
            DNSObservation(1, "example.test", "A", "system", "system", 0.0, 0.01, None,
                           answers=(DNSAnswer("A", "93.184.216.34"),)),
            DNSObservation(2, "example.test", "A", "udp", "8.8.8.8:53", 0.0, 0.02, None,
                           rcode="NOERROR",
                           answers=(DNSAnswer("CNAME", "edge.example.test", 30),
                                    DNSAnswer("A", "10.10.34.35", 0)),
                           response_index=0),
            DNSObservation(2, "example.test", "A", "udp", "8.8.8.8:53", 0.0, 0.05, None,
                           rcode="NOERROR", answers=(DNSAnswer("A", "93.184.216.34", 300),),
                           response_index=1),
            DNSObservation(3, "example.test", "AAAA", "udp", "8.8.8.8:53", 0.0, 5.0,
                           "generic_timeout_error"),
        ),
        tcp=(
            TCPObservation(10, "93.184.216.34", 443, 0.1, 0.2, None),
            TCPObservation(11, "2001:db8::1", 443, 0.1, 0.1001, "network_unreachable"),
        ),
        tls=(
            TLSObservation(10, "93.184.216.34", 443, "example.test", 0.2, 0.4, None,
                           tls_version="TLSv1.3", cipher_suite="TLS_AES_128_GCM_SHA256",
                           alpn="h2", certificates=(CERT_LEAF, CERT_CA), verified=False,
                           verify_error="ssl_unknown_authority"),
            TLSObservation(12, "93.184.216.35", 443, "example.test", 0.2, 10.2,
                           "generic_timeout_error"),
            TLSObservation(13, "93.184.216.36", 443, "example.test", 0.2, 0.3, None,
                           certificates=(CERT_LEAF,), verified=True),
        ),
        http=(
            HTTPObservation(10, "https://example.test/", "GET", "93.184.216.34", 443, 0.4, 0.5,
                            None, redirect_index=0,
                            request_headers=(("Host", "example.test"), ("Accept", "*/*")),
                            status=301,
                            headers=(("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                     ("Location", "https://www.example.test/")),
                            body=b"", body_length=0, body_sha256="e3" * 32,
                            location="https://www.example.test/"),
            HTTPObservation(14, "https://www.example.test/", "GET", None, 443, 0.5, 0.9, None,
                            redirect_index=1, status=200,
                            headers=(("Content-Type", "text/html; charset=utf-8"),),
                            body="<title>Пример</title>\x00".encode(), body_length=999999,
                            body_sha256="ff" * 32, body_truncated=True, title="Пример"),
            HTTPObservation(15, "https://www.example.test/", "GET", "93.184.216.36", 443, 0.9,
                            1.0, "connection_reset", redirect_index=1),
        ),
        control=({"dns": {"addrs": ["93.184.216.34"], "failure": None}, "n": 1.5},
                 {"http_request": {"status_code": 200}}),
        extra={"note": "ünïcode", "list": [1, 2, {"x": None}], "flag": True},
    )
    return dataclasses.replace(m, **changes)


def verdict(kind: VerdictKind = VerdictKind.OK, method: str | None = None,
            version: str = "0.1.0", **details: Any) -> Verdict:
    return Verdict(kind, method, 0.9 if kind == VerdictKind.OK else 0.3,
                   f"{kind.value} {method}", version, details=dict(details))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "probe.db")
    yield s
    s.close()


def make_probe_db(path: Path) -> None:
    with Store.open(path) as s:
        s.start_run({}, 1)


# --- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "m",
    [
        pytest.param(full_measurement(), id="every-observation-kind"),
        pytest.param(full_measurement(dns=(), tcp=(), tls=(), http=(), control=(), extra={}),
                     id="no-observations"),
        pytest.param(full_measurement(target=Target("http://1.2.3.4:8080/x?y=1", "1.2.3.4",
                                                    "http", 8080, "/x?y=1")),
                     id="target-without-category-or-source"),
        pytest.param(full_measurement(http=(
            HTTPObservation(1, "http://a.test/", "GET", "1.2.3.4", 80, 0.0, 1.0, None,
                            status=204, body=None),
            HTTPObservation(2, "http://a.test/", "GET", "1.2.3.4", 80, 0.0, 1.0, None,
                            status=200, body=b"", headers=()),
        )), id="body-none-vs-empty"),
        pytest.param(full_measurement(tls=(
            TLSObservation(1, "1.2.3.4", 443, "a.test", 0.0, 0.1, None, verified=None),
            TLSObservation(2, "1.2.3.4", 443, "a.test", 0.0, 0.1, None, verified=False,
                           certificates=(CERT_CA,)),
            TLSObservation(3, "1.2.3.4", 443, "a.test", 0.0, 0.1, None, verified=True,
                           certificates=(CERT_LEAF, CERT_CA, CERT_LEAF)),
        )), id="verified-none-false-true"),
    ],
)
def test_measurement_round_trips_exactly(store: Store, m: Measurement) -> None:
    run_id = store.start_run({"timeout": 10.0, "resolvers": ["8.8.8.8:53"]}, 1, "9.9.9")
    mid = store.save_measurement(run_id, m, verdict())
    [(got_id, got)] = list(store.iter_measurements(run_id))
    assert got_id == mid
    assert got == m
    for a, b in zip(got.http, m.http, strict=True):
        assert type(a.body) is type(b.body)
        assert isinstance(a.headers, tuple) and all(isinstance(p, tuple) for p in a.headers)


def test_iter_measurements_orders_and_filters_by_run(store: Store) -> None:
    run_a = store.start_run({}, 3)
    run_b = store.start_run({}, 1)
    saved = []
    for i in range(3):
        m = full_measurement(target=dataclasses.replace(TARGET, url=f"https://a{i}.test/"))
        saved.append((store.save_measurement(run_a, m, None), m))
    other = full_measurement(tcp=())
    saved_b = (store.save_measurement(run_b, other, None), other)
    assert list(store.iter_measurements(run_a)) == saved
    assert list(store.iter_measurements(run_b)) == [saved_b]
    assert list(store.iter_measurements()) == saved + [saved_b]
    assert store.measured_urls(run_a) == {f"https://a{i}.test/" for i in range(3)}


def test_iter_measurements_pages_and_allows_writes_while_iterating(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_db, "_PAGE", 2)
    run_id = store.start_run({}, 5)
    ids = [store.save_measurement(run_id, full_measurement(), verdict()) for _ in range(5)]
    seen = []
    for mid, _m in store.iter_measurements(run_id):
        store.save_verdict(mid, verdict(VerdictKind.INCONCLUSIVE, "tcp.timeout", "0.2.0"))
        seen.append(mid)
    assert seen == ids
    assert {r["analysis_version"] for r in store.results(run_id)} == {"0.2.0"}


# --- ids, runs ------------------------------------------------------------------------------


def test_ids_are_unique_and_sortable(store: Store) -> None:
    run_ids = [store.start_run({}, 0) for _ in range(20)]
    assert len(set(run_ids)) == 20
    assert all(re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", r) for r in run_ids)
    assert store.run_ids() == sorted(run_ids)
    mid = store.save_measurement(run_ids[0], full_measurement(), None)
    assert re.fullmatch(r"20261121T101500Z-[0-9a-f]{16}", mid)


def test_run_lifecycle(store: Store) -> None:
    assert store.latest_run_id() is None
    run_id = store.start_run({"concurrency": 4, "odd": object}, 7, "1.2.3")
    run = store.get_run(run_id)
    assert run["status"] == "running" and run["finished_at"] is None
    assert run["settings"]["concurrency"] == 4 and isinstance(run["settings"]["odd"], str)
    assert (run["targets_total"], run["probe_version"], run["measured"]) == (7, "1.2.3", 0)
    assert run["probe_asn"] is None and run["probe_cc"] is None
    store.save_measurement(run_id, full_measurement(), None)
    store.set_run_network(run_id, probe_asn=9198, probe_cc="KZ", network_name="JSC Kazakhtelecom")
    store.finish_run(run_id, "completed")
    run = store.get_run("latest")
    assert run["status"] == "completed" and ISO_UTC.match(run["finished_at"])
    assert (run["probe_asn"], run["probe_cc"], run["measured"]) == (9198, "KZ", 1)
    with pytest.raises(ValueError):
        store.finish_run(run_id, "running")


def test_mark_stale_runs_interrupted(store: Store) -> None:
    crashed = store.start_run({}, 2)
    store.save_measurement(crashed, full_measurement(), None)
    done = store.start_run({}, 1)
    store.finish_run(done, "completed")
    assert store.mark_stale_runs_interrupted(idle_for=3600) == []  # everything is fresh
    assert store.mark_stale_runs_interrupted() == [crashed]
    run = store.get_run(crashed)
    assert run["status"] == "interrupted" and run["finished_at"] == run["last_seen_at"]
    assert store.get_run(done)["status"] == "completed"
    assert store.mark_stale_runs_interrupted() == []


def test_save_measurement_to_unknown_run_writes_nothing(store: Store) -> None:
    with pytest.raises(StorageError, match="no run"):
        store.save_measurement("nope", full_measurement(), verdict())
    assert store.db.execute("SELECT count(*) FROM measurements").fetchone()[0] == 0


def test_store_is_usable_from_another_thread(store: Store) -> None:
    run_id = store.start_run({}, 1)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            store.save_measurement(run_id, full_measurement(), verdict())
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors == [] and len(store.results(run_id)) == 1


def test_closed_store_raises_storage_error(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "p.db")
    s.close()
    s.close()
    with pytest.raises(StorageError, match="closed"):
        s.run_ids()


# --- verdicts and results -------------------------------------------------------------------


def test_reanalysis_keeps_old_verdicts_and_marks_newest_current(store: Store) -> None:
    run_id = store.start_run({}, 1)
    first = verdict(VerdictKind.INCONCLUSIVE, "tcp.timeout", "0.1.0", step="tcp")
    mid = store.save_measurement(run_id, full_measurement(), first)
    second = verdict(VerdictKind.BLOCKED, "tcp.timeout", "0.2.0", control="ok")
    third = verdict(VerdictKind.BLOCKED, "tcp.timeout", "0.3.0")
    store.save_verdict(mid, second)
    store.save_verdict(mid, third)
    assert store.current_verdict(mid) == third
    assert store.verdict_history(mid) == [first, second, third]
    rows = store.db.execute(
        "SELECT analysis_version, is_current FROM verdicts WHERE measurement_id = ? "
        "ORDER BY verdict_id", [mid]).fetchall()
    assert rows == [("0.1.0", 0), ("0.2.0", 0), ("0.3.0", 1)]
    [row] = store.results(run_id)
    assert (row["verdict"], row["analysis_version"]) == ("blocked", "0.3.0")
    with pytest.raises(StorageError, match="no measurement"):
        store.save_verdict("missing", third)


def test_database_refuses_two_current_verdicts(store: Store) -> None:
    run_id = store.start_run({}, 1)
    mid = store.save_measurement(run_id, full_measurement(), verdict())
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute(
            "INSERT INTO verdicts (measurement_id, verdict, confidence, evidence, "
            "analysis_version, created_at, is_current) VALUES (?, 'ok', 1, '', 'x', 'x', 1)",
            [mid])


def test_results_contract(store: Store) -> None:
    run_id = store.start_run({}, 2)
    v = verdict(VerdictKind.INCONCLUSIVE, "dns.nxdomain", step="dns", resolver="system")
    store.save_measurement(run_id, full_measurement(), v)
    no_verdict = full_measurement(target=dataclasses.replace(TARGET, url="https://b.test/",
                                                             hostname="b.test", category=None),
                                  started_at="2026-11-21T10:16:00.000000Z")
    store.save_measurement(run_id, no_verdict, None)
    rows = store.results()
    assert [r["url"] for r in rows] == ["https://example.test/", "https://b.test/"]
    first, second = rows
    assert RESULT_KEYS <= set(first)
    assert first["run_id"] == run_id and ISO_UTC.match(first["started_at"])
    assert (first["verdict"], first["method"], first["confidence"]) == (
        "inconclusive", "dns.nxdomain", 0.3)
    assert first["evidence"] == v.evidence and first["analysis_version"] == "0.1.0"
    assert first["details"] == {"step": "dns", "resolver": "system"}
    assert first["category"] == "NEWS" and second["category"] is None
    assert second["verdict"] is None and second["details"] == {}


@pytest.mark.parametrize(
    ("run", "error"),
    [("latest", None), ("<full>", None), ("<prefix>", None), ("2026", "ambiguous"),
     ("19990101T000000Z-00000000", "no run"), ("", "no run")],
)
def test_results_run_selection(store: Store, run: str, error: str | None) -> None:
    old = store.start_run({}, 1)
    new = store.start_run({}, 1)
    store.save_measurement(new, full_measurement(), verdict())
    assert old != new
    run = {"<full>": new, "<prefix>": new[:-2]}.get(run, run)
    if error:
        with pytest.raises(StorageError, match=error):
            store.results(run)
    else:
        assert [r["run_id"] for r in store.results(run)] == [new]


def test_results_of_an_empty_database(store: Store) -> None:
    with pytest.raises(StorageError, match="no runs"):
        store.results()


# --- opening, migrations ------------------------------------------------------------------


def table_columns(db: sqlite_utils.Database) -> dict[str, list[str]]:
    return {t.name: [c.name for c in t.columns] for t in db.tables}


V1_TABLES = {
    "schema_migrations": ["version", "name", "applied_at"],
    "runs": ["run_id", "started_at", "finished_at", "last_seen_at", "probe_version", "settings",
             "status", "targets_total", "probe_asn", "probe_cc", "network_name"],
    "measurements": ["measurement_id", "run_id", "url", "hostname", "scheme", "port", "path",
                     "category", "source", "started_at", "finished_at", "extra"],
    "dns_queries": ["measurement_id", "idx", "tx_id", "hostname", "query_type", "engine",
                    "resolver", "t0", "t", "failure", "rcode", "answers", "response_index"],
    "tcp_connects": ["measurement_id", "idx", "tx_id", "ip", "port", "t0", "t", "failure"],
    "tls_handshakes": ["measurement_id", "idx", "tx_id", "ip", "port", "server_name", "t0", "t",
                       "failure", "tls_version", "cipher_suite", "alpn", "verified",
                       "verify_error"],
    "certificates": ["measurement_id", "tls_idx", "tx_id", "position", "der", "sha256",
                     "spki_sha256", "subject", "issuer", "not_before", "not_after", "san"],
    "http_requests": ["measurement_id", "idx", "tx_id", "url", "method", "ip", "port", "t0", "t",
                      "failure", "redirect_index", "request_headers", "status", "headers",
                      "body", "body_length", "body_sha256", "body_truncated", "title",
                      "location"],
    "controls": ["measurement_id", "idx", "data"],
    "verdicts": ["verdict_id", "measurement_id", "verdict", "method", "confidence", "evidence",
                 "details", "analysis_version", "created_at", "is_current"],
}


def test_v1_schema_is_frozen(tmp_path: Path) -> None:
    """A released migration must never change: analysts' queries and old files rely on it."""
    db = sqlite_utils.Database(tmp_path / "v1.db")
    schema.migrate(db, schema.MIGRATIONS[:1])
    cols = table_columns(db)
    cols.pop("sqlite_sequence", None)
    assert cols == V1_TABLES


@pytest.mark.parametrize("existing", [None, b""], ids=["no-file", "empty-file"])
def test_open_creates_current_schema(tmp_path: Path, existing: bytes | None) -> None:
    path = tmp_path / "deep" / "er" / "probe.db"
    if existing is not None:
        path.parent.mkdir(parents=True)
        path.write_bytes(existing)
    with Store.open(path) as s:
        assert schema.current_version(s.db) == SCHEMA_VERSION
        assert s.db.journal_mode == "wal"
        assert s.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert s.db.execute("PRAGMA busy_timeout").fetchone()[0] == 10000
        assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        versions = s.db.execute("SELECT version FROM schema_migrations").fetchall()
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    with Store.open(path) as s:  # reopening is a no-op
        assert schema.current_version(s.db) == SCHEMA_VERSION


def test_open_upgrades_a_version_1_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    assert schema.migrate(old, schema.MIGRATIONS[:1]) == (0, 1)
    old.close()
    with Store.open(path) as s:  # version 1 → whatever this code knows
        assert schema.current_version(s.db) == SCHEMA_VERSION
        run_id = s.start_run({}, 1)
        mid = s.save_measurement(run_id, full_measurement(), verdict())

    def v2(db: sqlite_utils.Database) -> None:
        db.execute("ALTER TABLE measurements ADD COLUMN asn INTEGER")

    later = (*schema.MIGRATIONS, schema.Migration(len(schema.MIGRATIONS) + 1, "asn", v2))
    monkeypatch.setattr(schema, "MIGRATIONS", later)
    with Store.open(path) as s:
        assert schema.current_version(s.db) == len(later)
        assert "asn" in table_columns(s.db)["measurements"]
        assert list(s.iter_measurements()) == [(mid, full_measurement())]


def test_failed_migration_leaves_database_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.db"
    make_probe_db(path)

    def broken(db: sqlite_utils.Database) -> None:
        db.execute("CREATE TABLE half_done (x)")
        db.execute("THIS IS NOT SQL")

    later = (*schema.MIGRATIONS, schema.Migration(len(schema.MIGRATIONS) + 1, "broken", broken))
    monkeypatch.setattr(schema, "MIGRATIONS", later)
    with pytest.raises(StorageError, match=re.escape(str(path))):
        Store.open(path)
    monkeypatch.undo()
    with Store.open(path) as s:
        assert schema.current_version(s.db) == SCHEMA_VERSION
        assert "half_done" not in s.db.table_names()
        assert len(s.run_ids()) == 1


def test_open_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    make_probe_db(path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations VALUES (?, 'future', 'x')", [SCHEMA_VERSION + 5])
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StorageError, match=r"newer than this probe supports") as e:
        Store.open(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert path.read_bytes() == before


def test_open_refuses_a_foreign_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "places.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE moz_places (url TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StorageError, match="not a probe database"):
        Store.open(path)
    assert path.read_bytes() == before


def test_open_refuses_a_non_database_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    content = b"this is not a database, just some text\n" * 200
    path.write_bytes(content)
    with pytest.raises(StorageError, match=re.escape(f"{path}: file is not a database")):
        Store.open(path)
    assert path.read_bytes() == content


@pytest.mark.parametrize(
    "path", ["/proc/probe-test/probe.db", "/proc/version/probe.db"], ids=["in-proc", "under-file"]
)
def test_open_in_an_uncreatable_location(path: str) -> None:
    with pytest.raises(StorageError, match=re.escape(path)) as e:
        Store.open(path)
    assert "\n" not in str(e.value)


@pytest.fixture
def immutable() -> Iterator[Any]:
    """Make files immutable with chattr +i: the one read-only that root cannot write through."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr not available")
    paths: list[Path] = []

    def make(path: Path) -> None:
        r = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if r.returncode != 0:
            pytest.skip(f"chattr +i unsupported here: {r.stderr.decode().strip()}")
        paths.append(path)

    yield make
    for p in paths:
        subprocess.run(["chattr", "-i", str(p)], check=False)


def test_read_only_database_file(tmp_path: Path, immutable: Any) -> None:
    path = tmp_path / "ro.db"
    make_probe_db(path)
    before = path.read_bytes()
    immutable(path)
    with pytest.raises(StorageError, match=re.escape(str(path))) as e:
        with Store.open(path) as s:
            s.start_run({}, 1)
    assert "readonly" in str(e.value) or "read-only" in str(e.value)
    assert path.read_bytes() == before


def test_read_only_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same as above without chattr: force SQLite's own read-only mode (``mode=ro``)."""
    path = tmp_path / "ro.db"
    make_probe_db(path)
    real_connect = sqlite3.connect

    def connect_ro(database: str, **kw: Any) -> sqlite3.Connection:
        return real_connect(f"file:{database}?mode=ro", uri=True, **kw)

    monkeypatch.setattr(store_db.sqlite3, "connect", connect_ro)
    with Store.open(path) as s:
        with pytest.raises(StorageError, match=re.escape(f"{path}: attempt to write a readonly")):
            s.start_run({}, 1)
        assert len(s.run_ids()) == 1  # still readable


def test_disk_full_rolls_back_the_whole_measurement(store: Store) -> None:
    run_id = store.start_run({}, 2)
    kept = store.save_measurement(run_id, full_measurement(), verdict())
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    big = full_measurement(http=(HTTPObservation(1, "https://example.test/", "GET", "1.2.3.4",
                                                 443, 0.0, 1.0, None, status=200,
                                                 body=b"x" * 1_000_000),))
    with pytest.raises(StorageError, match=re.escape(f"{store.path}: database or disk is full")):
        store.save_measurement(run_id, big, verdict())
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for table in ("measurements", "dns_queries", "tcp_connects", "tls_handshakes",
                  "certificates", "http_requests", "controls", "verdicts"):
        ids = {r[0] for r in store.db.execute(f"SELECT DISTINCT measurement_id FROM {table}")}
        assert ids == {kept}, table
    assert [mid for mid, _ in store.iter_measurements()] == [kept]


# --- default path ---------------------------------------------------------------------------


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROBE_DB", str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"
    monkeypatch.delenv("PROBE_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_db_path() == tmp_path / "data" / "probe" / "probe.db"


def test_health_samples_round_trip(store: Store) -> None:
    from probe.model import HealthSample, HealthScope

    run = store.start_run({}, 0)
    samples = [
        HealthSample(at="2022-01-05T10:30:00.000000Z", phase="before", scope=HealthScope.GATEWAY,
                     target="auto", elapsed=0.01, failure=None),
        HealthSample(at="2022-01-05T10:30:00.000000Z", phase="before",
                     scope=HealthScope.INTERNATIONAL, target="https://a.example/", elapsed=3.0,
                     failure="generic_timeout_error"),
    ]
    store.save_health(run, samples)
    store.save_health(run, [])
    assert store.health_samples(run) == samples
    portal = [HealthSample(at="2022-01-05T10:31:00.000000Z", phase="during",
                           scope=HealthScope.PORTAL,
                           target="http://captive.apple.com/hotspot-detect.html", elapsed=0.02,
                           failure=None, unexpected="302 portal.isp.test")]
    store.save_health(run, portal)
    assert store.health_samples(run) == samples + portal


def test_portal_migration_keeps_older_health_samples(tmp_path: Path) -> None:
    """The migration that rebuilds health_samples (the 'portal' scope, ``unexpected``) keeps
    every older row, in order, with ``unexpected`` NULL."""
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    mine = next(i for i, m in enumerate(schema.MIGRATIONS) if "captive" in m.name)
    schema.migrate(old, schema.MIGRATIONS[:mine])
    old.execute("INSERT INTO runs (run_id, started_at, last_seen_at, probe_version, status, "
                "targets_total) VALUES ('r', 'x', 'x', '0', 'completed', 0)")
    rows = [("r", f"2022-01-05T10:30:0{i}.000000Z", "before", scope, f"t{i}", 0.5, failure)
            for i, (scope, failure) in enumerate([("gateway", None), ("control", "eof_error")])]
    old.conn.executemany("INSERT INTO health_samples VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    old.conn.commit()
    old.close()
    with Store.open(path) as s:
        got = s.db.execute("SELECT run_id, at, phase, scope, target, elapsed, failure, "
                           "unexpected FROM health_samples ORDER BY rowid").fetchall()
        assert got == [(*r, None) for r in rows]
        assert [r.scope.value for r in s.health_samples("r")] == ["gateway", "control"]
        indexes = {r[0] for r in s.db.execute(
            "SELECT name FROM sqlite_master WHERE tbl_name = 'health_samples' AND type = 'index'")}
        assert "health_samples_run_at" in indexes


def test_results_show_a_target_measured_again_by_its_latest_measurement(tmp_path: Path) -> None:
    from probe.model import Measurement, Verdict, VerdictKind
    from tests.factories import listed_target

    first = Measurement(listed_target("https://a.test/"), "2026-01-01T00:00:00Z",
                        "2026-01-01T00:00:01Z")
    again = dataclasses.replace(first, started_at="2026-01-01T00:02:00Z",
                                finished_at="2026-01-01T00:02:01Z",
                                extra={"residual": {"after": "cool-down"}})
    other = Measurement(listed_target("https://b.test/"), "2026-01-01T00:00:00Z",
                        "2026-01-01T00:00:01Z")
    cut = Verdict(VerdictKind.SHUTDOWN, "shutdown.full", 0.9, "cut", "1.2.0")
    fine = Verdict(VerdictKind.OK, None, 0.95, "fine", "1.2.0")
    with Store.open(tmp_path / "r.db") as store:
        run = store.start_run({}, 2)
        kept = store.save_measurement(run, first, cut)
        latest = store.save_measurement(run, again, fine)
        store.save_measurement(run, other, fine)
        rows = store.results(run)
        assert [(r["url"], r["verdict"]) for r in rows] == [
            ("https://b.test/", "ok"), ("https://a.test/", "ok")]
        assert {r["measurement_id"] for r in rows} >= {latest}
        assert store.current_verdict(kept) == cut  # the first attempt stays, as history
