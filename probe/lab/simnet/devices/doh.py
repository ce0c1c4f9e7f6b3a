"""The public resolver's DNS-over-HTTPS endpoint (RFC 8484): ``https://NAME/dns-query``.

Accepts ``GET /dns-query?dns=<base64url>`` and ``POST /dns-query`` with an
``application/dns-message`` body, forwards the message to the public resolver over UDP and
returns the answer. Its certificate comes from the world CA, for the resolver's name and
address. Config::

    {"listen": "ip:443", "names": ["dns.publicdns-sim.net", "149.112.0.10"],
     "upstream": "ip:53", "pki_dir": DIR}
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import sys
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dns.asyncquery
import dns.message

from probe.lab.simnet.devices.common import run_tls_resolver_device

PROG = "probe.lab.simnet.devices.doh"
MAX_BODY = 65535


async def _answer(wire: bytes, upstream: tuple[str, int]) -> bytes:
    query = dns.message.from_wire(wire)
    response = await dns.asyncquery.udp(query, upstream[0], port=upstream[1], timeout=3.0)
    return response.to_wire()


async def _respond(writer: asyncio.StreamWriter, status: int, body: bytes,
                   ctype: str = "application/dns-message") -> None:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
              502: "Bad Gateway"}.get(status, "Error")
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: max-age=0\r\n"
            "Connection: close\r\n\r\n")
    writer.write(head.encode() + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def handler(upstream: tuple[str, int]) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines[1:] if line)}
                parts = urlsplit(target)
                if parts.path != "/dns-query":
                    await _respond(writer, 404, b"not found", "text/plain")
                    return
                if method == "GET":
                    encoded = parse_qs(parts.query).get("dns", [""])[0]
                    wire = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                elif method == "POST":
                    length = int(headers.get("content-length", "0"))
                    if not 0 < length <= MAX_BODY:
                        await _respond(writer, 400, b"bad length", "text/plain")
                        return
                    wire = await reader.readexactly(length)
                else:
                    await _respond(writer, 405, b"GET or POST", "text/plain")
                    return
                try:
                    answer = await _answer(wire, upstream)
                except Exception as exc:  # noqa: BLE001 - the client gets a 502
                    await _respond(writer, 502, str(exc).encode()[:200], "text/plain")
                    return
                await _respond(writer, 200, answer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ValueError, ConnectionError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    return handle


def main() -> int:
    return run_tls_resolver_device(PROG, handler)


if __name__ == "__main__":
    sys.exit(main())
