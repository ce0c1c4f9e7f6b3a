"""`make bench`: how fast and how frugal a probe run is, measured inside the simulated network.

One process run (so every ratio compares numbers taken on the same machine at the same time):

1. bring up the benchmark world (:mod:`probe.lab.bench.sites`) with the simulated network's own
   API (:class:`probe.lab.simnet.sim.Sim`), plus a control helper sized for the concurrency sweep;
2. warm up (one short run, not counted);
3. ``repeat`` times: the mixed 1,000-target list at the default concurrency and its 50-target
   subset at concurrency 1. Every run is ``python -m probe run`` as a subprocess *inside the
   client namespace*, exactly as a volunteer would start it; its wall time is the process's,
   its CPU time and peak RSS come from ``os.wait4`` (the kernel's accounting of that child);
   per-target start/end times are read back from the run's database;
4. a concurrency sweep on a 200-target subset (speed-up up to the default and beyond, for
   choosing the default);
5. peak memory on the fast list at 1,000 and 10,000 targets;
6. the report over ~1M verdicts (:func:`probe.lab.bench.report_case.bench_report`);
7. the ``im`` group (the messengers, issue 14) in its own worlds: time against the lower bound
   from its timeouts, bytes sent per app test (:func:`probe.lab.bench.im_case.bench_im`);
8. ``probe import ooni`` at 100k and 1M measurements synthesised from the real corpus
   (:func:`probe.lab.bench.import_case.bench_import`; no simulated network, no root:
   ``--only-import`` runs it alone);
9. the cost of ``--doh``, ``--dot``, ``--http3`` and dual stack per target, against the plain
   run, in two small worlds of its own (:func:`probe.lab.bench.protocols_case.bench_protocols`;
   ``--only-protocols`` runs it alone, about a minute);
10. the collector (issue 16): 50 probes uploading at once, and ``probe reanalyze --dask`` with
   1 then 2 workers (:func:`probe.lab.bench.collector_case.bench_collector`; loopback, no root:
   ``--only-collector`` runs it alone).

It prints where every number comes from, then the tables (medians over the repeats), and
exits 0 whatever the figures are (it is a benchmark, not a test); 1 when it could not run.
The arithmetic lives in :mod:`probe.lab.bench.stats`. Nothing here ever leaves the simulated
network: the probe runs only in the client namespace, whose world has no link out.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from probe.cli.config import CONFIG_ENV, RUN_SETTINGS
from probe.errors import ProbeError
from probe.lab.bench import sites as W
from probe.lab.bench import stats as B
from probe.lab.bench.collector_case import bench_collector, render_collector
from probe.lab.bench.im_case import bench_im, render_im
from probe.lab.bench.import_case import SIZES as IMPORT_SIZES
from probe.lab.bench.import_case import bench_import
from probe.lab.bench.import_stages import render_stages
from probe.lab.bench.protocols_case import bench_protocols, render_protocols
from probe.lab.bench.report_case import bench_report
from probe.lab.simnet import addressing as A
from probe.lab.simnet.netns import have_root
from probe.lab.simnet.sim import Sim, child_env
from probe.run.engine import DEFAULT_CONCURRENCY
from probe.store import Store

REPO = Path(__file__).resolve().parents[3]  # the checkout: probe/lab/bench/harness.py
#: Concurrencies of the sweep (besides 1, measured on the concurrency-1 subset).
SWEEP = (2, 4, 8, 16, 32)
#: The sweep runs every SWEEP_DIVISOR-th target of each class (200 of the 1,000).
SWEEP_DIVISOR = 5
#: Targets of the memory runs.
MEMORY_SIZES = (1_000, 10_000)
#: Most targets measured at once by the control helper the benchmark starts.
HELPER_CAPACITY = 64
#: Goals of issue 7.
GOAL_RATIO = 1.3
GOAL_SPEEDUP = 0.8
GOAL_MEMORY = 1.2


def say(text: str) -> None:
    """Progress on stderr (the tables go to stdout)."""
    print(text, file=sys.stderr, flush=True)


class BenchError(ProbeError, RuntimeError):
    """The benchmark could not run (no root, the world did not come up, a probe run failed)."""


@dataclass
class ProbeRun:
    """One ``probe run`` process and what it measured."""

    label: str
    concurrency: int
    targets: int
    wall: float  # seconds, process start to exit
    cpu: float  # user + system seconds of the process (and any children it waited for)
    maxrss_kb: int  # peak resident set size (kB)
    span: float  # first target's start to the last target's end (seconds)
    timed: list[B.Timed] = field(default_factory=list)
    verdicts: Counter[str] = field(default_factory=Counter)  # "class verdict/method" → n

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("timed")
        out["verdicts"] = dict(sorted(self.verdicts.items()))
        return out


# --- the simulated world ----------------------------------------------------------------------


@contextlib.contextmanager
def _terminating_cleanly() -> Iterator[None]:
    """SIGTERM/SIGHUP raise SystemExit so every ``finally`` (namespace teardown) runs."""

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def world(timeout: float) -> Iterator[tuple[Sim, str]]:
    """The benchmark world and its control helper's URL; torn down whatever happens."""
    t0 = time.monotonic()
    sim = Sim.start(W.scenario(timeout), control=False, probe_timeout=timeout)
    helper: subprocess.Popen[bytes] | None = None
    try:
        say(f"  world up in {time.monotonic() - t0:.1f}s ({len(sim.world.sites)} sites, "
            f"namespaces {sim.prefix}-*)")
        helper, url = _start_helper(sim, timeout)
        yield sim, url
    finally:
        if helper is not None and helper.poll() is None:
            helper.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                helper.wait(timeout=3)
        sim.stop()


