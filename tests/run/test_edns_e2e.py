"""``probe run --doh URL --dot HOST:PORT`` on the loopback world: the encrypted resolvers'
answers are stored as their own DNS rows (engine ``doh``/``dot``) and the connections
underneath in the hop's ``dns_exchanges``; bad values are one-line usage errors."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import ssl
from pathlib import Path

import pytest

from probe.cli.root import app
from probe.lab.simnet.devices import doh as doh_device
from probe.lab.simnet.devices import dot as dot_device
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world
from tests.clirunner import CliRunner
from tests.helperthread import LoopThread

pytestmark = pytest.mark.timeout(60)


class EncryptedDNSThread(LoopThread):
    """A DoH and a DoT server on 127.0.0.1 (world certificates for ``127.0.0.1``) forwarding to
    the world's DNS server, served from their own thread and event loop."""

    def __init__(self, world: LoopbackWorld) -> None:
        super().__init__()
        chain, key = world.pki.issue(["127.0.0.1", "localhost"], "valid")
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(chain, key)
        self._upstream = world.dns_address
        self.doh_port = self.dot_port = 0

    async def start(self) -> None:
        self._doh = await asyncio.start_server(doh_device.handler(self._upstream), "127.0.0.1",
                                               0, ssl=self._ctx)
        self._dot = await asyncio.start_server(dot_device.handler(self._upstream), "127.0.0.1",
                                               0, ssl=self._ctx)
        self.doh_port = self._doh.sockets[0].getsockname()[1]
        self.dot_port = self._dot.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._doh.close()
        self._dot.close()


def test_run_with_doh_and_dot_stores_their_answers_and_exchanges(tmp_path: Path) -> None:
    db = tmp_path / "probe.db"
    with LoopbackWorld(demo_world(tmp_path / "world")) as world, \
            EncryptedDNSThread(world) as edns:
        res = CliRunner().invoke(app, [
            "run", demo_urls(world)["ok"], "--db", str(db), "--no-system-resolver",
            "--doh", f"https://127.0.0.1:{edns.doh_port}/dns-query",
            "--dot", f"127.0.0.1:{edns.dot_port}", "--ca-bundle", world.ca_pem,
            "--timeout", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["results", "--db", str(db), "--format", "json"])
    (row,) = json.loads(res.stdout)
    # the fetch worked over validated HTTPS; the resolvers' loopback answers are no "bogon"
    assert row["verdict"] == "ok", row["evidence"]
    with sqlite3.connect(db) as conn:
        engines = conn.execute("SELECT engine, query_type, failure, resolver FROM dns_queries "
                               "ORDER BY engine, query_type").fetchall()
        (extra,) = conn.execute("SELECT extra FROM measurements").fetchone()
    assert [(e, q) for e, q, _, _ in engines] == [
        ("doh", "A"), ("doh", "AAAA"), ("dot", "A"), ("dot", "AAAA")]
    assert [f for e, q, f, _ in engines if q == "A"] == [None, None]
    exchanges = json.loads(extra)["hops"][0]["dns_exchanges"]
    assert {(x["engine"], x["address"], x["verified"], x["http_status"]) for x in exchanges} == {
        ("doh", "127.0.0.1", True, 200), ("dot", "127.0.0.1", True, None)}


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--doh", "http://dns.example/dns-query", "is not an https:// URL"),
    ("--dot", "dns.example:99999", "bad port"),
    ("--dot", "tls://dns.example", "is not HOST[:PORT]"),
])
def test_bad_encrypted_resolver_is_a_one_line_usage_error(
        tmp_path: Path, option: str, value: str, message: str) -> None:
    res = CliRunner().invoke(app, ["run", "https://example.org/", "--db",
                                   str(tmp_path / "p.db"), option, value])
    assert res.exit_code == 2, res.output
    assert message in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "p.db").exists()


def test_dnscheck_inputs_run_store_and_show_alike(tmp_path: Path) -> None:
    db = tmp_path / "probe.db"
    with LoopbackWorld(demo_world(tmp_path / "world")) as world, \
            EncryptedDNSThread(world) as edns:
        inputs = [f"doh://127.0.0.1:{edns.doh_port}/dns-query", f"dot://127.0.0.1:{edns.dot_port}/",
                  "dot://127.0.0.1:1"]
        res = CliRunner().invoke(app, ["run", *inputs, "--db", str(db), "--ca-bundle",
                                       world.ca_pem, "--timeout", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["results", "--db", str(db), "--format", "json"])
    rows = {r["url"]: r for r in json.loads(res.stdout)}
    assert {r["test_name"] for r in rows.values()} == {"dnscheck"}
    assert rows[f"doh://127.0.0.1:{edns.doh_port}/dns-query"]["verdict"] == "ok"
    assert rows[f"dot://127.0.0.1:{edns.dot_port}"]["verdict"] == "ok"
    closed = rows["dot://127.0.0.1:1"]
    assert (closed["verdict"], closed["method"]) == ("inconclusive", "no_control")

    # probe export --format ooni: OONI's dnscheck (ts-028) keys, input in OONI's own form
    out = tmp_path / "ooni.jsonl"
    res = CliRunner().invoke(app, ["export", "--db", str(db), "--format", "ooni",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    objs = {o["input"]: o for o in map(json.loads, out.read_text().splitlines())}
    doh = objs[f"https://127.0.0.1:{edns.doh_port}/dns-query"]
    assert (doh["test_name"], doh["test_keys"]["bootstrap"]) == ("dnscheck", None)
    (lookup,) = doh["test_keys"]["lookups"].values()
    # the world does not know example.org: the resolver's NXDOMAIN is the lookup's failure
    assert lookup["failure"] == "dns_nxdomain_error" and lookup["queries"][0]["engine"] == "doh"
    assert lookup["tcp_connect"][0]["status"]["success"] is True
    assert lookup["tls_handshakes"][0]["failure"] is None
    assert lookup["requests"][0]["response"]["code"] == 200
    (refused,) = objs["dot://127.0.0.1:1"]["test_keys"]["lookups"].values()
    assert refused["failure"] == "connection_refused" and refused["tls_handshakes"] == []
