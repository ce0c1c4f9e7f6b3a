"""``probe collector serve|enroll|revoke|probes`` and ``probe upload`` (docs/collector.md)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from probe.cli import config as run_config
from probe.cli.options import ConfigOption, DbOption
from probe.errors import UsageError

app = typer.Typer(help="The collector: receives enrolled probes' measurements (HTTPS).",
                  no_args_is_help=True)

CollectorDb = Annotated[
    Path, typer.Option("--db", envvar="PROBE_COLLECTOR_DB",
                       help="The collector's database (a probe database plus enrolment).")]


@app.command("serve")
def serve(
    db: CollectorDb,
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to listen on.")] = (
        "127.0.0.1:8790"),
    tls_cert: Annotated[Path | None, typer.Option(
        "--tls-cert", help="PEM certificate chain (required off loopback).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key.")] = None,
    max_connections: Annotated[int, typer.Option(
        "--max-connections", min=1, help="Connections open at once (more get 503).")] = 128,
    max_body_mb: Annotated[float, typer.Option(
        "--max-body-mb", min=0.01, help="Largest compressed batch (MB).")] = 16.0,
    rate: Annotated[float, typer.Option(
        "--rate", min=0.01, help="Batches per second per probe (burst: 4x).")] = 10.0,
    log_addresses: Annotated[bool, typer.Option(
        "--log-addresses", help="Log client addresses (off: volunteers' addresses are "
        "personal data).")] = False,
) -> None:
    """Serve the collector until interrupted."""
    from probe.collector.receiver import Limits
    from probe.collector.receiver import serve as serve_collector

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    limits = Limits(max_body=int(max_body_mb * 1024 * 1024), max_connections=max_connections,
                    rate=rate, burst=rate * 4)

    def ready(h: str, p: int) -> None:
        scheme = "https" if tls_cert else "http"
        typer.echo(f"collector listening on {scheme}://{h}:{p} (database {db})", err=True)

    asyncio.run(serve_collector(str(db), host.strip("[]"), int(port),
                                cert=str(tls_cert) if tls_cert else None,
                                key=str(tls_key) if tls_key else None, limits=limits,
                                log_addresses=log_addresses, on_ready=ready))


@app.command("enroll")
def enroll(
    db: CollectorDb,
    label: Annotated[str | None, typer.Option(
        "--label", help="Your own note about this probe (not sent anywhere).")] = None,
    ttl_days: Annotated[float | None, typer.Option(
        "--ttl-days", min=0.0, help="Token validity (default: until revoked).")] = None,
) -> None:
    """Issue a token for a new probe: prints its pseudonymous probe id and the token."""
    from probe.store.collector import CollectorStore

    with CollectorStore(db) as store:
        e = store.enroll(label, ttl_days)
    typer.echo(f"probe_id {e.probe_id}")
    typer.echo(f"token {e.token}")
    if e.expires_at:
        typer.echo(f"expires {e.expires_at}")


@app.command("revoke")
def revoke(db: CollectorDb,
           probe_id: Annotated[str, typer.Argument(help="The probe id to revoke.")]) -> None:
    """Revoke a probe's token (what it uploaded stays)."""
    from probe.store.collector import CollectorStore

    with CollectorStore(db) as store:
        if not store.revoke(probe_id):
            raise UsageError(f"no enrolled probe {probe_id!r} with a valid token in {db}")
    typer.echo(f"revoked {probe_id}")


@app.command("probes")
def probes(db: CollectorDb) -> None:
    """List enrolled probes and what was received from each."""
    from probe.store.collector import CollectorStore

    with CollectorStore(db) as store:
        for p in store.probes():
            state = "revoked" if p["revoked_at"] else "valid"
            typer.echo(f"{p['probe_id']}\t{state}\t{p['received']} measurements\t"
                       f"{p['label'] or ''}")


def upload(
    db: DbOption = None,
    collector: Annotated[str | None, typer.Option(
        "--collector", help="Collector base URL (or config key / PROBE_COLLECTOR).",
        show_default=False)] = None,
    token: Annotated[str | None, typer.Option(
        "--token", help="This probe's token (or config key collector_token / "
        "PROBE_COLLECTOR_TOKEN).", show_default=False)] = None,
    show_status: Annotated[bool, typer.Option(
        "--status", help="Only say what is pending.")] = False,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, max=1000, help="Measurements per batch.")] = 200,
    ca_bundle: Annotated[Path | None, typer.Option(
        "--ca-bundle", help="Trust anchors for the collector's certificate (PEM).")] = None,
    encoding: Annotated[str, typer.Option(
        "--encoding", help="Batch compression: auto (zstd when the collector offers it, "
        "else gzip), zstd or gzip.")] = "auto",
    config_file: ConfigOption = None,
) -> None:
    """Send the queued measurements to the collector (resumes; safe to interrupt)."""
    from probe.collector.upload import UploadOptions
    from probe.collector.upload import status as outbox_status
    from probe.collector.upload import upload as do_upload
    from probe.store import default_db_path

    given = {k: v for k, v in {"db": db, "collector": collector,
                                "collector_token": token}.items() if v is not None}
    eff = run_config.load(given, config_file)
    db_path = str(eff["db"] or default_db_path())
    if show_status:
        s = outbox_status(db_path)
        typer.echo(f"pending {s.pending} (in an unacknowledged batch: {s.in_flight}), "
                   f"sent {s.sent}, refused {s.refused}")
        if s.oldest_pending:
            typer.echo(f"oldest pending queued at {s.oldest_pending}")
        if s.last_sent:
            typer.echo(f"last sent at {s.last_sent}")
        if s.last_error:
            typer.echo(f"last error: {s.last_error}")
        return
    if encoding not in ("auto", "zstd", "gzip"):
        raise UsageError(f"--encoding {encoding!r}: use auto, zstd or gzip")
    if not eff["collector"] or not eff["collector_token"]:
        raise UsageError("probe upload needs --collector URL and --token TOKEN "
                         "(or collector / collector_token in the config file)")
    r = do_upload(db_path, eff["collector"], eff["collector_token"],
                  UploadOptions(batch_size=batch_size,
                                ca_bundle=str(ca_bundle) if ca_bundle else None,
                                encoding=encoding),
                  on_event=lambda text: typer.echo(text, err=True))
    typer.echo(f"uploaded {r.accepted} measurements in {r.batches} batches "
               f"({r.encoding}; {r.duplicates} already there, {r.refused} refused, "
               f"{r.retries} retries); "
               f"{r.pending} pending")


def register(app_: typer.Typer) -> None:
    """Add ``collector`` and ``upload`` to the root app."""
    app_.add_typer(app, name="collector")
    app_.command("upload")(upload)
