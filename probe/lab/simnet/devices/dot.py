"""The public resolver's DNS-over-TLS endpoint (RFC 7858): ``NAME:853``.

Reads two-byte length-prefixed DNS messages (RFC 7858 §3.3, RFC 1035 §4.2.2) on each TLS
connection, forwards each to the public resolver over UDP and writes the answer back the same
way; several queries may share a connection. Its certificate comes from the world CA, for the
resolver's name and address. Config::

    {"listen": "ip:853", "names": ["dns.publicdns-sim.net", "149.112.0.10"],
     "upstream": "ip:53", "pki_dir": DIR}
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import sys
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message

from probe.lab.simnet.devices.common import run_tls_resolver_device

PROG = "probe.lab.simnet.devices.dot"
MAX_QUERIES = 64  # per connection


def handler(upstream: tuple[str, int]) -> Any:
    """The connection handler: answer length-prefixed queries until the client closes."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(MAX_QUERIES):
                async with asyncio.timeout(10):
                    try:
                        (length,) = struct.unpack("!H", await reader.readexactly(2))
                    except asyncio.IncompleteReadError:
                        return  # the client is done
                    query = dns.message.from_wire(await reader.readexactly(length))
                    answer = await dns.asyncquery.udp(query, upstream[0], port=upstream[1],
                                                      timeout=3.0)
                wire = answer.to_wire()
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ValueError, ConnectionError,
                ssl.SSLError, dns.exception.DNSException):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    return handle


def main() -> int:
    return run_tls_resolver_device(PROG, handler)


if __name__ == "__main__":
    sys.exit(main())
