"""Small loopback servers for the helper's security tests: a fixed HTTP answer per port, and
the helper itself in a background thread (its own event loop), with raw-socket helpers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from probe.control.policy import Policy
from probe.control.server import ControlServer, Limits


async def fixed_http(host: str, response: bytes) -> asyncio.Server:
    """A server on ``host`` (any port) that answers every connection with ``response``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(response)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, 0)


def http_response(status: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (f"HTTP/1.1 {status}\r\n{head}content-length: {len(body)}\r\n"
            f"connection: close\r\n\r\n").encode() + body


async def stub_measurer(req: Any, policy: Policy) -> dict[str, Any]:
    return {"version": 1, "url": req.url, "failure": None}


@contextlib.contextmanager
def helper_in_thread(policy: Policy | None = None, measurer: Any = stub_measurer,
                     **server_kw: Any) -> Iterator[tuple[ControlServer, int]]:
    """Run a ControlServer on 127.0.0.1 in a thread; yields (server, port)."""
    loop = asyncio.new_event_loop()
    server = ControlServer(policy or Policy(own=None), measurer,
                           limits=server_kw.pop("limits", Limits()), **server_kw)
    ready = threading.Event()
    port: list[int] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        port.append(loop.run_until_complete(server.start("127.0.0.1", 0))[1])
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.close())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield server, port[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def exchange(port: int, data: bytes, source: str = "127.0.0.1", timeout: float = 5.0,
             ) -> tuple[int | None, bytes]:
    """Send raw bytes, read until the server closes; (status, body) or (None, b"") when the
    server sent nothing."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0)) as s:
        with contextlib.suppress(OSError):
            s.sendall(data)
        return read_answer(s)


def read_answer(s: socket.socket) -> tuple[int | None, bytes]:
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := s.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.startswith(b"HTTP/1.1 "):
        return None, b""
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head[9:12]), body


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: h\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n{extra}\r\n").encode() + body


HEALTH = b"GET /v1/health HTTP/1.1\r\nhost: h\r\n\r\n"
