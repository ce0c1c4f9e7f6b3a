"""``probe run`` and ``probe watch``: settings precedence → one :class:`RunRequest` → execute.

The command bodies parse (effective settings: command line > environment > config file >
default, see :mod:`probe.cli.config`), call :func:`probe.run.session.execute` and render its
progress and events on stderr. Validation, the run's assembly and ``--trace-blocked`` live in
:mod:`probe.run.session`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from probe.cli import config as run_config
from probe.cli.consent import ensure_consent
from probe.cli.options import ConfigOption, DbOption
from probe.cli.progress import RunDisplay
from probe.run.engine import DEFAULT_CONCURRENCY, DEFAULT_PER_HOST
from probe.run.session import RunRequest, execute
from probe.run.watch import WatchPlan, parse_duration


def run(
    ctx: typer.Context,
    sources: Annotated[list[str], typer.Argument(help="URLs and/or target list files.")],
    db: DbOption = None,
    resolver: Annotated[
        list[str] | None,
        typer.Option("--resolver", help="Extra UDP resolver IP[:PORT] (repeatable)."),
    ] = None,
    no_system_resolver: Annotated[
        bool, typer.Option("--no-system-resolver", help="Do not use the system resolver.")
    ] = False,
    ca_bundle: Annotated[
        Path | None, typer.Option("--ca-bundle", help="Extra trust anchors (PEM).")
    ] = None,
    category: Annotated[
        list[str] | None, typer.Option("--category", help="Only these category codes.")
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=1000, help="Targets measured at once.")
    ] = DEFAULT_CONCURRENCY,
    per_host: Annotated[
        int, typer.Option("--per-host", min=1, max=64,
                          help="Most targets of one host, and connections to one IP, at once.")
    ] = DEFAULT_PER_HOST,
    rate: Annotated[
        float, typer.Option("--rate", min=0.0,
                            help="Most targets started per second (metered links; 0 = no limit).")
    ] = 0.0,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Deadline of each network step (s).")
    ] = 10.0,
    control: Annotated[
        list[str] | None,
        typer.Option("--control", help="Control helper base URL (repeatable)."),
    ] = None,
    control_token: Annotated[
        str | None, typer.Option("--control-token", envvar="PROBE_CONTROL_TOKEN",
                                 help="Token the control helper asks for (if any).")
    ] = None,
    canaries: Annotated[
        Path | None, typer.Option("--canaries", help="Canaries CSV (network health).")
    ] = None,
    health_interval: Annotated[
        float, typer.Option("--health-interval", min=0.5, help="Seconds between health rounds.")
    ] = 60.0,
    residual_cooldown: Annotated[
        float, typer.Option("--residual-cooldown", min=0.0,
                            help="Seconds to wait before re-measuring targets that failed right "
                                 "after another target triggered the censor (residual "
                                 "censorship); 0 = never re-measure.")
    ] = 90.0,
    asn_db: Annotated[
        Path | None, typer.Option("--asn-db", help="iptoasn TSV for ASN comparisons.")
    ] = None,
    app_lists: Annotated[
        Path | None, typer.Option("--app-lists", help="Directory of endpoint lists "
                                  "(NAME.toml) replacing the packaged targets/apps ones.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    accept_risk: Annotated[
        bool, typer.Option("--accept-risk", help="Accept the consent notice (unattended use).")
    ] = False,
    no_bodies: Annotated[
        bool, typer.Option("--no-bodies", help="Store body hashes and lengths only.")
    ] = False,
    trace_blocked: Annotated[
        bool, typer.Option("--trace-blocked", help="Then locate the censor of every blocked "
                           "target with TTL-limited packets (needs root or CAP_NET_RAW).")
    ] = False,
    config_file: ConfigOption = None,
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="Complete an interrupted run (id or prefix): measure "
                     "only its targets not stored yet."),
    ] = None,
) -> None:
    """Measure targets (DNS, TCP, TLS, HTTP) and store every observation and verdict.

    Options not given take their value from PROBE_* variables, then the config file."""
    _execute(ctx, sources, resume=resume, plan=None)


def _execute(ctx: typer.Context, sources: list[str], resume: str | None,
             plan: WatchPlan | None) -> None:
    """The shared body of ``run`` and ``watch``: effective settings → request → execute."""
    eff = run_config.load(run_config.cli_values(ctx), ctx.params.get("config_file"))
    request = RunRequest(
        sources=tuple(sources),
        db=eff["db"],
        resolvers=tuple(eff["resolver"] or ()),
        use_system_resolver=not eff["no_system_resolver"],
        ca_bundle=eff["ca_bundle"],
        categories=tuple(eff["category"] or ()),
        concurrency=eff["concurrency"],
        per_host=eff["per_host"],
        rate=eff["rate"] or 0.0,
        timeout=eff["timeout"],
        controls=tuple(eff["control"] or ()),
        control_token=eff["control_token"],
        canaries=eff["canaries"],
        health_interval=eff["health_interval"],
        residual_cooldown=eff["residual_cooldown"],
        asn_db=eff["asn_db"],
        app_lists=eff["app_lists"],
        store_bodies=not eff["no_bodies"],
        trace_blocked=plan is None and bool(eff["trace_blocked"]),
        resume=resume,
        watch=plan,
    )
    quiet = bool(eff["quiet"])
    display = RunDisplay(quiet)

    def event(topic: str, text: str) -> None:
        if topic == "finished":
            display.finish()
        elif topic == "notice":
            typer.echo(f"probe: {text}", err=True)
        elif not quiet:
            if topic == "watch":
                display.finish()
            typer.echo(f"{topic}: {text}", err=True)

    execute(request, on_progress=display, on_event=event,
            confirm=lambda: ensure_consent(eff["accept_risk"]))


def watch(
    ctx: typer.Context,
    sources: Annotated[list[str], typer.Argument(help="URLs and/or target list files.")],
    every: Annotated[str, typer.Option("--every", help="Time between runs (15m, 1h…).")] = "15m",
    jitter: Annotated[
        float, typer.Option("--jitter", min=0.0, max=0.5,
                            help="Random spread of each pause, a fraction of --every."),
    ] = 0.1,
    health_every: Annotated[
        str, typer.Option("--health-every", help="First pause between health-only rounds "
                          "while the network is cut (backs off to --every)."),
    ] = "1m",
    max_runs: Annotated[
        int | None, typer.Option("--max-runs", min=1, help="Stop after this many full runs.")
    ] = None,
    **_: Any,
) -> None:
    """Measure periodically; ride out shutdowns with cheap health checks (SIGTERM stops)."""
    plan = WatchPlan(parse_duration(every), jitter, parse_duration(health_every), max_runs)
    _execute(ctx, sources, resume=None, plan=plan)


def _watch_signature() -> inspect.Signature:
    """``watch`` takes every option of ``run`` (but --resume) plus its own scheduling ones."""
    own = [p for name, p in inspect.signature(watch, eval_str=True).parameters.items()
           if name not in ("_",)]
    shared = [p for name, p in inspect.signature(run, eval_str=True).parameters.items()
              if name not in ("ctx", "sources", "resume", "trace_blocked")]
    return inspect.Signature(own + shared)


watch.__signature__ = _watch_signature()  # type: ignore[attr-defined]


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``watch`` to the root app."""
    app.command("run")(run)
    app.command("watch")(watch)
