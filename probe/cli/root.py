"""The `probe` command line: parse arguments, call one library function, render the result.

No measurement or classification logic lives here. Tool errors (``ProbeError``) are caught once
and printed as one line; exit status 0 = the command completed (whatever it found), 1 = runtime
error, 2 = bad usage, 130 = interrupted by the user.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import shutil
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from probe import targets as target_lists
from probe.cli import config as run_config
from probe.cli import export_cmd as cli_export
from probe.cli import report_cmd as cli_report
from probe.cli.consent import ensure_consent
from probe.cli.sim_cmd import app as sim_app
from probe.errors import ProbeError, TargetListError, UsageError
from probe.measure.settings import MeasureSettings, Resolver
from probe.model import Target, Verdict
from probe.report.run_results import render_results
from probe.run.engine import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PER_HOST,
    RunOptions,
    RunProgress,
    run_targets,
)
from probe.run.watch import WatchPlan, parse_duration
from probe.run.watch import watch as watch_runs
from probe.store import Store, default_db_path

app = typer.Typer(
    help="Internet censorship measurement probe: tells blocking from outages and shutdowns.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
targets_app = typer.Typer(help="Check and list target lists.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")
helper_app = typer.Typer(help="The control helper (runs outside the censored network).",
                         no_args_is_help=True)
app.add_typer(helper_app, name="helper")
config_app = typer.Typer(help="Configuration: config file and PROBE_* variables.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Config file (default: $PROBE_CONFIG, else "
                 "<user config dir>/config.toml).", show_default=False),
]

DbOption = Annotated[
    Path | None,
    typer.Option("--db", envvar="PROBE_DB", help="SQLite database (default: user data dir)."),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"probe: error: {message}", err=True)
    return typer.Exit(code)


def parse_resolver(text: str) -> Resolver:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` → Resolver; raises UsageError on bad input."""
    import ipaddress

    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 53
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        if not p.isdigit():
            raise UsageError(f"--resolver {text!r}: port must be a number")
        port = int(p)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--resolver {text!r}: not an IP address") from None
    if not 0 < port < 65536:
        raise UsageError(f"--resolver {text!r}: bad port")
    return Resolver(host, port)


