"""probe.lab.world: the simulated world's PKI, DNS and web servers, on loopback only.

One world (two DNS servers, two web servers on 127.0.0.1/.2/.3) is started per module and
exercised with real clients: dnspython over UDP and TCP, raw sockets, ssl and httpx.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx
import pytest
from cryptography import x509

from probe.lab.world.loopback import (
    DEMO_REFUSED_IP,
    DEMO_SITES,
    LoopbackWorld,
    demo_urls,
    demo_world,
    simple_world,
)
from probe.lab.world.pki import ROGUE_CA_SUBJECT, WorldPKI
from probe.lab.world.spec import (
    DNSServerConfig,
    SiteConfig,
    WebServerConfig,
    WorldConfig,
    parse_dns_behaviour,
    parse_web_behaviour,
)
from probe.lab.world.web_server import BLOCKPAGE_TITLE, CHALLENGE_TITLE, REGION_TITLE, parse_sni

pytestmark = pytest.mark.timeout(30)

FORGED = "10.10.34.35"
ROOT = Path(__file__).resolve().parents[2]


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("world-pki")


def _config(pki_dir: Path) -> WorldConfig:
    behaviours = {
        "nx.test": "nxdomain",
        "refused.test": "refused",
        "servfail.test": "servfail",
        "silent.test": "silent",
        "bogon.test": f"bogon:{FORGED}",
        "twice.test": f"twice:{FORGED}",
        "garbage.test": "garbage",
        "truncated.test": "truncated",
        "oversized.test": "oversized",
        "cname-only.test": "cname_only",
        "tc.test": "tc",
        "delayed.test": "delay:0.3",
        ".blocked.test": "refused",
    }
    auth = DNSServerConfig(
        listen=["127.0.0.1:0"],
        records={
            "ok.test": {"A": ["127.0.0.1"], "ttl": 60},
            "v6.test": {"AAAA": ["::1"]},
            "alias.test": {"CNAME": "ok.test"},
            "dangling.test": {"CNAME": "nowhere.test"},
            "*.wild.test": {"A": ["127.0.0.3"]},
            "txt.test": {"TXT": ["hello world"]},
            "twice.test": {"A": ["127.0.0.1"]},
            "tc.test": {"A": ["127.0.0.1"]},
            "delayed.test": {"A": ["127.0.0.1"]},
            "truncated.test": {"A": ["127.0.0.1"]},
        },
        behaviours=behaviours,
    )
    resolver = DNSServerConfig(
        listen=["127.0.0.4:0"],
        behaviours={"censored.test": "nxdomain", ".lying.test": f"bogon:{FORGED}"},
        default="forward",
        upstream="127.0.0.1:0",
    )
    sites: dict[str, Any] = {
        "ok.test": {"title": "The OK site", "headers": {"X-Site": "ok"}},
        "expired.test": {"cert": "expired"},
        "wronghost.test": {"cert": "wrong_host"},
        "unknownca.test": {"cert": "unknown_ca"},
        "selfsigned.test": {"cert": "self_signed"},
        "status.test": {"behaviour": "status:503"},
        "reset.test": {"behaviour": "reset"},
        "close.test": {"behaviour": "close"},
        "hang.test": {"behaviour": "hang"},
        "slow.test": {"behaviour": "slow:4000", "size": 2000},
        "delay.test": {"behaviour": "delay:0.3"},
        "redirect.test": {"behaviour": "redirect:https://ok.test/landing"},
        "loop.test": {"behaviour": "redirect_loop"},
        "big.test": {"behaviour": "big:3000000"},
        # the OSes' captive-portal checks: answers that are not HTML pages
        "gen204.test": {"status": 204, "body": "", "content_type": "text/plain"},
        "ncsi.test": {"body": "Microsoft Connect Test", "content_type": "text/plain"},
        "blockpage.test": {"behaviour": "blockpage"},
        "echo.test": {"behaviour": "echo"},
        "challenge.test": {"behaviour": "challenge"},
        "geo.test": {
            "behaviour": "geo",
            "body": "World edition",
            "region_content": {"127.0.0.0/8": "Loopback edition", "127.0.0.2/32": "Local news"},
        },
        "region.test": {"region_block": ["127.0.0.2/32"]},
        "tlsreset.test": {"behaviour": "tls_reset"},
        "tlsclose.test": {"behaviour": "tls_close"},
        "tlshang.test": {"behaviour": "tls_hang"},
        "*.wild.test": {"title": "Wildcard"},
        "пример.test": {"title": "IDN"},
    }
    web = WebServerConfig(
        listen_ips=["127.0.0.1", "127.0.0.2"],
        sites=sites,
        default_site="ok.test",
        handshake_timeout=2,
    )
    other = WebServerConfig(listen_ips=["127.0.0.3"], sites={"other.test": {"title": "Other"}})
    return WorldConfig(pki_dir=str(pki_dir), dns=[auth, resolver], web=[web, other])


@pytest.fixture(scope="module")
def world(pki_dir: Path) -> Iterator[LoopbackWorld]:
    with LoopbackWorld(_config(pki_dir)) as running:
        yield running


class _LoopbackTransport(httpx.HTTPTransport):
    """Connects every request to 127.0.0.1 keeping Host and SNI (no DNS needed)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        request.url = request.url.copy_with(host="127.0.0.1")
        request.extensions = {**request.extensions, "sni_hostname": host}
        return super().handle_request(request)


