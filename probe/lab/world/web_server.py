"""The simulated world's web servers: HTTP/1.1 and HTTPS sites with scripted behaviours.

This module owns how the world's web sites answer. One :class:`WebServer` serves one
:class:`~probe.lab.world.spec.WebServerConfig`: every site on every listen IP, over plain HTTP and
HTTPS. The site is chosen by the Host header (HTTP) and the certificate by SNI (an
``ssl.SSLContext.sni_callback``); an unknown name gets the default site.

Rules:

* Each accepted connection runs in its own task, TLS handshake included, so a half-open client
  (e.g. after a censor's RST) never blocks ``accept()`` for the others. Before the handshake
  the ClientHello is *peeked* (``MSG_PEEK``, left in the kernel buffer) to learn the SNI, which
  is what the ``tls_*`` behaviours act on.
* HTTP/1.1 without keep-alive: one request per connection, ``Connection: close``, an exact
  ``Content-Length`` (bodies are streamed; ``big:`` does not hold the body in memory).
* ``reset`` sets ``SO_LINGER`` to 0 and closes: the client sees a TCP RST (ECONNRESET).
* ``site.delay`` is applied before any behaviour; ``region_block`` is checked before any
  behaviour (a 403 "not available in your region" page).

Behaviours are listed in :data:`probe.lab.world.spec.WEB_BEHAVIOURS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import html
import http
import ipaddress
import logging
import os
import re
import socket
import ssl
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import rawhttp
from .pki import WorldPKI
from .spec import SiteConfig, WebServerConfig, format_hostport, parse_web_behaviour

log = logging.getLogger(__name__)

SERVER_HEADER = "probe-world"
BLOCKPAGE_TITLE = "Доступ ограничен / Access restricted"
BLOCKPAGE_TEXT = (
    "Страница заблокирована. Access to this resource has been restricted in accordance with "
    "the law. (probe test block page)"
)
REGION_TITLE = "Not available in your region"
CHALLENGE_TITLE = "Just a moment..."
MAX_HEAD = 64 * 1024
TLS_GARBAGE_BYTES = 16 * 1024
MAX_BODY_READ = 1 << 20
CHUNK = 64 * 1024
SHUTDOWN_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request head. ``host`` is lower-case without port; None = no Host header."""

    method: str
    target: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str | None:
        value = self.headers.get("host")
        if not value:
            return None
        value = value.strip().lower()
        if value.startswith("["):
            return value[1:].split("]", 1)[0]
        return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request head (and discard its body); None = EOF or not HTTP."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0") or 0)
    except ValueError:
        length = 0
    if length > 0:
        with contextlib.suppress(asyncio.IncompleteReadError):
            await reader.readexactly(min(length, MAX_BODY_READ))
    return Request(parts[0].upper(), parts[1], parts[2], headers)


def parse_sni(data: bytes) -> str | None:
    """The server_name of a TLS ClientHello record (lower-case); None = absent or unparseable."""
    try:
        if len(data) < 5 or data[0] != 0x16:
            return None
        pos = 5
        if data[pos] != 0x01:  # handshake type ClientHello
            return None
        pos += 4 + 2 + 32  # handshake header, client_version, random
        pos += 1 + data[pos]  # session id
        pos += 2 + int.from_bytes(data[pos : pos + 2], "big")  # cipher suites
        pos += 1 + data[pos]  # compression methods
        end = pos + 2 + int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= min(end, len(data)):
            ext_type = int.from_bytes(data[pos : pos + 2], "big")
            ext_len = int.from_bytes(data[pos + 2 : pos + 4], "big")
            pos += 4
            if ext_type == 0:  # server_name: list length, then (type, length, name)...
                inner = pos + 2
                while inner + 3 <= pos + ext_len:
                    name_type = data[inner]
                    name_len = int.from_bytes(data[inner + 1 : inner + 3], "big")
                    name = data[inner + 3 : inner + 3 + name_len]
                    if name_type == 0 and len(name) == name_len:
                        return name.decode("ascii").rstrip(".").lower()
                    inner += 3 + name_len
                return None
            pos += ext_len
    except (IndexError, UnicodeDecodeError):
        return None
    return None


def _hello_complete(data: bytes) -> bool:
    if not data or data[0] != 0x16:
        return True  # not TLS: let the handshake fail on it
    if len(data) < 5:
        return False
    return len(data) >= min(5 + int.from_bytes(data[3:5], "big"), 16384)