class _Display:
    """Progress on stderr: one redrawn line on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.progress: RunProgress | None = None

    def __call__(self, p: RunProgress, target: Target | None, verdict: Verdict | None) -> None:
        self.progress = p
        if self.quiet:
            return
        if target is None:
            typer.echo(f"run {p.run_id}: measuring {p.total} targets", err=True)
            return
        counts = " ".join(f"{k} {v}" for k, v in sorted(p.verdicts.items()))
        if self.tty:
            line = f"\r[{p.done}/{p.total}] {counts} · {p.elapsed:.0f}s"
            sys.stderr.write(line.ljust(78)[:100])
            sys.stderr.flush()
        elif verdict is not None:
            method = f" {verdict.method}" if verdict.method else ""
            line = f"[{p.done}/{p.total}] {target.url} {verdict.verdict.value}{method}"
            typer.echo(line, err=True)

    def finish(self) -> None:
        p = self.progress
        if p is None:
            return
        if self.tty and not self.quiet:
            sys.stderr.write("\n")
        counts = ", ".join(f"{v} {k}" for k, v in sorted(p.verdicts.items())) or "nothing"
        state = "INTERRUPTED" if p.interrupted else "completed"
        typer.echo(
            f"run {p.run_id} {state}: {p.done}/{p.total} targets in {p.elapsed:.1f}s ({counts})",
            err=True,
        )


def _config_fail(e: run_config.ConfigError) -> typer.Exit:
    for problem in e.problems[:-1]:
        typer.echo(f"probe: error: {problem}", err=True)
    return _fail(e.problems[-1] if e.problems else str(e), 2)


@app.command()
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
        str | None, typer.Option("--control-token", envvar="PROBE_CONTROL_TOKEN")
    ] = None,
    canaries: Annotated[
        Path | None, typer.Option("--canaries", help="Canaries CSV (network health).")
    ] = None,
    health_interval: Annotated[
        float, typer.Option("--health-interval", min=0.5, help="Seconds between health rounds.")
    ] = 60.0,
    asn_db: Annotated[
        Path | None, typer.Option("--asn-db", help="iptoasn TSV for ASN comparisons.")
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
    _run_or_watch(ctx, sources, resume=resume, plan=None)


def _run_or_watch(
    ctx: typer.Context, sources: list[str], resume: str | None, plan: WatchPlan | None
) -> None:
    """The shared body of ``run`` and ``watch``: effective settings, checks, then go."""
    config_file = ctx.params.get("config_file")
    try:  # command line > environment > config file > default
        eff = run_config.load(run_config.cli_values(ctx), config_file)
    except run_config.ConfigError as e:
        raise _config_fail(e) from None
    db, resolver, no_system_resolver, ca_bundle, category, concurrency, timeout = (
        eff[k] for k in ("db", "resolver", "no_system_resolver", "ca_bundle", "category",
                         "concurrency", "timeout"))
    control, control_token, canaries, health_interval, asn_db, quiet = (
        eff[k] for k in ("control", "control_token", "canaries", "health_interval", "asn_db",
                         "quiet"))
    categories = set(category) if category else None
    try:
        # Read the lists once to validate and count; the run streams them again (flat memory).
        total = sum(1 for _ in target_lists.iter_sources(sources, categories))
        canary_list = tuple(
            (c.scope, c.url_or_host) for c in target_lists.load_canaries(str(canaries))
        ) if canaries else ()
        if asn_db is not None and not asn_db.is_file():
            raise UsageError(f"--asn-db {asn_db}: no such file")
        resolvers = tuple(parse_resolver(r) for r in resolver or [])
        if ca_bundle is not None and not ca_bundle.is_file():
            raise UsageError(f"--ca-bundle {ca_bundle}: no such file")
        if no_system_resolver and not resolvers:
            raise UsageError("--no-system-resolver needs at least one --resolver")
    except TargetListError as e:
        for problem in e.problems:
            typer.echo(problem, err=True)
        raise _fail(f"bad target list ({len(e.problems)} problems); nothing measured") from None
    except UsageError as e:
        raise _fail(str(e), 2) from None
    except ValueError as e:
        raise _fail(str(e), 2) from None
    if not total:
        raise _fail("no targets to measure", 2)
    try:
        ensure_consent(eff["accept_risk"])
    except UsageError as e:
        raise _fail(str(e), 2) from None
    settings = MeasureSettings.with_timeout(
        timeout,
        use_system_resolver=not no_system_resolver,
        resolvers=resolvers,
        ca_bundle=str(ca_bundle) if ca_bundle else None,
        store_bodies=not eff["no_bodies"],
    )
    display = _Display(quiet)
    db_path = str(db or default_db_path())
    options = RunOptions(
        concurrency=concurrency,
        controls=tuple(control or ()),
        control_token=control_token,
        canaries=canary_list,
        health_interval=health_interval,
        asn_db=str(asn_db) if asn_db else None,
        resume=resume,
        per_host=eff["per_host"],
        rate=eff["rate"] or None,
    )
    try:
        if plan is None:
            asyncio.run(run_targets(target_lists.iter_sources(sources, categories), total,
                                    settings, db_path, concurrency, display, options))
        else:
            def reload() -> list[Target]:
                return target_lists.load_sources(sources, categories)

            def event(text: str) -> None:
                if not quiet:
                    display.finish()
                    typer.echo(f"watch: {text}", err=True)

            _run_until_signalled(watch_runs(reload, settings, db_path, options, plan,
                                            display, event))
            return
    except KeyboardInterrupt:
        if display.progress:
            display.progress.interrupted = True
        display.finish()
        raise typer.Exit(130) from None
    except ProbeError as e:
        raise _fail(str(e)) from None
    display.finish()
    if plan is None and eff["trace_blocked"] and display.progress is not None:
        _trace_blocked(display.progress.run_id, db_path, settings, options, quiet)


def _trace_blocked(run_id: str, db_path: str, settings: MeasureSettings, options: RunOptions,
                   quiet: bool) -> None:
    """``--trace-blocked``: locate the censor of every blocked target of the run just made."""
    from probe.run import tracing

    reason = tracing.raw_unavailable()
    if reason:
        typer.echo(f"probe: {reason}", err=True)
        return

    def say(text: str) -> None:
        if not quiet:
            typer.echo(f"trace: {text}", err=True)

    trace_settings = tracing.TraceSettings(timeout=min(settings.connect_timeout, 2.0),
                                           ca_bundle=settings.ca_bundle,
                                           innocuous_name=settings.innocuous_sni)
    try:
        found = asyncio.run(tracing.trace_blocked(db_path, run_id, trace_settings,
                                                  options.controls, say=say))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except ProbeError as e:
        raise _fail(str(e)) from None
    for url, obs in found:
        say(f"{url}: {tracing.summary(obs)}")


def _run_until_signalled(coro: Coroutine[Any, Any, Any]) -> None:
    """Run ``coro``; SIGTERM stops it like Ctrl-C (the run in progress is interrupted)."""

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await coro
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None

    asyncio.run(main())


def _watch_command(
    ctx: typer.Context,
    sources: list[str],
    every: Annotated[str, typer.Option("--every", help="Time between runs (15m, 1h…).")] = "15m",
    jitter: Annotated[
        float, typer.Option("--jitter", min=0.0, max=0.5, help="Random spread (fraction).")
    ] = 0.1,
    health_every: Annotated[
        str, typer.Option("--health-every", help="Health checks while offline (first pause).")
    ] = "1m",
    max_runs: Annotated[
        int | None, typer.Option("--max-runs", min=1, help="Stop after this many runs.")
    ] = None,
    **_: Any,
) -> None:
    """Measure periodically; ride out shutdowns with cheap health checks (SIGTERM stops)."""
    try:
        plan = WatchPlan(parse_duration(every), jitter, parse_duration(health_every), max_runs)
    except ValueError as e:
        raise _fail(str(e), 2) from None
    _run_or_watch(ctx, sources, resume=None, plan=plan)


def _watch_signature() -> inspect.Signature:
    """``watch`` takes every option of ``run`` (but --resume) plus its own scheduling ones."""
    own = [p for name, p in inspect.signature(_watch_command, eval_str=True).parameters.items()
           if name not in ("_",)]
    shared = [p for name, p in inspect.signature(run, eval_str=True).parameters.items()
              if name not in ("ctx", "sources", "resume", "trace_blocked")]
    return inspect.Signature(own + shared)


_watch_command.__signature__ = _watch_signature()  # type: ignore[attr-defined]
app.command("watch")(_watch_command)


@app.command()
def results(
    db: DbOption = None,
    run_id: Annotated[
        str, typer.Option("--run", help="Run id (or prefix) or 'latest'.")
    ] = "latest",
    fmt: Annotated[
        str, typer.Option("--format", help="table, json or csv.", case_sensitive=False)
    ] = "table",
) -> None:
    """Show the verdict of every target of a run."""
    fmt = fmt.lower()
    if fmt not in ("table", "json", "csv"):
        raise _fail(f"--format {fmt!r}: choose table, json or csv", 2)
    try:
        store = Store.open(str(db or default_db_path()))
        try:
            rows = store.results(run_id)
        finally:
            store.close()
    except ProbeError as e:
        raise _fail(str(e)) from None
    width = shutil.get_terminal_size((120, 24)).columns
    typer.echo(render_results(rows, fmt, width=width), nl=False)


@app.command()
def reanalyze(
    db: DbOption = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Only this run (default: every run).")
    ] = None,
    asn_db: Annotated[
        Path | None, typer.Option("--asn-db", help="iptoasn TSV for ASN comparisons.")
    ] = None,
) -> None:
    """Recompute verdicts with the current classifier; earlier verdicts are kept as history."""
    from probe.run.reanalyze import reanalyze as do_reanalyze

    try:
        summary = do_reanalyze(str(db or default_db_path()), run_id,
                               str(asn_db) if asn_db else None)
    except ProbeError as e:
        raise _fail(str(e)) from None
    typer.echo(summary)


@config_app.command("show")
def config_show(
    config_file: ConfigOption = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Print every effective `probe run` setting and where it came from."""
    if fmt not in ("table", "json"):
        raise _fail(f"--format {fmt!r}: choose table or json", 2)
    try:
        eff = run_config.load({}, config_file)
    except run_config.ConfigError as e:
        raise _config_fail(e) from None
    typer.echo(run_config.render(eff, fmt), nl=False)


