"""HTTP step: one GET over an already measured connection, recorded as an HTTPObservation.

Responsibility: the HTTP/1.1 exchange (via httpx, over the exact connection the TCP/TLS steps
measured, so the request goes to that IP with the URL's Host header and SNI), the capped body,
and what is read from a response: status, ordered headers, absolute ``location``, ``<title>``.

The seam is :class:`OneConnectionTransport`: an httpx transport whose only connection is an
``httpcore.AsyncHTTP11Connection`` over our :class:`~probe.measure.tcp.Connection`. Nothing is
pooled, nothing is dialled by httpx, redirects are not followed here (``web`` follows them as
new steps). The httpx client only builds the request (headers, cookies); the request goes
straight to the transport, so nothing in httpx interprets the response.

Bodies: we ask for ``gzip, deflate`` like a browser and decode them ourselves with a bounded
decompressor (a compressed bomb cannot grow past ``settings.body_cap``). ``body``,
``body_length`` and ``body_sha256`` describe the decoded body as kept, i.e. at most
``body_cap`` bytes; ``body_truncated`` says more was there. A body whose encoding we cannot
decode is kept as received.

Caps against hostile servers (every one is a constant below):

* one deadline, ``settings.http_timeout``, for the whole exchange (request, head, body): a
  server trickling a byte at a time cannot extend it, and every read yields to the event loop
  (:meth:`probe.measure.tcp.Connection.read`) so a server that never stops sending cannot
  either;
* the response head (status line, headers, interim ``1xx`` responses being parsed) is at most
  :data:`HEAD_CAP` bytes (h11's incomplete-event limit): endless or huge headers end as
  ``http_protocol_error``;
* at most :data:`MAX_HEADERS` headers are recorded, each value cut to :data:`MAX_HEADER_VALUE`
  characters (the redirect target is read before cutting);
* at most :data:`MAX_COOKIES` cookies of at most :data:`MAX_COOKIE_SIZE` bytes each are
  kept across the hops of a measurement (a cookie bomb cannot grow every later request), and
  the request headers are recorded with the same caps as the response's;
* a ``Location`` longer than :data:`MAX_LOCATION`, or whose host is not a usable DNS name or
  IP address, is ``http_invalid_redirect_location_host``;
* the ``<title>`` is searched in the first :data:`TITLE_SCAN` bytes and cut to
  :data:`TITLE_MAX` characters; charsets that interpret escapes or are not text encodings are
  never used to decode (:data:`UNSAFE_CHARSETS`).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import html
import ipaddress
import re
import warnings
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from probe import failures
from probe.measure.settings import MeasureSettings
from probe.measure.tcp import Connection
from probe.model import HTTPObservation

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
TITLE_SCAN = 256 * 1024  # bytes of body searched for <title>
TITLE_MAX = 256  # characters kept of a title
HEAD_CAP = 100 * 1024  # bytes of response head (h11 max_incomplete_event_size)
MAX_HEADERS = 256  # headers recorded per response
MAX_HEADER_VALUE = 8 * 1024  # characters recorded per header value
MAX_LOCATION = 8 * 1024  # characters of a usable Location
MAX_COOKIES = 50  # cookies kept across the hops of one measurement
MAX_COOKIE_SIZE = 4096  # bytes of name + value of a kept cookie (RFC 6265 §6.1)
#: Codecs never used to decode a page, whatever it declares: they interpret escapes (and can
#: produce lone surrogates), or are not meant for whole documents.
UNSAFE_CHARSETS = frozenset({"unicode_escape", "raw_unicode_escape", "punycode", "idna"})

GZIP_MAGIC = b"\x1f\x8b"
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


# --- the seam: httpx over our connection -----------------------------------------------------


class _Stream(httpcore.AsyncNetworkStream):
    """httpcore's view of a :class:`Connection` (timeouts are ours, not httpcore's).

    It counts what the server sent (``received``: bytes read, head and raw body) and when the
    last of it arrived (``last_read_t``, on ``clock``; None = nothing yet): facts that tell a
    transfer that froze from one that was still trickling when the deadline hit.
    """

    def __init__(self, conn: Connection, clock: Callable[[], float] | None = None) -> None:
        self._conn = conn
        self._clock = clock
        self.received = 0
        self.last_read_t: float | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        data = await self._conn.read(max_bytes)
        if data:
            self.received += len(data)
            if self._clock is not None:
                self.last_read_t = self._clock()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if buffer:
            await self._conn.write(buffer)

    async def aclose(self) -> None:
        self._conn.close()

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._conn.ssl_object
        if info == "is_readable":
            return False
        return None


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()


def _host_bytes(host: str) -> bytes:
    """The host as httpx puts it in ``URL.raw_host`` (IPv6 without brackets, IDNA ASCII)."""
    try:
        return host.encode("ascii")
    except UnicodeEncodeError:
        return host.encode("idna")


class _HTTP11Connection(httpcore.AsyncHTTP11Connection):
    """httpcore's HTTP/1.1 connection with our response-head cap (not httpcore's default)."""

    MAX_INCOMPLETE_EVENT_SIZE = HEAD_CAP


class OneConnectionTransport(httpx.AsyncBaseTransport):
    """An httpx transport that speaks HTTP/1.1 over one already open connection.

    Requests must be for the origin (scheme, host, port) the connection was made for.
    Errors are left as raised (``OSError``, ``httpcore`` errors) for
    :func:`probe.failures.classify_exception`.
    """

    def __init__(self, conn: Connection, scheme: str, host: str, port: int,
                 clock: Callable[[], float] | None = None) -> None:
        origin = httpcore.Origin(scheme.encode("ascii"), _host_bytes(host), port)
        self.stream = _Stream(conn, clock)
        self._http = _HTTP11Connection(origin=origin, stream=self.stream)
        self._port = port

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port or self._port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        resp = await self._http.handle_async_request(req)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_ResponseStream(resp.stream),
            extensions=resp.extensions,
        )

    async def aclose(self) -> None:
        await self._http.aclose()


# --- pure helpers ----------------------------------------------------------------------------


class BoundedDecoder:
    """Content-Encoding decoder that never produces more than ``cap`` bytes in total.

    Supports identity, gzip (several members, RFC 1952 §2.2) and deflate (zlib-wrapped or raw,
    as servers send both). Anything else, or a stream that fails to decode, is kept as received
    (``fell_back`` True). Bytes after the end of the compressed stream are counted, never kept;
    more than ``cap`` of them end the body as truncated. Memory stays O(cap) whatever arrives.
    """

    def __init__(self, encoding: str | None, cap: int) -> None:
        self.cap = cap
        self.out = bytearray()
        self.truncated = False
        self.fell_back = False
        self._raw = bytearray()  # the first cap+1 raw bytes, for a fallback or a retry
        self._deflate_retry = False
        self._zlib: Any = None
        self._gzip = False
        self._ended = False  # the compressed stream is over: the rest is trailing junk
        self._trailing = 0
        self._pending = b""
        enc = (encoding or "identity").strip().lower()
        if enc in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._gzip = True
        elif enc == "deflate":
            self._zlib = zlib.decompressobj()
            self._deflate_retry = True
        elif enc not in ("identity", ""):
            self.fell_back = True

    def feed(self, chunk: bytes) -> None:
        """Decode one raw chunk (ignored once the cap is reached)."""
        if self.truncated or not chunk:
            return
        if len(self._raw) <= self.cap:
            self._raw += chunk[: self.cap + 1 - len(self._raw)]
        if self._zlib is None:
            self._append(chunk)
            return
        try:
            self._inflate(chunk)
        except zlib.error:
            if self._deflate_retry and not self.out:
                # "deflate" is often a raw deflate stream without the zlib header.
                self._deflate_retry = False
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                raw, self._raw = bytes(self._raw), bytearray()
                self.feed(raw)
            else:
                self._fallback()

    def _inflate(self, chunk: bytes) -> None:
        # A finished decompressor would append every later byte to its unused_data: never
        # feed one. After a gzip member comes another member or trailing junk.
        chunk, self._pending = self._pending + chunk, b""
        while chunk and not self.truncated:
            if self._ended:
                self._trailing += len(chunk)
                self.truncated = self._trailing > self.cap
                return
            if self._zlib.eof:
                if self._gzip and len(chunk) < 2 and GZIP_MAGIC.startswith(chunk):
                    self._pending = chunk  # the next member's magic, split across reads
                    return
                if self._gzip and chunk[:2] == GZIP_MAGIC:
                    self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
                else:
                    self._ended = True
                    continue
            data = self._zlib.decompress(chunk, self.cap + 1 - len(self.out))
            self._deflate_retry = False
            self._append(data)
            if self._zlib.unconsumed_tail:
                self.truncated = True
            chunk = self._zlib.unused_data if self._zlib.eof else b""

    def _fallback(self) -> None:
        self.fell_back = True
        self._zlib = None
        self.out = bytearray()
        self.truncated = False
        self._append(bytes(self._raw))

    def _append(self, data: bytes) -> None:
        room = self.cap - len(self.out)
        if len(data) > room:
            self.out += data[:room]
            self.truncated = True
        else:
            self.out += data

    def finish(self) -> tuple[bytes, bool]:
        """The kept body and whether it was truncated."""
        if self._zlib is not None and not self.truncated and not self._zlib.eof:
            try:
                self._append(self._zlib.flush())
            except zlib.error:
                self._fallback()
        return bytes(self.out), self.truncated


_CHARSET_HEADER = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_CHARSET_META = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)",
                           re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))


def _charset(head: bytes, content_type: str | None) -> str:
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    for source in (content_type or "",):
        m = _CHARSET_HEADER.search(source)
        if m:
            return m.group(1)
    meta = _CHARSET_META.search(head[:4096])
    if meta:
        return meta.group(1).decode("ascii")
    return "utf-8"


def _safe_codec(charset: str) -> str:
    """``charset`` if it names a text encoding we are willing to run, else ``utf-8``."""
    try:
        info = codecs.lookup(charset)
    except LookupError:
        return "utf-8"
    text_encoding = getattr(info, "_is_text_encoding", True)  # False for rot13, zlib, base64…
    if info.name.replace("-", "_") in UNSAFE_CHARSETS or not text_encoding:
        return "utf-8"
    return info.name


def _plain_text(text: str) -> str:
    """``text`` without lone surrogates (they cannot be stored as UTF-8)."""
    return text.encode("utf-8", "replace").decode("utf-8")


def decode_text(body: bytes, content_type: str | None) -> str:
    """``body`` as text: BOM, then the header charset, then ``<meta charset>``, then UTF-8;
    undecodable bytes are replaced, unknown or unsafe charsets fall back to UTF-8. Never
    raises, never warns, and the result always encodes as UTF-8."""
    charset = _safe_codec(_charset(body, content_type))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _plain_text(body.decode(charset, errors="replace"))
    except Exception:  # a codec that fails on its own terms
        return body.decode("utf-8", errors="replace")


def extract_title(body: bytes, content_type: str | None = None) -> str | None:
    """The text of the first ``<title>`` element, unescaped, whitespace collapsed and capped
    at ``TITLE_MAX`` characters; None = no title element. Linear time, tolerant of bad HTML
    (an unclosed title runs to the next ``<``)."""
    text = decode_text(body[:TITLE_SCAN], content_type)
    low = text.lower()
    pos = 0
    while True:
        start = low.find("<title", pos)
        if start < 0:
            return None
        after = start + len("<title")
        if after < len(low) and low[after] not in "> \t\r\n/":
            pos = after  # e.g. <titlebar>
            continue
        close = low.find(">", after)
        if close < 0:
            return None
        end = low.find("</title", close + 1)
        if end < 0:
            end = low.find("<", close + 1)
        raw = text[close + 1:] if end < 0 else text[close + 1:end]
        title = " ".join(html.unescape(raw[: TITLE_MAX * 8]).split())
        return _plain_text(title[:TITLE_MAX])


def usable_host(host: str) -> bool:
    """True for an IP literal or a name DNS can carry: 1-63 byte labels (after IDNA), at
    most 253 bytes, no empty label, no whitespace or control characters."""
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if not host or any(c.isspace() or ord(c) < 0x20 or c in "\\/@" for c in host):
        return False
    try:
        ascii_host = host.encode("idna") if not host.isascii() else host.encode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.rstrip(b".").split(b".")
    return len(ascii_host) <= 253 and all(0 < len(label) <= 63 for label in labels)


def resolve_location(base: str, location: str) -> str | None:
    """``location`` made absolute against ``base``; None when it is not a usable http(s) URL
    with a host (the caller records ``http_invalid_redirect_location_host``): longer than
    :data:`MAX_LOCATION`, another scheme, a bad port, or a host DNS could not carry."""
    location = location.strip()
    if not location or len(location) > MAX_LOCATION:
        return None
    try:
        absolute = urljoin(base, location)
        parts = urlsplit(absolute)
        port = parts.port
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host or not usable_host(host):
        return None
    if port is not None and not 0 < port < 65536:
        return None
    return absolute


# --- the step --------------------------------------------------------------------------------


def request_headers(settings: MeasureSettings) -> list[tuple[str, str]]:
    """The headers of every GET (httpx adds Host and Connection)."""
    return [
        ("User-Agent", settings.user_agent),
        ("Accept", ACCEPT),
        ("Accept-Language", "en-US,en;q=0.9"),
        ("Accept-Encoding", "gzip, deflate"),
    ]


async def fetch(
    conn: Connection,
    url: str,
    ip: str,
    port: int,
    settings: MeasureSettings,
    tx_id: int,
    redirect_index: int,
    clock: Callable[[], float],
    cookies: httpx.Cookies | None = None,
    method: str = "GET",
) -> HTTPObservation:
    """GET (or ``method``, with an empty body: the apps' POST probes) ``url`` over ``conn``
    (already connected to ``ip:port``, TLS done for https) within
    ``settings.http_timeout`` seconds, body included.

    Whatever was received before a failure is kept (status, headers, partial body), with how
    many bytes the server sent and when the last of them arrived (``received_bytes``,
    ``last_byte_t``).
    ``cookies`` (if given) are sent and updated with the response's cookies. Never raises for
    network trouble; cancellation propagates. The connection is closed afterwards.
    """
    t0 = clock()
    client: httpx.AsyncClient | None = None
    sent: tuple[tuple[str, str], ...] = ()
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    location: str | None = None
    decoder: BoundedDecoder | None = None
    failure: str | None = None
    response: httpx.Response | None = None
    transport: OneConnectionTransport | None = None
    try:
        async with asyncio.timeout(settings.http_timeout):
            parts = urlsplit(url)
            transport = OneConnectionTransport(conn, parts.scheme, parts.hostname or "", port,
                                               clock)
            client = httpx.AsyncClient(transport=transport, follow_redirects=False,
                                       timeout=None, trust_env=False, cookies=cookies)
            request = client.build_request(method, url, headers=request_headers(settings),
                                           content=b"" if method == "POST" else None)
            sent = tuple((k.decode("latin-1"), v.decode("latin-1"))
                         for k, v in request.headers.raw)
            # Straight to the transport: httpx's client would parse a redirect's Location
            # itself and drop the whole response when it is unusable.
            response = await transport.handle_async_request(request)
            response.request = request
            status = response.status_code
            with contextlib.suppress(Exception):  # an odd Set-Cookie is not our failure
                client.cookies.extract_cookies(response)
            headers = tuple((k.decode("latin-1"), v.decode("latin-1"))
                            for k, v in response.headers.raw)
            decoder = BoundedDecoder(response.headers.get("content-encoding"), settings.body_cap)
            async for chunk in response.aiter_raw():
                decoder.feed(chunk)
                if decoder.truncated:
                    break
    except Exception as e:  # every network error becomes a failure string
        failure = failures.classify_exception(e)
    finally:
        await _close(response, client)
    t = clock()
    if cookies is not None and response is not None and client is not None:
        try:
            cookies.update(client.cookies)
            cap_cookies(cookies)
        except Exception:  # a cookie jar odd enough to refuse the copy: keep ours as it was
            pass
    body_fields: dict[str, Any] = {}
    if decoder is not None:
        body, truncated = decoder.finish()
        content_type = response.headers.get("content-type") if response is not None else None
        body_fields = {
            "body": body if settings.store_bodies else None,
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_truncated": truncated,
            "title": extract_title(body, content_type),
        }
    raw_location = next((v for k, v in headers if k.lower() == "location"), None)
    if status in REDIRECT_STATUSES and raw_location is not None:
        location = resolve_location(url, raw_location)
        if location is None and failure is None:
            failure = failures.HTTP_INVALID_REDIRECT_LOCATION_HOST
    headers, sent = cap_headers(headers), cap_headers(sent)
    stream = transport.stream if transport is not None else None
    return HTTPObservation(
        tx_id=tx_id, url=url, method=method, ip=ip, port=port, t0=t0, t=t, failure=failure,
        redirect_index=redirect_index, request_headers=sent, status=status, headers=headers,
        location=location, received_bytes=stream.received if stream is not None else 0,
        last_byte_t=stream.last_read_t if stream is not None else None, **body_fields,
    )


def cap_headers(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """The first :data:`MAX_HEADERS` headers, each value cut to :data:`MAX_HEADER_VALUE`."""
    return tuple((k[:MAX_HEADER_VALUE], v[:MAX_HEADER_VALUE]) for k, v in headers[:MAX_HEADERS])


def cap_cookies(cookies: httpx.Cookies) -> None:
    """Drop cookies over :data:`MAX_COOKIE_SIZE` and all but the first :data:`MAX_COOKIES`."""
    jar = cookies.jar
    kept = 0
    for cookie in list(jar):
        if kept < MAX_COOKIES and len(cookie.name) + len(cookie.value or "") <= MAX_COOKIE_SIZE:
            kept += 1
            continue
        with contextlib.suppress(KeyError):
            jar.clear(cookie.domain, cookie.path, cookie.name)


async def _close(response: httpx.Response | None, client: httpx.AsyncClient | None) -> None:
    """Release the exchange quickly; the connection is ours to drop, not to drain."""
    try:
        async with asyncio.timeout(1.0):
            if response is not None:
                await response.aclose()
            if client is not None:
                await client.aclose()
    except Exception:  # closing a broken connection may fail; nothing to record
        pass
