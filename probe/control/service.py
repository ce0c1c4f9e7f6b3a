"""Run the control helper as a long-lived service: policy from options, server, measurer."""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys
from dataclasses import dataclass
from functools import partial

from probe.applists import declared_ports
from probe.control.measure import measure_request
from probe.control.policy import (
    MAX_CONCURRENT,
    MAX_PER_CLIENT,
    OwnAddresses,
    Policy,
    parse_networks,
)
from probe.control.server import ControlServer, Limits, TLSFiles
from probe.errors import ProbeError, UsageError
from probe.measure.settings import MeasureSettings, Resolver
from probe.measure.torlist import FORMATS as TOR_FORMATS


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """``probe helper serve``'s settings, as given on the command line. ``app_lists``: the
    directory of lists (``tor://LIST`` requests; their ports are allowed) replacing the
    packaged ``targets/apps`` ones of the same name; None = the packaged lists."""

    host: str
    port: int
    allow: tuple[str, ...] = ()
    allow_ports: tuple[int, ...] = ()
    token: str | None = None
    resolvers: tuple[Resolver, ...] = ()
    ca_bundle: str | None = None
    max_concurrent: int = MAX_CONCURRENT
    max_per_client_measurements: int = MAX_PER_CLIENT
    step_timeout: float = 10.0
    deny: tuple[str, ...] = ()
    allow_self: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    max_connections: int = Limits().max_connections
    max_per_client: int = Limits().per_client
    app_lists: str | None = None


def make_policy(allow: list[str], allow_ports: list[int], token: str | None,
                max_concurrent: int, timeout: float, deny: list[str] | None = None,
                allow_self: bool = False, app_lists: str | None = None,
                max_per_client: int = MAX_PER_CLIENT) -> Policy:
    """A Policy from command-line values; bad CIDRs raise UsageError. Allowed ports: 80, 443,
    the ports the packaged lists and those of ``app_lists`` declare (the apps' 5222, Tor's
    OR and Dir ports, …; issue 14) and ``allow_ports``."""
    try:
        nets = parse_networks(allow, "--allow")
        denied = parse_networks(deny or [], "--deny")
    except ValueError as e:
        raise UsageError(str(e)) from None
    own = None if allow_self else OwnAddresses()
    if own is not None:
        own.get()  # read at start, then again at most every OWN_ADDRESSES_TTL seconds
    lists = declared_ports(None, TOR_FORMATS) | (
        declared_ports(app_lists, TOR_FORMATS) if app_lists else frozenset())
    return Policy(allow=nets, ports=frozenset({80, 443, *lists, *allow_ports}),
                  token=token,
                  max_concurrent=max_concurrent, max_per_client=max_per_client,
                  request_timeout=timeout * 3 + 5, deny=denied,
                  own=own)


def make_server(opts: ServiceOptions) -> ControlServer:
    """The server for ``opts`` (not yet listening); bad values raise UsageError/ProbeError."""
    policy = make_policy(list(opts.allow), list(opts.allow_ports), opts.token,
                         opts.max_concurrent, opts.step_timeout, list(opts.deny),
                         opts.allow_self, opts.app_lists, opts.max_per_client_measurements)
    try:
        proxies = parse_networks(list(opts.trusted_proxies), "--trusted-proxy")
    except ValueError as e:
        raise UsageError(str(e)) from None
    if (opts.tls_cert is None) != (opts.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    tls = None
    if opts.tls_cert and opts.tls_key:
        try:
            tls = TLSFiles(opts.tls_cert, opts.tls_key)
        except (OSError, ssl.SSLError) as e:
            raise ProbeError(f"--tls-cert/--tls-key: cannot load: {_one_line(e)}") from None
    # dns_linger=0: the helper reports only the first answer to each query (summarise), so
    # waiting for a second, injected-behind answer would only delay every probe's target.
    settings = MeasureSettings.with_timeout(
        opts.step_timeout, use_system_resolver=not opts.resolvers, resolvers=opts.resolvers,
        ca_bundle=opts.ca_bundle, dns_linger=0.0, app_lists=opts.app_lists,
    )
    limits = Limits(max_connections=opts.max_connections, per_client=opts.max_per_client)
    return ControlServer(policy, partial(measure_request, settings=settings), limits=limits,
                         tls=tls, trusted_proxies=proxies)


async def serve(opts: ServiceOptions) -> None:
    """Serve until SIGTERM/SIGINT; prints one ``listening`` line when ready. SIGHUP re-reads
    the TLS certificate and key (one line says whether it worked)."""
    server = make_server(opts)
    try:
        bound = await server.start(opts.host, opts.port)
    except OSError as e:  # address in use, not ours: a tool error, one line
        raise ProbeError(f"cannot listen on {opts.host}:{opts.port}: {e.strerror or e}") from e
    scheme = "https" if server.tls else "http"
    print(f"probe helper listening on {bound[0]}:{bound[1]} ({scheme})", flush=True,
          file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, partial(_reload, server))
    try:
        await stop.wait()
    finally:
        await server.close()


def _reload(server: ControlServer) -> None:
    if server.tls is None:
        print("probe helper: SIGHUP ignored (no --tls-cert)", file=sys.stderr, flush=True)
        return
    try:
        server.tls.reload()
    except (OSError, ssl.SSLError) as e:
        print(f"probe helper: TLS reload failed, keeping the old certificate: {_one_line(e)}",
              file=sys.stderr, flush=True)
        return
    print("probe helper: TLS certificate reloaded", file=sys.stderr, flush=True)


def _one_line(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:200]
