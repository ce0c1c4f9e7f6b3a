"""The control helper's HTTP server: a public service that measures URLs from outside the censor.

It speaks the v1 protocol of :mod:`probe.control.protocol` over HTTP/1.1, or HTTPS with its
own certificate (:class:`TLSFiles`, re-read on demand: SIGHUP in :mod:`.service`). Because
anyone can reach it, it defends itself:

* a :class:`~probe.control.policy.Policy` that refuses private, loopback, reserved and its own
  addresses in every spelling, and ports not allowed, for every hop (:mod:`.measure`);
* a shared token (optional), compared in constant time;
* :class:`Limits`: connections in total and per client address (beyond the total, the oldest
  connection still sending its request is dropped for the new one, so idle sockets cannot
  lock the service out), a deadline for the TLS handshake and headers and one for the body
  (slowloris), caps on header bytes (431), body bytes (413), request-target (414), and a cap
  on concurrent measurements (503 when busy) and on those of one client (429: its address,
  an IPv6 client's /64), so one client cannot take every slot;
* hostile bodies are a 400 with a one-line reason (:func:`~probe.control.protocol.decode_body`);
  no request can put a traceback in the log (an unexpected error is one log line and a 500).

The client address echoed to the probe (``client_address``) is the TCP peer, or, when the peer
is a trusted reverse proxy (``trusted_proxies``), the address that proxy forwarded
(``Forwarded: for=`` (RFC 7239) or ``X-Forwarded-For``, the right-most untrusted one).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import h11

from probe.addresses import Network, parse_host
from probe.control.policy import Policy
from probe.control.protocol import PROTOCOL_VERSION, BadRequest, MeasureRequest

__all__ = ["ControlServer", "Limits", "Policy", "TLSFiles"]

log = logging.getLogger("probe.control")

#: Measures one validated request under a policy and returns the v1 response body.
Measurer = Callable[[MeasureRequest, Policy], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's resource limits (see the module docstring).

    ``max_connections``: open connections at once; ``per_client``: from one address;
    ``header_timeout``: seconds from accept to the end of the headers (TLS handshake
    included); ``body_timeout``: seconds for the body after the headers; ``write_timeout``:
    seconds to hand the answer over; ``max_header_bytes``/``max_body_bytes``/``max_target``:
    sizes of the header block, the body and the request-target.
    """

    max_connections: int = 1024
    per_client: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    write_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 64 * 1024
    max_target: int = 4096


MAX_REQUEST_BYTES = Limits().max_body_bytes