def render_page(title: str, text: str, *, extra_head: str = "") -> str:
    """The generated HTML page: ``<title>``, an ``<h1>`` and ``text`` as a paragraph."""
    t = html.escape(title)
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f"<title>{t}</title>\n{extra_head}</head>\n<body>\n<h1>{t}</h1>\n"
        f"<p>{html.escape(text)}</p>\n</body>\n</html>\n"
    )


def _page_for(site: SiteConfig, hostname: str, body: str | None = None) -> bytes:
    title = site.title or hostname
    text = site.body if body is None else body
    if text is not None and ("<html" in text.lower()
                             or not site.content_type.lower().startswith("text/html")):
        return text.encode()  # a page of its own, or not HTML at all (a portal check's text)
    if text is None:
        text = f"Welcome to {hostname}, a site of the probe's simulated world."
    return render_page(title, text).encode()


def _padded(page: bytes, size: int) -> Iterator[bytes]:
    """``page`` cut or padded (with an HTML comment) to exactly ``size`` bytes, in chunks."""
    head = page[:size]
    yield head
    missing = size - len(head)
    if missing <= 0:
        return
    if missing < 7:
        yield b" " * missing
        return
    yield b"<!--"
    filler = missing - 7
    while filler > 0:
        n = min(filler, CHUNK)
        yield b"x" * n
        filler -= n
    yield b"-->"


