"""The collector's database (probe/store/collector.py): namespaces, dedup, tokens, scrubbing."""

from __future__ import annotations

import copy
import datetime as dt
import sqlite3

import pytest

from probe.collector.validation import check_record
from probe.store.collector import AuthError, CollectorStore
from tests.collector.helpers import valid_batch


def test_the_peer_address_is_scrubbed_from_what_is_stored_unless_loopback(tmp_path):
    record = valid_batch(tmp_path, 1)["records"][0]
    public, local = copy.deepcopy(record), copy.deepcopy(record)
    public["http"][0]["title"] = "your address is 203.0.113.9"
    local["http"][0]["title"] = "served by 127.0.0.1"
    with CollectorStore(tmp_path / "c.db") as store:
        a = store.enroll().probe_id
        b = store.enroll().probe_id
        store.store_batch(a, "b" + "1" * 24, [check_record(public)], peer="203.0.113.9")
        store.store_batch(b, "b" + "2" * 24, [check_record(local)], peer="127.0.0.1")
    titles = dict(sqlite3.connect(tmp_path / "c.db").execute(
        "SELECT measurement_id, title FROM http_requests"))
    assert titles[f"{record['measurement_id']}@{a}"] == "your address is [scrubbed]"
    assert titles[f"{record['measurement_id']}@{b}"] == "served by 127.0.0.1"


def test_a_batch_stored_twice_is_stored_once(tmp_path):
    records = [check_record(r) for r in valid_batch(tmp_path, 3)["records"]]
    with CollectorStore(tmp_path / "c.db") as store:
        p = store.enroll().probe_id
        first = store.store_batch(p, "b" + "1" * 24, records)
        again = store.store_batch(p, "b" + "1" * 24, records)
        assert (len(first.accepted), len(first.duplicates)) == (3, 0)
        assert (again.accepted, sorted(again.duplicates)) == ((), sorted(first.accepted))
        assert store.counts() == {p: 3}


@pytest.mark.parametrize(("ttl_days", "revoke", "status", "message"), [
    (None, False, None, None),
    (1.0, False, None, None),
    (0.0, False, 403, "token expired"),
    (None, True, 403, "token revoked"),
])
def test_tokens(tmp_path, ttl_days, revoke, status, message):
    with CollectorStore(tmp_path / "c.db") as store:
        e = store.enroll("x", ttl_days)
        assert e.probe_id.startswith("p") and len(e.probe_id) == 17
        if revoke:
            assert store.revoke(e.probe_id) and not store.revoke(e.probe_id)
        if status is None:
            assert store.authenticate(e.token) == e.probe_id
        else:
            with pytest.raises(AuthError, match=message) as err:
                store.authenticate(e.token, dt.datetime.now(dt.UTC))
            assert err.value.status == status
        with pytest.raises(AuthError, match="unknown token"):
            store.authenticate(e.token + "x")
    stored = sqlite3.connect(tmp_path / "c.db").execute(
        "SELECT token_sha256 FROM collector_probes").fetchone()[0]
    assert e.token not in stored and len(stored) == 64  # only a hash is kept
