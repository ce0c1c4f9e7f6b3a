"""The store as the one owner of the schema: its read-only opener, its row builders, and that no
module outside ``probe/store/`` opens a probe database itself."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from probe.errors import StorageError
from probe.model import HealthSample, HealthScope, Provenance
from probe.store import Store, readonly, rows, schema
from tests.factories import measurement_naming, trace_naming, verdict_naming

PROBE = Path(__file__).resolve().parents[2] / "probe"


def _newer(path: Path) -> Path:
    Store.open(path).close()
    con = sqlite3.connect(path)
    con.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'now')")
    con.commit()
    con.close()
    return path


def _file(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


def _foreign(tmp: Path) -> Path:
    p = tmp / "foreign.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE x (a)")
    con.commit()
    con.close()
    return p


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: t / "missing.db", "no such file"),
        (lambda t: _file(t, "junk.db", b"not sqlite at all" * 100), "file is not a database"),
        (lambda t: _file(t, "empty.db", b""), "not a probe database (it is empty)"),
        (_foreign, "not a probe database (it has other tables: x)"),
        (lambda t: _newer(t / "newer.db"), "newer than this probe supports"),
    ],
    ids=["missing", "not sqlite", "empty", "foreign", "newer"],
)
def test_the_read_only_opener_refuses_with_one_line_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    before = path.read_bytes() if path.exists() else None
    for opener in (readonly.connect_readonly, Store.open_readonly):
        with pytest.raises(StorageError) as e:
            opener(path)
        text = str(e.value)
        assert "\n" not in text and str(path) in text and message in text, text
    assert (path.read_bytes() if path.exists() else None) == before  # nothing written


def test_the_read_only_opener_reads_while_nothing_is_written(tmp_path):
    db = tmp_path / "p.db"
    with Store.open(db) as store:
        run = store.start_run({}, 1)
        me = "192.0.2.7"
        store.save_measurement(run, measurement_naming(me), verdict_naming(me))
    stamp = db.stat().st_mtime_ns
    with Store.open_readonly(db) as store:
        assert store.results()[0]["verdict"] == "blocked"
        assert store.readonly and store.run_ids() == [run]
    assert db.stat().st_mtime_ns == stamp


def test_attached_sources_map_errors_to_storage_error(tmp_path):
    conn = readonly.scratch_database()
    try:
        with pytest.raises(StorageError, match=r"cannot read database .*p\.db: no such table"):
            db = tmp_path / "p.db"
            Store.open(db).close()
            with readonly.attached(conn, db, "s0") as alias:
                conn.execute(f"SELECT * FROM {alias}.nope")
        # detached again: the alias can be reused
        with readonly.attached(conn, db, "s0") as alias:
            assert conn.execute(f"SELECT count(*) FROM {alias}.runs").fetchone() == (0,)
    finally:
        conn.close()


# --- row builders ----------------------------------------------------------------------------


def _built() -> dict[str, list[rows.Row]]:
    m = measurement_naming("192.0.2.7")
    sample = HealthSample(at="t", phase="before", scope=HealthScope.GATEWAY, target="gw",
                          elapsed=0.1, failure=None)
    return {
        "runs": [rows.run_row("r", "t", "v", {}, 1)],
        "measurements": [rows.measurement_row("m", "r", m)],
        "dns_queries": rows.dns_rows("m", m),
        "tcp_connects": rows.tcp_rows("m", m),
        "tls_handshakes": rows.tls_rows("m", m),
        "certificates": rows.certificate_rows("m", m),
        "http_requests": rows.http_rows("m", m),
        "controls": rows.control_rows("m", m),
        "quic_handshakes": rows.quic_rows("m", m),
        "verdicts": [rows.verdict_row("m", verdict_naming("192.0.2.7"), "t")],
        "health_samples": [rows.health_row("r", sample)],
        "traces": [rows.trace_row(trace_naming("192.0.2.7"), "u", "m", "r")],
        "imports": [rows.import_row("m", PROVENANCE, "t")],
        "run_leases": [rows.lease_row("r", "o", 1, "h", "b", "t", "t")],
    }


PROVENANCE = Provenance(
    source="ooni", origin="a.jsonl:3", dedup_key="uid-1", test_name="web_connectivity",
    report_id="20220107T000000Z_webconnectivity_IL_1_n1_x", measurement_uid="uid-1",
    probe_asn=1, probe_cc="IL", ooni_blocking="dns", ooni_accessible=False, ooni_flags=None,
    missing=("innocuous_sni_retry", "canaries"))


def test_an_import_row_round_trips() -> None:
    row = rows.import_row("m", PROVENANCE, "t")
    assert rows.import_from_row(row) == PROVENANCE
    absent = Provenance(source="ooni", origin="-:1", dedup_key="k", test_name="tor")
    assert rows.import_from_row(rows.import_row("m", absent, "t")) == absent


@pytest.mark.parametrize("table", sorted(_built()))
def test_every_builder_fills_every_column_of_its_table_in_schema_order(table):
    expected = [c.name for c in schema.columns(table) if not c.assigned]
    for row in _built()[table]:
        assert list(row) == expected


def test_every_table_but_the_migrations_has_a_builder():
    # the upload queue and the collector's enrolment/provenance tables hold no record
    # (probe/store/outbox.py, probe/collector/storage.py)
    assert set(schema.tables()) - set(_built()) == {
        "schema_migrations", "outbox", "collector_probes", "collector_received"}


def test_new_row_fills_defaults_and_refuses_unknown_or_missing_columns():
    row = rows.new_row("controls", measurement_id="m", idx=0, data="{}")
    assert row == {"measurement_id": "m", "idx": 0, "data": "{}"}
    assert rows.new_row("verdicts", measurement_id="m", verdict="ok", confidence=1.0,
                        evidence="", analysis_version="v", created_at="t")["details"] == "{}"
    with pytest.raises(ValueError, match="no column nope"):
        rows.new_row("controls", measurement_id="m", idx=0, data="{}", nope=1)
    with pytest.raises(ValueError, match="column data is required"):
        rows.new_row("controls", measurement_id="m", idx=0)


def test_bulk_rows_round_trip_through_the_store(tmp_path):
    db = tmp_path / "p.db"
    built = _built()
    with Store.open(db) as store:
        counts = store.insert_rows([built], durable=False)
        assert counts == {t: len(r) for t, r in built.items() if r}
        (mid, m), = store.iter_measurements("r")
        assert mid == "m" and m.target.url == "https://site.example/"


# --- one owner --------------------------------------------------------------------------------


def test_only_the_store_opens_a_probe_database():
    pattern = re.compile(r"sqlite3\.connect\(|sqlite_utils\.Database\(")
    offenders = [
        str(p.relative_to(PROBE.parent)) for p in PROBE.rglob("*.py")
        if p.parent.name != "store" and pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_an_imported_measurement_is_stored_once_with_its_provenance(tmp_path) -> None:
    from probe.model import Measurement
    from tests.factories import listed_target

    m = Measurement(listed_target("https://a.test/"), "2022-01-07T22:24:58Z",
                    "2022-01-07T22:25:01Z")
    with Store.open(tmp_path / "i.db") as store:
        run = store.start_run({"source": "ooni"}, 0)
        first = store.save_import(run, m, None, PROVENANCE)
        assert first is not None and store.save_import(run, m, None, PROVENANCE) is None
        assert store.provenance(first) == PROVENANCE
        assert [mid for mid, _ in store.iter_measurements()] == [first]
        own = store.save_measurement(run, m, None)
        assert store.provenance(own) is None
