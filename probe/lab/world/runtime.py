"""One event loop running a whole :class:`~probe.lab.world.spec.WorldConfig`.

This module owns the lifecycle of a world: create/load the PKI, bind every DNS and web server,
report what was bound, stop everything. It is shared by ``python -m probe.lab.world`` (one process
per network namespace) and :class:`probe.lab.world.loopback.LoopbackWorld` (a background thread).

Port 0 (OS-chosen) rules, so that a loopback world stays addressable:

* web: every server whose ``http_port`` is 0 shares *one* OS-chosen port across all its IPs and
  all such servers (likewise ``https_port``), so sites on 127.0.0.1 and 127.0.0.2 have the same
  port;
* DNS: each ``listen`` entry gets its own port (the same for UDP and TCP); an ``upstream`` that
  names another server's *configured* listen entry (e.g. ``"127.0.0.2:0"``) is rewritten to
  that server's bound address, and that server is started first.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

from .dns_server import DNSServer
from .pki import WorldPKI
from .spec import WorldConfig, format_hostport, parse_hostport
from .web_server import WebServer

log = logging.getLogger(__name__)

START_ATTEMPTS = 5  # a shared OS-chosen port can be taken by someone else between two binds


class World:
    """Every server of one :class:`WorldConfig`, in the running event loop."""

    def __init__(self, config: WorldConfig, pki: WorldPKI | None = None) -> None:
        self.config = config
        self.pki = pki or WorldPKI.create(config.pki_dir)
        self.dns_servers: list[DNSServer] = []
        self.web_servers: list[WebServer] = []

    async def start(self) -> None:
        """Bind every socket (DNS first, then web); on failure nothing is left running."""
        for attempt in range(START_ATTEMPTS):
            try:
                await self._start_dns()
                await self._start_web()
                return
            except OSError as exc:
                await self.stop()
                if exc.errno != errno.EADDRINUSE or attempt == START_ATTEMPTS - 1:
                    raise
                log.debug("port clash, retrying: %r", exc)
            except BaseException:
                await self.stop()
                raise

    async def _start_dns(self) -> None:
        configured: dict[str, str] = {}  # configured listen entry -> bound "ip:port"
        own = {entry for d in self.config.dns for entry in d.listen}
        pending = list(self.config.dns)
        while pending:
            ready = [d for d in pending if d.upstream not in own or d.upstream in configured]
            if not ready:  # a forwarding cycle: start the rest anyway
                ready = pending[:1]
            for cfg in ready:
                pending.remove(cfg)
                upstream = None
                if cfg.upstream is not None and cfg.upstream in configured:
                    upstream = parse_hostport(configured[cfg.upstream])
                server = DNSServer(cfg, upstream=upstream)
                self.dns_servers.append(server)
                bound = await server.start()
                for entry, (ip, port) in zip(cfg.listen, bound, strict=True):
                    configured.setdefault(entry, format_hostport(ip, port))
        # keep dns_servers in config order whatever the start order was
        index = {id(cfg): i for i, cfg in enumerate(self.config.dns)}
        self.dns_servers.sort(key=lambda s: index[id(s.config)])

    async def _start_web(self) -> None:
        shared: dict[bool, int] = {}  # tls -> the port chosen for the first port-0 listener
        for cfg in self.config.web:
            server = WebServer(cfg, self.pki)
            self.web_servers.append(server)
            http = shared.get(False) if cfg.http_port == 0 else None
            https = shared.get(True) if cfg.https_port == 0 else None
            await server.start(http_port=http, https_port=https)
            if cfg.http_port == 0 and server.http_port is not None:
                shared.setdefault(False, server.http_port)
            if cfg.https_port == 0 and server.https_port is not None:
                shared.setdefault(True, server.https_port)

    async def stop(self) -> None:
        """Close every server (idempotent)."""
        for web in self.web_servers:
            await web.stop()
        for dns_server in self.dns_servers:
            await dns_server.stop()
        self.web_servers.clear()
        self.dns_servers.clear()

    def addresses(self) -> dict[str, Any]:
        """What is bound, JSON-friendly: written to the ready file."""
        return {
            "pid": os.getpid(),
            "ca_pem": self.pki.ca_pem,
            "rogue_ca_pem": self.pki.rogue_ca_pem,
            "dns": [[format_hostport(*a) for a in s.bound] for s in self.dns_servers],
            "web": [
                {
                    "http": [format_hostport(*a) for a in s.bound_http],
                    "https": [format_hostport(*a) for a in s.bound_https],
                }
                for s in self.web_servers
            ],
        }


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` so that a reader never sees a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
