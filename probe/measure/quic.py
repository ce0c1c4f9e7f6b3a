"""QUIC step: one QUIC handshake to ``ip:port`` with ALPN ``h3``, then one HTTP/3 GET over it.

Responsibility: the QUIC exchange (via aioquic, the maintained Python QUIC/HTTP3 stack) and what
it reveals, recorded as a :class:`~probe.model.QUICHandshake` (version, ALPN, the whole
presented chain, timing, failure), and the HTTP/3 request recorded as an
:class:`~probe.model.HTTPObservation` exactly as the HTTP/1.1 step records its exchange
(capped headers, the body decoded by the same bounded decoder, ``<title>``, redirect target).

As for TLS over TCP (:mod:`probe.measure.tls`), the handshake is done WITHOUT verification so
the chain is recorded even when it is an interception certificate; ``verified`` and
``verify_error`` come from :func:`probe.measure.certs.verify_chain`. The HTTP/3 request is
sent only when the chain verified.

Failures use the shared vocabulary (:mod:`probe.failures`). OONI's df-007 has no
QUIC-specific names, so: no answer to the Initial within the deadline (a dropped Initial, UDP
443 blackholed) is ``generic_timeout_error``; a connection closed with a TLS error (RFC 9001
§4.8: CRYPTO_ERROR, codes 0x0100–0x01ff) is ``ssl_failed_handshake``; any other
CONNECTION_CLOSE is ``unknown_failure: quic connection closed (0x…)``.

The presented chain is read from aioquic's TLS context (its private ``_peer_certificate`` and
``_peer_certificate_chain``); an aioquic without them records no chain (``verified`` False,
``ssl_invalid_certificate``), never a crash. At most :data:`probe.measure.tls.MAX_CHAIN`
certificates are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import ipaddress
import socket
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent
from cryptography.hazmat.primitives.serialization import Encoding

from probe import failures
from probe.measure import certs, http, tls
from probe.measure.settings import MeasureSettings
from probe.model import HTTPObservation, QUICHandshake

#: QUIC version numbers → names (RFC 9000 v1, RFC 9369 v2).
VERSION_NAMES = {0x00000001: "QUICv1", 0x6B3343CF: "QUICv2"}
_CRYPTO_ERRORS = range(0x0100, 0x0200)


def version_name(version: int | None) -> str | None:
    """``QUICv1``/``QUICv2``, else the version number in hex; None = not negotiated."""
    if version is None:
        return None
    return VERSION_NAMES.get(version, f"0x{version:08x}")


class _Protocol(QuicConnectionProtocol):
    """aioquic's protocol plus one HTTP/3 request whose response is gathered, bounded."""

    def __init__(self, quic: QuicConnection, **kw: Any) -> None:
        super().__init__(quic, **kw)
        self.h3: H3Connection | None = None
        self.terminated: ConnectionTerminated | None = None
        self.stream_id: int | None = None
        self.status: int | None = None
        self.headers: tuple[tuple[str, str], ...] = ()
        self.decoder: http.BoundedDecoder | None = None
        self.received = 0
        self.last_byte_t: float | None = None
        self.clock: Callable[[], float] | None = None
        self.cap = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            if not self.done.done():
                self.done.set_exception(ConnectionError("quic connection closed"))
        if self.h3 is not None:
            for h3_event in self.h3.handle_event(event):
                self._h3_event(h3_event)
        # aioquic's own handler (stream readers for each stream) is not used: not called.

    def _h3_event(self, event: H3Event) -> None:
        if getattr(event, "stream_id", None) != self.stream_id or self.done.done():
            return
        if isinstance(event, HeadersReceived):
            if self.clock is not None:
                self.last_byte_t = self.clock()
            self.received += sum(len(k) + len(v) for k, v in event.headers)
            pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
            status = next((v for k, v in pairs if k == ":status"), None)
            if self.status is None and status is not None and status.isdigit():
                code = int(status)
                if code >= 200:  # interim 1xx responses are skipped, as over HTTP/1.1
                    self.status = code
                    self.headers = tuple((k, v) for k, v in pairs if not k.startswith(":"))
                    self.decoder = http.BoundedDecoder(
                        dict(self.headers).get("content-encoding"), self.cap)
        elif isinstance(event, DataReceived) and self.decoder is not None:
            if event.data:
                self.received += len(event.data)
                if self.clock is not None:
                    self.last_byte_t = self.clock()
                self.decoder.feed(event.data)
        truncated = self.decoder is not None and self.decoder.truncated
        if getattr(event, "stream_ended", False) or truncated:
            self.done.set_result(None)


