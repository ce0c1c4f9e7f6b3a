"""A whole simulated world on loopback, in a background thread: for tests and the demo.

This module owns running a :class:`~probe.lab.world.spec.WorldConfig` on 127.0.0.0/8 from
synchronous code. :class:`LoopbackWorld` starts every server in a thread with its own event
loop, with OS-chosen free ports (every configured port is replaced by 0 unless
``free_ports=False``; see :mod:`probe.lab.world.runtime` for how port 0 is shared), exposes what was
bound and stops everything on exit, also when the ``with`` body raises.

Only loopback addresses are accepted (listen IPs and DNS upstreams), so a loopback world can
never reach or impersonate the real Internet. Several sites share one IP (Host/SNI decide);
sites that need *different* IPs use 127.0.0.2, 127.0.0.3, … (all route to ``lo`` on Linux) and
get the same HTTP/HTTPS ports as 127.0.0.1.

Helpers: :func:`simple_world` (sites + matching DNS records in one call) and
:func:`demo_world` / :func:`demo_urls` (the loopback demo's world).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from .pki import WorldPKI
from .runtime import World
from .spec import (
    DNSServerConfig,
    SiteConfig,
    WebServerConfig,
    WorldConfig,
    format_hostport,
    parse_hostport,
)

DEMO_DOMAIN = "world.test"
DEMO_REFUSED_IP = "127.0.0.9"  # nothing listens there: connections are refused


def _check_loopback(ip: str, where: str) -> None:
    if not ipaddress.ip_address(ip).is_loopback:
        raise ValueError(f"{where}: {ip} is not a loopback address (LoopbackWorld binds lo only)")


def loopback_config(config: WorldConfig, *, free_ports: bool = True) -> WorldConfig:
    """``config`` checked to be loopback-only and, with ``free_ports``, with every port 0."""
    dns = []
    for i, d in enumerate(config.dns):
        listen = []
        for entry in d.listen:
            ip, port = parse_hostport(entry)
            _check_loopback(ip, f"dns[{i}].listen")
            listen.append(format_hostport(ip, 0 if free_ports else port))
        upstream = d.upstream
        if upstream is not None:
            ip, port = parse_hostport(upstream)
            _check_loopback(ip, f"dns[{i}].upstream")
            own = {e for other in config.dns for e in other.listen}
            if free_ports and upstream in own:  # points at a server of this world
                upstream = format_hostport(ip, 0)
        dns.append(dataclasses.replace(d, listen=listen, upstream=upstream))
    web = []
    for i, w in enumerate(config.web):
        for ip in w.listen_ips:
            _check_loopback(ip, f"web[{i}].listen_ips")
        if free_ports:
            w = dataclasses.replace(
                w,
                http_port=None if w.http_port is None else 0,
                https_port=None if w.https_port is None else 0,
            )
        web.append(w)
    return WorldConfig(pki_dir=config.pki_dir, dns=dns, web=web)


class LoopbackWorld:
    """Context manager running a world on loopback in a background thread.

    >>> with LoopbackWorld(config) as world:        # doctest: +SKIP
    ...     world.dns_address, world.https_port, world.ca_pem
    """

    def __init__(
        self, config: WorldConfig, *, free_ports: bool = True, start_timeout: float = 30.0
    ) -> None:
        self.config = loopback_config(config, free_ports=free_ports)
        self.start_timeout = start_timeout
        self.pki = WorldPKI.create(self.config.pki_dir)
        self._world: World | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> LoopbackWorld:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LoopbackWorld:
        """Bind everything; returns once all sockets are bound (raises what start raised)."""
        if self._thread is not None:
            raise RuntimeError("LoopbackWorld already started")
        self._thread = threading.Thread(target=self._run, name="probe-world", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.start_timeout):
            self.stop()
            raise TimeoutError("the loopback world did not start in time")
        if self._error is not None:
            error, self._error = self._error, None
            self.stop()
            raise error
        return self

    def stop(self) -> None:
        """Stop every server and the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        self._thread = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        world = World(self.config, self.pki)
        try:
            loop.run_until_complete(world.start())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._world = world
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(world.stop())
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    # -- what is bound ----------------------------------------------------------------------

    @property
    def world(self) -> World:
        if self._world is None:
            raise RuntimeError("LoopbackWorld is not running")
        return self._world

    @property
    def dns_addresses(self) -> list[tuple[str, int]]:
        """The first bound address of every DNS server, in config order."""
        return [s.bound[0] for s in self.world.dns_servers]

    @property
    def dns_address(self) -> tuple[str, int]:
        """("127.0.0.1", port) of the first DNS server."""
        servers = self.world.dns_servers
        if not servers:
            raise RuntimeError("this world has no DNS server")
        return servers[0].bound[0]

    @property
    def http_port(self) -> int:
        """The plain-HTTP port (shared by every web server and IP)."""
        for server in self.world.web_servers:
            if server.http_port is not None:
                return server.http_port
        raise RuntimeError("this world serves no plain HTTP")

    @property
    def https_port(self) -> int:
        """The HTTPS port (shared by every web server and IP)."""
        for server in self.world.web_servers:
            if server.https_port is not None:
                return server.https_port
        raise RuntimeError("this world serves no HTTPS")

    @property
    def ca_pem(self) -> str:
        """Path of the world CA certificate (trust it to verify the world's sites)."""
        return self.pki.ca_pem

    def url(self, hostname: str, scheme: str = "https", path: str = "/") -> str:
        """``scheme://hostname:port/path`` with this world's real port."""
        port = self.https_port if scheme == "https" else self.http_port
        return f"{scheme}://{hostname}:{port}{path}"

    def addresses(self) -> dict[str, Any]:
        return self.world.addresses()


