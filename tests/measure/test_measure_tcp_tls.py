"""probe.measure.tcp and probe.measure.tls as single steps against tiny loopback servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import h11
import pytest
import trustme

from probe import failures
from probe.measure import tcp, tls
from tests.helperthread import full_backlog

pytestmark = pytest.mark.timeout(20)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def clock_from(start: float) -> Callable[[], float]:
    return lambda: time.monotonic() - start


def test_connect_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go() -> None:
        obs, conn = await tcp.connect("127.0.0.1", port, 1.0, 5, clock_from(time.monotonic()))
        assert conn is None
        assert (obs.tx_id, obs.ip, obs.port, obs.failure) == (
            5, "127.0.0.1", port, failures.CONNECTION_REFUSED)

    asyncio.run(go())


def test_connect_timeout_within_deadline() -> None:
    # A listener with a full accept queue drops further SYNs: the connect hangs.
    async def go() -> None:
        with full_backlog() as port:
            await asyncio.sleep(0.05)
            start = time.monotonic()
            obs, conn = await tcp.connect("127.0.0.1", port, 0.3, 1, clock_from(start))
        assert conn is None and obs.failure == failures.GENERIC_TIMEOUT
        assert 0.3 <= obs.t < 1.0

    asyncio.run(go())


async def _serve(handler: Handler, ssl_ctx: ssl.SSLContext | None = None) -> asyncio.Server:
    return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_ctx)


def test_plain_connection_reads_and_writes() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(5))
        await writer.drain()
        writer.close()

    async def go() -> None:
        server = await _serve(echo)
        port = server.sockets[0].getsockname()[1]
        obs, conn = await tcp.connect("127.0.0.1", port, 1.0, 1, clock_from(time.monotonic()))
        assert obs.failure is None and conn is not None
        await conn.write(b"hello")
        assert await conn.read(100) == b"hello"
        assert await conn.read(100) == b""  # FIN
        conn.close()
        assert conn.closed
        server.close()
        await server.wait_closed()

    asyncio.run(go())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("site.test").configure_cert(ctx)
    ctx.set_alpn_protocols(["http/1.1"])
    path: Path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(ca.cert_pem.bytes())
    return ctx, str(path)


def _handshake(port: int, bundle: str | None, name: str = "site.test",
               limit: float = 1.0) -> tls.TLSObservation:
    async def go() -> tls.TLSObservation:
        clock = clock_from(time.monotonic())
        _, conn = await tcp.connect("127.0.0.1", port, 1.0, 9, clock)
        assert conn is not None
        try:
            return await tls.handshake(conn, name, "127.0.0.1", port, limit, bundle, 9, clock)
        finally:
            conn.close()

    return asyncio.run(go())


def test_tls_handshake_records_everything(pki: tuple[ssl.SSLContext, str]) -> None:
    ctx, bundle = pki

    async def go() -> tls.TLSObservation:
        async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.close()

        server = await _serve(idle, ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.to_thread(_handshake, port, bundle)
        finally:
            server.close()

    obs = asyncio.run(go())
    assert obs.failure is None and obs.verified is True and obs.verify_error is None
    assert obs.alpn == "http/1.1" and obs.tls_version in ("TLSv1.2", "TLSv1.3")
    assert obs.cipher_suite and obs.server_name == "site.test" and obs.tx_id == 9
    assert len(obs.certificates) == 1 and obs.certificates[0].san == ("site.test",)


def test_tls_wrong_name_is_recorded_not_failed(pki: tuple[ssl.SSLContext, str]) -> None:
    ctx, bundle = pki

    async def go() -> tls.TLSObservation:
        async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.close()

        server = await _serve(idle, ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.to_thread(_handshake, port, bundle, "other.test")
        finally:
            server.close()

    obs = asyncio.run(go())
    assert obs.failure is None and obs.certificates
    assert (obs.verified, obs.verify_error) == (False, failures.SSL_INVALID_HOSTNAME)


@pytest.mark.parametrize(("reply", "failure"), [
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", failures.SSL_FAILED_HANDSHAKE),  # not TLS at all
    (b"\x15\x03\x03\x00\x02\x02\x28", failures.SSL_FAILED_HANDSHAKE),  # fatal alert
    (b"", failures.EOF_ERROR),  # FIN right after the ClientHello
])
def test_tls_handshake_failures(reply: bytes, failure: str) -> None:
    async def go() -> tls.TLSObservation:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(4096)
            writer.write(reply)
            await writer.drain()
            writer.close()

        server = await _serve(answer)
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.to_thread(_handshake, port, None)
        finally:
            server.close()

    obs = asyncio.run(go())
    assert obs.failure == failure and obs.verified is None and obs.certificates == ()


# --- hostile peers ---------------------------------------------------------------------------


def test_a_peer_that_never_stops_sending_cannot_outlive_a_deadline() -> None:
    """sock_recv does not suspend while data waits: reads must yield or no timeout fires.

    The sender is a thread (as a real peer is another host), so the kernel buffer is never
    empty whatever the event loop does.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def flood() -> None:
        peer, _ = listener.accept()
        interim = b"HTTP/1.1 100 Continue\r\n\r\n" * 2048
        with peer, contextlib.suppress(OSError):
            while True:
                peer.sendall(interim)

    threading.Thread(target=flood, daemon=True).start()

    async def go() -> float:
        _, conn = await tcp.connect("127.0.0.1", port, 1.0, 1, clock_from(time.monotonic()))
        assert conn is not None
        await asyncio.sleep(0.1)  # let the kernel buffer fill
        parser = h11.Connection(h11.CLIENT)  # parsing is slower than sending, as in real life
        parser.send(h11.Request(method="GET", target="/", headers=[("Host", "a.test")]))
        parser.send(h11.EndOfMessage())
        start = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    while data := await conn.read(65536):
                        parser.receive_data(data)
                        while parser.next_event() is not h11.NEED_DATA:
                            pass
        finally:
            conn.close()
        return time.monotonic() - start

    try:
        assert asyncio.run(go()) < 1.0
    finally:
        listener.close()


