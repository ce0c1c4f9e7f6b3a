"""The bulk row builders (probe.store.bulk) make exactly the rows of probe.store.rows — every
column of every table, for every measurement of the real corpus — and save_imports scrubs the
volunteer's addresses like every other write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probe.classify import classify
from probe.ingest.mapper import map_document
from probe.model import Verdict, VerdictKind
from probe.store import Store, bulk, rows
from probe.store.privacy import PLACEHOLDER
from tests.factories import every_stored_value

CORPUS = sorted((Path(__file__).parent.parent / "data" / "ooni").glob("*.json"))
AT = "2026-01-01T00:00:00.000000Z"


def _expected(mid: str, run_id: str, mapped, verdict: Verdict):  # type: ignore[no-untyped-def]
    m, p = mapped.measurement, mapped.provenance
    return {
        "measurements": [rows.measurement_row(mid, run_id, m)],
        "dns_queries": rows.dns_rows(mid, m),
        "tcp_connects": rows.tcp_rows(mid, m),
        "tls_handshakes": rows.tls_rows(mid, m),
        "certificates": rows.certificate_rows(mid, m),
        "http_requests": rows.http_rows(mid, m),
        "controls": rows.control_rows(mid, m),
        "verdicts": [rows.verdict_row(mid, verdict, AT)],
        "imports": [rows.import_row(mid, p, AT)],
    }


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_the_tuples_are_the_rows_of_the_row_builders(path: Path) -> None:
    mapped = map_document(json.loads(path.read_text()), f"{path.name}:1")
    verdict = classify(mapped.measurement)
    found = bulk.measurement_rows("M", "R", mapped.measurement, verdict, mapped.provenance, AT)
    expected = _expected("M", "R", mapped, verdict)
    assert len(found) == len(bulk.TABLES)
    for table, tuples in zip(bulk.TABLES, found, strict=True):
        dicts = expected[table]
        assert [tuple(d) for d in dicts] == [bulk.COLUMNS[table]] * len(dicts), table
        assert tuples == [tuple(d.values()) for d in dicts], table


def test_a_run_tuple_is_the_run_row() -> None:
    settings = {"source": "ooni", "report_id": "r"}
    d = rows.run_row("R", AT, "1.0", settings, 0, status="completed", finished_at=AT,
                     probe_asn=9198, probe_cc="KZ", network_name="KazakhTelecom")
    t = bulk.run_row("R", AT, "1.0", settings, 0, status="completed", finished_at=AT,
                     probe_asn=9198, probe_cc="KZ", network_name="KazakhTelecom")
    assert tuple(d) == bulk.COLUMNS["runs"]
    assert t == tuple(d.values())


@pytest.mark.parametrize("own", ["192.0.2.77", "2001:db8:77::5"])
def test_saved_imports_hold_no_own_address(tmp_path: Path, own: str) -> None:
    path = next(p for p in CORPUS if "web_connectivity" in p.read_text())
    doc = json.loads(path.read_text())
    doc["test_keys"]["requests"][0]["response"]["body"] = f"<p>you are {own}</p>"
    mapped = map_document(doc, "x:1")
    v = Verdict(VerdictKind.INCONCLUSIVE, "x", 0.5, f"seen from {own}", "test")
    tables = bulk.measurement_rows("M", "R", mapped.measurement, v, mapped.provenance, AT)
    items = [(mapped.provenance.dedup_key, "R", tables)]
    run = bulk.run_row("R", AT, "1.0", {"note": own}, 0, status="completed",
                       finished_at=AT, probe_asn=None, probe_cc=None, network_name=None)
    db = tmp_path / "x.db"
    with Store.open(db, own_addresses=[own]) as store:
        assert bulk.save_imports(store, [run], items) == [True]
        assert bulk.save_imports(store, [run], items) == [False]
    values = [v for _, _, v in every_stored_value(db)]
    text = " ".join(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values)
    assert own not in text
    assert PLACEHOLDER in text