def simple_world(
    pki_dir: str | Path,
    sites: dict[str, SiteConfig | dict[str, Any]],
    *,
    ip: str = "127.0.0.1",
    records: dict[str, dict[str, Any]] | None = None,
    behaviours: dict[str, str] | None = None,
    default: str = "nxdomain",
    default_site: str | None = None,
) -> WorldConfig:
    """One DNS server and one web server on ``ip``; every site gets an A record → ``ip``.

    ``records`` are added to (and override) the generated ones.
    """
    generated = {name: {"A": [ip]} for name in sites if not name.startswith("*.")}
    dns = DNSServerConfig(
        listen=[format_hostport(ip, 0)],
        records={**generated, **(records or {})},
        behaviours=behaviours or {},
        default=default,
    )
    web = WebServerConfig(
        listen_ips=[ip],
        http_port=0,
        https_port=0,
        sites={
            k: v if isinstance(v, SiteConfig) else SiteConfig.from_dict(v) for k, v in sites.items()
        },
        default_site=default_site,
    )
    return WorldConfig(pki_dir=str(pki_dir), dns=[dns], web=[web])


#: The demo's sites: short name -> (hostname, scheme, what the probe should find).
DEMO_SITES: dict[str, tuple[str, str, str]] = {
    "ok": (f"ok.{DEMO_DOMAIN}", "https", "reachable (valid certificate, HTTP 200)"),
    "refused": (f"refused.{DEMO_DOMAIN}", "https", f"TCP refused ({DEMO_REFUSED_IP})"),
    "timeout": (f"timeout.{DEMO_DOMAIN}", "https", "HTTP request times out (hang)"),
    "expired": (f"expired.{DEMO_DOMAIN}", "https", "certificate expired"),
    "plain": (f"plain.{DEMO_DOMAIN}", "http", "reachable over plain HTTP"),
    "nxdomain": (f"missing.{DEMO_DOMAIN}", "https", "NXDOMAIN"),
}


def demo_world(directory: str | Path) -> WorldConfig:
    """The loopback demo's world; certificates go to ``directory/pki``.

    DNS (127.0.0.1, free port) for ``*.world.test``: ``ok`` (healthy HTTPS), ``refused`` (an
    address where nothing listens), ``timeout`` (``hang``), ``expired`` (expired certificate),
    ``plain`` (an HTTP site); ``missing.world.test`` is NXDOMAIN. See :data:`DEMO_SITES` and
    :func:`demo_urls`.
    """
    host = {key: value[0] for key, value in DEMO_SITES.items()}
    records: dict[str, dict[str, Any]] = {
        host["ok"]: {"A": ["127.0.0.1"]},
        host["refused"]: {"A": [DEMO_REFUSED_IP]},
        host["timeout"]: {"A": ["127.0.0.1"]},
        host["expired"]: {"A": ["127.0.0.1"]},
        host["plain"]: {"A": ["127.0.0.1"]},
    }
    sites = {
        host["ok"]: SiteConfig(title="Probe demo: a healthy site"),
        host["timeout"]: SiteConfig(behaviour="hang"),
        host["expired"]: SiteConfig(title="Probe demo: expired certificate", cert="expired"),
        host["plain"]: SiteConfig(title="Probe demo: a plain HTTP site"),
    }
    return WorldConfig(
        pki_dir=str(Path(directory) / "pki"),
        dns=[DNSServerConfig(listen=["127.0.0.1:0"], records=records)],
        web=[WebServerConfig(listen_ips=["127.0.0.1"], http_port=0, https_port=0, sites=sites)],
    )


def demo_urls(world: LoopbackWorld) -> dict[str, str]:
    """The demo's URLs with the running world's real ports, by short name (see DEMO_SITES)."""
    return {key: world.url(host, scheme) for key, (host, scheme, _) in DEMO_SITES.items()}