def _failure(exc: BaseException, terminated: ConnectionTerminated | None) -> str:
    if isinstance(exc, TimeoutError):
        return failures.GENERIC_TIMEOUT
    if terminated is not None:
        if terminated.error_code in _CRYPTO_ERRORS:
            return failures.SSL_FAILED_HANDSHAKE
        return failures.unknown(f"quic connection closed (0x{terminated.error_code:x})")
    return failures.classify_exception(exc)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def presented_chain(quic: QuicConnection) -> list[bytes]:
    """The DER certificates the peer presented, leaf first, capped as for TLS."""
    ctx = getattr(quic, "tls", None)
    leaf = getattr(ctx, "_peer_certificate", None)
    if leaf is None:
        return []
    rest = getattr(ctx, "_peer_certificate_chain", None) or []
    try:
        return tls._capped([c.public_bytes(Encoding.DER) for c in [leaf, *rest]])
    except (AttributeError, TypeError, ValueError):
        return []


def peer_address(ip: str, port: int) -> tuple[Any, ...]:
    """The peer's address as the datagram socket reports it: ``(ip, port, flowinfo, scope)``
    for IPv6. aioquic matches each datagram's sender against the address given to
    ``connect`` (its network paths), so an IPv6 peer given as ``(ip, port)`` never matched and
    every handshake over IPv6 timed out."""
    return (ip, port, 0, 0) if ":" in ip else (ip, port)


async def _open(ip: str, port: int, config: QuicConfiguration
                ) -> tuple[asyncio.DatagramTransport, _Protocol]:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Protocol(QuicConnection(configuration=config)), sock=sock)
    except BaseException:
        sock.close()
        raise
    assert isinstance(protocol, _Protocol)
    return transport, protocol  # type: ignore[return-value]


