"""The probe's upload queue (probe/store/outbox.py): queued by the database, claimed, resumed."""

from __future__ import annotations

import sqlite3

from probe.lab.bench.collector_case import fill_probe_db
from probe.store import Store
from probe.store.outbox import Outbox
from probe.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from tests.factories import build_db


def test_every_saved_measurement_is_queued_in_its_own_transaction(tmp_path):
    ids = fill_probe_db(tmp_path / "p.db", 5)
    with Store.open(tmp_path / "p.db") as store:
        s = Outbox(store).status()
    assert (s.pending, s.sent, s.in_flight) == (5, 0, 0)
    conn = sqlite3.connect(tmp_path / "p.db")
    assert sorted(r[0] for r in conn.execute("SELECT measurement_id FROM outbox")) == sorted(ids)


def test_imported_measurements_are_not_queued(tmp_path):
    from probe.ingest import import_ooni

    with Store.open(tmp_path / "p.db") as store:
        result = import_ooni(store, ["tests/data/ooni/spec-ts-017-example-com-0.4.0.json"],
                             workers=0)
        assert result.stored == 1
        assert Outbox(store).status().pending == 0


def test_a_claimed_batch_is_resent_under_the_same_id_until_acknowledged(tmp_path):
    ids = fill_probe_db(tmp_path / "p.db", 5)
    with Store.open(tmp_path / "p.db") as store:
        box = Outbox(store)
        first = box.claim(3)
        assert first is not None and first.measurement_ids == tuple(ids[:3])
        again = box.claim(3)  # as after a kill -9 before the acknowledgement
        assert again == first
        assert box.status().in_flight == 3
        assert box.mark_sent(first, first.measurement_ids[:2], {ids[2]: "bad"}) == 2
        rest = box.claim(3)
        assert rest is not None and rest.measurement_ids == tuple(ids[3:])
        assert rest.batch_id != first.batch_id
        box.mark_sent(rest, rest.measurement_ids)
        s = box.status()
        assert (s.pending, s.sent, s.refused) == (0, 4, 1)
        assert box.claim(3) is None


def test_unacknowledged_ids_go_back_to_the_queue(tmp_path):
    ids = fill_probe_db(tmp_path / "p.db", 4)
    with Store.open(tmp_path / "p.db") as store:
        box = Outbox(store)
        b = box.claim(4)
        assert b is not None
        box.mark_sent(b, ids[:1])
        box.note_failure(b, "HTTP 503: busy\nsecond line")
        s = box.status()
        assert (s.pending, s.in_flight, s.sent) == (3, 0, 1)
        assert s.last_error == "HTTP 503: busy"


def test_the_migration_queues_measurements_stored_before_it(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    import sqlite_utils

    old = sqlite_utils.Database(conn)
    mine = [m.name for m in MIGRATIONS].index("upload outbox; collector enrolment and provenance")
    assert mine < SCHEMA_VERSION
    migrate(old, MIGRATIONS[:mine])
    conn.close()
    fill = build_db(tmp_path / "tmp.db")  # measurements to copy in at the old schema
    conn = sqlite3.connect(db)
    conn.execute("ATTACH ? AS src", (str(fill.path),))
    for table in ("runs", "measurements"):
        cols = ",".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))
        conn.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM src.{table}")
    conn.commit()
    conn.close()
    with Store.open(db) as store:
        assert Outbox(store).status().pending == len(fill.ids)