class WebServer:
    """Serves one :class:`WebServerConfig` (HTTP and HTTPS on every listen IP)."""

    def __init__(self, config: WebServerConfig, pki: WorldPKI) -> None:
        self.config = config
        self.pki = pki
        self.bound_http: list[tuple[str, int]] = []
        self.bound_https: list[tuple[str, int]] = []
        self._names: dict[str, str] = {}  # hostname or alias -> site key
        for key, site in config.sites.items():
            for name in (key, *site.aliases):
                self._names.setdefault(name, key)
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._tls: ssl.SSLContext | None = None
        self._listeners: list[socket.socket] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._h3: list[Any] = []  # aioquic servers of the sites with http3
        self._alt_svc: str | None = None

    # -- sites ------------------------------------------------------------------------------

    def site_for(self, host: str | None) -> tuple[str, SiteConfig] | None:
        """(hostname, site) for a Host/SNI value: exact, ``*.`` wildcard, then the default."""
        key = self._lookup(host) if host else None
        if key is None:
            key = self.config.default_site
        if key is None:
            return None
        return (host if host and key.startswith("*.") else key), self.config.sites[key]

    def _lookup(self, host: str) -> str | None:
        host = host.rstrip(".").lower()
        if host in self._names:
            return self._names[host]
        labels = host.split(".")
        for i in range(1, len(labels)):
            wildcard = "*." + ".".join(labels[i:])
            if wildcard in self._names:
                return self._names[wildcard]
        return None

    def _prepare_tls(self) -> ssl.SSLContext:
        for key, site in self.config.sites.items():
            self._contexts[key] = self.pki.server_context([key, *site.aliases], site.cert)
        default = self.config.default_site
        if default is not None:
            site = self.config.sites[default]
            names, kind = [default, *site.aliases], site.cert
        else:
            names, kind = list(self.config.listen_ips), "valid"
        base = self.pki.server_context(names, kind)
        base.sni_callback = self._sni_callback
        return base

    def _sni_callback(
        self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        key = self._lookup(server_name) if server_name else None
        if key is not None:
            sslobj.context = self._contexts[key]
        return None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def http_port(self) -> int | None:
        return self.bound_http[0][1] if self.bound_http else None

    @property
    def https_port(self) -> int | None:
        return self.bound_https[0][1] if self.bound_https else None

    async def start(self, http_port: int | None = None, https_port: int | None = None) -> None:
        """Bind and serve; ``http_port``/``https_port`` override the config's (for port 0).

        With port 0 the OS picks a port for the first IP and the others reuse it.
        """
        try:
            if self.config.https_port is not None:
                self._tls = self._prepare_tls()
            for tls, port, bound in (
                (False, self.config.http_port, self.bound_http),
                (True, self.config.https_port, self.bound_https),
            ):
                override = https_port if tls else http_port
                if port is None:
                    continue
                port = override if override is not None else port
                for lsock in self._bind_all(port):
                    ip, actual = lsock.getsockname()[:2]
                    bound.append((ip, actual))
                    self._listeners.append(lsock)
                    self._spawn(self._accept_loop(lsock, tls))
                    log.info(
                        "%s listening on %s",
                        "https" if tls else "http",
                        format_hostport(ip, actual),
                    )
            await self._start_h3()
        except BaseException:
            await self.stop()
            raise

    async def _start_h3(self) -> None:
        """HTTP/3 on UDP at the HTTPS port of every listen IP, for the sites with ``http3``
        (one certificate naming all of them: aioquic serves one chain per server)."""
        names = [n for key, site in self.config.sites.items() if site.http3
                 for n in (key, *site.aliases)]
        if not names or not self.bound_https:
            return
        from . import h3_server  # aioquic only where a world serves HTTP/3

        chain, key = self.pki.issue(names, "valid")
        for ip, port in self.bound_https:
            server, _ = await h3_server.start(ip, port, chain, key, self._h3_answer)
            self._h3.append(server)
            log.info("http3 listening on %s", format_hostport(ip, port))
        self._alt_svc = f'h3=":{self.bound_https[0][1]}"; ma=3600'

    def _h3_answer(self, authority: str, path: str) -> tuple[int, tuple[tuple[str, str], ...],
                                                             bytes]:
        host = authority if authority.endswith("]") else authority.rsplit(":", 1)[0]
        found = self.site_for(host.strip("[]"))
        if found is None or not found[1].http3:
            return 404, (("content-type", "text/plain"),), b"no such site over HTTP/3\n"
        hostname, site = found
        page = _page_for(site, hostname)
        if site.size is not None:  # the same page as over HTTP/1.1, not a shorter one
            page = b"".join(_padded(page, site.size))
        return site.status, (("content-type", site.content_type),), page

    def _bind_all(self, port: int) -> list[socket.socket]:
        last: OSError | None = None
        for _ in range(20 if port == 0 else 1):
            socks: list[socket.socket] = []
            chosen = port
            try:
                for ip in self.config.listen_ips:
                    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
                    sock = socket.socket(family, socket.SOCK_STREAM)
                    socks.append(sock)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((ip, chosen))
                    sock.listen(256)
                    sock.setblocking(False)
                    chosen = sock.getsockname()[1]
                return socks
            except OSError as exc:
                for sock in socks:
                    sock.close()
                last = exc
        assert last is not None
        raise last

    async def stop(self) -> None:
        """Stop accepting, abort every connection in flight, close the listeners."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for lsock in self._listeners:
            lsock.close()
        self._listeners.clear()
        for server in self._h3:
            server.close()
        self._h3.clear()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_loop(self, lsock: socket.socket, tls: bool) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, addr = await loop.sock_accept(lsock)
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                log.warning("accept failed: %r", exc)
                await asyncio.sleep(0.1)
                continue
            self._spawn(self._handle(sock, addr[0], tls))

    # -- one connection ---------------------------------------------------------------------

    async def _handle(self, sock: socket.socket, peer_ip: str, tls: bool) -> None:
        sock.setblocking(False)
        writer: asyncio.StreamWriter | None = None
        try:
            sni: str | None = None
            if tls:
                hello = await self._peek_hello(sock)
                if hello is None:
                    return
                sni = parse_sni(hello)
                found = self.site_for(sni)
                if found is not None and found[1].behaviour.startswith("tls_"):
                    await self._tls_behaviour(sock, found[1].behaviour, found[1].delay)
                    return
            try:
                writer, reader = await self._open(sock, tls)
            except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
                log.debug("handshake with %s failed: %r", peer_ip, exc)
                return
            async with asyncio.timeout(self.config.request_timeout):
                request = await read_request(reader)
            if request is None:
                return
            await self._respond(request, reader, writer, sock, peer_ip, tls, sni)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("connection from %s ended: %r", peer_ip, exc)
        except Exception:  # a bug here must not go unnoticed, nor stop the server
            log.exception("web: error serving %s", peer_ip)
        finally:
            if writer is not None:
                if not writer.transport.is_closing():
                    writer.transport.abort()
            else:
                sock.close()

    async def _open(
        self, sock: socket.socket, tls: bool
    ) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_HEAD)
        protocol = asyncio.StreamReaderProtocol(reader)
        if tls:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                sock,
                ssl=self._tls,
                ssl_handshake_timeout=self.config.handshake_timeout,
                ssl_shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
        else:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock)
        return asyncio.StreamWriter(transport, protocol, reader, loop), reader

    async def _peek_hello(self, sock: socket.socket) -> bytes | None:
        """Wait for a complete ClientHello record without consuming it; None = EOF/timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.handshake_timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                data: bytes | None = sock.recv(16384 + 5, socket.MSG_PEEK)
            except BlockingIOError:
                data = None
            if data == b"":
                return None
            if data is not None and _hello_complete(data):
                return data
            if data is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await _wait_readable(loop, sock)
            else:
                await asyncio.sleep(0.01)

    async def _tls_behaviour(self, sock: socket.socket, behaviour: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        if delay:
            await asyncio.sleep(delay)
        parsed = parse_web_behaviour(behaviour)
        if parsed.kind in ("tls_stall", "tls_trickle"):
            flight = await self._server_flight(sock)
            if parsed.kind == "tls_stall":  # the first record (ServerHello) only
                flight = flight[: 5 + int.from_bytes(flight[3:5], "big")]
                await loop.sock_sendall(sock, flight)
            else:
                assert parsed.arg is not None
                for i in range(len(flight)):
                    if i:
                        await asyncio.sleep(float(parsed.arg))
                    await loop.sock_sendall(sock, flight[i : i + 1])
            while await loop.sock_recv(sock, 65536):
                pass
        elif parsed.kind == "tls_garbage":
            await loop.sock_recv(sock, 65536)  # the ClientHello
            await loop.sock_sendall(sock, os.urandom(TLS_GARBAGE_BYTES))
            while await loop.sock_recv(sock, 65536):
                pass
        elif behaviour == "tls_reset":
            _set_rst(sock)  # the caller's close() sends the RST
        elif behaviour == "tls_close":
            with contextlib.suppress(OSError):
                sock.recv(65536)  # consume the ClientHello so close() sends FIN, not RST
                sock.shutdown(socket.SHUT_WR)
        else:  # tls_hang: swallow whatever arrives until the client gives up
            while await loop.sock_recv(sock, 65536):
                pass

    async def _server_flight(self, sock: socket.socket) -> bytes:
        """Consume the ClientHello and return the server's real first flight (not sent)."""
        assert self._tls is not None
        hello = await asyncio.get_running_loop().sock_recv(sock, 65536)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self._tls.wrap_bio(incoming, outgoing, server_side=True)
        incoming.write(hello)
        with contextlib.suppress(ssl.SSLError):  # SSLWantReadError: waiting for the client
            obj.do_handshake()
        return outgoing.read()

    async def _play(self, writer: asyncio.StreamWriter, steps: Iterator[rawhttp.Step]) -> None:
        """Play a hostile wire script; ends when it does or when the client goes."""
        for step in steps:
            if step.pause:
                await asyncio.sleep(step.pause)
            if step.data:
                writer.write(step.data)
                await self._drain(writer)
            await asyncio.sleep(0)  # an endless script must not starve the other connections
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(SHUTDOWN_TIMEOUT):
                await writer.wait_closed()

    async def _respond(
        self,
        request: Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        sock: socket.socket,
        peer_ip: str,
        tls: bool,
        sni: str | None,
    ) -> None:
        found = self.site_for(request.host or sni)
        head_only = request.method == "HEAD"
        if found is None:
            body = render_page("Unknown site", f"No site {request.host or ''} here.").encode()
            await self._send(writer, 404, {}, [body], len(body), head_only)
            return
        hostname, site = found
        log.debug(
            "%s %s %s%s -> %s",
            peer_ip,
            request.method,
            request.host,
            request.target,
            site.behaviour,
        )
        if site.delay:
            await asyncio.sleep(site.delay)
        if _in_ranges(peer_ip, site.region_block):
            text = "This content is not available in your region."
            data = render_page(REGION_TITLE, text).encode()
            await self._send(writer, 403, site.headers, [data], len(data), head_only)
            return
        behaviour = site.parsed_behaviour
        kind, arg = behaviour.kind, behaviour.arg
        scheme = "https" if tls else "http"
        authority = request.headers.get("host") or hostname

        if kind in rawhttp.KINDS:
            exchange = rawhttp.Exchange(scheme, authority, request.target, site.title or hostname)
            await self._play(writer, rawhttp.script(behaviour, exchange))
            return
        if kind == "reset":
            _set_rst(sock)
            writer.transport.abort()  # closes the socket: RST
            return
        if kind == "close":
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SHUTDOWN_TIMEOUT):
                    await writer.wait_closed()
            return
        if kind == "hang":
            while await reader.read(65536):
                pass
            return
        if kind == "delay":
            assert arg is not None
            await asyncio.sleep(float(arg))
        status = site.status
        headers = dict(site.headers)
        if tls and site.http3 and self._alt_svc is not None:
            headers.setdefault("Alt-Svc", self._alt_svc)  # RFC 7838: where HTTP/3 is
        page = _page_for(site, hostname)
        size: int | None = site.size
        rate: int | None = None
        if kind == "status":
            assert arg is not None
            status = int(arg)
        elif kind == "slow":
            assert arg is not None
            rate = int(arg)
        elif kind == "big":
            assert arg is not None
            size = int(arg)
        elif kind == "redirect":
            assert arg is not None
            status, headers["Location"] = 302, arg
            page = render_page("Moved", f"This page moved to {arg}.").encode()
        elif kind == "redirect_loop":
            match = re.search(r"[?&]hop=(\d+)", request.target)
            hop = int(match.group(1)) + 1 if match else 1
            path = request.target.split("?", 1)[0] or "/"
            status, headers["Location"] = 302, f"{scheme}://{authority}{path}?hop={hop}"
            page = render_page("Redirecting", f"Redirect number {hop}.").encode()
        elif kind == "blockpage":
            page = render_page(BLOCKPAGE_TITLE, BLOCKPAGE_TEXT).encode()
        elif kind == "echo":
            headers["X-Client-IP"] = peer_ip
            if "ip=" not in request.target:
                status, headers["Location"] = 302, f"{scheme}://{authority}/echo?ip={peer_ip}"
            page = render_page(site.title or hostname, f"Your IP address is {peer_ip}").encode()
        elif kind == "challenge":
            status = 403
            headers = {
                "Server": "cloudflare",
                "cf-mitigated": "challenge",
                "CF-RAY": os.urandom(8).hex() + "-TST",
                "Cache-Control": "private, max-age=0, no-store, no-cache, must-revalidate",
                **site.headers,
            }
            page = render_page(
                CHALLENGE_TITLE,
                f"Checking if the site connection is secure. {hostname} needs to review the "
                "security of your connection before proceeding. Enable JavaScript and cookies "
                "to continue.",
            ).encode()
        elif kind == "geo":
            page = _page_for(site, hostname, _region_body(peer_ip, site))
        chunks: Iterator[bytes] | list[bytes] = [page]
        length = len(page)
        if size is not None:
            chunks, length = _padded(page, size), size
        await self._send(
            writer,
            status,
            headers,
            chunks,
            length,
            head_only,
            content_type=site.content_type,
            rate=rate,
        )

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        headers: dict[str, str],
        chunks: Iterator[bytes] | list[bytes],
        length: int,
        head_only: bool,
        *,
        content_type: str = "text/html; charset=utf-8",
        rate: int | None = None,
    ) -> None:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        fields = {
            "Date": email.utils.formatdate(usegmt=True),
            "Server": SERVER_HEADER,
            "Content-Type": content_type,
        }
        lower = {k.lower() for k in headers}
        fields = {k: v for k, v in fields.items() if k.lower() not in lower}
        fields.update(headers)
        fields["Content-Length"] = str(length)
        fields["Connection"] = "close"
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in fields.items()
        )
        writer.write((head + "\r\n").encode("utf-8"))
        if not head_only:
            if rate is None:
                for chunk in chunks:
                    writer.write(chunk)
                    await self._drain(writer)
                    # drain() does not yield unless paused: without this, a client that went
                    # away is only noticed after the whole (maybe huge) body was encrypted.
                    await asyncio.sleep(0)
            else:
                await self._trickle(writer, b"".join(chunks), rate)
        await self._drain(writer)
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(SHUTDOWN_TIMEOUT):
                await writer.wait_closed()

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self.config.request_timeout):
            await writer.drain()

    async def _trickle(self, writer: asyncio.StreamWriter, body: bytes, rate: int) -> None:
        """Send ``body`` at about ``rate`` bytes per second (ten slices a second)."""
        loop = asyncio.get_running_loop()
        step = max(1, rate // 10)
        start = loop.time()
        for sent in range(0, len(body), step):
            due = start + sent / rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            writer.write(body[sent : sent + step])
            await self._drain(writer)


def _set_rst(sock: socket.socket) -> None:
    """Make the socket's close() send a TCP RST (SO_LINGER on, timeout 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _in_ranges(ip: str, cidrs: list[str]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(c) for c in cidrs)


def _region_body(ip: str, site: SiteConfig) -> str | None:
    """The most specific ``region_content`` entry for ``ip``; None = the site's own body."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    best: tuple[int, str] | None = None
    for cidr, body in site.region_content.items():
        net = ipaddress.ip_network(cidr)
        if addr.version == net.version and addr in net:
            if best is None or net.prefixlen > best[0]:
                best = (net.prefixlen, body)
    return best[1] if best else None


async def _wait_readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Wait until ``sock`` is readable."""
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(sock.fileno(), ready)
    try:
        await fut
    finally:
        loop.remove_reader(sock.fileno())