def _start_helper(sim: Sim, timeout: float) -> tuple[subprocess.Popen[bytes], str]:
    """The control helper on the control host, as the simulator starts it but with room for
    :data:`HELPER_CAPACITY` measurements at once (the sweep goes beyond the default 8)."""
    listen = f"{A.CONTROL_IP}:{A.CONTROL_PORT}"
    argv = [sys.executable, "-m", "probe", "helper", "serve", "--listen", listen,
            "--ca-bundle", sim.files["ca"], "--resolver", A.PUBLIC_RESOLVER_IP,
            "--timeout", str(timeout), "--max-concurrent", str(HELPER_CAPACITY)]
    for cidr in [n.cidr for n in A.NETWORKS] + ["10.0.0.0/8", "127.0.0.0/8"]:
        argv += ["--allow", cidr]
    log = sim.rundir / "bench-helper.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(sim.exec_argv(argv, "ctl"), stdin=subprocess.DEVNULL,
                                stdout=fh, stderr=subprocess.STDOUT,
                                env=child_env(probe=True), start_new_session=True)
    deadline = time.monotonic() + 30
    while b"listening" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise BenchError(f"the control helper did not start: {log.read_text()[-300:]}")
        time.sleep(0.05)
    return proc, f"http://{listen}"


# --- one probe run ----------------------------------------------------------------------------


def _probe_env(config_home: Path) -> dict[str, str]:
    """The probe's environment: this checkout, consent given (the world is simulated), and no
    developer configuration (PROBE_* run settings, ~/.config/probe) leaking in."""

    env = child_env(probe=True)
    for s in RUN_SETTINGS:
        env.pop(s.env, None)
    env.pop(CONFIG_ENV, None)
    env["XDG_CONFIG_HOME"] = str(config_home)
    return env


