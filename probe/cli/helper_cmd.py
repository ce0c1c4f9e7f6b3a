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
        int, typer.Option("--max-concurrent", min=1, help="Measure requests served at once.")
    ] = 8,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Deadline of each network step (s).")
    ] = 10.0,
    app_lists: Annotated[
        Path | None, typer.Option("--app-lists", help="Directory of lists (NAME.toml) "
                                  "replacing the packaged targets/apps ones.")
    ] = None,
) -> None:
    """Serve the control helper's JSON API (v1) until interrupted."""
    from probe.control.service import serve as serve_helper

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT")
    resolvers = tuple(parse_resolver(r) for r in resolver or [])
    asyncio.run(serve_helper(host.strip("[]"), int(port), allow or [], allow_port or [], token,
                             resolvers, str(ca_bundle) if ca_bundle else None, max_concurrent,
                             timeout, str(app_lists) if app_lists else None))