class TLSFiles:
    """A certificate and key on disk, and the server context made of them.

    :meth:`reload` reads them again; new handshakes use the new certificate, handshakes done
    keep theirs. A reload that fails (missing file, key not matching) keeps the old context
    and raises :class:`ssl.SSLError` or :class:`OSError`.
    """

    def __init__(self, cert: str, key: str) -> None:
        self.cert, self.key = cert, key
        self.context = self._load()

    def _load(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def reload(self) -> None:
        self.context = self._load()


@dataclass(slots=True)
class _Conn:
    peer: str
    writer: asyncio.StreamWriter
    reading: bool = True  # still receiving its request (may be dropped for a newcomer)


class _Reject(Exception):
    """An HTTP error answered before routing (status and a one-line reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class ControlServer:
    """An asyncio HTTP/1.1 server for the v1 protocol (one request per connection)."""

    def __init__(self, policy: Policy, measurer: Measurer, limits: Limits | None = None,
                 tls: TLSFiles | None = None,
                 trusted_proxies: tuple[Network, ...] = ()) -> None:
        self.policy = policy
        self.measurer = measurer
        self.limits = limits or Limits()
        self.tls = tls
        self.trusted_proxies = trusted_proxies
        self._busy = 0
        self._busy_by: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._conns: dict[int, _Conn] = {}  # insertion order = age
        self._per_client: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._handle, host, port, backlog=1024)
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self._conns.values()):
                conn.writer.transport.abort()
            if self._tasks:  # aborted connections end their handlers; wait a moment for them
                await asyncio.wait(list(self._tasks), timeout=2.0)
            await self._server.wait_closed()

    # -- connections -------------------------------------------------------------------------

    def _admit(self, peer: str, writer: asyncio.StreamWriter) -> _Conn | None:
        """Register a new connection, or None when its client already holds its share."""
        if self._per_client[peer] >= self.limits.per_client:
            self.stats["refused_per_client"] += 1
            return None
        if len(self._conns) >= self.limits.max_connections:
            oldest = next((k for k, c in self._conns.items() if c.reading), None)
            if oldest is None:
                self.stats["refused_total"] += 1
                return None
            self.stats["evicted"] += 1
            self._conns[oldest].writer.transport.abort()
            self._forget(oldest)
        conn = _Conn(peer, writer)
        self._conns[id(conn)] = conn
        self._per_client[peer] += 1
        return conn

    def _forget(self, key: int) -> None:
        conn = self._conns.pop(key, None)
        if conn is not None:
            self._per_client[conn.peer] -= 1
            if self._per_client[conn.peer] <= 0:
                del self._per_client[conn.peer]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer) or "?"
        conn = self._admit(peer, writer)
        if conn is None:
            writer.transport.abort()  # no answer: a reset costs nothing and holds no descriptor
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await self._serve_one(conn, reader, writer)
        except asyncio.CancelledError:
            # the loop is shutting down: a top-level handler ends quietly (asyncio would
            # otherwise log the cancelled task's traceback for every open connection)
            self.stats["cancelled"] += 1
        except Exception as e:  # noqa: BLE001 - one log line, never a traceback
            self.stats["errors"] += 1
            log.warning("control helper: %s from %s: %s", type(e).__name__, peer,
                        str(e).splitlines()[0][:200] if str(e) else "")
        finally:
            self._forget(id(conn))
            writer.close()
            try:
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
            except Exception:  # noqa: BLE001 - a peer that will not close is cut off
                writer.transport.abort()

    async def _serve_one(self, conn: _Conn, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
        try:
            try:
                deadline = asyncio.get_running_loop().time() + self.limits.header_timeout
                if self.tls is not None:
                    try:
                        async with asyncio.timeout_at(deadline):
                            await writer.start_tls(self.tls.context)
                    except TimeoutError:  # no TLS yet: an HTTP answer would be noise
                        raise ConnectionError("TLS handshake too slow") from None
                async with asyncio.timeout_at(deadline):
                    request = await self._read_head(h, reader)
                async with asyncio.timeout(self.limits.body_timeout):
                    body = await self._read_body(h, reader)
            except TimeoutError:
                raise _Reject(408, "request too slow") from None
            except h11.RemoteProtocolError as e:
                # h11 hints 501 for a transfer-coding it lacks: still the client's fault here
                status = 431 if e.error_status_hint == 431 else 400
                reason = "headers too large" if status == 431 else "malformed HTTP request"
                raise _Reject(status, reason) from None
            conn.reading = False
            status, answer = await self._route(request, body, self._client_address(conn, request))
        except _Reject as e:
            self.stats[f"status_{e.status}"] += 1
            await self._send(writer, e.status, _error(str(e)))
            return
        except (ConnectionError, ssl.SSLError, OSError):
            self.stats["dropped"] += 1
            return
        self.stats[f"status_{status}"] += 1
        await self._send(writer, status, answer)

    async def _read_head(self, h: h11.Connection, reader: asyncio.StreamReader) -> h11.Request:
        received = 0
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                if received > self.limits.max_header_bytes:
                    raise _Reject(431, "headers too large")
                data = await reader.read(16384)
                if not data:
                    raise ConnectionError("client went away")
                received += len(data)
                h.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                if size > self.limits.max_header_bytes:
                    raise _Reject(431, "headers too large")
                if len(event.target) > self.limits.max_target:
                    raise _Reject(414, "URI too long")
                length = _content_length(event)
                if length is not None and length > self.limits.max_body_bytes:
                    raise _Reject(413, "request body too large")
                return event
            raise ConnectionError("client went away")

    async def _read_body(self, h: h11.Connection, reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(16384)
                h.receive_data(data)
                if not data and h.their_state is not h11.DONE:
                    raise ConnectionError("client went away")
                continue
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.limits.max_body_bytes:
                    raise _Reject(413, "request body too large")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return bytes(body)

    def _client_address(self, conn: _Conn, request: h11.Request) -> str | None:
        """The probe's address: the peer, or what a trusted proxy forwarded (None = unknown:
        a trusted proxy that forwarded nothing usable is not echoed as the probe)."""
        peer = parse_host(conn.peer)
        if peer is None:
            return None
        if not _within(peer, self.trusted_proxies):
            return str(peer)
        chain: list[str] = []
        for name, value in request.headers:
            if name == b"forwarded":
                chain += _forwarded_for(value.decode("latin-1"))
            elif name == b"x-forwarded-for" and not any(n == b"forwarded"
                                                        for n, _ in request.headers):
                chain += [v.strip() for v in value.decode("latin-1").split(",")]
        for text in reversed(chain):
            addr = parse_host(text)
            if addr is None:
                return None
            if not _within(addr, self.trusted_proxies):
                return _plain(addr)
        return None

    async def _route(
        self, request: h11.Request, body: bytes, peer: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        path = request.target.decode("latin-1").split("?", 1)[0]
        method = request.method.decode("latin-1")
        if path == "/v1/health" and method == "GET":  # with who is asking: issue 13
            health = {"version": PROTOCOL_VERSION, "status": "ok"}
            return 200, health if peer is None else {**health, "client_address": peer}
        if path != "/v1/measure":
            return 404, _error("not found")
        if method != "POST":
            return 405, _error("use POST")
        if not self._authorised(request):
            return 401, _error("bad or missing token")
        try:
            req = MeasureRequest.from_body(body)
        except BadRequest as e:
            return 400, _error(str(e))
        client = _client_key(peer or "?")  # None: a trusted proxy that forwarded nothing
        if self._busy_by[client] >= self.policy.max_per_client:
            return 429, _error("too many measurements from this client at once, retry later")
        if self._busy >= self.policy.max_concurrent:
            return 503, _error("busy, retry later")
        self._busy += 1
        self._busy_by[client] += 1
        try:
            async with asyncio.timeout(self.policy.request_timeout):
                result = await self.measurer(req, self.policy)
        except TimeoutError:
            return 200, {"version": PROTOCOL_VERSION, "url": req.url,
                         "failure": "generic_timeout_error"}
        finally:
            self._busy -= 1
            self._busy_by[client] -= 1
            if self._busy_by[client] <= 0:
                del self._busy_by[client]
        if peer is not None:  # the probe's public address, for it to scrub (never stored)
            result = {**result, "client_address": peer}
        return (403 if result.get("refused") else 200), result

    def _authorised(self, request: h11.Request) -> bool:
        if self.policy.token is None:
            return True
        expected = f"Bearer {self.policy.token}".encode()
        for name, value in request.headers:
            if name == b"authorization":
                return hmac.compare_digest(value, expected)
        return False

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: dict[str, Any]
                    ) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Status"
        head = (f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(payload)}\r\nconnection: close\r\n"
                f"x-probe-control-version: {PROTOCOL_VERSION}\r\n"
                f"date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}\r\n\r\n")
        with contextlib.suppress(ConnectionError, OSError, TimeoutError, ssl.SSLError):
            writer.write(head.encode("ascii") + payload)
            async with asyncio.timeout(self.limits.write_timeout):
                await writer.drain()


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _within(addr: Any, nets: tuple[Network, ...]) -> bool:
    return any(addr.version == n.version and addr in n for n in nets)


def _plain(addr: Any) -> str:
    """IPv4-mapped IPv6 as IPv4 (what the probe would call its address)."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def _forwarded_for(value: str) -> list[str]:
    """The ``for=`` nodes of a Forwarded header (RFC 7239 §4), in order; ports dropped,
    obfuscated or unknown nodes kept as text (they parse as no address)."""
    nodes = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, node = pair.strip().partition("=")
            if name.strip().lower() != "for":
                continue
            node = node.strip().strip('"')
            if node.startswith("["):
                node = node[1:].partition("]")[0]
            elif node.count(":") == 1:
                node = node.partition(":")[0]
            nodes.append(node)
    return nodes


def _peer(writer: asyncio.StreamWriter) -> str | None:
    """The client's address as seen here (IPv4-mapped IPv6 as IPv4); None = unknown."""
    peername = writer.get_extra_info("peername")
    if not isinstance(peername, tuple) or not peername:
        return None
    addr = parse_host(str(peername[0]))
    return None if addr is None else _plain(addr)


def _error(message: str) -> dict[str, Any]:
    return {"version": PROTOCOL_VERSION, "error": message}


def _client_key(address: str) -> str:
    """Whose share a measurement counts against: the address, or an IPv6 address's /64 (one
    subscriber's usual allocation: any of its 2^64 addresses is the same client)."""
    addr = parse_host(address)
    if addr is None or addr.version == 4:
        return address
    return str(ipaddress.ip_network(f"{addr}/64", strict=False))