@pytest.mark.parametrize("how", ["stall", "trickle"])
def test_tls_peer_stalling_after_server_hello_times_out(
    pki: tuple[ssl.SSLContext, str], how: str
) -> None:
    ctx, bundle = pki

    async def go() -> tuple[tls.TLSObservation, float]:
        async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = ctx.wrap_bio(incoming, outgoing, server_side=True)
            incoming.write(await reader.read(65536))
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
            flight = outgoing.read()
            if how == "stall":  # the ServerHello record only
                writer.write(flight[: 5 + int.from_bytes(flight[3:5], "big")])
            else:  # the whole real flight, a byte every 50 ms
                for i in range(len(flight)):
                    writer.write(flight[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(0.05)
            await reader.read()

        server = await _serve(hostile)
        port = server.sockets[0].getsockname()[1]
        start = time.monotonic()
        try:
            obs = await asyncio.to_thread(_handshake, port, bundle, "site.test", 0.4)
        finally:
            server.close()
        return obs, time.monotonic() - start

    obs, took = asyncio.run(go())
    assert obs.failure == failures.GENERIC_TIMEOUT and obs.certificates == ()
    assert 0.4 <= obs.t - obs.t0 < 0.9 and took < 1.5


def test_presented_chain_is_capped() -> None:
    ders = [bytes([i]) * 1000 for i in range(40)]
    assert tls._capped(ders) == ders[: tls.MAX_CHAIN]
    big = [b"L" * 10, *[b"x" * (tls.MAX_CHAIN_BYTES // 3)] * 5]
    assert tls._capped(big) == big[:3]
    assert tls._capped([b"y" * (tls.MAX_CHAIN_BYTES * 2)]) == [b"y" * (tls.MAX_CHAIN_BYTES * 2)]
