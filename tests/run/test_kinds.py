"""The seam for kinds of test: inputs, registry, classify rules and storage agree."""

from __future__ import annotations

import sqlite3

import pytest

from probe.classify import TEST_NAMES, classify
from probe.errors import ProbeError, TargetListError
from probe.model import INPUT_SCHEMES, TCP_CONNECT, WEB_CONNECTIVITY, Measurement, Target
from probe.run.kinds import KINDS, kind_of
from probe.store import Store
from probe.store import schema as store_schema
from probe.targets import iter_file, load_sources, parse_input, validate_file
from tests.factories import FINISHED, STARTED, tcp


def test_every_kind_declares_inputs_a_measurer_and_classifier_rules() -> None:
    assert set(KINDS) == set(INPUT_SCHEMES) <= TEST_NAMES
    for name, kind in KINDS.items():
        assert kind.name == name and kind.schemes == INPUT_SCHEMES[name]
    assert kind_of("web_connectivity").name == WEB_CONNECTIVITY
    with pytest.raises(ProbeError):
        kind_of("nope")


@pytest.mark.parametrize(("text", "url", "host", "port"), [
    ("tcp://Example.ORG:443", "tcp://example.org:443", "example.org", 443),
    ("  tcp://example.org:5222/ ", "tcp://example.org:5222", "example.org", 5222),
    ("TCP://[2001:db8::1]:22", "tcp://[2001:db8::1]:22", "2001:db8::1", 22),
    ("tcp://bücher.example:80", "tcp://xn--bcher-kva.example:80", "xn--bcher-kva.example", 80),
])
def test_tcp_inputs_normalise(text: str, url: str, host: str, port: int) -> None:
    t = parse_input(text)
    assert (t.url, t.hostname, t.port, t.scheme, t.test_name) == (
        url, host, port, "tcp", TCP_CONNECT)


@pytest.mark.parametrize(("text", "reason"), [
    ("tcp://example.org", "missing port"),
    ("tcp://example.org:0", "bad port"),
    ("tcp://example.org:99999", "bad port"),
    ("tcp://example.org:22/path", "want tcp://host:port"),
    ("tcp://user@example.org:22", "userinfo"),
    ("tcp://:22", "missing host"),
])
def test_bad_tcp_inputs_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_input(text)


def test_web_urls_still_parse_as_before() -> None:
    t = parse_input("HTTPS://Example.org")
    assert (t.url, t.test_name) == ("https://example.org/", WEB_CONNECTIVITY)
    with pytest.raises(ValueError, match="unknown scheme 'ftp'"):
        parse_input("ftp://example.org/")
    with pytest.raises(ValueError):
        Target("tcp://x:1", "x", "tcp", 1, "")  # a tcp input is not a web target


def test_lists_mix_kinds(tmp_path) -> None:
    plain = tmp_path / "mixed.txt"
    plain.write_text("https://a.test/\ntcp://a.test:5222\ntcp://a.test:5222/\ntcp://b.test\n")
    assert validate_file(plain) == [
        f"{plain}:3: duplicate of line 2 (tcp://a.test:5222)",
        f"{plain}:4: bad input: missing port (want tcp://host:port)"]
    csv = tmp_path / "list.csv"
    csv.write_text("url,category_code,category_description,date_added,source,notes\n"
                   "tcp://chat.test:5222,COMT,Communication Tools,2026-01-01,,\n")
    (t,) = iter_file(csv)
    assert (t.test_name, t.category, t.source) == (TCP_CONNECT, "COMT", f"{csv}:2")
    found = load_sources(["tcp://chat.test:5222", str(csv), "https://a.test/"])
    assert [x.url for x in found] == ["tcp://chat.test:5222", "https://a.test/"]
    with pytest.raises(TargetListError):
        load_sources(["tcp://nowhere"])


def test_the_kind_round_trips_through_the_store(tmp_path) -> None:
    m = Measurement(parse_input("tcp://chat.test:5222"), STARTED, FINISHED,
                    tcp=(tcp(port=5222),))
    with Store.open(tmp_path / "p.db") as store:
        run = store.start_run({}, 1)
        store.save_measurement(run, m, classify(m))
        ((_, back),) = list(store.iter_measurements(run))
        (row,) = store.results(run)
    assert back == m and back.test_name == TCP_CONNECT
    assert row["test_name"] == TCP_CONNECT and row["url"] == "tcp://chat.test:5222"


def test_rows_written_before_the_migration_are_web_tests(tmp_path) -> None:
    path = tmp_path / "old.db"
    with Store.open(path) as store:
        run = store.start_run({}, 1)
        store.save_measurement(run, Measurement(parse_input("https://a.test/"), STARTED,
                                                FINISHED), None)
    con = sqlite3.connect(path)  # back to schema 3: no test_name column
    for trigger in ("outbox_enqueue", "outbox_skip_imports"):  # schema 7 (outbox, collector)
        con.execute(f"DROP TRIGGER {trigger}")
    for table in ("outbox", "collector_received", "collector_probes"):
        con.execute(f"DROP TABLE {table}")
    con.execute("ALTER TABLE measurements DROP COLUMN test_name")
    con.execute("DROP TABLE imports")  # schema 5
    for column in ("received_bytes", "last_byte_t"):  # schema 6
        con.execute(f"ALTER TABLE http_requests DROP COLUMN {column}")
    con.execute("DROP TABLE run_leases")  # schema 7
    con.execute("DROP TABLE quic_handshakes")  # schema 8 (QUIC)
    con.execute("ALTER TABLE http_requests DROP COLUMN transport")
    con.execute("DELETE FROM schema_migrations WHERE version >= 4")
    con.commit()
    con.close()
    with Store.open(path) as store:
        assert store_schema.current_version(store.db) == store_schema.SCHEMA_VERSION
        ((_, m),) = list(store.iter_measurements())
        (row,) = store.results("latest")
    assert m.test_name == WEB_CONNECTIVITY and row["test_name"] == WEB_CONNECTIVITY
