"""The collector's HTTPS service: receives batches of measurements from enrolled probes.

Protocol (``probe.upload/1``, docs/collector.md): ``POST /v1/batches`` with ``Authorization:
Bearer TOKEN``, ``Content-Encoding: zstd`` or ``gzip`` (or ``identity``) and a
``Content-Length``; the body
is a batch (:mod:`probe.collector.validation`). The answer (200) lists the records ``accepted``,
the ``duplicates`` (already stored: acknowledged too) and the ``refused`` ones with their
reason; a probe marks accepted and duplicate ids sent. Errors are JSON ``{"error": ...}``:
400 malformed batch, 401 unknown token, 403 revoked or expired token, 411/413 missing or
excessive size, 429 rate limited (``Retry-After``), 503 too many connections.
``GET /v1/health`` answers ``{"status": "ok", "encodings": [...]}``: the content encodings
it accepts (zstd where the ``zstandard`` package is installed, :mod:`probe.collector.codec`).

Defences: TLS built in (a certificate and key; plain HTTP only on loopback), a cap on open
connections (when full, the oldest connection still sending its request head, i.e. not yet
authenticated, is dropped for the newcomer, so idle or dripping sockets cannot lock probes
out; 503 only when every connection is an authenticated upload), a deadline for the head and
one per connection, the token and the rate limit checked from the head *before* the body is
read (an unauthenticated client cannot make the collector hold a body), a cap on uploads in
flight per probe, caps on the compressed and decompressed size of a body (a gzip or zstd bomb
stops at the cap), JSON nested too deeply refused with a 400, a token bucket per probe,
everything validated before it is stored, one writer thread for the database; an unexpected
error is one log line and a 500, never a traceback. Client addresses are not logged unless
asked (``log_addresses``); the address is handed to the store only to scrub it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11

from probe.collector import codec
from probe.collector.codec import TooLarge
from probe.collector.validation import CheckedRecord, Invalid, check_batch, check_record
from probe.store.collector import AuthError, CollectorStore

log = logging.getLogger("probe.collector")

#: Request head (request line and headers).
MAX_HEAD = 16 * 1024
#: Seconds a client may keep sending after an early answer (401, 413, 429: the body is not
#: wanted) so that it reads the answer rather than a reset; the bytes are discarded.
LINGER = 2.0


@dataclass(frozen=True, slots=True)
class Limits:
    """``max_body``: compressed body; ``max_decoded``: decompressed body; ``max_connections``:
    open at once (beyond it the oldest one still sending its head is dropped; 503 when there
    is none); ``header_timeout``: seconds from accept to the end of the head (a real probe
    sends it in one packet; slowloris is cut here); ``timeout``: seconds one connection may
    take; ``per_probe``: uploads in flight per probe (its uploader sends one batch at a time;
    more → 429); ``rate`` and ``burst``: batches per second per probe (token bucket)."""

    max_body: int = 16 * 1024 * 1024
    max_decoded: int = 64 * 1024 * 1024
    max_connections: int = 128
    header_timeout: float = 10.0
    timeout: float = 60.0
    per_probe: int = 2
    rate: float = 10.0
    burst: float = 40.0


@dataclass(slots=True)
class _Conn:
    writer: asyncio.StreamWriter
    evictable: bool = True  # not authenticated yet (head, or lingering after an early answer)


class _Early(Exception):
    """An answer given from the head alone (the body, if any, is not read)."""

    def __init__(self, status: int, body: dict[str, Any],
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(body.get("error", ""))
        self.answer = (status, body, headers or [])


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True)
class RateLimiter:
    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, key: str) -> float:
        """0 = allowed (a token taken); else seconds until the next token."""
        now = self.clock()
        b = self._buckets.setdefault(key, _Bucket(self.burst, now))
        b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
        b.at = now
        if b.tokens >= 1:
            b.tokens -= 1
            return 0.0
        return (1 - b.tokens) / self.rate


class CollectorServer:
    """The service over one :class:`CollectorStore` (owned: it is closed by :meth:`close`)."""

    def __init__(self, store: CollectorStore, limits: Limits | None = None, *,
                 log_addresses: bool = False) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.log_addresses = log_addresses
        self.rates = RateLimiter(self.limits.rate, self.limits.burst)
        self._writer = concurrent.futures.ThreadPoolExecutor(1, "collector-db")
        self._conns: dict[int, _Conn] = {}  # insertion order = age
        self._uploading: dict[str, int] = {}  # probe id → uploads in flight
        self._server: asyncio.Server | None = None
        self.stats = {"batches": 0, "accepted": 0, "duplicates": 0, "refused": 0,
                      "rejected": 0, "evicted": 0, "errors": 0}

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    async def start(self, host: str, port: int,
                    ssl_context: ssl.SSLContext | None = None) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._handle, host, port, ssl=ssl_context,
                                                  backlog=256)
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
        self._writer.shutdown(wait=True)
        self.store.close()

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    def _admit(self, writer: asyncio.StreamWriter) -> _Conn | None:
        """Register a connection; when full, drop the oldest unauthenticated one for it
        (None = every connection is an authenticated upload: the newcomer gets a 503)."""
        if len(self._conns) >= self.limits.max_connections:
            oldest = next((k for k, c in self._conns.items() if c.evictable), None)
            if oldest is None:
                return None
            self.stats["evicted"] += 1
            self._conns.pop(oldest).writer.transport.abort()
        conn = _Conn(writer)
        self._conns[id(conn)] = conn
        return conn

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self._admit(writer)
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        headers: list[tuple[str, str]]
        try:
            if conn is None:
                status, body, headers = 503, {"error": "too many connections, retry later"}, []
            else:
                try:
                    async with asyncio.timeout(self.limits.timeout):
                        status, body, headers = await self._exchange(conn, h, reader, writer)
                except _Early as e:
                    status, body, headers = e.answer
                except Exception as e:  # noqa: BLE001 - one log line and a 500, never a traceback
                    if isinstance(e, TimeoutError | ConnectionError | h11.ProtocolError
                                  | ssl.SSLError):
                        raise
                    self.stats["errors"] += 1
                    log.warning("collector: %s: %s", type(e).__name__,
                                str(e).splitlines()[0][:200] if str(e) else "")
                    status, body, headers = 500, {"error": "internal error"}, []
            with contextlib.suppress(h11.LocalProtocolError):
                await _respond(h, writer, status, body, headers)
            if conn is not None and h.their_state is h11.SEND_BODY:
                conn.evictable = True  # a body we do not want: let the client read the answer
                with contextlib.suppress(TimeoutError, ConnectionError):
                    async with asyncio.timeout(LINGER):
                        while await reader.read(65536):
                            pass
        except (TimeoutError, ConnectionError, h11.ProtocolError, ssl.SSLError):
            pass
        finally:
            if conn is not None:
                self._conns.pop(id(conn), None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _exchange(self, conn: _Conn, h: h11.Connection, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter
                        ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        async with asyncio.timeout(self.limits.header_timeout):
            request = await _read_head(h, reader)
        early = self._precheck(request)
        if early is not None:
            return early
        path = request.target.decode("latin-1").split("?", 1)[0]
        if path == "/v1/health":
            await self._read_body(h, reader)
            return 200, {"status": "ok", "encodings": [*codec.encodings(), "identity"]}, []
        peer = _peer(writer)
        probe_id = await self._authorise(request, peer)  # before any byte of the body
        conn.evictable = False
        if self._uploading.get(probe_id, 0) >= self.limits.per_probe:
            raise _Early(*self._reject(429, "too many uploads at once, retry later",
                                       probe_id, peer)[:2], [("retry-after", "1")])
        self._uploading[probe_id] = self._uploading.get(probe_id, 0) + 1
        try:
            body = await self._read_body(h, reader)
            return await self._batch(request, body, probe_id, peer)
        finally:
            self._uploading[probe_id] -= 1
            if not self._uploading[probe_id]:
                del self._uploading[probe_id]

    async def _read_body(self, h: h11.Connection, reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                h.receive_data(data)
                if not data and h.their_state is not h11.DONE:
                    raise ConnectionError("client went away")
                continue
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.limits.max_body:
                    raise _Early(413, {"error": f"body larger than {self.limits.max_body} "
                                                "bytes"})
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return bytes(body)

    async def _authorise(self, request: h11.Request, peer: str | None) -> str:
        """The probe the token names, within its rate; else an early 401/403/429."""
        auth = _header(request, b"authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token:
            raise _Early(*self._reject(401, "missing token (Authorization: Bearer TOKEN)",
                                       None, peer))
        try:
            probe_id: str = await self._db(self.store.authenticate, token)
        except AuthError as e:
            raise _Early(*self._reject(e.status, str(e), None, peer)) from None
        wait = self.rates.take(probe_id)
        if wait > 0:
            raise _Early(*self._reject(429, "rate limited, retry later", probe_id, peer)[:2],
                         [("retry-after", str(max(1, round(wait))))])
        return probe_id

    def _precheck(self, request: h11.Request
                  ) -> tuple[int, dict[str, Any], list[tuple[str, str]]] | None:
        path = request.target.decode("latin-1").split("?", 1)[0]
        method = request.method.decode("latin-1")
        if path == "/v1/health":
            return None if method == "GET" else (405, {"error": "use GET"}, [])
        if path != "/v1/batches":
            return 404, {"error": "not found"}, []
        if method != "POST":
            return 405, {"error": "use POST"}, []
        length = _header(request, b"content-length")
        if length is None:
            return 411, {"error": "Content-Length required"}, []
        if not length.isdigit() or int(length) > self.limits.max_body:
            return 413, {"error": f"body larger than {self.limits.max_body} bytes"}, []
        return None

    async def _batch(self, request: h11.Request, body: bytes, probe_id: str, peer: str | None
                     ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        encoding = _header(request, b"content-encoding") or "identity"
        try:
            batch_id, checked, refused = await asyncio.to_thread(
                _decode_and_check, body, encoding, self.limits.max_decoded)
        except TooLarge as e:
            return self._reject(413, str(e), probe_id, peer)
        except (Invalid, ValueError) as e:
            return self._reject(400, str(e), probe_id, peer)
        stored = await self._db(self.store.store_batch, probe_id, batch_id, checked, peer)
        self.stats["batches"] += 1
        self.stats["accepted"] += len(stored.accepted)
        self.stats["duplicates"] += len(stored.duplicates)
        self.stats["refused"] += len(refused)
        log.info("batch %s from %s%s: %d accepted, %d duplicates, %d refused", batch_id,
                 probe_id, self._where(peer), len(stored.accepted), len(stored.duplicates),
                 len(refused))
        return 200, {"batch_id": batch_id, "probe_id": probe_id,
                     "accepted": list(stored.accepted), "duplicates": list(stored.duplicates),
                     "refused": refused}, []

    def _where(self, peer: str | None) -> str:
        return f" ({peer})" if self.log_addresses and peer else ""

    def _reject(self, status: int, message: str, probe_id: str | None, peer: str | None
                ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        self.stats["rejected"] += 1
        log.warning("rejected (%d) from %s%s: %s", status, probe_id or "unauthenticated client",
                    self._where(peer), message)
        return status, {"error": message}, []


def _decode_and_check(body: bytes, encoding: str, limit: int
                      ) -> tuple[str, list[CheckedRecord], dict[str, str]]:
    raw = codec.decompress(body, encoding, limit)
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise Invalid(f"body is not JSON: {str(e)[:80]}") from None
    except RecursionError:  # nested past the parser's stack: no batch is that deep
        raise Invalid("body is not JSON: nested too deeply") from None
    batch_id, records = check_batch(obj)
    checked: list[CheckedRecord] = []
    refused: dict[str, str] = {}
    for i, record in enumerate(records):
        try:
            checked.append(check_record(record))
        except Invalid as e:
            mid = record.get("measurement_id") if isinstance(record, dict) else None
            key = mid if isinstance(mid, str) and len(mid) <= 64 else f"#{i}"
            refused[key] = str(e)
    return batch_id, checked, refused


async def _read_head(h: h11.Connection, reader: asyncio.StreamReader) -> h11.Request:
    while True:
        event = h.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("client went away")
            h.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            return event
        raise ConnectionError("client went away")


def _header(request: h11.Request, name: bytes) -> str | None:
    for key, value in request.headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _peer(writer: asyncio.StreamWriter) -> str | None:
    peername = writer.get_extra_info("peername")
    if isinstance(peername, tuple) and peername:
        return str(peername[0]).split("%", 1)[0]
    return None


async def _respond(conn: h11.Connection, writer: asyncio.StreamWriter, status: int,
                   body: dict[str, Any], extra: list[tuple[str, str]]) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(payload))),
               ("connection", "close"), *extra]
    writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
    writer.write(conn.send(h11.Data(data=payload)) or b"")
    writer.write(conn.send(h11.EndOfMessage()) or b"")
    await writer.drain()


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """TLS 1.2+ with the given PEM certificate chain and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def serve(db: str, host: str, port: int, *, cert: str | None = None,
                key: str | None = None, limits: Limits | None = None,
                log_addresses: bool = False,
                on_ready: Callable[[str, int], None] | None = None) -> None:
    """Serve until cancelled (``probe collector serve``)."""
    from probe.errors import UsageError

    if (cert is None) != (key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if cert is None and not is_loopback(host):
        raise UsageError(f"--listen {host}: plain HTTP is only for loopback; "
                         "give --tls-cert and --tls-key")
    try:
        ctx = server_ssl_context(cert, key) if cert and key else None
    except (OSError, ssl.SSLError) as e:
        raise UsageError(f"cannot load the TLS certificate {cert}: {e}") from e
    server = CollectorServer(CollectorStore(db), limits, log_addresses=log_addresses)
    try:
        bound = await server.start(host, port, ctx)
        if on_ready is not None:
            on_ready(*bound)
        await server.serve_forever()
    finally:
        await server.close()
