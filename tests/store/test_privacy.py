"""Privacy: the volunteer's own addresses never reach the database.

Unit tests of the Scrubber on text, bytes and records, of the local-address readers, and an
end-to-end test on loopback: a world site that echoes the client's address back (header,
redirect, body) is measured with the probe's "public" address being 127.0.0.1 — taken from
the options, then learnt from a control helper — and no byte of the SQLite file contains it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ipaddress
import json
import sqlite3
from functools import partial
from pathlib import Path

import pytest

from probe.cli.root import app
from probe.control import client
from probe.control.measure import measure_request
from probe.control.protocol import MeasureRequest
from probe.control.server import ControlServer, Policy
from probe.lab.world.loopback import LoopbackWorld, simple_world
from probe.measure.settings import MeasureSettings, Resolver
from probe.model import (
    HealthSample,
    HealthScope,
    Verdict,
    VerdictKind,
)
from probe.run.engine import RunOptions, run_targets
from probe.store.privacy import PLACEHOLDER, Scrubber, _fib_trie, _if_inet6, local_addresses
from probe.targets import parse_url
from tests.clirunner import CliRunner
from tests.factories import every_stored_value, measurement_naming

ME = "127.0.0.1"  # the probe's "public" address in these tests
SITE_IP = "127.0.0.2"  # where the world's DNS and web servers listen


# --- text and bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ip=192.0.2.7&x=1", "ip=[scrubbed]&x=1"),
        ("Your IP address is 192.0.2.7.", "Your IP address is [scrubbed]."),
        ("192.0.2.7:443", "[scrubbed]:443"),
        ("host-192-0-2-7.isp.example", "host-[scrubbed].isp.example"),
        ("192.0.2.70 and 192.0.2.71", "192.0.2.70 and 192.0.2.71"),  # other hosts stay
        ("1192.0.2.7", "1192.0.2.7"),
        ("::ffff:192.0.2.7", "::ffff:[scrubbed]"),
        ("[2001:db8::7]:443", "[[scrubbed]]:443"),
        ("2001:DB8::7", "[scrubbed]"),
        ("2001:0db8:0000:0000:0000:0000:0000:0007", "[scrubbed]"),
        ("2001:db8:0:0:0:0:0:7", "[scrubbed]"),
        ("2001:db8:0::7", "[scrubbed]"),
        ("fe80::2001:db8:0:7%eth0", "fe80::2001:db8:0:7%eth0"),
        ("http://[2001%3Adb8%3A%3A7]/", "http://[[scrubbed]]/"),
        ("2001:db8::77 2001:db8::7a", "2001:db8::77 2001:db8::7a"),
        # an unbracketed IPv6 followed by :PORT is ambiguous: privacy first
        ("2001:db8::7:443", "[scrubbed]:443"),
        ("no address here: 10:20:30", "no address here: 10:20:30"),
    ],
)
def test_text_forms(text, expected):
    assert Scrubber(["192.0.2.7", "2001:db8::7", "not an ip"]).scrub_text(text) == expected


def test_bytes_stay_bytes_and_undecodable_bytes_survive():
    s = Scrubber(["192.0.2.7"])
    assert s.scrub_bytes(b"\xff\x00192.0.2.7\xfe\x80") == b"\xff\x00[scrubbed]\xfe\x80"
    assert s.scrub_bytes(b"") == b""


def test_an_empty_scrubber_changes_nothing_and_add_learns():
    s = Scrubber()
    m = dataclasses.replace(measurement_naming("192.0.2.7"), control=())
    assert s.measurement(m) is m
    assert s.add("::ffff:192.0.2.7") and not s.add("192.0.2.7") and not s.add("0.0.0.0")
    assert not s.add(None) and not s.add("nope")
    assert s.addresses == {"192.0.2.7"}
    assert "192.0.2.7" not in s.scrub_text("from 192.0.2.7")


# --- records ----------------------------------------------------------------------------------


def test_measurement_is_scrubbed_everywhere_but_site_addresses_stay():
    s = Scrubber(["192.0.2.7"])
    m = measurement_naming("192.0.2.7")
    out = s.measurement(m)
    assert "192.0.2.7" not in repr(out)
    assert out.dns[0].addresses == ("203.0.113.5", PLACEHOLDER)
    assert out.dns[0].resolver == "203.0.113.5:53"
    assert out.tcp[0] is m.tcp[0] and out.tcp[1].failure == f"unknown_failure: bind "\
        f"{PLACEHOLDER} failed"
    mine, theirs = out.tls[0].certificates
    assert mine.der == b"" and mine.sha256 == "a" * 64 and mine.san[0] == PLACEHOLDER
    assert theirs == m.tls[0].certificates[1]
    http = out.http[0]
    assert http.headers == (("X-Client-IP", PLACEHOLDER), (f"X-{PLACEHOLDER}", "v"))
    assert http.body is not None and b"Your IP address is [scrubbed]" in http.body
    assert http.body_sha256 == hashlib.sha256(http.body).hexdigest()
    assert http.body_length == m.http[0].body_length  # the length received
    assert http.url.endswith(f"ip={PLACEHOLDER}") and http.title == f"Hello {PLACEHOLDER}"
    assert out.extra == {"note": [PLACEHOLDER, 1, None, True]}
    assert out.target is m.target


def test_control_client_address_is_learnt_then_dropped():
    s = Scrubber()
    out = s.measurement(measurement_naming("198.51.100.9"))
    assert s.addresses == {"198.51.100.9"}
    assert "client_address" not in out.control[0]
    assert "198.51.100.9" not in repr(out)


def test_verdicts_and_health_samples_are_scrubbed():
    s = Scrubber(["192.0.2.7"])
    v = Verdict(VerdictKind.BLOCKED, "tcp.reset", 0.9, "reset from 192.0.2.7", "1.0.0",
                {"ip": "192.0.2.7", "n": 2})
    out = s.verdict(v)
    assert out.verdict is VerdictKind.BLOCKED and out.evidence == f"reset from {PLACEHOLDER}"
    assert out.details == {"ip": PLACEHOLDER, "n": 2}
    sample = HealthSample("2024-01-01T00:00:00Z", "before", HealthScope.GATEWAY, "192.0.2.1",
                          0.1, "unknown_failure: from 192.0.2.7")
    (scrubbed,) = s.health([sample])
    assert scrubbed.scope is HealthScope.GATEWAY and scrubbed.target == "192.0.2.1"
    assert scrubbed.failure == f"unknown_failure: from {PLACEHOLDER}"
    # a portal page that names the volunteer's address in its title
    portal = HealthSample("2024-01-01T00:00:00Z", "before", HealthScope.PORTAL,
                          "http://captive.apple.com/hotspot-detect.html", 0.1, None,
                          "200 title 'Your address 192.0.2.7 has no credit'")
    (scrubbed,) = s.health([portal])
    assert scrubbed.unexpected == f"200 title 'Your address {PLACEHOLDER} has no credit'"


# --- the machine's addresses ------------------------------------------------------------------

FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 192.168.1.0/24 2 0 2
           |-- 192.168.1.0
              /24 link UNICAST
           |-- 192.168.1.23
              /32 host LOCAL
        |-- 192.168.1.255
           /32 link BROADCAST
"""

