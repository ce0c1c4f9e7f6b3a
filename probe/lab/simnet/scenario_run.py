"""Run scenarios end to end: up → self-checks → the probe in the client namespace → compare → down.

For each scenario the runner brings the simulation up, proves with self-checks that the network
does what the scenario claims (a failure here is a *simulator* problem, reported as
SELFCHECK-FAIL and the probe is not run), runs ``python -m probe run`` inside the client
namespace with the world's CA, ASN table, canaries and control helper (the flags this checkout's
probe supports), applies timed events while it runs, reads ``probe results --format json`` and
compares every target's verdict and method with the scenario's expectation. The simulation is
always torn down, whatever happens.

Per-target status: PASS, FAIL, XFAIL (expected to fail, with the issue that will fix it),
XPASS (marked xfail but passed: time to remove the mark). A scenario FAILs on any FAIL or unmet
``require``; XFAIL and XPASS do not fail a run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from probe.lab.simnet import addressing as A
from probe.lab.simnet.scenario import Expect, Scenario
from probe.lab.simnet.sim import EventTimer, Sim, SimError, child_env, probe_capabilities
from probe.targets import parse_input

Say = Callable[[str], None]

PASS, FAIL, XFAIL, XPASS = "PASS", "FAIL", "XFAIL", "XPASS"
SELFCHECK_FAIL, ERROR = "SELFCHECK-FAIL", "ERROR"


@dataclass
class TargetResult:
    url: str
    expected: str
    got: str
    status: str
    xfail: str | None = None
    confidence: float | None = None
    evidence: str = ""


@dataclass
class ScenarioResult:
    name: str
    description: str
    techniques: list[str]
    status: str = PASS
    selfcheck_ok: bool | None = None
    selfchecks: list[dict[str, Any]] = field(default_factory=list)
    targets: list[TargetResult] = field(default_factory=list)
    require: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    error: str = ""
    probe_log: str = ""
    prefix: str = ""
    #: where each censor entry acts: id, technique, router role and its hop from the client
    censors: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.targets:
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunOptions:
    control: bool = True
    db: Path | None = None  # keep the probe's database here (default: thrown away)
    run_probe_on_selfcheck_failure: bool = False
    timeout: float | None = None  # override the scenario's probe --timeout
    extra_args: tuple[str, ...] = ()
    selfcheck_only: bool = False  # bring up, check, tear down: no probe


def normalise_url(url: str) -> str:
    try:
        return parse_input(url).url
    except Exception:  # noqa: BLE001 - compare raw when the probe's normaliser is unavailable
        return url


def judge(expect: tuple[Expect, ...], xfail: str | None, verdict: str | None,
          method: str | None) -> str:
    ok = any(e.matches(verdict, method) for e in expect)
    if xfail:
        return XPASS if ok else XFAIL
    return PASS if ok else FAIL


def probe_argv(sim: Sim, db: Path, opts: RunOptions) -> list[str]:
    sc = sim.scenario
    caps = probe_capabilities()
    argv = [sys.executable, "-m", "probe", "run", sim.files["targets"], "--db", str(db),
            "--ca-bundle", sim.files["ca"], "--timeout", str(opts.timeout or sc.timeout),
            "--concurrency", str(sc.concurrency), "--quiet"]
    for r in sc.resolvers:
        if r == "doh":
            if caps.get("doh"):
                argv += ["--doh", A.PUBLIC_DOH_URL]
            continue
        if r == "dot":
            if caps.get("dot"):
                argv += ["--dot", A.PUBLIC_RESOLVER_NAME]
            continue
        ip = {"public": A.PUBLIC_RESOLVER_IP, "isp": A.ISP_RESOLVER_IP}.get(r, r)
        argv += ["--resolver", ip]
    if caps["asn_db"]:
        argv += ["--asn-db", sim.files["asn"]]
    if caps["canaries"]:
        argv += ["--canaries", sim.files["canaries"]]
    if caps["control"] and sim.control_url and opts.control:
        argv += ["--control", sim.control_url]
    if sim.files.get("app_lists") and caps.get("app_lists"):
        argv += ["--app-lists", sim.files["app_lists"]]
    return argv + list(sc.probe_args) + list(opts.extra_args)


def run_probe(sim: Sim, opts: RunOptions, result: ScenarioResult) -> list[dict[str, Any]]:
    """Run the probe in the client namespace (events on a timer); its results JSON."""
    db = opts.db or (sim.rundir / "probe.db")
    db.parent.mkdir(parents=True, exist_ok=True)
    argv = sim.exec_argv(probe_argv(sim, db, opts))
    sc = sim.scenario
    budget = 60 + len(sc.targets) * (opts.timeout or sc.timeout) * 10 / sc.concurrency
    budget = max(budget, max((e.at for e in sc.events), default=0) + 60)
    timer = EventTimer(sim)
    if sc.events and sc.clock == "first_target":
        sim.arm_clock()
    t0 = time.monotonic()
    timer.start(t0)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=budget,
                              env=child_env(probe=True), cwd=str(sim.rundir))
    except subprocess.TimeoutExpired:
        raise SimError(f"the probe did not finish within {budget:.0f}s") from None
    finally:
        timer.stop()
        result.events = timer.log
    result.timings["probe"] = time.monotonic() - t0
    result.probe_log = (proc.stderr or "").strip()[-2000:]
    if proc.returncode != 0:
        raise SimError(f"probe run exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    out = subprocess.run([sys.executable, "-m", "probe", "results", "--db", str(db),
                          "--format", "json"], capture_output=True, text=True, timeout=60,
                         env=child_env(probe=True), cwd=str(sim.rundir))
    if out.returncode != 0:
        raise SimError(f"probe results exited {out.returncode}: {out.stderr.strip()[-300:]}")
    rows: list[dict[str, Any]] = json.loads(out.stdout or "[]")
    return rows


def self_check(sim: Sim, say: Say) -> list[dict[str, Any]]:
    """Every self-check: the current state, then each timed censor toggled and back."""
    results = sim.run_checks(sim.checks(), "pre")
    toggled: list[str] = []
    for ev in sim.scenario.events:
        if ev.censor not in toggled:
            toggled.append(ev.censor)
    for cid in toggled:
        t = sim.technique(cid)
        initially = sim.active.get(cid, False)
        sim.set_active(cid, not initially)
        on_checks = t.checks() if not initially else t.checks_removed()
        results += sim.run_checks(on_checks, f"timed-{'on' if not initially else 'off'}-{cid}")
        sim.set_active(cid, initially)
        back = t.checks_removed() if not initially else t.checks()
        results += sim.run_checks(back, f"timed-back-{cid}")
    sim.reset_state()
    return results


def run_scenario(scenario: Scenario, opts: RunOptions = RunOptions(), say: Say = print,
                 on_up: Callable[[Sim], None] | None = None) -> ScenarioResult:
    """Up → self-checks → probe → compare → down (always)."""
    result = ScenarioResult(scenario.name, scenario.description, scenario.techniques)
    t0 = time.monotonic()
    sim: Sim | None = None
    try:
        sim = Sim.start(scenario, mode="run", control=opts.control, say=say,
                        probe_timeout=opts.timeout)
        result.prefix = sim.prefix
        result.timings.update(sim.timings)
        result.censors = [{"id": t.id, "technique": t.name, "router": t.router,
                           "hop": sim.topo.hop_of(t.router)} for t in sim.techniques]
        if on_up is not None:
            on_up(sim)
        t1 = time.monotonic()
        result.selfchecks = self_check(sim, say)
        result.timings["selfcheck"] = time.monotonic() - t1
        result.selfcheck_ok = all(c["ok"] for c in result.selfchecks)
        if not result.selfcheck_ok and not opts.run_probe_on_selfcheck_failure:
            result.status = SELFCHECK_FAIL
            for t in scenario.targets:
                result.targets.append(TargetResult(t.url, t.expect_text, "-", SELFCHECK_FAIL,
                                                   t.xfail))
            return result
        if opts.selfcheck_only:
            if not result.selfcheck_ok:
                result.status = SELFCHECK_FAIL
            return result
        rows = run_probe(sim, opts, result)
        compare(scenario, rows, result)
        if not result.selfcheck_ok:
            result.status = SELFCHECK_FAIL
    except SimError as exc:
        result.status = ERROR
        result.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken scenario must not stop the catalogue
        result.status = ERROR
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if sim is not None:
            t2 = time.monotonic()
            sim.stop()
            result.timings["down"] = time.monotonic() - t2
        result.seconds = time.monotonic() - t0
    return result


def compare(scenario: Scenario, rows: list[dict[str, Any]], result: ScenarioResult) -> None:
    by_url = {r.get("url"): r for r in rows}
    seen: list[tuple[str | None, str | None]] = []
    for t in scenario.targets:
        row = by_url.get(normalise_url(t.url)) or by_url.get(t.url)
        if row is None:
            result.targets.append(TargetResult(t.url, t.expect_text, "(no result)", FAIL, t.xfail))
            continue
        verdict, method = row.get("verdict"), row.get("method")
        seen.append((verdict, method))
        got = f"{verdict}/{method}" if method else str(verdict)
        status = judge(t.expect, t.xfail, verdict, method)
        if t.families is not None:
            details = row.get("details")
            fams = details.get("families") if isinstance(details, dict) else None
            got += " " + (",".join(f"{k}:{v}" for k, v in sorted(fams.items()))
                          if isinstance(fams, dict) else "no-families")
            if fams != dict(t.families) and status == PASS:
                status = FAIL
        if t.quic is not None:  # the QUIC finding beside the verdict (issue 15)
            quic = ((row.get("details") or {}).get("quic") or {}).get("method")
            got += f" [{quic}]"
            if quic != t.quic and status == PASS:
                status = FAIL
        result.targets.append(TargetResult(t.url, t.expect_text, got, status, t.xfail,
                                           row.get("confidence"), str(row.get("evidence", ""))))
    for req in scenario.require:
        met = any(req.matches(v, m) for v, m in seen)
        xfail = any(t.xfail for t in scenario.targets)
        result.require.append({"expect": str(req), "met": met})
        if not met and not xfail:
            result.status = FAIL
    if any(t.status == FAIL for t in result.targets):
        result.status = FAIL


def run_many(scenarios: Iterable[Scenario], opts: RunOptions = RunOptions(), jobs: int = 1,
             say: Say = print, on_done: Callable[[ScenarioResult], None] | None = None,
             ) -> list[ScenarioResult]:
    """Run scenarios (``jobs`` at once), in order of the input; results in the same order."""
    items = list(scenarios)
    results: list[ScenarioResult | None] = [None] * len(items)
    lock = threading.Lock()

    def one(i: int) -> None:
        r = run_scenario(items[i], opts, say=lambda m: None)
        results[i] = r
        with lock:
            if on_done:
                on_done(r)

    if jobs <= 1:
        for i in range(len(items)):
            one(i)
    else:
        pool = ThreadPoolExecutor(max_workers=jobs)
        try:
            futures = [pool.submit(one, i) for i in range(len(items))]
            for f in futures:
                f.result()
        finally:
            # on Ctrl-C: queued scenarios never start; running ones tear down as they end
            pool.shutdown(wait=True, cancel_futures=True)
    return [r for r in results if r is not None]


# --- rendering -----------------------------------------------------------------------------
def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_scenario(r: ScenarioResult, verbose: bool = False) -> str:
    lines = []
    sc_ok = "ok" if r.selfcheck_ok else ("FAILED" if r.selfcheck_ok is False else "-")
    n_checks = len(r.selfchecks)
    n_bad = sum(1 for c in r.selfchecks if not c["ok"])
    lines.append(f"{r.status:<14} {r.name}  ({r.seconds:.1f}s; self-checks {sc_ok}"
                 f" {n_checks - n_bad}/{n_checks}; techniques: {', '.join(r.techniques) or '-'})")
    if r.error:
        lines.append(f"    error: {r.error}")
    for c in r.selfchecks:
        if not c["ok"] or verbose:
            mark = "ok " if c["ok"] else "BAD"
            lines.append(f"    self-check {mark} [{c['ns']}] {c['id']}: {c['why']}")
            if not c["ok"]:
                lines.append(f"        {'; '.join(c['problems'])}")
    for t in r.targets:
        lines.append(f"    {t.status:<14} {_cut(t.url, 40):<40} "
                     f"expected {_cut(t.expected, 34):<34} got {t.got}")
        if t.status in (FAIL, XPASS) and t.evidence:
            lines.append(f"        evidence: {_cut(t.evidence, 110)}")
        if t.status == XFAIL and verbose and t.xfail:
            lines.append(f"        xfail: {t.xfail}")
    for req in r.require:
        lines.append(f"    require {req['expect']}: {'met' if req['met'] else 'NOT MET'}")
    for ev in r.events:
        lines.append(f"    event at +{ev['at']}s after the probe started: {ev['action']} "
                     f"{ev['censor']}"
                     + ("" if ev["ok"] else f" FAILED {ev['error']}"))
    return "\n".join(lines)


def render_summary(results: list[ScenarioResult], wall: float) -> str:
    totals: dict[str, int] = {}
    for r in results:
        for k, v in r.counts().items():
            totals[k] = totals.get(k, 0) + v
    by_status: dict[str, int] = {}
    for r in results:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    sc = ", ".join(f"{v} {k}" for k, v in sorted(by_status.items()))
    tg = ", ".join(f"{v} {k}" for k, v in sorted(totals.items()))
    checks = sum(len(r.selfchecks) for r in results)
    bad = sum(1 for r in results for c in r.selfchecks if not c["ok"])
    return (f"{len(results)} scenarios: {sc}\ntargets: {tg}\n"
            f"self-checks: {checks - bad}/{checks} passed\nwall time: {wall:.1f}s")


def exit_code(results: list[ScenarioResult]) -> int:
    return 0 if all(r.status == PASS for r in results) else 1
