"""probe.lab.world's hostile behaviours on their own: wire scripts, DNS replies, certificates, TLS.

Each behaviour is checked to send what probe/lab/world/README.md says it sends, without a probe:
the scripts of :mod:`probe.lab.world.rawhttp` as pure iterators,
:class:`probe.lab.world.dns_server.DNSLogic`
replies parsed (or refused) by dnspython, the hostile certificate kinds by cryptography and
OpenSSL, and the hostile TLS behaviours over loopback with raw sockets.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import pytest
from cryptography import x509

from probe.lab.world import rawhttp
from probe.lab.world.dns_server import DNSLogic
from probe.lab.world.hostile import HOSTILE_SITES, hostile_urls, hostile_world
from probe.lab.world.loopback import LoopbackWorld
from probe.lab.world.pki import HUGE_CHAIN_FILLERS, LONG_CHAIN_LENGTH, WorldPKI
from probe.lab.world.spec import (
    DNSServerConfig,
    WorldConfig,
    parse_dns_behaviour,
    parse_web_behaviour,
)

pytestmark = pytest.mark.timeout(30)

EXCHANGE = rawhttp.Exchange("https", "h.test", "/", "Title")


def _play(behaviour: str, limit: int = 1 << 20) -> tuple[bytes, list[float], bool]:
    """(bytes, pauses, ended) of a script, reading at most ``limit`` bytes."""
    data, pauses = bytearray(), []
    steps = rawhttp.script(parse_web_behaviour(behaviour), EXCHANGE)
    for step in steps:
        data += step.data
        pauses.append(step.pause)
        if len(data) >= limit:
            return bytes(data), pauses, False
    return bytes(data), pauses, True


# -- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["slowloris:0", "drip:-1", "gzip_bomb:x", "many_headers:0",
                                  "redirect_chain:1.5", "charset:", "tls_trickle:nan",
                                  "cookie_bomb:0"])
def test_bad_hostile_web_arguments_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_web_behaviour(text)


@pytest.mark.parametrize("text", ["huge_answer:0", "wrong_id_flood:x", "dup_flood:-3"])
def test_bad_hostile_dns_arguments_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_dns_behaviour(text)


def test_hostile_world_round_trips_and_names_only_loopback(tmp_path: Path) -> None:
    config = hostile_world(tmp_path)
    assert WorldConfig.from_dict(config.to_dict()) == config
    assert config.web[0].listen_ips == ["127.0.0.1"] and config.dns[0].listen == ["127.0.0.1:0"]
    layers = {site.layer for site in HOSTILE_SITES.values()}
    assert layers == {"http", "tls", "cert", "dns"} and len(HOSTILE_SITES) >= 21


# -- HTTP wire scripts ------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["endless_body", "endless_headers", "endless_chunks",
                                       "continue_forever", "drip:0.5"])
def test_endless_scripts_are_lazy(behaviour: str) -> None:
    data, pauses, ended = _play(behaviour, limit=4 << 20 if "drip" not in behaviour else 300)
    assert not ended
    if behaviour.startswith("drip"):
        assert set(pauses[1:]) == {0.5}


@pytest.mark.parametrize("kind", ["gzip_bomb", "deflate_bomb"])
def test_bombs_inflate_to_zeros_at_about_a_thousand_to_one(kind: str) -> None:
    steps = rawhttp.script(parse_web_behaviour(f"{kind}:{1 << 30}"), EXCHANGE)
    head = next(steps).data
    assert b"Content-Encoding: " + (b"gzip" if kind == "gzip_bomb" else b"deflate") in head
    compressed = b"".join(s.data for s in itertools.islice(steps, 8))
    wbits = 16 + zlib.MAX_WBITS if kind == "gzip_bomb" else zlib.MAX_WBITS
    inflated = zlib.decompressobj(wbits).decompress(compressed, 64 << 20)
    assert inflated == bytes(len(inflated)) and len(inflated) > 500 * len(compressed)


def test_finite_scripts_say_what_the_readme_says() -> None:
    data, _, ended = _play("huge_header:200000")
    assert ended and len(data) > 200000 and data.startswith(b"HTTP/1.1 200 OK\r\nX-Huge: hhh")
    data, _, _ = _play("many_headers:5000")
    assert data.count(b": y\r\n") == 5000
    data, pauses, _ = _play("slowloris:0.25")
    assert data.endswith(b"</html>\n") and pauses[0] == 0 and set(pauses[1:]) == {0.25}
    assert len(pauses) == len(data)  # one byte per step
    assert _play("bad_status")[0].startswith(b"HTTP/1.1 2OO")
    assert _play("no_status")[0].startswith(b"<!DOCTYPE html>")
    assert b"Content-Length: 10000000" in _play("length_long")[0]
    assert _play("length_conflict")[0].count(b"Content-Length") == 2
    assert _play("close_after_headers")[0].endswith(b"\r\n\r\n")
    assert b"zz-not-hex" in _play("bad_chunked")[0]
    location = _play("huge_location:50000")[0].split(b"Location: ", 1)[1].split(b"\r\n")[0]
    assert len(location) == 50000 and location.startswith(b"https://h.test/?q=LLL")
    mojibake = _play("mojibake")[0]
    with pytest.raises(UnicodeDecodeError):
        mojibake.decode("utf-8")
    utf16 = _play("charset:utf-16")[0]
    assert b"charset=utf-16" in utf16 and "Кириллица".encode("utf-16-le") in utf16


def test_cookie_bomb_sets_new_cookies_on_every_hop() -> None:
    exchange = rawhttp.Exchange("http", "h.test", "/p?hop=4", "T")
    data = b"".join(s.data for s in rawhttp.script(parse_web_behaviour("cookie_bomb:300"),
                                                    exchange))
    assert data.count(b"Set-Cookie: h4c") == 300 and b"Location: http://h.test/p?hop=5" in data


def test_redirect_chain_ends_after_n_hops() -> None:
    def hop(target: str) -> bytes:
        exchange = rawhttp.Exchange("http", "h.test", target, "T")
        return b"".join(s.data for s in rawhttp.script(parse_web_behaviour("redirect_chain:3"),
                                                        exchange))

    assert b"Location: http://h.test/p?hop=1\r\n" in hop("/p")
    assert b"Location: http://h.test/p?hop=3\r\n" in hop("/p?hop=2")
    assert hop("/p?hop=3").startswith(b"HTTP/1.1 200 OK")


# -- DNS replies ------------------------------------------------------------------------------


def _reply(behaviour: str, qtype: str = "A") -> tuple[dns.message.Message, list[bytes]]:
    config = DNSServerConfig(listen=["127.0.0.1:0"], records={"h.test": {"A": ["127.0.0.7"]}},
                             behaviours={"h.test": behaviour})
    query = dns.message.make_query("h.test", qtype)
    sends = asyncio.run(DNSLogic(config).reply(query.to_wire(), "udp"))
    return query, [s.wire for s in sends]


@pytest.mark.parametrize("behaviour", ["pointer_loop", "bad_rdata", "lying_counts"])
def test_malformed_dns_replies_do_not_parse(behaviour: str) -> None:
    query, (wire,) = _reply(behaviour)
    assert wire[:2] == query.id.to_bytes(2, "big")
    with pytest.raises(dns.exception.DNSException):
        dns.message.from_wire(wire)


def test_many_questions() -> None:
    _, (wire,) = _reply("many_questions")
    assert struct.unpack("!H", wire[4:6]) == (2000,)
    assert len(dns.message.from_wire(wire).question) >= 1  # duplicates collapse when parsed


@pytest.mark.parametrize("qtype", ["A", "AAAA"])
def test_huge_answer_fits_one_datagram_and_names_only_loopback(qtype: str) -> None:
    _, (wire,) = _reply("huge_answer:10000", qtype)
    assert 60000 < len(wire) <= 65000
    answer = dns.message.from_wire(wire).answer[0]
    values = [rd.address for rd in answer]
    assert len(values) > 2000
    assert all(v.startswith(("127.", "::ffff:127.")) for v in values)


def test_cname_loop_and_binary_names() -> None:
    _, (wire,) = _reply("cname_loop")
    answer = dns.message.from_wire(wire).answer
    assert [rr.rdtype for rr in answer] == [dns.rdatatype.CNAME] * 2
    assert answer[0][0].target == answer[1].name and answer[1][0].target == answer[0].name
    _, (wire,) = _reply("binary_names")
    rrsets = dns.message.from_wire(wire).answer
    odd = rrsets[0][0].target
    assert odd.labels[:3] == (b"\x00\xff", b"dot.inside", b"\xc3\x28 \x80")
    assert [rd.address for rd in rrsets[1]] == ["127.0.0.7"]


@pytest.mark.parametrize("kind", ["wrong_id_flood", "dup_flood"])
def test_floods(kind: str) -> None:
    query, wires = _reply(f"{kind}:300")
    assert len(wires) == 301
    ids = [int.from_bytes(w[:2], "big") for w in wires]
    assert ids[-1] == query.id
    if kind == "wrong_id_flood":
        assert query.id not in ids[:-1]
    else:
        assert set(ids) == {query.id}


# -- certificates -----------------------------------------------------------------------------


def test_hostile_certificate_kinds(tmp_path: Path) -> None:
    pki = WorldPKI.create(tmp_path / "pki")
    chain, key = pki.issue(["h.test"], "long_chain")
    certs = x509.load_pem_x509_certificates(Path(chain).read_bytes())
    assert len(certs) == LONG_CHAIN_LENGTH + 1
    for child, parent in zip(certs, certs[1:], strict=False):
        child.verify_directly_issued_by(parent)
    certs[-1].verify_directly_issued_by(pki.world_ca_cert)
    chain, _ = pki.issue(["h.test"], "huge_chain")
    assert Path(chain).stat().st_size > HUGE_CHAIN_FILLERS * 64 * 1024
    chain, key = pki.issue(["h.test"], "malformed")
    with pytest.raises(ValueError):
        x509.load_pem_x509_certificates(Path(chain).read_bytes())
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(chain, key)  # OpenSSL takes it
    assert pki.issue(["h.test"], "malformed") == (chain, key)  # cached


# -- TLS over loopback ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackWorld]:
    with LoopbackWorld(hostile_world(tmp_path_factory.mktemp("hostile"))) as w:
        yield w


def _client_hello(name: str) -> bytes:
    ctx = ssl.create_default_context()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def _after_hello(world: LoopbackWorld, key: str, wait: float) -> bytes:
    """What the server sends within ``wait`` seconds of our ClientHello."""
    deadline = time.monotonic() + wait
    site = HOSTILE_SITES[key]
    with socket.create_connection((site.ip, world.https_port), timeout=wait) as sock:
        sock.sendall(_client_hello(site.hostname))
        data = b""
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        return data


def test_tls_stall_sends_only_the_server_hello(world: LoopbackWorld) -> None:
    data = _after_hello(world, "tls-stall", 0.5)
    assert data[:1] == b"\x16" and data[5] == 0x02  # a handshake record: ServerHello
    assert len(data) == 5 + int.from_bytes(data[3:5], "big")


def test_tls_garbage_is_not_tls(world: LoopbackWorld) -> None:
    data = _after_hello(world, "tls-garbage", 0.5)
    assert len(data) == 16 * 1024


def test_tls_sites_misbehave_whatever_the_sni(world: LoopbackWorld) -> None:
    site = HOSTILE_SITES["tls-stall"]
    assert site.ip != "127.0.0.1"
    with socket.create_connection((site.ip, world.https_port), timeout=0.5) as sock:
        sock.sendall(_client_hello("example.org"))  # the probe's innocuous SNI
        first = sock.recv(65536)
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # stalled after the ServerHello
    assert first[5] == 0x02


def test_tls_trickle_sends_a_byte_at_a_time(world: LoopbackWorld) -> None:
    assert 1 <= len(_after_hello(world, "tls-trickle", 0.6)) <= 5  # a byte every 0.25 s


def test_hostile_urls_use_the_real_ports(world: LoopbackWorld) -> None:
    urls = hostile_urls(world)
    assert urls["ok"] == f"https://ok.hostile.test:{world.https_port}/"
    assert urls["endless-body-http"].startswith("http://") and set(urls) == set(HOSTILE_SITES)
    assert dns.name.from_text(HOSTILE_SITES["dns-garbage"].hostname).is_subdomain(
        dns.name.from_text("dns.hostile.test"))