def _iso(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Runner:
    """Runs ``probe run`` in the client namespace and reads back what it stored."""

    def __init__(self, sim: Sim, control_url: str, workdir: Path, timeout: float) -> None:
        self.sim = sim
        self.control_url = control_url
        self.workdir = workdir
        self.timeout = timeout
        self.env = _probe_env(workdir / "config")
        self.count = 0

    def argv(self, targets: Path, db: Path, concurrency: int) -> list[str]:
        f = self.sim.files
        return [sys.executable, "-m", "probe", "run", str(targets), "--db", str(db),
                "--ca-bundle", f["ca"], "--timeout", str(self.timeout),
                "--concurrency", str(concurrency), "--quiet", "--accept-risk", "--asn-db", f["asn"],
                "--canaries", f["canaries"], "--control", self.control_url]

    def run(self, label: str, urls: Iterable[str], concurrency: int,
            budget: float = 900.0) -> ProbeRun:
        self.count += 1
        targets = self.workdir / f"targets-{self.count}.txt"
        n = 0
        with open(targets, "w", encoding="utf-8") as fh:
            for url in urls:
                fh.write(url + "\n")
                n += 1
        db = self.workdir / f"run-{self.count}.db"
        log = self.workdir / f"run-{self.count}.log"
        argv = self.sim.exec_argv(self.argv(targets, db, concurrency))
        with open(log, "wb") as err:
            t0 = time.monotonic()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                    env=self.env, cwd=str(self.workdir),
                                    start_new_session=True)
            killer = threading.Timer(budget, _kill_group, (proc.pid,))
            killer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                killer.cancel()
            wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace").strip()[-400:]
            raise BenchError(f"{label}: probe run exited {proc.returncode}: {tail}")
        result = ProbeRun(label=label, concurrency=concurrency, targets=n, wall=wall,
                          cpu=usage.ru_utime + usage.ru_stime, maxrss_kb=usage.ru_maxrss,
                          span=0.0)
        _read_back(db, result)
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), targets):
            path.unlink(missing_ok=True)
        if len(result.timed) != n:
            raise BenchError(f"{label}: {len(result.timed)} of {n} targets stored")
        say(f"  {label}: {n} targets, concurrency {concurrency}: {wall:.1f}s wall, "
            f"{result.cpu:.1f}s CPU, peak RSS {result.maxrss_kb / 1024:.0f} MB")
        return result


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _read_back(db: Path, run: ProbeRun) -> None:
    """Per-target times and verdicts of the (only) run stored in ``db``."""
    with Store.open_readonly(db) as store:
        rows = [] if store.latest_run_id() is None else store.results("latest")
    for r in rows:
        klass = W.klass_of(r["hostname"])
        run.timed.append(B.Timed(klass, _iso(r["started_at"]), _iso(r["finished_at"])))
        method = r["method"]
        run.verdicts[f"{klass} {r['verdict']}{'/' + method if method else ''}"] += 1
    if run.timed:
        run.span = max(t.end for t in run.timed) - min(t.start for t in run.timed)


# --- the benchmark ----------------------------------------------------------------------------


@dataclass
class Results:
    repeat: int
    concurrency: int
    main: list[ProbeRun] = field(default_factory=list)
    serial: list[ProbeRun] = field(default_factory=list)
    sweep: list[ProbeRun] = field(default_factory=list)
    memory: list[ProbeRun] = field(default_factory=list)
    report: dict[str, Any] | None = None
    imports: dict[str, Any] | None = None
    im: dict[str, Any] | None = None
    protocols: dict[str, Any] | None = None
    collector: dict[str, Any] | None = None
    world_up: float = 0.0
    elapsed: float = 0.0


def counts_of(urls: Iterable[str]) -> Counter[str]:
    return Counter(W.klass_of(u.split("/")[2]) for u in urls)


def class_costs(serial: list[ProbeRun], timeout: float) -> dict[str, float]:
    """Unavoidable seconds per class: design costs, else the median over the repeats of the
    minimum cycle measured at concurrency 1."""
    return B.unavoidable({k.name: k.design(timeout) for k in W.MIXED}, measured_costs(serial))


def measured_costs(serial: list[ProbeRun]) -> dict[str, float]:
    """Per class: the median over the repeats of the minimum cycle at concurrency 1."""
    per_repeat = [B.class_minima(B.cycles(r.timed)) for r in serial]
    return {k: B.median(m[k] for m in per_repeat if k in m)
            for k in {k for m in per_repeat for k in m}}


def page_mbps(run: ProbeRun) -> float:
    """Page bytes the run downloaded per second of wall time, in Mbit/s (by design sizes)."""
    counts = Counter(t.klass for t in run.timed)
    size = {"healthy": W.PAGE_SIZE, "throttled": W.THROTTLED_SIZE, "fast": W.FAST_SIZE}
    return sum(n * size.get(k, 0) for k, n in counts.items()) * 8 / run.wall / 1e6


def shared_bottlenecks(counts: Counter[str]) -> list[float]:
    """Seconds the throttled pages need through their one shaped class."""
    return [counts.get("throttled", 0) * W.THROTTLED_SIZE * 8 / W.THROTTLE_BPS]


