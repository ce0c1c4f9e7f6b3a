"""The control helper's HTTP server: a public service that measures URLs from outside the censor.

It speaks the v1 protocol of :mod:`probe.control.protocol` over plain HTTP/1.1 (put TLS in
front, or pass a certificate). Because anyone can reach it, it defends itself: a shared token
(optional), a cap on concurrent measurements (503 when busy), caps on request size and on time
per request, and a :class:`Policy` that refuses private, loopback and bogon targets and non-web
ports unless they are explicitly allowed (the simulated world allows its own ranges).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import h11

from probe.control.protocol import PROTOCOL_VERSION, BadRequest, MeasureRequest

MAX_REQUEST_BYTES = 64 * 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Policy:
    """What the helper agrees to measure.

    ``allow``: extra address ranges allowed although not global (private test worlds).
    ``ports``: allowed destination ports. ``token``: required ``Authorization: Bearer`` token;
    None = open. ``max_concurrent``: measurements at once before answering 503.
    ``request_timeout``: deadline of one measurement (s).
    """

    allow: tuple[Network, ...] = ()
    ports: frozenset[int] = field(default_factory=lambda: frozenset({80, 443}))
    token: str | None = None
    max_concurrent: int = 8
    request_timeout: float = 30.0

    def address_allowed(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if any(addr in net for net in self.allow):
            return True
        return addr.is_global and not addr.is_multicast

    def port_allowed(self, port: int) -> bool:
        return port in self.ports


#: Measures one validated request under a policy and returns the v1 response body.
Measurer = Callable[[MeasureRequest, Policy], Awaitable[dict[str, Any]]]


class ControlServer:
    """An asyncio HTTP/1.1 server for the v1 protocol (one request per connection)."""

    def __init__(self, policy: Policy, measurer: Measurer) -> None:
        self.policy = policy
        self.measurer = measurer
        self._busy = 0
        self._server: asyncio.Server | None = None

    async def start(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._handle, host, port, ssl=ssl_context)
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.policy.request_timeout + 10):
                conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
                status, body = await self._exchange(conn, reader, _peer(writer))
                await _respond(conn, writer, status, body)
        except (TimeoutError, ConnectionError, h11.ProtocolError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _exchange(
        self, conn: h11.Connection, reader: asyncio.StreamReader, peer: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(16384)
                conn.receive_data(data)
                if not data and conn.their_state is not h11.DONE:
                    raise ConnectionError("client went away")
                continue
            if isinstance(event, h11.Request):
                request = event
                if len(event.target) > 4096:
                    return 414, _error("URI too long")
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_REQUEST_BYTES:
                    return 413, _error("request body too large")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        if request is None:
            return 400, _error("no request")
        return await self._route(request, bytes(body), peer)

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
            req = MeasureRequest.from_json(json.loads(body or b"null"))
        except (ValueError, UnicodeDecodeError) as e:
            return 400, _error(str(e) if isinstance(e, BadRequest) else "body is not JSON")
        if self._busy >= self.policy.max_concurrent:
            return 503, _error("busy, retry later")
        self._busy += 1
        try:
            async with asyncio.timeout(self.policy.request_timeout):
                result = await self.measurer(req, self.policy)
        except TimeoutError:
            return 200, {"version": PROTOCOL_VERSION, "url": req.url,
                         "failure": "generic_timeout_error"}
        finally:
            self._busy -= 1
        if peer is not None:  # the probe's public address, for it to scrub (never stored)
            result = {**result, "client_address": peer}
        return (403 if result.get("refused") else 200), result

    def _authorised(self, request: h11.Request) -> bool:
        if self.policy.token is None:
            return True
        expected = f"Bearer {self.policy.token}".encode()
        for name, value in request.headers:
            if name.lower() == b"authorization":
                return hmac.compare_digest(value, expected)
        return False


def _peer(writer: asyncio.StreamWriter) -> str | None:
    """The client's address as seen here (IPv4-mapped IPv6 as IPv4); None = unknown."""
    peername = writer.get_extra_info("peername")
    if not isinstance(peername, tuple) or not peername:
        return None
    try:
        ip = ipaddress.ip_address(str(peername[0]).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _error(message: str) -> dict[str, Any]:
    return {"version": PROTOCOL_VERSION, "error": message}


async def _respond(
    conn: h11.Connection, writer: asyncio.StreamWriter, status: int, body: dict[str, Any]
) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(payload))),
        ("connection", "close"),
        ("x-probe-control-version", str(PROTOCOL_VERSION)),
    ]
    writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
    writer.write(conn.send(h11.Data(data=payload)) or b"")
    writer.write(conn.send(h11.EndOfMessage()) or b"")
    await writer.drain()
