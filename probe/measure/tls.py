"""TLS step: one handshake on an open TCP connection, recorded as a :class:`TLSObservation`.

Responsibility: the handshake and what it reveals (version, cipher, ALPN, the whole presented
chain), then the chain's validation via :mod:`probe.measure.certs`.

The handshake is done WITHOUT verification (``CERT_NONE``) so the chain is recorded even when
it is an interception certificate; ``verified``/``verify_error`` come from our own validation
against the system roots plus ``settings.ca_bundle``, for the SNI name, at the handshake time.
The caller must not send HTTP over a connection whose chain did not verify.

ALPN: only ``http/1.1`` is offered. The probe speaks HTTP/1.1 on the measured connection, and
offering ``h2`` would oblige us to speak HTTP/2 whenever a server picks it.

Against hostile peers: the whole handshake runs under one deadline (a peer that stalls after
its ServerHello or trickles its flight a byte at a time times out; every read yields to the
event loop); OpenSSL refuses a Certificate message over its 100 KiB ``max_cert_list`` (a
multi-megabyte chain is ``ssl_failed_handshake``); at most :data:`MAX_CHAIN` certificates and
:data:`MAX_CHAIN_BYTES` bytes of a presented chain are recorded and validated; a certificate
nothing can parse is still recorded (hash and bytes) and fails validation. Nothing in this
step raises for what a peer sends.
"""

from __future__ import annotations

import _ssl
import asyncio
import datetime as dt
import functools
import ipaddress
import ssl
from collections.abc import Callable

from probe import failures
from probe.measure import certs
from probe.measure.tcp import Connection
from probe.model import TLSObservation

ALPN_PROTOCOLS = ("http/1.1",)
MAX_CHAIN = 16  # certificates of a presented chain recorded and validated (leaf first)
MAX_CHAIN_BYTES = 256 * 1024  # DER bytes of a presented chain recorded
_ENCODING_DER = getattr(_ssl, "ENCODING_DER", 2)  # not re-exported by the ssl module


@functools.lru_cache(maxsize=1)
def client_context() -> ssl.SSLContext:
    """The (shared, read-only) client context: no verification, ALPN http/1.1."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(ALPN_PROTOCOLS))
    return ctx


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _capped(ders: list[bytes]) -> list[bytes]:
    """The first :data:`MAX_CHAIN` certificates within :data:`MAX_CHAIN_BYTES` (the leaf is
    always kept)."""
    out: list[bytes] = []
    size = 0
    for der in ders[:MAX_CHAIN]:
        size += len(der)
        if out and size > MAX_CHAIN_BYTES:
            break
        out.append(der)
    return out


def presented_chain(obj: ssl.SSLObject) -> list[bytes]:
    """The DER certificates the peer presented, leaf first, capped (see :func:`_capped`).

    Uses ``_sslobj.get_unverified_chain()`` (CPython 3.10+ private API, present on 3.11);
    falls back to the leaf alone if it is missing.
    """
    inner = getattr(obj, "_sslobj", None)
    getter = getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        try:
            return _capped([c.public_bytes(_ENCODING_DER) for c in getter() or []])
        except (AttributeError, TypeError, ValueError, ssl.SSLError):
            pass  # a CPython without the private API: fall back to the leaf
    try:
        leaf = obj.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):
        leaf = None
    return [leaf] if leaf else []


async def handshake(
    conn: Connection,
    server_name: str,
    ip: str,
    port: int,
    limit: float,
    ca_bundle: str | None,
    tx_id: int,
    clock: Callable[[], float],
) -> TLSObservation:
    """Upgrade ``conn`` to TLS with SNI ``server_name`` within ``limit`` seconds.

    Never raises for network trouble (cancellation propagates). On failure the connection is
    left as it is; the caller closes it. An IP-literal ``server_name`` sends no SNI and is
    validated against the certificate's IP addresses.
    """
    t0 = clock()
    sni = None if _is_ip(server_name) else server_name
    try:
        async with asyncio.timeout(limit):
            await conn.start_tls(client_context(), sni)
    except Exception as e:  # every network error becomes a failure string
        return TLSObservation(tx_id=tx_id, ip=ip, port=port, server_name=server_name, t0=t0,
                              t=clock(), failure=failures.classify_exception(e))
    t = clock()
    at = dt.datetime.now(dt.UTC)
    obj = conn.ssl_object
    assert obj is not None
    ders = presented_chain(obj)
    cipher = obj.cipher()
    # Reading the trust store is a (cached) file read: keep it off the event loop.
    await asyncio.to_thread(certs.trust_anchors, ca_bundle)
    try:
        verified, verify_error = certs.verify_chain(ders, server_name.strip("[]"), at, ca_bundle)
    except Exception:  # a chain odd enough to trip the parser: it did not verify
        verified, verify_error = False, failures.SSL_INVALID_CERTIFICATE
    return TLSObservation(
        tx_id=tx_id,
        ip=ip,
        port=port,
        server_name=server_name,
        t0=t0,
        t=t,
        failure=None,
        tls_version=obj.version(),
        cipher_suite=cipher[0] if cipher else None,
        alpn=obj.selected_alpn_protocol(),
        certificates=tuple(certs.parse_certificate(d) for d in ders),
        verified=verified,
        verify_error=verify_error,
    )