def run_bench(args: argparse.Namespace) -> Results:
    res = Results(repeat=args.repeat, concurrency=args.concurrency)
    started = time.monotonic()
    full = W.mixed_urls()
    subset = W.mixed_urls(W.SUBSET_DIVISOR)
    sweep_list = W.mixed_urls(SWEEP_DIVISOR)
    with tempfile.TemporaryDirectory(prefix="probe-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        say("bringing up the benchmark world…")
        t0 = time.monotonic()
        with world(args.timeout) as (sim, control_url):
            res.world_up = time.monotonic() - t0
            runner = Runner(sim, control_url, work, args.timeout)
            runner.run("warm-up", W.fast_urls(40), args.concurrency)
            for i in range(args.repeat):
                say(f"repeat {i + 1}/{args.repeat}")
                res.serial.append(runner.run("mixed subset", subset, 1))
                res.main.append(runner.run("mixed list", full, args.concurrency))
            if args.sweep:
                say("concurrency sweep")
                for c in SWEEP:
                    res.sweep.append(runner.run("sweep", sweep_list, c))
            if args.memory:
                say("memory")
                for n in MEMORY_SIZES:
                    res.memory.append(runner.run("fast list", W.fast_urls(n), args.concurrency,
                                                 budget=1800))
    if args.im:
        say("im group: the messengers in their own worlds (apps_ip_ranges, apps_baseline)…")
        res.im = bench_im(args.timeout, args.repeat)
    if args.report:
        say("report over ~1M verdicts (the database is generated once and cached)…")
        res.report = bench_report(args.report_dir)
    if args.imports:
        res.imports = run_import_case(args)
    if args.protocols:
        say("protocols: the cost of --doh, --dot, --http3 and dual stack per target…")
        res.protocols = bench_protocols(timeout=args.timeout, say=say)
    if args.collector:
        res.collector = run_collector_case(args)
    res.elapsed = time.monotonic() - started
    return res


def run_import_case(args: argparse.Namespace) -> dict[str, Any]:
    say("import: probe import ooni on input synthesised from tests/data/ooni (cached)…")
    return bench_import(args.report_dir, repeat=args.import_repeat, sizes=args.import_sizes,
                        workers=args.import_workers, say=say)


def run_collector_case(args: argparse.Namespace) -> dict[str, Any]:
    say("collector: 50 probes uploading at once, then probe reanalyze --dask (1 and 2 workers)…")
    with tempfile.TemporaryDirectory(prefix="probe-bench-collector-") as tmp:
        return bench_collector(Path(tmp), say=say)


def render_import(figures: dict[str, Any]) -> str:
    """The import section: per size, measurements/s, per core, cores used, peak RSS."""
    out = [f"probe import ooni (input synthesised from {figures.get('templates', '?')} real "
           "measurements in tests/data/ooni; medians; per core = measurements per CPU second "
           "of the importer and its workers)"]
    rows = []
    for n, f in figures["sizes"].items():
        rows.append([f"{int(n):,} measurements", str(int(f["repeats"])), _f(f["wall_s"]),
                     _f(f["rate"], 0), _f(f["per_core"], 0), _f(f["cores"], 2),
                     _f(f["rss_mb"]), _f(f["worker_rss_mb"])])
    out.append(B.render_table(["import", "runs", "wall s", "measurements/s", "per core",
                               "cores used", "peak RSS MB", "worker RSS MB"], rows))
    sizes = list(figures["sizes"].values())
    per_core = sizes[-1]["per_core"]
    out.append(f"goal ≥ {B.GOAL_IMPORT_PER_CORE:,.0f} measurements/s per core: "
               f"{per_core:,.0f} {B.within(B.GOAL_IMPORT_PER_CORE, per_core)}")
    if len(sizes) > 1:
        out.append(f"goal peak RSS at {int(sizes[-1]['measurements']):,} ≤ "
                   f"{B.GOAL_IMPORT_MEMORY} × at {int(sizes[0]['measurements']):,}: "
                   f"{_f(figures['rss_ratio'], 2)} × "
                   f"{B.within(figures['rss_ratio'], B.GOAL_IMPORT_MEMORY)}")
    if figures.get("stages"):
        out.append(render_stages(figures["stages"]))
    return "\n".join(out)


# --- output -----------------------------------------------------------------------------------


def _f(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}"


def render(res: Results, args: argparse.Namespace) -> str:
    out: list[str] = []
    costs = class_costs(res.serial, args.timeout)
    measured = measured_costs(res.serial)
    full_counts = counts_of(W.mixed_urls())
    sub_counts = counts_of(W.mixed_urls(W.SUBSET_DIVISOR))
    c = res.concurrency
    lb_main = B.lower_bound(full_counts, costs, c, shared_bottlenecks(full_counts))
    lb_serial = B.lower_bound(sub_counts, costs, 1, shared_bottlenecks(sub_counts))
    wall_main = B.median(r.wall for r in res.main)
    wall_serial = B.median(r.wall for r in res.serial)
    n_main, n_serial = res.main[0].targets, res.serial[0].targets
    speed = B.speedup(wall_serial, n_serial, wall_main, n_main)

    out.append(f"probe benchmark: medians of {res.repeat} runs, measured in one process "
               f"({_f(res.elapsed / 60)} min)")
    out.append("")
    out.append("Speed (mixed list: " + ", ".join(
        f"{k.count} {k.name}" for k in W.MIXED) + f"; every step's timeout {args.timeout:g}s)")
    rows = []
    for label, runs, n, conc, lb in (
        ("mixed list", res.main, n_main, c, lb_main),
        ("mixed subset", res.serial, n_serial, 1, lb_serial),
    ):
        wall = B.median(r.wall for r in runs)
        rows.append([f"{label}, concurrency {conc}", str(n), _f(wall), _f(B.rate(n, wall), 2),
                     _f(lb), _f(B.ratio(wall, lb), 2),
                     _f(B.speedup(wall_serial, n_serial, wall, n), 2)])
    out.append(B.render_table(
        ["run", "targets", "wall s", "targets/s", "lower bound s", "wall/bound", "speed-up"],
        rows))
    ratio_main = B.ratio(wall_main, lb_main)
    out.append(f"goal wall/bound ≤ {GOAL_RATIO} at concurrency {c}: {_f(ratio_main, 2)} "
               f"{B.within(ratio_main, GOAL_RATIO)}; goal speed-up ≥ {GOAL_SPEEDUP} × {c} = "
               f"{_f(GOAL_SPEEDUP * c)}: {_f(speed)} "
               f"{B.within(GOAL_SPEEDUP * c, speed)}")
    out.append("")
    if res.sweep:
        out.append(f"Concurrency sweep ({res.sweep[0].targets} targets of the same mix, one run "
                   "each; speed-up against the concurrency-1 subset)")
        sweep_counts = counts_of(W.mixed_urls(SWEEP_DIVISOR))
        serial = res.serial[0]
        serial_healthy = [t.end - t.start for t in serial.timed if t.klass == "healthy"]
        rows = [["1 (subset)", str(n_serial), _f(wall_serial), _f(B.rate(n_serial, wall_serial),
                 2), _f(B.ratio(wall_serial, lb_serial), 2), "1.00",
                 _f(serial.cpu / serial.wall * 100, 0), _f(page_mbps(serial), 1),
                 _f(B.median(serial_healthy) * 1000, 0), "-"]]
        for r in res.sweep:
            lb = B.lower_bound(sweep_counts, costs, r.concurrency,
                               shared_bottlenecks(sweep_counts))
            sp = B.speedup(wall_serial, n_serial, r.wall, r.targets)
            healthy = [t.end - t.start for t in r.timed if t.klass == "healthy"]
            wrong = sum(n for key, n in r.verdicts.items()
                        if key.startswith("healthy ") and key != "healthy ok")
            rows.append([str(r.concurrency), str(r.targets), _f(r.wall), _f(B.rate(r.targets,
                         r.wall), 2), _f(B.ratio(r.wall, lb), 2), _f(sp, 2),
                         _f(r.cpu / r.wall * 100, 0), _f(page_mbps(r), 1),
                         _f(B.median(healthy) * 1000, 0), str(wrong)])
        out.append(B.render_table(
            ["concurrency", "targets", "wall s", "targets/s", "wall/bound", "speed-up",
             "probe CPU %", "pages Mbit/s", "healthy median ms", "healthy not ok"], rows))
        out.append("")
    out.append("Memory and CPU (peak RSS of the `probe run` process)")
    rows = []
    for r in [*res.memory, res.main[0]]:
        label = "mixed list" if r in res.main else "fast list"
        rows.append([f"{label}, {r.targets} targets", _f(r.maxrss_kb / 1024),
                     _f(r.cpu), _f(r.cpu / r.targets * 1000, 1)])
    cpu_per_target = B.median(x.cpu / x.targets for x in res.main)
    rows.append(["mixed list, median of repeats", "-", "-", _f(cpu_per_target * 1000, 1)])
    out.append(B.render_table(["run", "peak RSS MB", "CPU s", "CPU ms/target"], rows))
    if len(res.memory) == 2:
        growth = res.memory[1].maxrss_kb / res.memory[0].maxrss_kb
        out.append(f"goal peak RSS at 10k ≤ {GOAL_MEMORY} × at 1k: {_f(growth, 2)} × "
                   f"{B.within(growth, GOAL_MEMORY)}")
    out.append("")
    if res.report:
        rep = res.report
        out.append(f"Report over {rep['verdicts']:,} verdicts ({rep['runs']:,} runs, "
                   f"{rep['targets']} targets, {rep['db_mb']} MB database; median of "
                   f"{rep['repeat']})")
        out.append(B.render_table(
            ["step", "seconds"],
            [["build (load + aggregate)", _f(rep["build_s"], 2)],
             ["render HTML", _f(rep["render_html_s"], 2)],
             ["total (wall)", _f(rep["total_s"], 2)],
             ["total (CPU)", _f(rep["total_cpu_s"], 2)]]))
        out.append("")
    if res.im:
        out.append(render_im(res.im))
    if res.imports:
        out.append(render_import(res.imports))
    if res.protocols:
        out.append(render_protocols(res.protocols))
        out.append("")
    if res.collector:
        out.append(render_collector(res.collector))
        out.append("")
    out.append("Unavoidable seconds per target (lower-bound inputs; measured = median over the "
               "repeats of the class's minimum cycle at concurrency 1)")
    rows = []
    for k in W.MIXED:
        src = "design" if k.design(args.timeout) is not None else "measured"
        seen = measured.get(k.name)
        rows.append([k.name, str(k.count), _f(costs[k.name], 3), src,
                     "-" if seen is None else _f(seen, 3), k.what])
    out.append(B.render_table(["class", "in 1000", "seconds", "from", "measured", "what"],
                              rows))
    out.append("")
    out.append("Verdicts of the last mixed-list run: " + ", ".join(
        f"{k} {n}" for k, n in sorted(res.main[-1].verdicts.items())))
    return "\n".join(out)


def preamble(args: argparse.Namespace) -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return "\n".join([
        "Where the numbers come from:",
        f"  machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"Linux {platform.release()}",
        "  world: probe.lab.bench.sites (simnet namespaces; censor on the ISP router; a control "
        f"helper on the control host, up to {HELPER_CAPACITY} measurements at once)",
        "  each run: ip netns exec <client ns> python -m probe run TARGETS --db DB --ca-bundle "
        f"CA --timeout {args.timeout:g} --concurrency C --quiet --asn-db ASN --canaries "
        "CANARIES --control URL",
        "  wall = that process's start to exit; CPU and peak RSS = os.wait4() rusage of that "
        "process; per-target times from its database",
        "  lower bound and ratios: probe/lab/bench/stats.py (method in docs/bench.md)",
        "",
    ])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m probe.lab.bench",
                                description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="repeats of the speed runs (3)")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                   help=f"the concurrency under test (default: the probe's, {DEFAULT_CONCURRENCY})")
    p.add_argument("--timeout", type=float, default=W.TIMEOUT, help="every step's timeout")
    p.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the sweep")
    p.add_argument("--no-memory", dest="memory", action="store_false",
                   help="skip the 1k/10k memory runs")
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="skip the 1M-verdict report case")
    p.add_argument("--no-im", dest="im", action="store_false",
                   help="skip the im group case (the messengers, issue 14)")
    p.add_argument("--no-import", dest="imports", action="store_false",
                   help="skip the probe import case")
    p.add_argument("--no-protocols", dest="protocols", action="store_false",
                   help="skip the --doh/--dot/--http3/dual-stack cost case")
    p.add_argument("--only-protocols", action="store_true",
                   help="run only the --doh/--dot/--http3/dual-stack cost case (root)")
    p.add_argument("--no-collector", dest="collector", action="store_false",
                   help="skip the collector and Dask case")
    p.add_argument("--only-collector", action="store_true",
                   help="run only the collector and Dask case (loopback, no root)")
    p.add_argument("--only-import", action="store_true",
                   help="run only the probe import case (no simulated network, no root)")
    p.add_argument("--import-sizes", type=lambda s: tuple(int(x) for x in s.split(",")),
                   default=IMPORT_SIZES, help="measurements per import, comma-separated "
                   "(100000,1000000)")
    p.add_argument("--import-repeat", type=int, default=3,
                   help="repeats of the smallest import (3)")
    p.add_argument("--import-workers", type=int, default=None,
                   help="worker processes of the import (default: one per CPU)")
    p.add_argument("--report-dir", type=Path, default=REPO / "reports" / "bench",
                   help="where the report case caches its database")
    p.add_argument("--json", type=Path, help="also write every figure as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only_import:
        return main_import(args)
    if args.only_collector:
        return main_collector(args)
    ok, why = have_root()
    if not ok:
        print(f"probe bench: {why}", file=sys.stderr)
        return 1
    if args.only_protocols:
        return main_protocols(args)
    if shutil.which("ip") is None:
        print("probe bench: needs iproute2", file=sys.stderr)
        return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 65536):  # the world serves 2,000 sites: two sockets each
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    print(preamble(args), flush=True)
    try:
        with _terminating_cleanly():
            res = run_bench(args)
    except BenchError as e:
        print(f"probe bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("probe bench: interrupted (the simulated network was removed)", file=sys.stderr)
        return 130
    except SystemExit as e:  # SIGTERM/SIGHUP (see _terminating_cleanly)
        print("probe bench: stopped (the simulated network was removed)", file=sys.stderr)
        return int(e.code) if isinstance(e.code, int) else 1
    print(render(res, args), flush=True)
    if args.json:
        data = {"results": {k: [r.summary() for r in getattr(res, k)]
                            for k in ("main", "serial", "sweep", "memory")},
                "report": res.report, "imports": res.imports, "im": res.im,
                "collector": res.collector, "protocols": res.protocols,
                "class_costs": class_costs(res.serial, args.timeout),
                "elapsed_s": res.elapsed, "world_up_s": res.world_up}
        args.json.write_text(json.dumps(data, indent=1))
    return 0


def main_protocols(args: argparse.Namespace) -> int:
    """``--only-protocols``: the --doh/--dot/--http3/dual-stack cost case alone."""
    started = time.monotonic()
    try:
        with _terminating_cleanly():
            figures = bench_protocols(timeout=args.timeout, say=say)
    except (ProbeError, RuntimeError, OSError) as e:
        print(f"probe bench: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit):
        print("probe bench: stopped (the simulated network was removed)", file=sys.stderr)
        return 130
    print(f"probe benchmark, protocols only ({_f((time.monotonic() - started) / 60)} min; "
          f"{os.cpu_count()} CPUs)")
    print(render_protocols(figures), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"protocols": figures}, indent=1))
    return 0


def main_collector(args: argparse.Namespace) -> int:
    """``--only-collector``: the collector and Dask case alone."""
    started = time.monotonic()
    try:
        figures = run_collector_case(args)
    except (ProbeError, RuntimeError, OSError) as e:
        print(f"probe bench: {e}", file=sys.stderr)
        return 1
    print(f"probe benchmark, collector only ({_f((time.monotonic() - started) / 60)} min; "
          f"{os.cpu_count()} CPUs)")
    print(render_collector(figures), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"collector": figures}, indent=1))
    return 0


def main_import(args: argparse.Namespace) -> int:
    """``--only-import``: the import case alone."""
    started = time.monotonic()
    try:
        figures = run_import_case(args)
    except (ProbeError, RuntimeError, OSError) as e:
        print(f"probe bench: {e}", file=sys.stderr)
        return 1
    print(f"probe benchmark, import only ({_f((time.monotonic() - started) / 60)} min; "
          f"{os.cpu_count()} CPUs)")
    print(render_import(figures), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"imports": figures}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