IF_INET6 = """\
fe8000000000000002163efffe4a5b6c 02 40 20 80     eth0
20010db8000000000000000000000023 02 40 00 00     eth0
00000000000000000000000000000001 01 80 10 80       lo
"""


def test_proc_readers():
    assert _fib_trie(FIB_TRIE) == {"127.0.0.1", "192.168.1.23"}
    assert _if_inet6(IF_INET6) == {"fe80::216:3eff:fe4a:5b6c", "2001:db8::23", "::1"}


def test_local_addresses_exclude_loopback():
    found = local_addresses()
    for address in found:
        ip = ipaddress.ip_address(address)
        assert not ip.is_loopback and not ip.is_unspecified
    assert Scrubber.for_this_host(["192.0.2.7"]).addresses >= found | {"192.0.2.7"}


# --- end to end on loopback -------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo_world(tmp_path_factory):
    config = simple_world(tmp_path_factory.mktemp("pki"), {"echo.test": {"behaviour": "echo"}},
                          ip=SITE_IP)
    with LoopbackWorld(config) as world:
        yield world


def _settings(world, **kw) -> MeasureSettings:
    host, port = world.dns_address
    return MeasureSettings.with_timeout(2.0, use_system_resolver=False,
                                        resolvers=(Resolver(host, port),),
                                        ca_bundle=world.ca_pem, **kw)


