"""An HTTP/3 server for the simulated world: one UDP port answering GETs over QUIC (aioquic).

Responsibility: serving a site over HTTP/3 with a certificate of :mod:`.pki`, so the probe's
QUIC step (:mod:`probe.measure.quic`) meets a real QUIC stack in tests and in the simulated
network. Every request gets the same answer: ``status``, ``headers`` and ``body`` given at
start (a site's page), or what ``answer(authority, path)`` returns (:func:`start`, used by
:class:`~probe.lab.world.web_server.WebServer` for its sites with ``http3``); nothing about
censorship lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.asyncio.server import QuicServer
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated, QuicEvent

Answer = tuple[int, tuple[tuple[str, str], ...], bytes]
#: ``(authority, path) -> (status, headers, body)``
Answerer = Callable[[str, str], Answer]


class _Site(QuicConnectionProtocol):
    answer: Answerer = staticmethod(lambda authority, path: (200, (), b""))

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
                pseudo = {k: v.decode("latin-1") for k, v in h3_event.headers
                          if k.startswith(b":")}
                status, headers, body = self.answer(pseudo.get(b":authority", ""),
                                                    pseudo.get(b":path", "/"))
                self._h3.send_headers(h3_event.stream_id, [
                    (b":status", str(status).encode()),
                    *((k.lower().encode(), v.encode()) for k, v in headers),
                    (b"content-length", str(len(body)).encode()),
                ])
                self._h3.send_data(h3_event.stream_id, body, end_stream=True)
                self.transmit()


async def start(host: str, port: int, chain_path: str, key_path: str,
                answer: Answerer) -> tuple[QuicServer, int]:
    """Serve HTTP/3 on UDP ``host:port`` (0 = any free port) → (server, bound port); stop it
    with ``server.close()``."""
    config = QuicConfiguration(is_client=False, alpn_protocols=list(H3_ALPN))
    config.load_cert_chain(chain_path, key_path)
    site = type("Site", (_Site,), {"answer": staticmethod(answer)})
    server: QuicServer = await serve(host, port, configuration=config, create_protocol=site)
    sock = server._transport.get_extra_info("socket") if server._transport else None
    return server, (sock.getsockname()[1] if sock is not None else port)


@contextlib.asynccontextmanager
async def serving(
    host: str, port: int, chain_path: str, key_path: str, *, status: int = 200,
    headers: Sequence[tuple[str, str]] = (("content-type", "text/html"),), body: bytes = b"",
) -> AsyncIterator[int]:
    """Serve HTTP/3 on ``host:port`` (0 = any free port) until the block ends; yields the port.
    ``chain_path``/``key_path``: PEM files (:meth:`.pki.WorldPKI.issue`)."""
    fixed: Answer = (status, tuple(headers), body)
    server, bound = await start(host, port, chain_path, key_path, lambda a, p: fixed)
    try:
        yield bound
    finally:
        server.close()
        await asyncio.sleep(0)
