"""`probe sim`: the simulated censoring network's command line (parse → call → render).

Commands: ``list``, ``up SCENARIO``, ``status``, ``exec -- CMD``, ``down``, ``run SCENARIO|--all``.
Everything needing namespaces says so in one line when not run as root, and points at the
loopback subset (``probe sim run --loopback``), which needs no privileges.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from probe.errors import ProbeError, UsageError

app = typer.Typer(
    help="The simulated censoring network: real namespaces, real censor rules, "
    "self-checking scenarios.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int = 1) -> NoReturn:
    """A tool error for the CLI's one boundary: exit 2 (bad usage) or 1, one line."""
    raise (UsageError if code == 2 else ProbeError)(message)


def _need_root() -> None:
    from probe.lab.simnet.netns import have_root

    ok, reason = have_root()
    if not ok:
        _fail(f"{reason}; without root, try the loopback subset: probe sim run --loopback", 1)


def _sigterm_as_exit() -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C so every `finally` tears the simulation down."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def _load(names: list[str], all_: bool, tags: list[str] | None) -> list[Any]:
    from probe.lab.simnet import scenario as S

    if all_ or not names:
        if not all_ and not tags:
            _fail("name scenarios or use --all (see `probe sim list`)", 2)
        found = S.load_all()
    else:
        found = [S.load(S.find(n)) for n in names]
    if tags:
        found = [s for s in found if set(tags) & set(s.tags)]
    return found


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
    techniques: Annotated[
        bool, typer.Option("--techniques", help="List the censor techniques instead.")
    ] = False,
) -> None:
    """List the scenarios (or the techniques) with what they contain."""
    from probe.lab.simnet import scenario as S
    from probe.lab.simnet.techniques import describe

    if techniques:
        rows = describe()
        if as_json:
            typer.echo(json.dumps(rows, indent=1))
            return
        for t in rows:
            params = ", ".join(
                f"{k}{'' if v['required'] else '=' + json.dumps(v['default'])}"
                for k, v in t["params"].items()
            )
            typer.echo(f"{t['name']:<16} {t['summary']}")
            if params:
                typer.echo(f"{'':<16}   params: {params}")
        return
    scenarios = S.load_all()
    if as_json:
        typer.echo(json.dumps([
            {"name": s.name, "description": s.description, "tags": list(s.tags),
             "techniques": s.techniques, "targets": [
                 {"url": t.url, "expect": t.expect_text, "xfail": t.xfail} for t in s.targets]}
            for s in scenarios], indent=1, ensure_ascii=False))
        return
    for s in scenarios:
        tech = ",".join(s.techniques) or "-"
        xf = sum(1 for t in s.targets if t.xfail)
        typer.echo(f"{s.name:<24} {len(s.targets):>2} targets ({xf} xfail)  [{tech}]")
        typer.echo(f"{'':<24} {s.description}")


@app.command()
def up(
    scenario: Annotated[str, typer.Argument(help="Scenario name or .toml path.")],
    no_control: Annotated[
        bool, typer.Option("--no-control", help="Do not start the control helper.")
    ] = False,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Run the self-checks.")] = True,
) -> None:
    """Bring a scenario's network up and leave it running (until `probe sim down`)."""
    from probe.lab.simnet import scenario as S
    from probe.lab.simnet.scenario_run import self_check
    from probe.lab.simnet.sim import Sim, SimError

    _need_root()
    sc = S.load(S.find(scenario))
    sim = Sim.start(sc, mode="up", control=not no_control)
    typer.echo(f"{sc.name} is up as {sim.prefix} in {sim.timings['up']:.1f}s")
    typer.echo(f"  client namespace: {sim.topo.client_ns} (probe sim exec -- CMD)")
    typer.echo(f"  world CA:         {sim.files['ca']}")
    typer.echo(f"  ip2asn table:     {sim.files['asn']}")
    typer.echo(f"  canaries:         {sim.files['canaries']}")
    typer.echo(f"  targets:          {sim.files['targets']}")
    if sim.control_url:
        typer.echo(f"  control helper:   {sim.control_url}")
    if check:
        try:
            results = self_check(sim, typer.echo)
        except SimError as exc:  # the simulation stays up (probe sim down removes it)
            raise ProbeError(f"self-checks could not run: {exc}") from exc
        bad = [c for c in results if not c["ok"]]
        typer.echo(f"  self-checks: {len(results) - len(bad)}/{len(results)} passed")
        for c in bad:
            typer.echo(f"    BAD [{c['ns']}] {c['id']}: {'; '.join(c['problems'])}")
        if bad:
            raise typer.Exit(1)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False) -> None:
    """Show the simulations that are up (and leftovers of crashed runs)."""
    from probe.lab.simnet import netns
    from probe.lab.simnet.sim import running

    states = running()
    orphans = [p for p in netns.leftover_prefixes() if p not in {s["prefix"] for s in states}]
    if as_json:
        typer.echo(json.dumps({"simulations": states, "orphans": orphans}, indent=1))
        return
    if not states and not orphans:
        typer.echo("no simulation is up")
        return
    for s in states:
        procs = s.get("processes", [])
        alive = sum(1 for p in procs if Path(f"/proc/{p['pid']}").exists())
        present = len(netns.namespaces_of(s["prefix"]))
        typer.echo(f"{s['prefix']}  {s['scenario']:<22} mode={s['mode']:<3} "
                   f"{'alive' if s['alive'] else 'ORPHANED'}  namespaces {present}/"
                   f"{len(s.get('namespaces', []))}  processes {alive}/{len(procs)}  "
                   f"since {s.get('created', '?')}")
        typer.echo(f"      client: {s.get('client_ns')}  control: {s.get('control_url') or '-'}")
    for p in orphans:
        typer.echo(f"{p}  (no state file: leftover of a crashed run; `probe sim down` removes it)")


