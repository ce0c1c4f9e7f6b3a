"""probe.measure.dns encrypted resolvers: DoH and DoT against real servers on loopback.

The world's DNS server (probe.lab.world.dns_server) answers; the DoT and DoH servers are the
simulated network's endpoint handlers (probe.lab.simnet.devices.dot, .doh) forwarding to it;
certificates come from the world's PKI.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import pytest

from probe import failures
from probe.classify import classify
from probe.lab.simnet.devices import doh as doh_device
from probe.lab.simnet.devices import dot as dot_device
from probe.lab.world.dns_server import DNSServer
from probe.lab.world.pki import WorldPKI
from probe.lab.world.spec import DNSServerConfig
from probe.measure import dns as mdns
from probe.measure.dnscheck import measure_dnscheck
from probe.measure.settings import EncryptedResolver, MeasureSettings
from probe.model import DNSObservation, Measurement, VerdictKind
from probe.targets import parse_input

pytestmark = pytest.mark.timeout(30)

RECORDS = {"site.test": {"A": ["192.0.2.10"], "AAAA": ["2001:db8::10"]}}


@dataclass
class Servers:
    pki: WorldPKI
    dot_port: int
    doh_port: int
    bad_cert_port: int  # a DoT server whose certificate is for another name


def _ctx(pki: WorldPKI, names: list[str], kind: str = "valid") -> ssl.SSLContext:
    chain, key = pki.issue(names, kind)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> WorldPKI:
    return WorldPKI.create(tmp_path_factory.mktemp("pki"))


@asynccontextmanager
async def _servers(pki: WorldPKI) -> AsyncIterator[Servers]:
    dns_server = DNSServer(DNSServerConfig(listen=["127.0.0.1:0"], records=RECORDS))
    (host, port), = await dns_server.start()
    names = ["localhost", "127.0.0.1"]
    dot = await asyncio.start_server(dot_device.handler((host, port)), "127.0.0.1", 0,
                                     ssl=_ctx(pki, names))
    doh = await asyncio.start_server(doh_device.handler((host, port)), "127.0.0.1", 0,
                                     ssl=_ctx(pki, names))
    bad = await asyncio.start_server(dot_device.handler((host, port)), "127.0.0.1", 0,
                                     ssl=_ctx(pki, names, "wrong_host"))
    started = [dot, doh, bad]
    try:
        yield Servers(pki, *(s.sockets[0].getsockname()[1] for s in started))
    finally:
        for s in started:
            s.close()
        await dns_server.stop()


def _settings(pki: WorldPKI, *resolvers: EncryptedResolver) -> MeasureSettings:
    return MeasureSettings(use_system_resolver=False, encrypted_resolvers=resolvers,
                           ca_bundle=pki.ca_pem, dns_timeout=2.0, connect_timeout=2.0,
                           tls_timeout=2.0)


def _tx() -> int:
    _tx.n = getattr(_tx, "n", 0) + 1  # type: ignore[attr-defined]
    return _tx.n  # type: ignore[attr-defined,no-any-return]


def _with_servers(pki: WorldPKI, make: Callable[[Servers], MeasureSettings]) -> tuple[
        Servers, list[DNSObservation], list[dict[str, object]]]:
    """Start the servers, resolve site.test with ``make(servers)``, stop the servers."""
    async def go() -> tuple[Servers, list[DNSObservation], list[dict[str, object]]]:
        async with _servers(pki) as servers:
            t0 = time.monotonic()
            exchanges: list[dict[str, object]] = []
            obs = await mdns.resolve("site.test", make(servers), _tx,
                                     lambda: time.monotonic() - t0, exchanges)
            return servers, obs, exchanges
    return asyncio.run(go())


@pytest.mark.parametrize("engine", ["doh", "dot"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_encrypted_resolver_answers(pki: WorldPKI, engine: str, host: str) -> None:
    def make(servers: Servers) -> MeasureSettings:
        port = servers.doh_port if engine == "doh" else servers.dot_port
        return _settings(pki, EncryptedResolver(engine, host, port,
                                                "/dns-query" if engine == "doh" else ""))
    servers, obs, exchanges = _with_servers(pki, make)
    port = servers.doh_port if engine == "doh" else servers.dot_port
    r = EncryptedResolver(engine, host, port, "/dns-query" if engine == "doh" else "")
    assert [(o.engine, o.query_type, o.failure, o.addresses) for o in obs] == [
        (engine, "A", None, ("192.0.2.10",)), (engine, "AAAA", None, ("2001:db8::10",))]
    assert {o.resolver for o in obs} == {str(r)}
    assert len(exchanges) == 2
    for x in exchanges:
        assert x["address"] == "127.0.0.1" and x["verified"] is True and x["failure"] is None
        assert x["tls_version"] and x["tls_failure"] is None
        assert x["http_status"] == (200 if engine == "doh" else None)
    assert mdns.select_addresses(obs, _settings(servers.pki, r)) == ["192.0.2.10",
                                                                      "2001:db8::10"]


def test_wrong_path_is_an_http_failure_not_an_answer(pki: WorldPKI) -> None:
    _, obs, exchanges = _with_servers(pki, lambda s: _settings(
        pki, EncryptedResolver("doh", "127.0.0.1", s.doh_port, "/elsewhere")))
    assert all(o.addresses == () and o.failure and "HTTP 404" in o.failure for o in obs)
    assert [x["http_status"] for x in exchanges] == [404, 404]


def test_certificate_for_another_name_is_never_trusted(pki: WorldPKI) -> None:
    _, obs, exchanges = _with_servers(pki, lambda s: _settings(
        pki, EncryptedResolver("dot", "127.0.0.1", s.bad_cert_port)))
    assert all(o.addresses == () and o.failure == exchanges[0]["verify_error"] for o in obs)
    assert exchanges[0]["verified"] is False and exchanges[0]["tls_failure"] is None


def test_closed_port_and_unknown_name_are_transport_failures(pki: WorldPKI) -> None:
    closed = EncryptedResolver("dot", "127.0.0.1", 1)
    unknown = EncryptedResolver("doh", "no-such-resolver.invalid", 443, "/dns-query")
    _, obs, exchanges = _with_servers(pki, lambda s: _settings(pki, closed, unknown))
    by = {(o.resolver, o.query_type): o for o in obs}
    assert by[(str(closed), "A")].failure == failures.CONNECTION_REFUSED
    assert by[(str(unknown), "A")].failure is not None
    assert not by[(str(unknown), "A")].addresses
    x = {str(x["resolver"]): x for x in exchanges}
    assert x[str(closed)]["tcp_failure"] == failures.CONNECTION_REFUSED
    assert x[str(unknown)]["bootstrap_failure"] and x[str(unknown)]["address"] is None


def test_resolver_names() -> None:
    assert str(EncryptedResolver("doh", "dns.example", 443, "/dns-query")) == (
        "https://dns.example/dns-query")
    assert str(EncryptedResolver("doh", "2001:db8::1", 8443, "/q")) == "https://[2001:db8::1]:8443/q"
    assert str(EncryptedResolver("dot", "1.1.1.1", 853)) == "1.1.1.1:853"


# --- dnscheck: the resolver itself is the input -------------------------------------------------


def _dnscheck(pki: WorldPKI, url: Callable[[Servers], str]) -> Measurement:
    async def go() -> Measurement:
        async with _servers(pki) as servers:
            settings = replace(_settings(pki), dnscheck_domain="site.test")
            return await measure_dnscheck(parse_input(url(servers)), settings)
    return asyncio.run(go())


@pytest.mark.parametrize("engine", ["doh", "dot"])
def test_dnscheck_records_tcp_tls_http_and_the_query(pki: WorldPKI, engine: str) -> None:
    m = _dnscheck(pki, lambda s: f"doh://127.0.0.1:{s.doh_port}/dns-query" if engine == "doh"
                  else f"dot://127.0.0.1:{s.dot_port}/")
    (q,) = m.dns  # an IP literal: no bootstrap lookup
    assert (q.engine, q.hostname, q.failure, q.addresses) == (engine, "site.test", None,
                                                              ("192.0.2.10",))
    assert [c.failure for c in m.tcp] == [None] and m.tcp[0].tx_id == q.tx_id
    assert [(t.failure, t.verified) for t in m.tls] == [(None, True)]
    assert [h.status for h in m.http] == ([200] if engine == "doh" else [])
    assert m.extra["addresses"] == ["127.0.0.1"] and len(m.extra["exchanges"]) == 1
    assert classify(m).verdict is VerdictKind.OK


def test_dnscheck_closed_port_and_bad_certificate(pki: WorldPKI) -> None:
    closed = _dnscheck(pki, lambda s: "dot://127.0.0.1:1")
    assert [c.failure for c in closed.tcp] == [failures.CONNECTION_REFUSED]
    assert closed.tls == () and closed.dns[0].failure == failures.CONNECTION_REFUSED
    bad = _dnscheck(pki, lambda s: f"dot://127.0.0.1:{s.bad_cert_port}")
    assert [t.verified for t in bad.tls] == [False] and bad.dns[0].rcode is None
    assert classify(bad).verdict is not VerdictKind.BLOCKED  # no control: never blocked