def _urls(world) -> list[str]:
    return [f"http://echo.test:{world.http_port}/", f"https://echo.test:{world.https_port}/"]


def _assert_nothing_holds(db: Path, address: str) -> None:
    needle = address.encode()
    for table, col, value in every_stored_value(db):
        raw = value if isinstance(value, bytes) else str(value).encode()
        assert needle not in raw, f"{table}.{col} holds {address}: {value!r:.200}"
    for path in db.parent.glob(db.name + "*"):  # the file itself (and -wal/-shm), every page
        assert needle not in path.read_bytes(), f"{path.name} holds {address}"


def _the_echo_was_seen(db: Path) -> None:
    """Guard against a vacuous pass: the site did echo (redirect followed, header present)."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("select url, status, headers, body from http_requests").fetchall()
    finally:
        con.close()
    assert any(status == 302 and "ip=[scrubbed]" in headers for _, status, headers, _ in rows)
    assert any(status == 200 and "X-Client-IP" in headers and b"[scrubbed]" in (body or b"")
               for _, status, headers, body in rows)


def test_echoed_address_never_reaches_the_database(echo_world, tmp_path):
    db = tmp_path / "p.db"
    targets = [parse_url(u) for u in _urls(echo_world)]
    progress = asyncio.run(run_targets(
        targets, len(targets), _settings(echo_world), str(db),
        options=RunOptions(concurrency=2, own_addresses=(ME,)),
    ))
    assert progress.done == 2 and not progress.interrupted
    _the_echo_was_seen(db)
    _assert_nothing_holds(db, ME)
    assert SITE_IP.encode() in db.read_bytes() or any(  # the site's address is kept
        SITE_IP in str(v) for _, _, v in every_stored_value(db))


def test_public_address_is_learnt_from_the_control_helper(echo_world, tmp_path):
    db = tmp_path / "p.db"
    targets = [parse_url(u) for u in _urls(echo_world)]
    policy = Policy(allow=(ipaddress.ip_network("127.0.0.0/8"),),
                    ports=frozenset({echo_world.http_port, echo_world.https_port}))

    async def go():
        server = ControlServer(policy, partial(measure_request, settings=_settings(echo_world)))
        host, port = await server.start(ME, 0)
        try:
            helper = f"http://{host}:{port}"
            (answer,) = await client.query_all([helper], MeasureRequest(_urls(echo_world)[0]), 10)
            assert answer["client_address"] == ME  # what the helper returns, in memory
            return await run_targets(targets, len(targets), _settings(echo_world), str(db),
                                     options=RunOptions(concurrency=1, controls=(helper,)))
        finally:
            await server.close()

    progress = asyncio.run(go())
    assert progress.done == 2
    con = sqlite3.connect(db)
    try:
        answers = [r[0] for r in con.execute("select data from controls")]
    finally:
        con.close()
    assert len(answers) == 2 and all("client_address" not in a for a in answers)
    assert all("[scrubbed]" in a for a in answers)  # the helper's echo, scrubbed too
    _the_echo_was_seen(db)
    _assert_nothing_holds(db, ME)


def test_no_bodies_stores_hashes_and_lengths_only(echo_world, tmp_path):
    db = tmp_path / "p.db"
    host, port = echo_world.dns_address
    res = CliRunner().invoke(app, [
        "run", *_urls(echo_world), "--db", str(db), "--no-system-resolver",
        "--resolver", f"{host}:{port}", "--ca-bundle", echo_world.ca_pem, "--timeout", "2",
        "--quiet", "--no-bodies"])
    assert res.exit_code == 0, res.output
    con = sqlite3.connect(db)
    try:
        rows = con.execute("select body, body_length, body_sha256 from http_requests").fetchall()
        settings = con.execute("select settings from runs").fetchone()[0]
    finally:
        con.close()
    assert rows and all(body is None and length and len(sha) == 64 for body, length, sha in rows)
    assert json.loads(settings)["store_bodies"] is False


# --- the literal prefilter --------------------------------------------------------------------

_SPELLINGS = [
    "192.0.2.7", "host-192-0-2-7.isp", "::ffff:192.0.2.7", "::ffff:c000:207", "::FFFF:C000:0207",
    "0:0:0:0:0:ffff:c000:207", "::ffff%3Ac000%3A207", "2001:db8::7", "2001:DB8::7",
    "2001:0db8:0000:0000:0000:0000:0000:0007", "2001:db8:0:0:0:0:0:7", "2001:db8:0::7",
    "[2001%3Adb8%3A%3A7]", "2001:db8::0.0.0.7", "2001:db8::7%eth0", "2001:db8::7%25eth0",
    "2001:db8::7:443", "fe80::1:2:3:4", "FE80:0:0:0:1:2:3:4", "10.0.0.1", "10-0-0-1",
    "::ffff:a00:1", "1.0.0.0", "::ffff:100:0", "::1.0.0.0", "0:0:0:0:0:ffff:100::",
    "0:0:0:0:0:ffff::1", "::ffff:0:1", "0.0.0.1", "::FFFF%3a0000%3A0001",
]


@pytest.mark.parametrize("addresses", [
    ["192.0.2.7"], ["2001:db8::7"], ["192.0.2.7", "2001:db8::7"], ["fe80::1:2:3:4", "10.0.0.1"],
    ["1.0.0.0", "2001:db8::7"], ["::5"], ["0.0.0.1", "2001:db8::7"],
])
def test_the_prefilter_never_misses_what_the_full_scrub_replaces(addresses):
    fast = Scrubber(addresses)
    full = Scrubber(addresses)
    full._ipv6_pass_open = lambda text: True  # no gate: the IPv6 pass parses every token
    for spelling in _SPELLINGS:
        for text in (spelling, f"x {spelling} y", f"<p>#ffffff {spelling}</p>"):
            replaced = full.scrub_text(text) != text
            assert not replaced or fast.might_hold(text), (addresses, text)
            assert fast.scrub_text(text) == full.scrub_text(text)


@pytest.mark.parametrize(("addresses", "text", "held"), [
    (["85.113.40.17"], "nothing of the sort 85.114.40.17", False),
    (["85.113.40.17"], "build 85.113.9", True),  # the pair gate: the full patterns decide
    (["85.113.40.17"], "id 1433479185", True),
    (["2001:db8::7"], "2001: and DB8%3A both", True),
    (["2001:db8::7"], "2001 and DB8 both, no separator", False),
    (["2001:db8::7"], "sha256:2001db8:0e ids 2001 and db8 by chance", False),
    (["2001:db8::7"], "only 2001 here, colour #ffffff", False),
    (["192.0.2.7", "2001:db8::7"], "colour #ffffff", False),
    (["192.0.2.7", "2001:db8::7"], "::FFFF:C000:207", True),
    (["192.0.2.7", "2001:db8::7"], "::ffff:8.8.8.8 c000 207", False),
    ([], "192.0.2.7", False),
])
def test_might_hold(addresses, text, held):
    assert Scrubber(addresses).might_hold(text) is held