def _client(world: LoopbackWorld, source: str | None = None, **kw: Any) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=world.ca_pem)
    transport = _LoopbackTransport(verify=ctx, local_address=source)
    return httpx.Client(transport=transport, timeout=kw.pop("timeout", 3), **kw)


def _raw(world: LoopbackWorld, host: str, tls: bool, *, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", world.https_port if tls else world.http_port),
        timeout=2,
        source_address=(source, 0),
    )
    if tls:
        ctx = ssl.create_default_context(cafile=world.ca_pem)
        sock = ctx.wrap_socket(sock, server_hostname=host)
    return sock


def _request(host: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test\r\n\r\n".encode()


def _peer_cert(world: LoopbackWorld, sni: str | None, ip: str = "127.0.0.1") -> x509.Certificate:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((ip, world.https_port), timeout=2) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _sans(cert: x509.Certificate) -> list[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in ext.get_values_for_type(x509.DNSName)] + [
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    ]


def _query(
    world: LoopbackWorld,
    name: str,
    rtype: str = "A",
    *,
    tcp: bool = False,
    server: tuple[str, int] | None = None,
    timeout: float = 1.0,
) -> dns.message.Message:
    host, port = server or world.dns_address
    q = dns.message.make_query(name, rtype)
    if tcp:
        return dns.query.tcp(q, host, port=port, timeout=timeout)
    return dns.query.udp(q, host, port=port, timeout=timeout)


def _addresses(msg: dns.message.Message) -> list[str]:
    return [
        rd.to_text()
        for rrset in msg.answer
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        for rd in rrset
    ]


# -- config ---------------------------------------------------------------------------------


def test_config_roundtrip_and_json(pki_dir: Path, tmp_path: Path) -> None:
    config = _config(pki_dir)
    assert WorldConfig.from_dict(config.to_dict()) == config
    path = tmp_path / "world.json"
    config.to_json(path)
    assert WorldConfig.load(path) == config
    assert "xn--" in next(k for k in config.web[0].sites if k.startswith("xn--"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"pki_dir": "p", "dns": [{"listen": ["127.0.0.1:53"], "bogus": 1}]}, "bogus"),
        ({"pki_dir": "p", "dns": [{"listen": ["127.0.0.1"]}]}, "ip:port"),
        ({"pki_dir": "p", "dns": [{"listen": ["127.0.0.1:53"], "default": "forward"}]}, "upstream"),
        (
            {"pki_dir": "p", "dns": [{"listen": ["1.1.1.1:53"], "behaviours": {"x": "lie"}}]},
            "unknown DNS behaviour",
        ),
        (
            {"pki_dir": "p", "dns": [{"listen": ["1.1.1.1:53"], "records": {"x": {"A": ["::1"]}}}]},
            "IPv6",
        ),
        (
            {
                "pki_dir": "p",
                "web": [{"listen_ips": ["127.0.0.1"], "sites": {"a": {"behavior": 1}}}],
            },
            "behavior",
        ),
        (
            {
                "pki_dir": "p",
                "web": [{"listen_ips": ["127.0.0.1"], "sites": {"a": {"behaviour": "status:999"}}}],
            },
            "status",
        ),
        (
            {"pki_dir": "p", "web": [{"listen_ips": ["127.0.0.1"], "sites": {"a": {"cert": "x"}}}]},
            "cert",
        ),
        (
            {"pki_dir": "p", "web": [{"listen_ips": ["127.0.0.1"], "default_site": "nope"}]},
            "default_site",
        ),
        ({"pki_dir": "p", "extra": 1}, "extra"),
    ],
)
def test_config_rejects_bad_values(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorldConfig.from_dict(data)


def test_behaviour_parsers() -> None:
    assert str(parse_dns_behaviour("twice:10.10.34.35")) == "twice:10.10.34.35"
    assert parse_web_behaviour("slow:100").arg == "100"
    for bad in ("bogon:notanip", "delay:-1", "twice"):
        with pytest.raises(ValueError):
            parse_dns_behaviour(bad)
    for bad in ("slow:0", "big:x", "redirect:", "nonsense"):
        with pytest.raises(ValueError):
            parse_web_behaviour(bad)


# -- PKI ------------------------------------------------------------------------------------


def test_pki_is_idempotent_and_caches(pki_dir: Path) -> None:
    first = WorldPKI.create(pki_dir)
    again = WorldPKI.create(pki_dir)
    assert Path(first.ca_pem).read_bytes() == Path(again.ca_pem).read_bytes()
    assert first.ca_pem.endswith("ca.pem") and first.rogue_ca_pem.endswith("rogue-ca.pem")
    chain, key = first.issue(["cache.test"], "valid")
    assert again.issue(["cache.test"], "valid") == (chain, key)
    assert Path(key).stat().st_mode & 0o077 == 0
    rogue = x509.load_pem_x509_certificate(Path(first.rogue_ca_pem).read_bytes())
    assert rogue.subject == ROGUE_CA_SUBJECT
    assert "C=KZ" in rogue.subject.rfc4514_string()
    assert Path(first.rogue_ca_key).exists()


def test_pki_forge_copies_subject_and_san(pki_dir: Path) -> None:
    pki = WorldPKI.create(pki_dir)
    chain, _ = pki.issue(["news.test", "www.news.test"])
    original = x509.load_pem_x509_certificates(Path(chain).read_bytes())[0]
    from cryptography.hazmat.primitives.serialization import Encoding

    forged_chain, forged_key = pki.forge(original.public_bytes(Encoding.DER))
    forged, ca = x509.load_pem_x509_certificates(Path(forged_chain).read_bytes())
    assert forged.subject == original.subject
    assert _sans(forged) == ["news.test", "www.news.test"]
    assert forged.issuer == ROGUE_CA_SUBJECT and ca.subject == ROGUE_CA_SUBJECT
    forged.verify_directly_issued_by(pki.rogue_ca_cert)
    # a client trusting the rogue CA accepts it; one trusting the world CA does not
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(forged_chain, forged_key)
    assert pki.forge(original.public_bytes(Encoding.DER)) == (forged_chain, forged_key)


@pytest.mark.parametrize(
    ("host", "error"),
    [
        ("ok.test", None),
        ("expired.test", "expired"),
        ("wronghost.test", "Hostname mismatch"),
        ("unknownca.test", "self-signed certificate in certificate chain"),
        ("selfsigned.test", "self.signed"),
    ],
)
def test_certificates_verify_or_fail(world: LoopbackWorld, host: str, error: str | None) -> None:
    if error is None:
        _raw(world, host, tls=True).close()
        return
    with pytest.raises(ssl.SSLCertVerificationError, match=error):
        _raw(world, host, tls=True)


def test_sni_selects_certificate(world: LoopbackWorld) -> None:
    assert _sans(_peer_cert(world, "ok.test")) == ["ok.test"]
    assert _sans(_peer_cert(world, "wronghost.test")) == ["wrong-host.invalid"]
    assert _sans(_peer_cert(world, "a.b.wild.test")) == ["*.wild.test"]
    assert _sans(_peer_cert(world, "unknown.test")) == ["ok.test"]  # default site
    assert _sans(_peer_cert(world, None)) == ["ok.test"]
    # the second web server shares the port on another IP; no default site → IP certificate
    assert _sans(_peer_cert(world, "other.test", ip="127.0.0.3")) == ["other.test"]
    assert _sans(_peer_cert(world, "nope.test", ip="127.0.0.3")) == ["127.0.0.3"]


def test_parse_sni_rejects_junk() -> None:
    assert parse_sni(b"") is None
    assert parse_sni(b"GET / HTTP/1.1\r\n") is None
    assert parse_sni(b"\x16\x03\x01\x00\x05\x01\x00") is None


# -- DNS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dns_answers(world: LoopbackWorld, tcp: bool) -> None:
    ok = _query(world, "ok.test", tcp=tcp)
    assert ok.rcode() == dns.rcode.NOERROR and _addresses(ok) == ["127.0.0.1"]
    assert ok.flags & dns.flags.AA and ok.answer[0].ttl == 60
    assert _addresses(_query(world, "OK.TEST.", tcp=tcp)) == ["127.0.0.1"]
    assert _addresses(_query(world, "v6.test", "AAAA", tcp=tcp)) == ["::1"]
    nodata = _query(world, "v6.test", "A", tcp=tcp)
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    alias = _query(world, "alias.test", tcp=tcp)
    assert [r.rdtype for r in alias.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert _addresses(alias) == ["127.0.0.1"]
    assert _addresses(_query(world, "x.y.wild.test", tcp=tcp)) == ["127.0.0.3"]
    assert _query(world, "wild.test", tcp=tcp).rcode() == dns.rcode.NXDOMAIN
    txt = _query(world, "txt.test", "TXT", tcp=tcp)
    assert txt.answer[0][0].strings == (b"hello world",)
    assert _query(world, "unknown.test", tcp=tcp).rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(
    ("name", "rcode"),
    [
        ("nx.test", dns.rcode.NXDOMAIN),
        ("refused.test", dns.rcode.REFUSED),
        ("servfail.test", dns.rcode.SERVFAIL),
        ("blocked.test", dns.rcode.REFUSED),
        ("www.blocked.test", dns.rcode.REFUSED),
    ],
)
def test_dns_error_behaviours(world: LoopbackWorld, name: str, rcode: int, tcp: bool) -> None:
    assert _query(world, name, tcp=tcp).rcode() == rcode


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dns_misbehaviours(world: LoopbackWorld, tcp: bool) -> None:
    with pytest.raises(dns.exception.Timeout):
        _query(world, "silent.test", tcp=tcp, timeout=0.3)
    assert _addresses(_query(world, "bogon.test", tcp=tcp)) == [FORGED]
    assert not _query(world, "bogon.test", "AAAA", tcp=tcp).answer
    with pytest.raises(dns.exception.DNSException):
        _query(world, "garbage.test", tcp=tcp)
    with pytest.raises(dns.exception.FormError):
        _query(world, "truncated.test", tcp=tcp)
    huge = _query(world, "oversized.test", tcp=tcp)
    assert len(huge.answer[0]) >= 300 and len(huge.to_wire()) > 4096
    cname = _query(world, "cname-only.test", tcp=tcp)
    assert [r.rdtype for r in cname.answer] == [dns.rdatatype.CNAME] and not _addresses(cname)
    dangling = _query(world, "dangling.test", tcp=tcp)
    assert [r.rdtype for r in dangling.answer] == [dns.rdatatype.CNAME]
    started = time.monotonic()
    assert _addresses(_query(world, "delayed.test", tcp=tcp)) == ["127.0.0.1"]
    assert time.monotonic() - started >= 0.25


def test_dns_tc_flag_over_udp_then_tcp(world: LoopbackWorld) -> None:
    udp = _query(world, "tc.test")
    assert udp.flags & dns.flags.TC and not udp.answer
    assert _addresses(_query(world, "tc.test", tcp=True)) == ["127.0.0.1"]


def test_dns_twice_udp_two_answers_on_one_socket(world: LoopbackWorld) -> None:
    query = dns.message.make_query("twice.test", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(query.to_wire(), world.dns_address)
        answers: list[tuple[float, list[str]]] = []
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                wire = sock.recv(65535)
            except TimeoutError:
                break
            msg = dns.message.from_wire(wire)
            assert msg.id == query.id
            answers.append((time.monotonic(), _addresses(msg)))
    assert [a for _, a in answers] == [[FORGED], ["127.0.0.1"]]
    assert answers[1][0] - answers[0][0] >= 0.05


def test_dns_twice_tcp_two_framed_messages(world: LoopbackWorld) -> None:
    query = dns.message.make_query("twice.test", "A")
    wire = query.to_wire()
    with socket.create_connection(world.dns_address, timeout=2) as sock:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        got = []
        for _ in range(2):
            (length,) = struct.unpack("!H", _recv_exactly(sock, 2))
            got.append(_addresses(dns.message.from_wire(_recv_exactly(sock, length))))
    assert got == [[FORGED], ["127.0.0.1"]]


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "EOF"
        data += chunk
    return data


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dns_forwarding_resolver(world: LoopbackWorld, tcp: bool) -> None:
    resolver = world.dns_addresses[1]
    assert resolver[0] == "127.0.0.4"
    forwarded = _query(world, "ok.test", tcp=tcp, server=resolver)
    assert _addresses(forwarded) == ["127.0.0.1"] and forwarded.flags & dns.flags.RA
    assert _query(world, "unknown.test", tcp=tcp, server=resolver).rcode() == dns.rcode.NXDOMAIN
    assert _query(world, "censored.test", tcp=tcp, server=resolver).rcode() == dns.rcode.NXDOMAIN
    assert _addresses(_query(world, "a.lying.test", tcp=tcp, server=resolver)) == [FORGED]
    # the upstream's own misbehaviour passes through
    assert _query(world, "refused.test", tcp=tcp, server=resolver).rcode() == dns.rcode.REFUSED


# -- web ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_web_ok_page(world: LoopbackWorld, scheme: str) -> None:
    with _client(world) as client:
        response = client.get(world.url("ok.test", scheme))
    assert response.status_code == 200
    assert "<title>The OK site</title>" in response.text
    assert response.headers["x-site"] == "ok"
    assert int(response.headers["content-length"]) == len(response.content)


def test_web_host_selection(world: LoopbackWorld) -> None:
    with _client(world) as client:
        assert "<title>Wildcard</title>" in client.get(world.url("deep.wild.test")).text
        assert "<title>Wildcard</title>" in client.get(world.url("a.b.wild.test", "http")).text
        assert "<title>IDN</title>" in client.get(world.url("xn--e1afmkfd.test")).text
        unknown = client.get(world.url("unknown.test", "http"))
        assert "<title>The OK site</title>" in unknown.text  # default site
        head = client.head(world.url("ok.test"))
        assert head.status_code == 200 and head.content == b""
    # another IP of the same server, and the other server on 127.0.0.3 (same port)
    other = httpx.get(f"http://127.0.0.3:{world.http_port}/", headers={"Host": "other.test"})
    assert "<title>Other</title>" in other.text
    assert httpx.get(f"http://127.0.0.3:{world.http_port}/").status_code == 404
    second_ip = httpx.get(f"http://127.0.0.2:{world.http_port}/", headers={"Host": "ok.test"})
    assert second_ip.status_code == 200


def test_web_status_redirect_blockpage_challenge(world: LoopbackWorld) -> None:
    with _client(world) as client:
        assert client.get(world.url("status.test")).status_code == 503
        redirect = client.get(world.url("redirect.test"))
        assert redirect.status_code == 302
        assert redirect.headers["location"] == "https://ok.test/landing"
        block = client.get(world.url("blockpage.test", "http"))
        assert block.status_code == 200 and BLOCKPAGE_TITLE in block.text
        challenge = client.get(world.url("challenge.test"))
        assert challenge.status_code == 403
        assert challenge.headers["server"] == "cloudflare"
        assert challenge.headers["cf-mitigated"] == "challenge"
        assert CHALLENGE_TITLE in challenge.text


def test_web_redirect_loop_keeps_redirecting(world: LoopbackWorld) -> None:
    locations: list[str] = []

    def record(response: httpx.Response) -> None:
        locations.append(response.headers["location"])

    hooks = {"response": [record]}
    with _client(world, follow_redirects=True, max_redirects=12, event_hooks=hooks) as client:
        with pytest.raises(httpx.TooManyRedirects):
            client.get(world.url("loop.test"))
    assert len(locations) >= 12
    assert locations[0].endswith("/?hop=1") and locations[11].endswith("/?hop=12")
    assert locations[0].startswith(f"https://loop.test:{world.https_port}/")


def test_web_big_body(world: LoopbackWorld) -> None:
    with _client(world) as client:
        response = client.get(world.url("big.test"))
    assert response.status_code == 200
    assert len(response.content) == 3_000_000
    assert response.headers["content-length"] == "3000000"
    assert response.text.startswith("<!DOCTYPE html>") and response.text.endswith("-->")


@pytest.mark.parametrize(("host", "status", "body"), [
    ("gen204.test", 204, b""),
    ("ncsi.test", 200, b"Microsoft Connect Test"),
])
def test_web_non_html_body_is_served_verbatim(world: LoopbackWorld, host: str, status: int,
                                              body: bytes) -> None:
    with _client(world) as client:
        response = client.get(world.url(host, "http") + "generate_204")
    assert (response.status_code, response.content) == (status, body)


def test_web_slow_and_delay(world: LoopbackWorld) -> None:
    with _client(world) as client:
        started = time.monotonic()
        slow = client.get(world.url("slow.test"))
        slow_time = time.monotonic() - started
        started = time.monotonic()
        delayed = client.get(world.url("delay.test", "http"))
        delay_time = time.monotonic() - started
    assert len(slow.content) == 2000 and 0.35 <= slow_time < 2.0  # 2000 B at 4000 B/s
    assert delayed.status_code == 200 and 0.25 <= delay_time < 2.0


def test_web_reset_is_econnreset_http(world: LoopbackWorld) -> None:
    with _raw(world, "reset.test", tls=False) as sock:
        sock.sendall(_request("reset.test"))
        with pytest.raises(ConnectionResetError) as info:
            while sock.recv(4096):
                pass
    assert info.value.errno == errno.ECONNRESET


def test_web_reset_is_econnreset_https(world: LoopbackWorld) -> None:
    # The blocking ssl module reports a RST after the handshake as SSLEOFError; asyncio's
    # SSL transport (what the probe uses) reads the socket itself and sees ECONNRESET.
    async def fetch() -> None:
        ctx = ssl.create_default_context(cafile=world.ca_pem)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", world.https_port, ssl=ctx, server_hostname="reset.test"
        )
        try:
            writer.write(_request("reset.test"))
            await reader.read()
        finally:
            writer.close()

    with pytest.raises(ConnectionResetError) as info:
        asyncio.run(fetch())
    assert info.value.errno == errno.ECONNRESET


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_web_close_is_eof(world: LoopbackWorld, tls: bool) -> None:
    with _raw(world, "close.test", tls) as sock:
        sock.sendall(_request("close.test"))
        try:
            data = sock.recv(4096)
        except ssl.SSLEOFError:
            data = b""
        assert data == b""


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_web_hang_times_out(world: LoopbackWorld, scheme: str) -> None:
    with _client(world, timeout=0.4) as client, pytest.raises(httpx.ReadTimeout):
        client.get(world.url("hang.test", scheme))


def test_web_tls_level_behaviours(world: LoopbackWorld) -> None:
    with pytest.raises(ConnectionResetError):
        _raw(world, "tlsreset.test", tls=True)
    with pytest.raises((ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError)):
        _raw(world, "tlsclose.test", tls=True)
    raw = socket.create_connection(("127.0.0.1", world.https_port), timeout=0.4)
    ctx = ssl.create_default_context(cafile=world.ca_pem)
    with pytest.raises(TimeoutError):
        ctx.wrap_socket(raw, server_hostname="tlshang.test")
    raw.close()
    # the same sites answer over plain HTTP
    with _client(world) as client:
        assert client.get(world.url("tlsreset.test", "http")).status_code == 200


def test_web_half_open_client_does_not_block_accept(world: LoopbackWorld) -> None:
    silent = [socket.create_connection(("127.0.0.1", world.https_port)) for _ in range(3)]
    try:
        with _client(world, timeout=2) as client:
            assert client.get(world.url("ok.test")).status_code == 200
    finally:
        for sock in silent:
            sock.close()


def test_web_echo_client_ip(world: LoopbackWorld) -> None:
    with _client(world, source="127.0.0.2", follow_redirects=True) as client:
        response = client.get(world.url("echo.test"))
    assert response.status_code == 200
    assert response.history[0].headers["location"].endswith("/echo?ip=127.0.0.2")
    assert response.headers["x-client-ip"] == "127.0.0.2"
    assert "127.0.0.2" in response.text


def test_web_region_block_and_geo_by_source(world: LoopbackWorld) -> None:
    with _client(world) as home, _client(world, source="127.0.0.2") as abroad:
        assert home.get(world.url("region.test")).status_code == 200
        blocked = abroad.get(world.url("region.test"))
        assert blocked.status_code == 403 and REGION_TITLE in blocked.text
        assert "Loopback edition" in home.get(world.url("geo.test")).text
        assert "Local news" in abroad.get(world.url("geo.test")).text


# -- loopback helpers, demo, process ----------------------------------------------------------


def test_loopback_rejects_non_loopback(pki_dir: Path) -> None:
    config = WorldConfig(
        pki_dir=str(pki_dir), dns=[DNSServerConfig(listen=["198.51.100.1:53"])], web=[]
    )
    with pytest.raises(ValueError, match="loopback"):
        LoopbackWorld(config)


def test_loopback_start_failure_cleans_up(pki_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = WorldConfig(
            pki_dir=str(pki_dir),
            web=[WebServerConfig(listen_ips=["127.0.0.1"], http_port=port, https_port=None)],
        )
        with pytest.raises(OSError):
            LoopbackWorld(config, free_ports=False).start()


def test_simple_world(pki_dir: Path) -> None:
    config = simple_world(pki_dir, {"a.test": {"title": "A"}, "b.test": SiteConfig(cert="expired")})
    with LoopbackWorld(config) as running:
        assert _addresses(_query(running, "b.test")) == ["127.0.0.1"]
        with _client(running) as client:
            assert "<title>A</title>" in client.get(running.url("a.test")).text


def test_demo_world(tmp_path: Path) -> None:
    with LoopbackWorld(demo_world(tmp_path)) as demo:
        urls = demo_urls(demo)
        assert set(urls) == set(DEMO_SITES)
        resolved = {key: _query(demo, DEMO_SITES[key][0]) for key in ("ok", "refused", "nxdomain")}
        assert _addresses(resolved["refused"]) == [DEMO_REFUSED_IP]
        assert resolved["nxdomain"].rcode() == dns.rcode.NXDOMAIN
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((DEMO_REFUSED_IP, demo.https_port), timeout=1)
        with _client(demo, timeout=0.4) as client:
            assert client.get(urls["ok"]).status_code == 200
            assert client.get(urls["plain"]).status_code == 200
            with pytest.raises(httpx.ReadTimeout):
                client.get(urls["timeout"])
            with pytest.raises(httpx.ConnectError, match="expired"):
                client.get(urls["expired"])


def test_main_process_ready_file_and_sigterm(tmp_path: Path) -> None:
    config = simple_world(tmp_path / "pki", {"proc.test": {"title": "Process"}})
    config_path = tmp_path / "world.json"
    config.to_json(config_path)
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "probe.lab.world",
            "--config",
            str(config_path),
            "--ready-file",
            str(ready),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no ready file"
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        host, _, port = info["dns"][0][0].rpartition(":")
        answer = dns.query.udp(
            dns.message.make_query("proc.test", "A"), host, port=int(port), timeout=2
        )
        assert _addresses(answer) == ["127.0.0.1"]
        http_host, _, http_port = info["web"][0]["http"][0].rpartition(":")
        page = httpx.get(f"http://{http_host}:{http_port}/", headers={"Host": "proc.test"})
        assert "<title>Process</title>" in page.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert not ready.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def test_main_rejects_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pki_dir": "pki", "dns": [{"listen": ["x"]}]}))
    result = subprocess.run(
        [sys.executable, "-m", "probe.lab.world", "--config", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2 and "ip:port" in result.stderr
