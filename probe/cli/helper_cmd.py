"""``probe helper serve``: the control helper (runs outside the censored network)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from probe.errors import UsageError
from probe.run.session import parse_resolver

app = typer.Typer(help="The control helper (runs outside the censored network).",
                  no_args_is_help=True)


@app.command("serve")
def serve(
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to listen on.")] = (
        "127.0.0.1:8780"
    ),
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Also measure this private range (CIDR; repeatable)."),
    ] = None,
    allow_port: Annotated[
        list[int] | None,
        typer.Option("--allow-port",
                     help="Also measure this port, besides 80 and 443 (repeatable)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="PROBE_HELPER_TOKEN",
                     help="Shared token probes must send (their --control-token)."),
    ] = None,
    resolver: Annotated[
        list[str] | None, typer.Option("--resolver", help="Resolver IP[:PORT] (repeatable).")
    ] = None,
    ca_bundle: Annotated[
        Path | None, typer.Option("--ca-bundle", help="Extra trust anchors (PEM).")
    ] = None,
    max_concurrent: Annotated[
        int | None, typer.Option("--max-concurrent", min=1,
                                 help="Measure requests served at once (default 32).")
    ] = None,
    max_concurrent_per_client: Annotated[
        int | None, typer.Option("--max-concurrent-per-client", min=1,
                                 help="Measure requests served at once for one client address "
                                 "(an IPv6 /64; default 8, what one probe keeps open); "
                                 "beyond it 429.")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Deadline of each network step (s).")
    ] = 10.0,
    deny: Annotated[
        list[str] | None,
        typer.Option("--deny", help="Never measure this range (CIDR; repeatable), e.g. the "
                     "host's public address behind 1:1 NAT."),
    ] = None,
    allow_self: Annotated[
        bool, typer.Option("--allow-self",
                           help="Also measure this host's own interface addresses.")
    ] = False,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate "
                                  "chain (PEM; re-read on SIGHUP).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The private key of --tls-cert (PEM).")
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option("--trusted-proxy", help="A reverse proxy in this range (CIDR; "
                     "repeatable) forwards the client address (Forwarded/X-Forwarded-For)."),
    ] = None,
    max_connections: Annotated[
        int, typer.Option("--max-connections", min=1, help="Open connections at once.")
    ] = 1024,
    max_per_client: Annotated[
        int, typer.Option("--max-per-client", min=1,
                          help="Open connections from one address at once.")
    ] = 64,
    app_lists: Annotated[
        Path | None, typer.Option("--app-lists", help="Directory of lists (NAME.toml) "
                                  "replacing the packaged targets/apps ones; their ports "
                                  "are allowed too.")
    ] = None,
) -> None:
    """Serve the control helper's JSON API (v1) until interrupted."""
    from probe.control.service import ServiceOptions
    from probe.control.service import serve as serve_helper

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT")
    resolvers = tuple(parse_resolver(r) for r in resolver or [])
    shares = {k: v for k, v in (("max_concurrent", max_concurrent),
                                 ("max_per_client_measurements", max_concurrent_per_client))
              if v is not None}
    opts = ServiceOptions(
        **shares, host=host.strip("[]"), port=int(port), allow=tuple(allow or ()),
        allow_ports=tuple(allow_port or ()), token=token, resolvers=resolvers,
        ca_bundle=str(ca_bundle) if ca_bundle else None,
        step_timeout=timeout, deny=tuple(deny or ()), allow_self=allow_self,
        tls_cert=str(tls_cert) if tls_cert else None, tls_key=str(tls_key) if tls_key else None,
        trusted_proxies=tuple(trusted_proxy or ()), max_connections=max_connections,
        max_per_client=max_per_client, app_lists=str(app_lists) if app_lists else None)
    asyncio.run(serve_helper(opts))
