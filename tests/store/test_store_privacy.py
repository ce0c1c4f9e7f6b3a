"""Scrubbing at the storage boundary: no public write method of the Store lets the volunteer's
own address reach the database, whoever calls it (the run engine or a library user).

Table-driven: every write path (run settings and network, measurements with their control
answers, verdicts, health samples, traces, bulk rows) × an IPv4 and an IPv6 address, given to
``Store.open(own_addresses=...)`` or learnt from a control helper's ``client_address``. After
each case no stored value and no byte of the file (or its WAL) holds any textual form of the
address, and a guard checks that the case did write what it claims (no vacuous pass).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest

from probe.errors import StorageError
from probe.model import (
    HealthSample,
    HealthScope,
    Measurement,
)
from probe.store import Store, rows
from probe.store.privacy import PLACEHOLDER
from tests.factories import every_stored_value, measurement_naming, trace_naming, verdict_naming

V4 = "192.0.2.7"
V6 = "2001:db8::7"
SITE = "203.0.113.5"
AT = "2024-01-01T00:00:00.000000Z"


def _forms(address: str) -> list[str]:
    """Every textual form of ``address`` that must not be stored."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return [str(ip), str(ip).replace(".", "-")]
    assert isinstance(ip, ipaddress.IPv6Address)
    short = ":".join(f"{int(g, 16):x}" for g in ip.exploded.split(":"))
    return [ip.compressed, ip.exploded, short, ip.compressed.replace(":", "%3A")]


def _samples(me: str) -> list[HealthSample]:
    return [HealthSample(at=AT, phase="before", scope=HealthScope.GATEWAY, target=me,
                         elapsed=0.1, failure=None),
            HealthSample(at=AT, phase="before", scope=HealthScope.INTERNATIONAL,
                         target=f"https://[{me}]/", elapsed=0.1,
                         failure=f"unknown_failure: from {me}")]


def _no_client_address(m: Measurement) -> Measurement:
    """The measurement without the helper's echo of the address (nothing to learn from)."""
    import dataclasses

    return dataclasses.replace(m, control=tuple(
        {k: v for k, v in c.items() if k != "client_address"} for c in m.control))


# Each write: (store, address) → what the guard must find stored (table, column, text).
Write = Callable[[Store, str], tuple[str, str, str]]


def _settings(store: Store, me: str) -> tuple[str, str, str]:
    store.start_run({"resolvers": [f"{me}:53"], "source": f"from {me}", me: True}, 1)
    return "runs", "settings", "resolvers"


def _network(store: Store, me: str) -> tuple[str, str, str]:
    run = store.start_run({}, 1)
    store.set_run_network(run, probe_asn=64500, probe_cc="KZ", network_name=f"home {me}")
    return "runs", "network_name", "home"


def _measurement_and_verdict(store: Store, me: str) -> tuple[str, str, str]:
    run = store.start_run({}, 1)
    store.save_measurement(run, measurement_naming(me), verdict_naming(me))
    return "http_requests", "headers", "X-Client-IP"


def _later_verdict(store: Store, me: str) -> tuple[str, str, str]:
    run = store.start_run({}, 1)
    mid = store.save_measurement(run, _no_client_address(measurement_naming(SITE)), None)
    store.save_verdict(mid, verdict_naming(me))
    return "verdicts", "evidence", "reset"


def _health(store: Store, me: str) -> tuple[str, str, str]:
    run = store.start_run({}, 1)
    store.save_health(run, _samples(me))
    return "health_samples", "failure", "unknown_failure"


def _traces(store: Store, me: str) -> tuple[str, str, str]:
    run = store.start_run({}, 1)
    mid = store.save_measurement(run, _no_client_address(measurement_naming(SITE)), None)
    store.save_trace(trace_naming(me), f"https://site.example/?ip={me}", mid)
    store.save_trace(trace_naming(me), f"http://{me}/")  # a URL never measured
    return "traces", "probes", "time_exceeded"


def _bulk_rows(store: Store, me: str) -> tuple[str, str, str]:
    run = rows.run_row("20240101T000000Z-00000001", AT, "test", {"resolver": me}, 1,
                       network_name=f"net {me}")
    health = rows.new_row("health_samples", run_id=run["run_id"], at=AT, phase="before",
                          scope="gateway", target=me, elapsed=0.1, failure=None)
    store.insert_rows([{"runs": [run], "health_samples": [health]}])
    return "health_samples", "scope", "gateway"


WRITES: dict[str, Write] = {
    "run settings": _settings,
    "run network": _network,
    "measurement and its verdict": _measurement_and_verdict,
    "verdict of reanalysis": _later_verdict,
    "health samples": _health,
    "traces": _traces,
    "bulk rows": _bulk_rows,
}


def _assert_nothing_holds(db: Path, address: str) -> None:
    values = every_stored_value(db)
    for form in _forms(address):
        needle = form.lower().encode()
        for table, col, value in values:
            raw = value if isinstance(value, bytes) else str(value).encode()
            assert needle not in raw.lower(), f"{table}.{col} holds {form}: {value!r:.200}"
        for path in db.parent.glob(db.name + "*"):  # the file, its WAL: every page
            assert needle not in path.read_bytes().lower(), f"{path.name} holds {form}"


@pytest.mark.parametrize("me", [V4, V6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_no_write_method_stores_the_own_address(tmp_path, write, me):
    db = tmp_path / "p.db"
    with Store.open(db, own_addresses=(me,)) as store:
        table, column, text = write(store, me)
    values = every_stored_value(db)
    assert any(t == table and c == column and text in str(v) for t, c, v in values), (
        f"nothing written to {table}.{column}")
    assert any(PLACEHOLDER in str(v) for _, _, v in values)  # the address was there
    _assert_nothing_holds(db, me)


@pytest.mark.parametrize("me", [V4, V6], ids=["ipv4", "ipv6"])
def test_the_public_address_is_learnt_from_control_answers(tmp_path, me):
    """Not given to open(): the helper's ``client_address`` teaches it, is dropped, and every
    later write is scrubbed of it too."""
    db = tmp_path / "p.db"
    with Store.open(db) as store:
        run = store.start_run({}, 1)
        store.save_measurement(run, measurement_naming(me), verdict_naming(me))
        assert ipaddress.ip_address(me).compressed in store.scrubber.addresses
        store.save_health(run, _samples(me))
        store.save_trace(trace_naming(me), "https://site.example/")
    values = every_stored_value(db)
    assert not any("client_address" in str(v) for t, _, v in values if t == "controls")
    assert any(t == "controls" and PLACEHOLDER in str(v) for t, _, v in values)
    _assert_nothing_holds(db, me)


def test_site_addresses_are_kept(tmp_path):
    db = tmp_path / "p.db"
    with Store.open(db, own_addresses=(V4,)) as store:
        run = store.start_run({}, 1)
        store.save_measurement(run, measurement_naming(V4), None)
    assert any(SITE in str(v) for t, _, v in every_stored_value(db) if t == "tcp_connects")


def test_a_read_only_store_refuses_every_write(tmp_path):
    db = tmp_path / "p.db"
    Store.open(db).close()
    with Store.open_readonly(db) as store:
        for name, write in WRITES.items():
            with pytest.raises(StorageError, match="read-only"):
                write(store, V4)
            assert store.run_ids() == [], name
