"""An HTTP/3 server for the simulated world: one UDP port answering GETs over QUIC (aioquic).

Responsibility: serving a site over HTTP/3 with a certificate of :mod:`.pki`, so the probe's
QUIC step (:mod:`probe.measure.quic`) meets a real QUIC stack in tests and in the simulated
network. Every request gets the same answer: ``status``, ``headers`` and ``body`` given at
start (a site's page); nothing about censorship lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.asyncio.server import QuicServer
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated, QuicEvent


class _Site(QuicConnectionProtocol):
    answer: tuple[int, tuple[tuple[str, str], ...], bytes] = (200, (), b"")

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._h3: H3Connection | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self._h3 = H3Connection(self._quic)
        if self._h3 is None:
            return
        for h3_event in self._h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived) and h3_event.stream_ended:
                status, headers, body = self.answer
                self._h3.send_headers(h3_event.stream_id, [
                    (b":status", str(status).encode()),
                    *((k.lower().encode(), v.encode()) for k, v in headers),
                    (b"content-length", str(len(body)).encode()),
                ])
                self._h3.send_data(h3_event.stream_id, body, end_stream=True)
                self.transmit()


@contextlib.asynccontextmanager
async def serving(
    host: str, port: int, chain_path: str, key_path: str, *, status: int = 200,
    headers: Sequence[tuple[str, str]] = (("content-type", "text/html"),), body: bytes = b"",
) -> AsyncIterator[int]:
    """Serve HTTP/3 on ``host:port`` (0 = any free port) until the block ends; yields the port.
    ``chain_path``/``key_path``: PEM files (:meth:`.pki.WorldPKI.issue`)."""
    config = QuicConfiguration(is_client=False, alpn_protocols=list(H3_ALPN))
    config.load_cert_chain(chain_path, key_path)
    answer = (status, tuple(headers), body)
    site = type("Site", (_Site,), {"answer": answer})
    server: QuicServer = await serve(host, port, configuration=config, create_protocol=site)
    try:
        sock = server._transport.get_extra_info("socket") if server._transport else None
        yield sock.getsockname()[1] if sock is not None else port
    finally:
        server.close()
        await asyncio.sleep(0)