@targets_app.command("validate")
def targets_validate(
    files: Annotated[list[Path], typer.Argument(help="Target list files.")],
) -> None:
    """Report every bad row as FILE:LINE: reason; exit 1 if any."""
    problems = [p for f in files for p in target_lists.validate_file(str(f))]
    for problem in problems:
        typer.echo(problem)
    if problems:
        raise _fail(f"{len(problems)} problems")
    typer.echo(f"ok: {', '.join(str(f) for f in files)}")


@targets_app.command("list")
def targets_list(
    sources: Annotated[list[str], typer.Argument(help="URLs and/or target list files.")],
    category: Annotated[
        list[str] | None, typer.Option("--category", help="Only these category codes.")
    ] = None,
) -> None:
    """Print the normalised, de-duplicated targets (url, category)."""
    try:
        found = target_lists.load_sources(sources, set(category) if category else None)
    except TargetListError as e:
        for problem in e.problems:
            typer.echo(problem, err=True)
        raise _fail(f"bad target list ({len(e.problems)} problems)") from None
    except ValueError as e:
        raise _fail(str(e), 2) from None
    for t in found:
        typer.echo(f"{t.url}\t{t.category or '-'}")


@helper_app.command("serve")
def helper_serve(
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to listen on.")] = (
        "127.0.0.1:8780"
    ),
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Also measure this private range (CIDR; repeatable)."),
    ] = None,
    allow_port: Annotated[
        list[int] | None, typer.Option("--allow-port", help="Also allow this port (repeatable).")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="PROBE_HELPER_TOKEN", help="Shared token.")
    ] = None,
    resolver: Annotated[
        list[str] | None, typer.Option("--resolver", help="Resolver IP[:PORT] (repeatable).")
    ] = None,
    ca_bundle: Annotated[
        Path | None, typer.Option("--ca-bundle", help="Extra trust anchors (PEM).")
    ] = None,
    max_concurrent: Annotated[int, typer.Option("--max-concurrent", min=1)] = 8,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1)] = 10.0,
) -> None:
    """Serve the control helper's JSON API (v1) until interrupted."""
    from probe.control.service import serve

    try:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--listen {listen!r}: expected HOST:PORT")
        resolvers = tuple(parse_resolver(r) for r in resolver or [])
        asyncio.run(serve(host.strip("[]"), int(port), allow or [], allow_port or [], token,
                          resolvers, str(ca_bundle) if ca_bundle else None, max_concurrent,
                          timeout))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except UsageError as e:
        raise _fail(str(e), 2) from None
    except (ProbeError, OSError) as e:
        raise _fail(str(e)) from None


@app.command()
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
    from probe.run import tracing

    if fmt not in ("text", "json"):
        raise _fail(f"--format {fmt!r}: choose text or json", 2)
    try:
        target = target_lists.parse_url(url)
        ensure_consent(accept_risk)
        settings = tracing.TraceSettings(max_ttl=max_ttl, timeout=timeout,
                                         ca_bundle=str(ca_bundle) if ca_bundle else None)
        found = tracing.trace_url(target, settings, via=via, kind=kind, reference=reference,
                                  controls=control or (), db_path=str(db) if db else None,
                                  say=lambda m: typer.echo(m, err=True))
    except (UsageError, ValueError) as e:
        raise _fail(str(e), 2) from None
    except ProbeError as e:
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if fmt == "json":
        typer.echo(json.dumps([tracing.to_jsonable(target.url, o) for o in found], indent=2,
                              ensure_ascii=False))
    else:
        typer.echo(tracing.render_text(target.url, found), nl=False)


# Commands that live beside their library: reports, exports and the simulated network.
cli_report.register(app)
cli_export.register(app)
app.add_typer(sim_app, name="sim", help="The simulated censoring network.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
