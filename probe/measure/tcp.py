"""TCP step: connect to one ``ip:port`` under a deadline and record a :class:`TCPObservation`.

Responsibility: opening the one connection the probe uses for an endpoint, and the
:class:`Connection` object that carries it. The same socket is later upgraded to TLS in place
(:mod:`probe.measure.tls`) and handed to httpx (:mod:`probe.measure.http`), so TCP, TLS and
HTTP observations of one transaction describe one and the same connection.

The connection works on a non-blocking socket with the event loop's ``sock_*`` primitives
and, once upgraded, an ``ssl.SSLObject`` over memory BIOs. That keeps the bytes on the wire
and the errors the kernel reports (RST → ``ConnectionResetError``, FIN → empty read) visible
to us, unlike asyncio's SSL transport, which reports a FIN during the handshake as a reset.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

from probe import failures
from probe.model import TCPObservation

_RECV_SIZE = 65536


class Connection:
    """One TCP connection, optionally wrapped in TLS once :meth:`start_tls` succeeded.

    ``read`` returns ``b""`` at the end of the stream (FIN, TLS close_notify, or a TLS stream
    that ends without close_notify); resets and other socket errors are raised as ``OSError``.
    Every read suspends at least once, so a deadline around it is always honoured.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.ssl_object: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._loop = asyncio.get_running_loop()

    @property
    def closed(self) -> bool:
        return self.sock.fileno() < 0

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            await self._loop.sock_sendall(self.sock, data)

    async def _recv(self, max_bytes: int) -> bytes:
        # sock_recv returns without suspending while data is waiting: always yield once, or a
        # peer that never stops sending would keep every deadline (a cancellation) from us.
        await asyncio.sleep(0)
        return await self._loop.sock_recv(self.sock, max_bytes)

    async def _fill(self) -> None:
        data = await self._recv(_RECV_SIZE)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """Run the TLS handshake on this connection (no deadline here: the caller sets one).

        Raises ``ssl.SSLEOFError`` if the peer closes during the handshake, ``OSError`` for
        resets, ``ssl.SSLError`` for alerts and garbage.
        """
        obj = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
        await self._flush()
        self.ssl_object = obj

    async def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of application data; ``b""`` at the end of the stream."""
        if self.ssl_object is None:
            return await self._recv(max_bytes)
        while True:
            try:
                return self.ssl_object.read(max_bytes)
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                # Many servers close without close_notify; HTTP framing (h11) decides
                # whether the response was complete.
                return b""

    async def write(self, data: bytes) -> None:
        """Send all of ``data``."""
        if self.ssl_object is None:
            await self._loop.sock_sendall(self.sock, data)
            return
        self.ssl_object.write(data)
        await self._flush()

    def close(self) -> None:
        """Close the socket at once (idempotent, never raises)."""
        try:
            self.sock.close()
        except OSError:
            pass


def _family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


async def connect(
    ip: str, port: int, limit: float, tx_id: int, clock: Callable[[], float]
) -> tuple[TCPObservation, Connection | None]:
    """Connect to ``ip:port`` within ``limit`` seconds.

    Returns the observation and, on success, the open connection (the caller owns it and must
    close it). Never raises for network trouble; cancellation propagates.
    """
    loop = asyncio.get_running_loop()
    t0 = clock()
    sock = socket.socket(_family(ip), socket.SOCK_STREAM)
    sock.setblocking(False)
    failure: str | None = None
    try:
        async with asyncio.timeout(limit):
            await loop.sock_connect(sock, (ip, port))
    except Exception as e:  # every network error becomes a failure string
        failure = failures.classify_exception(e)
    except BaseException:
        sock.close()
        raise
    obs = TCPObservation(tx_id=tx_id, ip=ip, port=port, t0=t0, t=clock(), failure=failure)
    if failure is not None:
        sock.close()
        return obs, None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return obs, Connection(sock)
