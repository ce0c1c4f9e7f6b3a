"""A captive portal's web server: every plain-HTTP request is sent to the portal's login page.

Used by the ``captive_portal`` technique, whose DNAT brings the client's TCP port 80 here
whatever address it dialled. A request for any other host gets ``302 Found`` to
``http://NAME/login`` with the original URL and the client's address in the query, as hotel and
mobile-operator portals do (so the probe must never keep a portal's query); a request for the
portal's own name gets the login page (HTTP 200, a ``<title>``). Config::

    {"listen": "ip:port", "name": "portal.example", "title": "Log in to the network"}
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import sys
from typing import Any
from urllib.parse import quote

from probe.lab.simnet.devices.common import ready, run_async_device, until_signalled

PROG = "probe.lab.simnet.devices.portal"
HEAD_CAP = 16 * 1024  # bytes of request head read before answering anyway
READ_TIMEOUT = 5.0


def answer(config: dict[str, Any], head: bytes, peer: str) -> bytes:
    """The portal's answer to one request head (a redirect, or its login page)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    target = parts[1] if len(parts) > 1 else "/"
    host = next((v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
                 if k.strip().lower() == "host"), "")
    name = config["name"]
    if host.split(":")[0].lower() == name:
        title = html.escape(config.get("title", "Log in to the network"))
        body = (f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
                "<form method='post'><input name='code'><button>Continue</button></form>"
                "</body></html>").encode()
        status = "200 OK"
        extra = "Content-Type: text/html; charset=utf-8\r\n"
    else:
        original = quote(f"http://{host}{target}", safe="")
        body = b""
        status = "302 Found"
        extra = f"Location: http://{name}/login?orig={original}&client={peer}\r\n"
    return (f"HTTP/1.1 {status}\r\n{extra}Content-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n").encode() + body


def _handler(config: dict[str, Any]) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str((writer.get_extra_info("peername") or ("?",))[0])
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = b""
                while b"\r\n\r\n" not in head and len(head) < HEAD_CAP:
                    chunk = await reader.read(4096)
                    if not chunk:
                        break
                    head += chunk
            writer.write(answer(config, head, peer))
            await writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return handle


async def main_async(config: dict[str, Any], ready_file: Any) -> None:
    host, port = config["listen"].rsplit(":", 1)
    server = await asyncio.start_server(_handler(config), host, int(port), reuse_address=True)
    ready(ready_file, {"listen": config["listen"]})
    await until_signalled()
    server.close()


def main() -> int:
    return run_async_device(PROG, main_async)


if __name__ == "__main__":
    sys.exit(main())
