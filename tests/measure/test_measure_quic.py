"""probe.measure.quic against a real aioquic HTTP/3 server on loopback (probe.lab.world)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from probe import failures
from probe.lab.world import WorldPKI
from probe.lab.world.h3_server import serving
from probe.measure import quic
from probe.measure.settings import MeasureSettings

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> WorldPKI:
    return WorldPKI.create(tmp_path_factory.mktemp("pki"))


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("kind", "body", "cap", "verified", "verify_error", "status", "kept", "truncated"),
    [
        ("valid", b"<title>Site</title>hello", 1024, True, None, 200, b"<title>Site</title>hello",
         False),
        ("valid", b"x" * 5000, 100, True, None, 200, b"x" * 100, True),
        ("unknown_ca", b"never sent", 1024, False, failures.SSL_UNKNOWN_AUTHORITY, None, None,
         False),
        ("wrong_host", b"never sent", 1024, False, failures.SSL_INVALID_HOSTNAME, None, None,
         False),
    ],
)
def test_handshake_and_get(pki: WorldPKI, kind: str, body: bytes, cap: int, verified: bool,
                           verify_error: str | None, status: int | None, kept: bytes | None,
                           truncated: bool) -> None:
    chain, key = pki.issue(["h3.test"], kind)
    settings = MeasureSettings(ca_bundle=pki.ca_pem, tls_timeout=3, http_timeout=3,
                               body_cap=cap)

    async def go() -> None:
        async with serving("127.0.0.1", 0, chain, key, body=body) as port:
            start = time.monotonic()
            hs, req = await quic.measure(f"https://h3.test:{port}/p?q=1", "127.0.0.1", port,
                                         settings, 7, 0, lambda: time.monotonic() - start)
        assert (hs.tx_id, hs.ip, hs.port, hs.server_name, hs.failure) == (
            7, "127.0.0.1", port, "h3.test", None)
        assert (hs.quic_version, hs.alpn) == ("QUICv1", "h3")
        assert len(hs.certificates) == 2 and hs.certificates[0].der
        assert (hs.verified, hs.verify_error) == (verified, verify_error)
        if status is None:
            assert req is None  # nothing is sent over an unverified connection
            return
        assert req is not None
        assert (req.status, req.failure, req.body, req.body_truncated) == (
            status, None, kept, truncated)
        assert (":path", "/p?q=1") in req.request_headers
        assert req.t0 >= hs.t and req.received_bytes and req.received_bytes > 0

    asyncio.run(go())


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1"])
def test_handshake_over_each_family(pki: WorldPKI, ip: str) -> None:
    """IPv6 too: aioquic matches replies against the address given to connect, which must be
    the socket's 4-tuple form for IPv6 (before the fix every IPv6 handshake timed out)."""
    chain, key = pki.issue(["h3.test"], "valid")
    settings = MeasureSettings(ca_bundle=pki.ca_pem, tls_timeout=3, http_timeout=3)

    async def go() -> None:
        async with serving(ip, 0, chain, key, body=b"<title>x</title>") as port:
            start = time.monotonic()
            hs, req = await quic.measure(f"https://h3.test:{port}/", ip, port, settings, 1, 0,
                                         lambda: time.monotonic() - start)
        assert (hs.ip, hs.failure, hs.verified) == (ip, None, True)
        assert req is not None and (req.status, req.failure) == (200, None)

    asyncio.run(go())


def test_dropped_initial_is_a_timeout(tmp_path: Path) -> None:
    # Nothing listens on the port: the Initial goes unanswered (as when UDP 443 is dropped).
    port = _free_udp_port()
    settings = MeasureSettings(tls_timeout=0.5, http_timeout=0.5)

    async def go() -> None:
        start = time.monotonic()
        hs, req = await quic.measure(f"https://h3.test:{port}/", "127.0.0.1", port, settings,
                                     1, 0, lambda: time.monotonic() - start)
        assert (hs.failure, hs.certificates, hs.verified, req) == (
            failures.GENERIC_TIMEOUT, (), None, None)
        assert 0.4 < hs.t - hs.t0 < 2

    asyncio.run(go())


@pytest.mark.parametrize(("version", "name"), [
    (1, "QUICv1"), (0x6B3343CF, "QUICv2"), (0xFF00001D, "0xff00001d"), (None, None)])
def test_version_name(version: int | None, name: str | None) -> None:
    assert quic.version_name(version) == name
