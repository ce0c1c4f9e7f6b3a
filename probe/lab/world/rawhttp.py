"""Hostile HTTP responses as wire scripts: the bytes a rule-breaking server sends, and when.

This module owns *what* the hostile web behaviours put on the wire (see
:data:`probe.lab.world.spec.WEB_BEHAVIOURS`, the entries after ``tls_hang``); the web server
(:mod:`probe.lab.world.web_server`) only plays a script. It is sans-IO: :func:`script` returns an
iterator
of :class:`Step` (pause, then bytes), possibly endless; the player sleeps, writes, waits for the
socket to drain and yields to the event loop after every step, so an endless script costs the
world nothing once the client stops reading, and ends when the client goes.

Rules:

* Generators never hold a whole body in memory: bombs are compressed on the fly, huge header
  lines and endless bodies are produced in :data:`CHUNK`-sized pieces.
* Everything is HTTP/1.1 with ``Connection: close`` unless the behaviour is about breaking
  exactly that.
* A script never depends on the client's speed except through the player's backpressure.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .spec import Behaviour

CHUNK = 64 * 1024
#: Hostile kinds played by :func:`script` (the other web behaviours are answered by web.py).
KINDS = frozenset(
    {
        "endless_body",
        "endless_headers",
        "huge_header",
        "many_headers",
        "slowloris",
        "drip",
        "gzip_bomb",
        "deflate_bomb",
        "redirect_chain",
        "huge_location",
        "bad_status",
        "no_status",
        "mojibake",
        "charset",
        "bad_chunked",
        "endless_chunks",
        "length_long",
        "length_short",
        "length_conflict",
        "continue_forever",
        "close_after_headers",
        "cookie_bomb",
        "gzip_junk",
    }
)
MOJIBAKE_TITLE = b"\xff\xfe\xc3\x28 \xe2\x82 \xed\xa0\x80 \xc0\xaf Mojibake \x80\x81\x9f"
INVALID_TAIL = b"\xff\xfe\xfd\xc3\x28\xed\xa0\x80\x00"  # invalid in UTF-8, odd for UTF-16


@dataclass(frozen=True, slots=True)
class Step:
    """Send ``data`` after waiting ``pause`` seconds (``data`` may be empty: just wait)."""

    data: bytes
    pause: float = 0.0


@dataclass(frozen=True, slots=True)
class Exchange:
    """What a script may use from the request: scheme, Host header value and target."""

    scheme: str
    authority: str
    target: str
    title: str


def _fields(headers: Iterable[tuple[str, str]], *, end: bool = True) -> bytes:
    """Header lines, then (``end``) the blank line that ends the head."""
    text = "".join(f"{k}: {v}\r\n" for k, v in headers) + ("\r\n" if end else "")
    return text.encode("latin-1")


def _head(status: str, headers: Iterable[tuple[str, str]]) -> bytes:
    return f"HTTP/1.1 {status}\r\n".encode("latin-1") + _fields(headers)


def _page(title: str, text: str = "A hostile site of the probe's simulated world.") -> bytes:
    return (
        f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n"
        f"<body><h1>{title}</h1><p>{text}</p></body></html>\n"
    ).encode()


def _zeros(total: int, compressor: zlib._Compress) -> Iterator[Step]:
    """``total`` zero bytes through ``compressor``, in 1 MiB slices (lazily)."""
    block = bytes(1 << 20)
    left = total
    while left > 0:
        n = min(left, len(block))
        out = compressor.compress(block[:n])
        left -= n
        if out:
            yield Step(out)
    yield Step(compressor.flush())


def _bytewise(data: bytes, pause: float) -> Iterator[Step]:
    for i in range(len(data)):
        yield Step(data[i : i + 1], pause if i else 0.0)


def script(behaviour: Behaviour, exchange: Exchange) -> Iterator[Step]:
    """The wire script of one hostile behaviour (``behaviour.kind`` in :data:`KINDS`)."""
    kind, arg = behaviour.kind, behaviour.arg
    title = exchange.title
    page = _page(title)
    close = [("Connection", "close")]
    html = [("Content-Type", "text/html; charset=utf-8")]
    if kind == "endless_body":
        yield Step(_head("200 OK", html + close))
        yield Step(page)
        filler = b"<p>" + b"endless " * (CHUNK // 8 - 1) + b"</p>"
        while True:
            yield Step(filler)
    elif kind == "endless_headers":
        yield Step(b"HTTP/1.1 200 OK\r\n" + _fields(html, end=False))  # no blank line, ever
        n = 0
        while True:
            yield Step(b"".join(b"X-Endless-%d: %d\r\n" % (n + i, n + i) for i in range(1024)))
            n += 1024
    elif kind == "huge_header":
        assert arg is not None
        yield Step(b"HTTP/1.1 200 OK\r\nX-Huge: ")
        left = int(arg)
        while left > 0:
            n = min(left, CHUNK)
            yield Step(b"h" * n)
            left -= n
        yield Step(b"\r\n" + _fields(html + close + _length(page)) + page)
    elif kind == "many_headers":
        assert arg is not None
        yield Step(b"HTTP/1.1 200 OK\r\n")
        count = int(arg)
        for start in range(0, count, 4096):
            end = min(count, start + 4096)
            yield Step(b"".join(b"x%d: y\r\n" % i for i in range(start, end)))
        yield Step(_fields(html + close + _length(page)) + page)
    elif kind == "slowloris":
        assert arg is not None
        yield from _bytewise(_head("200 OK", html + close + _length(page)) + page, float(arg))
    elif kind == "drip":
        assert arg is not None
        yield Step(_head("200 OK", html + close) + page[:64])
        while True:
            yield Step(b".", float(arg))
    elif kind in ("gzip_bomb", "deflate_bomb"):
        assert arg is not None
        is_gzip = kind == "gzip_bomb"
        encoding = "gzip" if is_gzip else "deflate"
        wbits = 16 + zlib.MAX_WBITS if is_gzip else zlib.MAX_WBITS
        compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
        yield Step(_head("200 OK", [("Content-Encoding", encoding)] + html + close))
        yield from _zeros(int(arg), compressor)
    elif kind == "gzip_junk":
        yield Step(_head("200 OK", [("Content-Encoding", "gzip")] + html + close))
        yield Step(gzip.compress(page))
        junk = b"\x00junk after the gzip member\xff" * (CHUNK // 32)
        while True:
            yield Step(junk)
    elif kind == "redirect_chain":
        assert arg is not None
        match = re.search(r"[?&]hop=(\d+)", exchange.target)
        hop = int(match.group(1)) if match else 0
        if hop >= int(arg):
            yield Step(_head("200 OK", html + close + _length(page)) + page)
        else:
            path = exchange.target.split("?", 1)[0] or "/"
            location = f"{exchange.scheme}://{exchange.authority}{path}?hop={hop + 1}"
            body = _page("Redirecting", f"Redirect number {hop + 1}.")
            headers = [("Location", location)] + html + close + _length(body)
            yield Step(_head("302 Found", headers) + body)
    elif kind == "huge_location":
        assert arg is not None
        base = f"{exchange.scheme}://{exchange.authority}/?q="
        location = base + "L" * max(0, int(arg) - len(base))
        yield Step(_head("302 Found", [("Location", location)] + close + [("Content-Length", "0")]))
    elif kind == "bad_status":
        yield Step(b"HTTP/1.1 2OO Okay\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
    elif kind == "no_status":
        yield Step(page)
    elif kind == "mojibake":
        body = (
            b"<!DOCTYPE html><html><head><meta charset='x-\xff-bogus'>"
            b"<title>" + MOJIBAKE_TITLE + b"</title></head><body>\x00\x01\xfe" + INVALID_TAIL
        )
        body += bytes(range(256)) + b"</body></html>"
        head = (
            b"HTTP/1.1 200 \xc3\x28\xff\xfe Ok\xa0y\r\n"
            b"Content-Type: text/html; charset=\xff\xfeno-such\r\n"
            b"X-Latin: caf\xe9 \xff\xfe\x80\r\n"
            b"Set-Cookie: \xff\xfe=\xc3\x28; Path=/\xff; Domain=\xe9.test\r\n"
            b"Location-Ish: h\xfft\xfftp://\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
        )
        yield Step(head + body)
    elif kind == "charset":
        assert arg is not None
        text = (
            f'<!DOCTYPE html><html><head><meta charset="{arg}"><title>Кириллица ελληνικά '
            f"日本語 {title}</title></head><body><p>Texte accentué: àéîõü ß ©</p></body></html>"
        )
        try:
            body = text.encode(arg, errors="replace")
        except (LookupError, TypeError, ValueError, UnicodeError):
            body = text.encode("utf-8")
        body += INVALID_TAIL
        headers = [("Content-Type", f"text/html; charset={arg}")] + close + _length(body)
        yield Step(_head("200 OK", headers) + body)
    elif kind == "bad_chunked":
        headers = [("Transfer-Encoding", "chunked")] + html + close
        yield Step(_head("200 OK", headers) + b"5\r\nhello\r\nzz-not-hex\r\nxxxx\r\n0\r\n\r\n")
    elif kind == "endless_chunks":
        yield Step(_head("200 OK", [("Transfer-Encoding", "chunked")] + html + close))
        chunk = b"%x\r\n%s\r\n" % (len(page), page)
        while True:
            yield Step(chunk * 64)
    elif kind == "length_long":
        yield Step(_head("200 OK", html + close + [("Content-Length", "10000000")]) + page)
    elif kind == "length_short":
        yield Step(_head("200 OK", html + close + [("Content-Length", "10")]) + page * 100)
    elif kind == "length_conflict":
        headers = html + close + [("Content-Length", str(len(page))), ("Content-Length", "7")]
        yield Step(_head("200 OK", headers) + page)
    elif kind == "continue_forever":
        interim = b"HTTP/1.1 100 Continue\r\n\r\n" * 256
        while True:
            yield Step(interim)
    elif kind == "cookie_bomb":
        assert arg is not None
        match = re.search(r"[?&]hop=(\d+)", exchange.target)
        hop = int(match.group(1)) if match else 0
        path = exchange.target.split("?", 1)[0] or "/"
        location = f"{exchange.scheme}://{exchange.authority}{path}?hop={hop + 1}"
        cookies = [("Set-Cookie", f"h{hop}c{i}={'v' * 16}; Path=/") for i in range(int(arg))]
        yield Step(_head("302 Found", [("Location", location), *cookies, ("Content-Length", "0")]))
    elif kind == "close_after_headers":
        yield Step(_head("200 OK", html + close + [("Content-Length", "100000")]))
    else:
        raise ValueError(f"not a hostile HTTP behaviour: {behaviour}")


def _length(body: bytes) -> list[tuple[str, str]]:
    return [("Content-Length", str(len(body)))]