@app.command("exec", context_settings={"allow_extra_args": True,
                                       "ignore_unknown_options": True})
def exec_(
    ctx: typer.Context,
    sim: Annotated[
        str | None,
        typer.Option("--sim", help="Prefix of the running simulation (see `probe sim status`)."),
    ] = None,
    ns: Annotated[
        str, typer.Option("--ns", help="Namespace role: cli (default), isp, t1…, dom, intl, ctl.")
    ] = "cli",
) -> None:
    """Run a command in the client namespace of the running simulation: exec -- CMD ARGS."""
    from probe.lab.simnet.sim import child_env, running

    _need_root()
    cmd = list(ctx.args)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        _fail("give a command: probe sim exec -- CMD [ARGS]", 2)
    states = [s for s in running() if s.get("alive")]
    if sim:
        states = [s for s in states if s["prefix"] == sim]
    else:
        states = [s for s in states if s.get("mode") == "up"]  # not other people's runs
    if not states:
        _fail("no simulation is up (probe sim up SCENARIO; or --sim PREFIX of a running one)")
    if len(states) > 1:
        _fail(f"several simulations are up ({', '.join(s['prefix'] for s in states)}); "
              "choose one with --sim", 2)
    state = states[0]
    nodes = state["topology"]["nodes"]
    if ns not in nodes:
        _fail(f"no namespace role {ns!r} (one of {', '.join(nodes)})", 2)
    env = child_env()
    env["PROBE_SIM_CA"] = state["files"].get("ca", "")
    env["PROBE_SIM_PREFIX"] = state["prefix"]
    argv = ["ip", "netns", "exec", nodes[ns]["ns"], *cmd]
    sys.stdout.flush()
    os.execvpe("ip", argv, env)


@app.command()
def down(
    prefixes: Annotated[
        list[str] | None, typer.Argument(help="Simulations to remove (default: see below).")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Also remove simulations of runs still in progress.")
    ] = False,
) -> None:
    """Remove simulations: every `up` one and every leftover of a crashed run. Idempotent."""
    from probe.lab.simnet import netns
    from probe.lab.simnet.sim import teardown

    _need_root()
    for p in prefixes or []:
        if not netns.is_prefix(p):
            _fail(f"{p!r} is not a simulation prefix (see `probe sim status`)", 2)
    removed = teardown(prefixes or None, everything=all_)
    if removed:
        typer.echo(f"removed {len(removed)} simulation(s): {', '.join(removed)}")
    else:
        typer.echo("nothing to remove")


@app.command()
def run(
    scenarios: Annotated[list[str] | None, typer.Argument(help="Scenario names or paths.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Run every scenario.")] = False,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only scenarios with a tag.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON results on stdout.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=8,
                                      help="Scenarios at once (each has its own network).")] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Every self-check.")] = False,
    no_control: Annotated[
        bool, typer.Option("--no-control", help="Do not run the control helper.")
    ] = False,
    db: Annotated[
        Path | None, typer.Option("--db", help="Keep the probe's database (one scenario).")
    ] = None,
    selfcheck_only: Annotated[
        bool, typer.Option("--selfcheck-only", help="Only bring up and self-check.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Override the probe's --timeout.")
    ] = None,
    loopback: Annotated[
        bool, typer.Option("--loopback", help="No root: run the server-side subset on loopback.")
    ] = False,
) -> None:
    """Up → self-checks → probe → compare verdicts → down, per scenario; non-zero on a mismatch."""
    from probe.lab.simnet import scenario_run as R

    found = _load(scenarios or [], all_, tag)
    if loopback:
        from probe.lab.simnet.loopback_subset import run_loopback

        raise typer.Exit(run_loopback(found, as_json=as_json, verbose=verbose))
    _need_root()
    if db is not None and len(found) != 1:
        _fail("--db keeps the database of one scenario; name exactly one", 2)
    _sigterm_as_exit()
    opts = R.RunOptions(control=not no_control, db=db, selfcheck_only=selfcheck_only,
                        timeout=timeout)
    t0 = time.monotonic()
    out = sys.stderr if as_json else sys.stdout

    def done(r: R.ScenarioResult) -> None:
        print(R.render_scenario(r, verbose), file=out, flush=True)

    try:
        results = R.run_many(found, opts, jobs=jobs, on_done=done)
    except KeyboardInterrupt:
        typer.echo("interrupted; every simulation was torn down", err=True)
        raise typer.Exit(130) from None
    wall = time.monotonic() - t0
    print(R.render_summary(results, wall), file=out, flush=True)
    if as_json:
        typer.echo(json.dumps({"wall_seconds": round(wall, 1),
                               "scenarios": [r.to_dict() for r in results]},
                              indent=1, ensure_ascii=False))
    raise typer.Exit(R.exit_code(results))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