async def measure(
    url: str,
    ip: str,
    port: int,
    settings: MeasureSettings,
    tx_id: int,
    redirect_index: int,
    clock: Callable[[], float],
    request: bool = True,
) -> tuple[QUICHandshake, HTTPObservation | None]:
    """QUIC handshake to ``ip:port`` with SNI = ``url``'s host and ALPN ``h3`` within
    ``settings.tls_timeout``; then, if the chain verified and ``request``, GET ``url`` over
    HTTP/3 within ``settings.http_timeout``. Never raises for network trouble; cancellation
    propagates. The HTTP observation is None when no request was sent.
    """
    host = (urlsplit(url).hostname or "").strip("[]")
    server_name = host
    config = QuicConfiguration(is_client=True, alpn_protocols=list(H3_ALPN),
                               verify_mode=ssl.CERT_NONE,
                               server_name=None if _is_ip(host) else host,
                               idle_timeout=max(settings.tls_timeout, settings.http_timeout))
    t0 = clock()
    transport: asyncio.DatagramTransport | None = None
    protocol: _Protocol | None = None
    try:
        try:
            async with asyncio.timeout(settings.tls_timeout):
                transport, protocol = await _open(ip, port, config)
                protocol.connect(peer_address(ip, port))
                await protocol.wait_connected()
        except Exception as e:  # every network error becomes a failure string
            terminated = protocol.terminated if protocol is not None else None
            return QUICHandshake(tx_id=tx_id, ip=ip, port=port, server_name=server_name,
                                 t0=t0, t=clock(), failure=_failure(e, terminated)), None
        t = clock()
        quic = protocol._quic
        ders = presented_chain(quic)
        at = dt.datetime.now(dt.UTC)
        await asyncio.to_thread(certs.trust_anchors, settings.ca_bundle)
        verify_error: str | None
        if not ders:
            verified, verify_error = False, failures.SSL_INVALID_CERTIFICATE
        else:
            try:
                verified, verify_error = certs.verify_chain(ders, host, at, settings.ca_bundle)
            except Exception:  # a chain odd enough to trip the parser: it did not verify
                verified, verify_error = False, failures.SSL_INVALID_CERTIFICATE
        handshake = QUICHandshake(
            tx_id=tx_id, ip=ip, port=port, server_name=server_name, t0=t0, t=t, failure=None,
            quic_version=version_name(getattr(quic, "_version", None)),
            alpn=quic.tls.alpn_negotiated,
            certificates=tuple(certs.parse_certificate(d) for d in ders),
            verified=verified, verify_error=verify_error)
        if not request or not verified or handshake.alpn not in H3_ALPN:
            return handshake, None
        return handshake, await _get(protocol, url, ip, port, settings, tx_id,
                                     redirect_index, clock)
    finally:
        if protocol is not None:
            protocol.close()
            with contextlib.suppress(Exception):  # the peer may already be gone
                async with asyncio.timeout(0.5):
                    await protocol.wait_closed()
        if transport is not None:
            transport.close()


async def _get(protocol: _Protocol, url: str, ip: str, port: int, settings: MeasureSettings,
               tx_id: int, redirect_index: int, clock: Callable[[], float]) -> HTTPObservation:
    """One HTTP/3 GET on an established connection (see :func:`measure`)."""
    t0 = clock()
    parts = urlsplit(url)
    authority = parts.netloc.rsplit("@", 1)[-1]
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    sent = (
        (":method", "GET"), (":scheme", "https"), (":authority", authority), (":path", target),
        *((k.lower(), v) for k, v in http.request_headers(settings)),
    )
    failure: str | None = None
    protocol.clock = clock
    protocol.cap = settings.body_cap
    try:
        async with asyncio.timeout(settings.http_timeout):
            h3 = protocol.h3 = H3Connection(protocol._quic)
            protocol.stream_id = protocol._quic.get_next_available_stream_id()
            h3.send_headers(protocol.stream_id,
                            [(k.encode("latin-1"), v.encode("latin-1")) for k, v in sent],
                            end_stream=True)
            protocol.transmit()
            await protocol.done
    except Exception as e:  # every network error becomes a failure string
        failure = _failure(e, protocol.terminated)
    t = clock()
    fields: dict[str, Any] = {}
    if protocol.decoder is not None:
        body, truncated = protocol.decoder.finish()
        content_type = next(
            (v for k, v in protocol.headers if k.lower() == "content-type"), None)
        fields = {"body": body if settings.store_bodies else None, "body_length": len(body),
                  "body_sha256": hashlib.sha256(body).hexdigest(),
                  "body_truncated": truncated, "title": http.extract_title(body, content_type)}
    location: str | None = None
    raw_location = next((v for k, v in protocol.headers if k.lower() == "location"), None)
    if protocol.status in http.REDIRECT_STATUSES and raw_location is not None:
        location = http.resolve_location(url, raw_location)
        if location is None and failure is None:
            failure = failures.HTTP_INVALID_REDIRECT_LOCATION_HOST
    return HTTPObservation(
        tx_id=tx_id, url=url, method="GET", ip=ip, port=port, t0=t0, t=t, failure=failure,
        redirect_index=redirect_index, request_headers=http.cap_headers(sent),
        status=protocol.status, headers=http.cap_headers(protocol.headers), location=location,
        received_bytes=protocol.received, last_byte_t=protocol.last_byte_t, **fields)
