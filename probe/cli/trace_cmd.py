"""``probe trace URL``: locate the censor of one URL with TTL-limited packets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from probe import targets as target_lists
from probe.cli.consent import ensure_consent
from probe.errors import UsageError
from probe.report.safe_text import for_terminal
from probe.run import tracing


def trace(
    url: Annotated[str, typer.Argument(help="The URL whose censor to locate.")],
    db: Annotated[
        Path | None,
        typer.Option("--db", envvar="PROBE_DB",
                     help="Store the traces here, linked to the URL's latest measurement."),
    ] = None,
    via: Annotated[
        str | None, typer.Option("--via", help="The site's address (instead of resolving it).")
    ] = None,
    max_ttl: Annotated[int, typer.Option("--max-ttl", min=1, max=64, help="Highest TTL.")] = 16,
    kind: Annotated[
        str, typer.Option("--kind", help="auto (DNS test + the URL's exchange), dns, tls, "
                          "http or tcp.")
    ] = "auto",
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="An address beyond the censor that runs no DNS "
                     "resolver (default: the control helper's)."),
    ] = None,
    control: Annotated[
        list[str] | None, typer.Option("--control", help="Control helper base URL.")
    ] = None,
    ca_bundle: Annotated[
        Path | None, typer.Option("--ca-bundle", help="Extra trust anchors (PEM).")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Wait for one TTL-limited probe (s).")
    ] = 2.0,
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    accept_risk: Annotated[
        bool, typer.Option("--accept-risk", envvar="PROBE_ACCEPT_RISK",
                           help="Accept the consent notice (unattended use).")
    ] = False,
) -> None:
    """Locate the censor of a URL with TTL-limited packets (needs root or CAP_NET_RAW)."""
    if fmt not in ("text", "json"):
        raise UsageError(f"--format {fmt!r}: choose text or json")
    target = target_lists.parse_url(url)
    ensure_consent(accept_risk)
    settings = tracing.TraceSettings(max_ttl=max_ttl, timeout=timeout,
                                     ca_bundle=str(ca_bundle) if ca_bundle else None)
    found = tracing.trace_url(target, settings, via=via, kind=kind, reference=reference,
                              controls=control or (), db_path=str(db) if db else None,
                              say=lambda m: typer.echo(for_terminal(m), err=True))
    if fmt == "json":
        typer.echo(json.dumps([tracing.to_jsonable(target.url, o) for o in found], indent=2,
                              ensure_ascii=False))
    else:
        typer.echo(for_terminal(tracing.render_text(target.url, found)), nl=False)


def register(app: typer.Typer) -> None:
    """Add ``trace`` to the root app."""
    app.command("trace")(trace)
