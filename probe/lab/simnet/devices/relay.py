"""A transparent TCP relay: each listening address forwards to one fixed upstream address.

Used for the ISP that answers DNS with the address of its own proxy which then serves the real
site (OONI's "DNS spoofed to a transparent proxy" case). Config::

    {"routes": [{"listen": "ip:port", "upstream": "ip:port"}, ...]}
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

from probe.lab.simnet.devices.common import ready, run_async_device, until_signalled

PROG = "probe.lab.simnet.devices.relay"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _handler(upstream: str) -> Any:
    host, port = upstream.rsplit(":", 1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port)), 10
            )
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


async def main_async(config: dict[str, Any], ready_file: Any) -> None:
    servers = []
    for route in config["routes"]:
        host, port = route["listen"].rsplit(":", 1)
        servers.append(await asyncio.start_server(_handler(route["upstream"]), host, int(port),
                                                  reuse_address=True))
    ready(ready_file, {"routes": config["routes"]})
    await until_signalled()
    for s in servers:
        s.close()


def main() -> int:
    return run_async_device(PROG, main_async)


if __name__ == "__main__":
    sys.exit(main())
