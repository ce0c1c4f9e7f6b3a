"""A hostile control helper on loopback, for the probe's security tests (issue 13).

A real TCP server (a thread per connection) that reads one HTTP request and answers as a
broken or malicious helper would, by the first path segment of the request:
``/<behaviour>/v1/measure``. It counts the bytes it managed to send per behaviour, so a test
can tell that the probe stopped reading at its cap (the send fails once the probe closes).
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator

MIB = 1 << 20

GOOD = json.dumps({"version": 1, "url": "http://x/", "failure": None, "dns": None,
                   "endpoints": {}, "http": None, "elapsed": 0.1}).encode()


def _fixed(body: bytes, extra: str = "") -> Callable[[], Iterator[bytes]]:
    def answer() -> Iterator[bytes]:
        yield (f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{extra}"
               f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body
    return answer


def _chunked(chunks: Iterator[bytes], pause: float = 0.0) -> Iterator[bytes]:
    yield (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
           b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n")
    for chunk in chunks:
        if pause:
            time.sleep(pause)
        yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
    yield b"0\r\n\r\n"


def _stream(total: int) -> Callable[[], Iterator[bytes]]:
    """``total`` bytes of one JSON string value, in 64 KiB chunks."""
    def chunks() -> Iterator[bytes]:
        yield b'{"version": 1, "url": "'
        block = b"a" * 65536
        for _ in range(total // len(block)):
            yield block
        yield b'"}'
    return lambda: _chunked(chunks())


def _bomb() -> bytes:
    """64 MiB of JSON whitespace, gzipped to ~64 KiB (compressed piecewise: small in memory)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    block = b" " * 65536
    return b"".join([packer.compress(b"{"), *(packer.compress(block) for _ in range(1024)),
                     packer.compress(b"}"), packer.flush()])


def _drip() -> Iterator[bytes]:
    def chunks() -> Iterator[bytes]:
        yield b'{"version": 1, "url": "'
        while True:
            yield b"a"
    return _chunked(chunks(), pause=0.1)


def _declared_huge() -> Iterator[bytes]:
    yield (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
           b"content-length: 2147483648\r\nconnection: close\r\n\r\n{")
    while True:
        yield b" " * 65536


#: behaviour -> a function yielding the bytes of the whole response.
BEHAVIOURS: dict[str, Callable[[], Iterator[bytes]]] = {
    "good": _fixed(GOOD),
    "deep_list": _fixed(b"[" * 40_000 + b"]" * 40_000),
    "deep_in_field": _fixed(b'{"version": 1, "dns": ' + b'{"a": ' * 5000 + b"1"
                            + b"}" * 5001),
    "deep_under_parser_limit": _fixed(b'{"version": 1, "http": ' + b"[" * 500 + b"]" * 500
                                      + b"}"),
    "many_items": _fixed(b'{"version": 1, "http": {"headers": [' + b"[]," * 200_000
                         + b"[]]}}"),
    "not_json": _fixed(b"<html><title>It works</title></html>"),
    "truncated": _fixed(b'{"version": 1, "dns": {"addrs": ['),
    "nan": _fixed(b'{"version": 1, "elapsed": NaN}'),
    "list_top": _fixed(b"[1, 2, 3]"),
    "version_text": _fixed(b'{"version": "1"}'),
    "version_true": _fixed(b'{"version": true}'),
    "dns_text": _fixed(b'{"version": 1, "dns": "8.8.8.8"}'),
    "endpoints_list": _fixed(b'{"version": 1, "endpoints": [1, 2]}'),
    "http_number": _fixed(b'{"version": 1, "http": 200}'),
    "client_address_list": _fixed(b'{"version": 1, "client_address": ["192.0.2.1"]}'),
    "failure_object": _fixed(b'{"version": 1, "failure": {"x": 1}}'),
    "gzip_bomb": lambda: _fixed(_bomb(), "content-encoding: gzip\r\n")(),
    "stream_200mb": _stream(200 * MIB),
    "declared_2gb": _declared_huge,
    "slow_drip": _drip,
    "status_500": lambda: iter([b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n"]),
}


class HostileHelper:
    """``with HostileHelper() as h: h.url("deep_list")`` → a helper base URL."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        helper = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                conn.settimeout(30)
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
                header, _, body = head.partition(b"\r\n\r\n")
                length = 0
                for field in header.split(b"\r\n")[1:]:
                    name, _, value = field.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(body) < length:  # read the request whole: no reset on close
                    data = conn.recv(65536)
                    if not data:
                        return
                    body += data
                line = head.split(b"\r\n", 1)[0].decode()
                behaviour = line.split(" ")[1].strip("/").split("/")[0]
                try:
                    for piece in BEHAVIOURS[behaviour]():
                        conn.sendall(piece)
                        helper.sent[behaviour] += len(piece)
                except OSError:
                    pass  # the probe hung up: what we count is what it could have read

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, behaviour: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{behaviour}"

    def __enter__(self) -> HostileHelper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
