"""What the import's throughput work relies on still holds: the bulk JSON encoder writes the
texts of probe.store.rows.to_json, the chunk's scrub check (one check per distinct long value)
still finds an address wherever it is, and the outbox trigger queues our own measurements but
not imported ones (docs/import.md "Performance")."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from probe.ingest.mapper import map_document
from probe.model import Verdict, VerdictKind
from probe.store import Store, bulk, rows
from probe.store.privacy import PLACEHOLDER, Scrubber
from tests.factories import every_stored_value

CORPUS = Path(__file__).parent.parent / "data" / "ooni"
AT = "2026-01-01T00:00:00.000000Z"
OWN = "192.0.2.77"


class _NotJSON:
    def __str__(self) -> str:
        return "not-json"


@pytest.mark.parametrize("value", [
    [], {}, None, "plain", "Ünïcode ✓ \u2028", [["Content-Type", "text/html"]],
    {"a": 1.5, "b": [1, 2, None], "c": {"d": True}}, {"x": _NotJSON()}, 1e16, [float("nan")],
    {1: "int key"},
])
def test_the_bulk_encoder_writes_what_to_json_writes(value: object) -> None:
    assert bulk._json(value) == rows.to_json(value)


EVERY_CODE_POINT = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


@pytest.mark.parametrize("value", [
    (), (("Content-Type", "text/html"), ("X-A", 'q"uo\\te\n\t\x00\x1f\x7f\u2028é✓')),
    ((EVERY_CODE_POINT, EVERY_CODE_POINT[::-1]),), ("a.test", "*.b.test"),
    [{"rtype": "A", "value": "192.0.2.1", "ttl": 300}, {"rtype": "CNAME", "value": "x.",
                                                        "ttl": None}],
    [{"rtype": "A", "value": "192.0.2.1", "ttl": 2**70}],  # beyond orjson: json decides
    (("lone", "\ud800"),),  # a lone surrogate: json decides
])
def test_the_fast_encoder_of_string_lists_writes_what_to_json_writes(value: object) -> None:
    assert bulk._json_text(value) == rows.to_json(value)


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.json")), ids=lambda p: p.name)
def test_imported_extra_and_control_rows_are_what_to_json_writes(path: Path) -> None:
    """The bulk rows encode an imported measurement's ``extra`` and control answers with
    orjson, sound only while the mapper puts no floats there (orjson spells some floats
    differently): every corpus document's texts are probe.store.rows.to_json's."""
    mapped = map_document(json.loads(path.read_text()), "x:1")
    m = mapped.measurement
    v = Verdict(VerdictKind.INCONCLUSIVE, "x", 0.5, "e", "test")
    tables = bulk.measurement_rows("M", "R", m, v, mapped.provenance, AT)
    assert tables[0][0][11] == rows.to_json(m.extra)
    assert [r[2] for r in tables[6]] == [rows.to_json(c) for c in m.control]
    assert not any(isinstance(x, float) for c in m.control for x in _leaves(c))


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _leaves(v)]
    return [value]


def _tables(body: str, evidence: str = "e", n: int = 0) -> tuple[list[bulk.Row], ...]:
    path = CORPUS / "spec-ts-017-example-com-0.4.0.json"
    doc = json.loads(path.read_text())
    doc["test_keys"]["requests"][0]["response"]["body"] = body
    doc["measurement_uid"] = f"uid{n}"
    mapped = map_document(doc, "x:1")
    v = Verdict(VerdictKind.INCONCLUSIVE, "x", 0.5, evidence, "test")
    return bulk.measurement_rows(f"M{n}", "R", mapped.measurement, v, mapped.provenance, AT)


LONG = "<html>" + "x" * (2 * bulk.BIG) + "</html>"


@pytest.mark.parametrize("body, evidence, holds", [
    (LONG, "e", False),  # long values, none holds it
    (LONG.replace("xxx", f"x{OWN}x", 1), "e", True),  # in a long value
    ("short", f"from {OWN}", True),  # in a short value
    (LONG, f"from {OWN}", True),  # short one holds it, the long one (seen before) not
    (LONG.replace("xxx", OWN.replace(".", "-"), 1), "e", True),  # another spelling
])
def test_the_chunk_gate_finds_the_address_in_any_value(body: str, evidence: str,
                                                       holds: bool) -> None:
    scrubber = Scrubber([OWN])
    gate = bulk._Gate(scrubber)
    assert gate.may_hold(_tables(LONG)) is False  # the long page is now remembered
    assert gate.may_hold(_tables(body, evidence)) is holds
    # a fresh gate decides the same
    assert bulk._Gate(scrubber).may_hold(_tables(body, evidence)) is holds


def test_a_repeated_long_value_holding_the_address_is_scrubbed_every_time(
        tmp_path: Path) -> None:
    body = LONG.replace("xxx", f"x{OWN}x", 1)
    items = [(f"uid{i}", "R", _tables(body, n=i)) for i in range(3)]
    run = bulk.run_row("R", AT, "1.0", {}, 0, status="completed", finished_at=AT,
                       probe_asn=None, probe_cc=None, network_name=None)
    db = tmp_path / "x.db"
    with Store.open(db, own_addresses=[OWN]) as store:
        assert bulk.save_imports(store, [run], items) == [True, True, True]
    values = [v for _, _, v in every_stored_value(db)]
    text = " ".join(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values)
    assert OWN not in text
    assert text.count(PLACEHOLDER) >= 3


@pytest.mark.parametrize("extra, queued", [
    ('{"source":"ooni"}', False),  # imported (probe.ingest.mapper marks every one)
    ('{"source":"ooni","test_name":"tor"}', False),
    ("{}", True),  # our own
    ('{"source":"other"}', True),
    ("not json", True),  # never an error: queued
])
def test_the_outbox_trigger_skips_imported_measurements(tmp_path: Path, extra: str,
                                                        queued: bool) -> None:
    db = tmp_path / "x.db"
    with Store.open(db) as store:
        run = store.start_run({}, 1)
    con = sqlite3.connect(db)
    con.execute("INSERT INTO measurements (measurement_id, run_id, url, hostname, scheme, "
                "port, path, started_at, finished_at, extra) VALUES "
                "('M', ?, 'https://a.test/', 'a.test', 'https', 443, '/', ?, ?, ?)",
                (run, AT, AT, extra))
    assert con.execute("SELECT count(*) FROM outbox").fetchone()[0] == int(queued)
    con.close()


@pytest.mark.parametrize("raw", [
    f"<p>you are {OWN}</p>".encode("utf-16-le"),  # NUL bytes: read as UTF-16 too
    f"<p>you are {OWN}</p>".encode("utf-32-be"),
    "<p>you are １９２．０．２．７７</p>".encode(),  # fullwidth, in UTF-8
    (f"<p>you are {OWN}</p>" + "x" * 2 * bulk.BIG).encode("utf-16-le"),  # a long one
], ids=["utf16", "utf32", "fullwidth", "long-utf16"])
def test_bodies_are_read_as_the_scrubber_reads_them(tmp_path: Path, raw: bytes) -> None:
    body = {"format": "base64", "data": base64.b64encode(raw).decode()}
    items = [("uid0", "R", _tables(body))]  # type: ignore[arg-type]
    run = bulk.run_row("R", AT, "1.0", {}, 0, status="completed", finished_at=AT,
                       probe_asn=None, probe_cc=None, network_name=None)
    db = tmp_path / "x.db"
    with Store.open(db, own_addresses=[OWN]) as store:
        assert bulk.save_imports(store, [run], items) == [True]
        stored = store.db.conn.execute("SELECT body FROM http_requests").fetchone()[0]
    assert stored != raw
    assert store.scrubber.scrub_bytes(stored) == stored  # nothing left to scrub


def test_an_items_fact_travels_as_a_tuple_and_comes_back_equal() -> None:
    """Items carry the population fact as a plain tuple (cheaper to pickle); ``Item.fact``
    is the very fact the measurement gives."""
    import pickle

    from probe.classify import population as pop
    from probe.ingest import pipeline

    texts = [(i + 1, p.read_text().replace("\n", " ")) for i, p in
             enumerate(sorted(CORPUS.glob("*.json")))]
    result = pipeline.process_chunk(pipeline.Chunk("corpus", texts), imported_at=AT)
    assert result.items
    for item in result.items:
        back = pickle.loads(pickle.dumps(item))
        assert isinstance(back.fact, pop.Fact)
        assert back.fact == item.fact
        assert type(item.fact_fields) is tuple
    mapped = map_document(json.loads(texts[0][1]), "corpus:1")
    network, cc = pipeline.population_network(mapped.provenance)
    first = next(it for it in result.items if it.dedup_key == mapped.provenance.dedup_key)
    assert first.fact == pop.fact(mapped.measurement, network, cc, None)


def test_the_import_settings_hold_during_the_block_and_are_restored(tmp_path: Path) -> None:
    with Store.open(tmp_path / "x.db") as store:
        conn = store.db.conn

        def now() -> tuple[int, int]:
            return (conn.execute("PRAGMA cache_size").fetchone()[0],
                    conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

        before = now()
        with bulk.import_settings(store):
            assert now() == (-bulk.IMPORT_CACHE_KIB, bulk.IMPORT_WAL_PAGES)
        assert now() == before
        with pytest.raises(RuntimeError), bulk.import_settings(store):
            raise RuntimeError("stopped")
        assert now() == before
