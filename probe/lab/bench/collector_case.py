"""Benchmark case: many probes uploading to one collector, and re-analysis on Dask.

Responsibility: the loopback fleet the collector's tests, demo and benchmark share — probe
databases filled with plausible measurements (:func:`fill_probe_db`), a collector run as its
own process (:class:`CollectorProcess`: ``python -m probe collector serve`` on 127.0.0.1, so
it can be killed with SIGKILL and its RSS read from ``/proc``) and probes uploading at once
(:func:`fleet`) — and the two figures of ``make bench`` for issue 16:

* **upload**: ``probes`` probes × ``per_probe`` measurements uploading at once (one thread
  each, each its own database and token): measurements/s over the whole fleet, p95 latency of
  one acknowledged batch, the collector's peak RSS (``VmHWM``); every measurement must arrive
  exactly once (counted in the collector's database);
* **dask**: ``probe reanalyze --dask`` of one database on a local cluster of 1 then 2 worker
  processes: wall time, speed-up, peak RSS of each worker (``ru_maxrss`` read on the workers).

``python -m probe.lab.bench.collector_case [WORKDIR]`` runs it alone and prints JSON;
``python -m probe.lab.bench --only-collector`` prints the table. Loopback only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.classify import Context, classify
from probe.model import (
    DNSAnswer,
    DNSObservation,
    HTTPObservation,
    Measurement,
    Target,
    TCPObservation,
    TLSObservation,
)
from probe.store import Store
from probe.store.collector import CollectorStore
from probe.store.readonly import connect_readonly

_LISTENING = re.compile(r"collector listening on (\S+)")


def _measurement(i: int, seed: int) -> Measurement:
    """Measurement ``i`` of a probe: an https fetch that worked, a DNS NXDOMAIN or a TCP
    reset, one second apart (distinct start times, so distinct ids)."""
    host = f"site{(i * 7 + seed) % 97}.test"
    url = f"https://{host}/"
    t = time.gmtime(1_764_000_000 + seed * 100_000 + i)
    started = time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".000000Z"
    finished = time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".900000Z"
    dns_ok = DNSObservation(1, host, "A", "system", "system", 0.0, 0.01, None,
                            answers=(DNSAnswer("A", "93.184.216.34"),))
    kind = i % 3
    if kind == 1:
        dns = (DNSObservation(1, host, "A", "system", "system", 0.0, 0.01,
                              "dns_nxdomain_error"),)
        return Measurement(Target(url, host, "https", 443, "/"), started, finished, dns=dns)
    tcp = (TCPObservation(2, "93.184.216.34", 443, 0.01, 0.05,
                          "connection_reset" if kind == 2 else None),)
    if kind == 2:
        return Measurement(Target(url, host, "https", 443, "/"), started, finished,
                           dns=(dns_ok,), tcp=tcp)
    tls = (TLSObservation(2, "93.184.216.34", 443, host, 0.05, 0.2, None, "TLSv1.3",
                          "TLS_AES_128_GCM_SHA256", "h2", verified=True),)
    http = (HTTPObservation(2, url, "GET", "93.184.216.34", 443, 0.2, 0.4, None, status=200,
                            headers=(("content-type", "text/html"),),
                            body=b"<html><title>Site</title>" + b"x" * 2000,
                            body_length=2025, title=f"Site {i}"),)
    return Measurement(Target(url, host, "https", 443, "/"), started, finished,
                       dns=(dns_ok,), tcp=tcp, tls=tls, http=http)


def fill_probe_db(path: str | Path, n: int, seed: int = 0,
                  transform: Callable[[Measurement], Measurement] | None = None) -> list[str]:
    """A probe database at ``path`` with one run of ``n`` judged measurements; their ids."""
    ids = []
    with Store.open(path) as store:
        run = store.start_run({"bench": "collector"}, n)
        context = Context()
        for i in range(n):
            m = _measurement(i, seed)
            if transform is not None:
                m = transform(m)
            ids.append(store.save_measurement(run, m, classify(m, context)))
        store.finish_run(run, "completed")
    return ids


def enroll(db: str | Path, label: str | None = None, ttl_days: float | None = None
           ) -> tuple[str, str]:
    """(probe id, token) of a new probe enrolled in the collector's database ``db``."""
    with CollectorStore(db) as store:
        e = store.enroll(label, ttl_days)
    return e.probe_id, e.token


class CollectorProcess:
    """``probe collector serve`` as a child process on 127.0.0.1 (a context manager)."""

    def __init__(self, db: str | Path, *args: str, port: int = 0) -> None:
        self.db = str(db)
        self.args = args
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.log: list[str] = []

    def start(self, timeout: float = 30.0) -> CollectorProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "probe", "collector", "serve", "--db", self.db,
             "--listen", f"127.0.0.1:{self.port}", *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = _LISTENING.search(line)
            if m:
                self.url = m.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        self.kill()
        raise RuntimeError("the collector did not start")

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))

    def peak_rss_mb(self) -> float:
        """The collector's peak resident memory (``VmHWM``), MB; 0 when unknown."""
        if self.proc is None:
            return 0.0
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0.0
        m = re.search(r"VmHWM:\s+(\d+) kB", text)
        return int(m.group(1)) / 1024 if m else 0.0

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop it with ``sig`` (SIGKILL by default: no clean-up at all) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> CollectorProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.kill(signal.SIGTERM)


def received(db: str | Path) -> tuple[int, int]:
    """(rows, distinct (probe, original id)) received by the collector: equal = no duplicate."""
    conn = connect_readonly(db)
    try:
        rows = conn.execute("SELECT count(*) FROM collector_received").fetchone()[0]
        distinct = conn.execute("SELECT count(*) FROM (SELECT DISTINCT probe_id, original_id "
                                "FROM collector_received)").fetchone()[0]
        return int(rows), int(distinct)
    finally:
        conn.close()


@dataclass(slots=True)
class FleetResult:
    probes: int
    measurements: int
    wall_s: float
    arrived: int
    distinct: int
    latencies: list[float]
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.measurements / self.wall_s if self.wall_s else 0.0

    @property
    def p95_ms(self) -> float:
        if len(self.latencies) < 2:
            return 1000 * (self.latencies[0] if self.latencies else 0.0)
        return 1000 * statistics.quantiles(self.latencies, n=20)[-1]


def fleet(workdir: Path, collector: CollectorProcess, probes: int, per_probe: int,
          batch_size: int = 50) -> FleetResult:
    """``probes`` probes, each with ``per_probe`` measurements, uploading at once."""
    from probe.collector.upload import UploadOptions, upload

    dbs = []
    for i in range(probes):
        db = workdir / f"probe-{i:03d}.db"
        fill_probe_db(db, per_probe, seed=i)
        dbs.append((db, enroll(collector.db, f"bench {i}")[1]))
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(probes + 1)

    def one(db: Path, token: str) -> None:
        start.wait()
        try:
            r = upload(str(db), collector.url, token,
                       UploadOptions(batch_size=batch_size, base_delay=0.2, max_delay=2.0,
                                     attempts=8))
            with lock:
                latencies.extend(r.latencies)
        except Exception as e:  # noqa: BLE001 - counted, shown by the caller
            with lock:
                errors.append(f"{db.name}: {e}")

    threads = [threading.Thread(target=one, args=pair) for pair in dbs]
    for t in threads:
        t.start()
    start.wait()
    began = time.monotonic()
    for t in threads:
        t.join()
    wall = time.monotonic() - began
    arrived, distinct = received(collector.db)
    return FleetResult(probes, probes * per_probe, wall, arrived, distinct, latencies, errors)


def _worker_peak_mb(client: Any) -> dict[str, float]:
    import resource

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    return {str(k): float(v) for k, v in client.run(peak).items()}


def bench_dask(workdir: Path, measurements: int = 6000) -> dict[str, Any]:
    """Re-analysis of one database: single-process, then on Dask with 1 and 2 local workers
    (each cluster started and warmed before the clock starts: its start-up is shown apart);
    then the same measurements from a lossless Parquet export (``probe reanalyze --parquet``)
    on the same clusters. Wall s, speed-up of 2 workers over 1, peak RSS of the workers."""
    import shutil

    from dask.distributed import LocalCluster

    from probe.export import export
    from probe.run.distributed import reanalyze, reanalyze_parquet
    from probe.run.reanalyze import reanalyze as single

    base = workdir / f"dask-base-{measurements}.db"
    if not base.exists():
        fill_probe_db(base, measurements, seed=1)
    out: dict[str, Any] = {"measurements": measurements}
    db = workdir / "dask-single.db"
    db.write_bytes(base.read_bytes())
    began = time.monotonic()
    single(str(db))
    out["single_s"] = time.monotonic() - began
    dataset = workdir / f"dask-base-{measurements}-parquet"
    if not dataset.exists():
        began = time.monotonic()
        export(base, "parquet", dataset, lossless=True)
        out["export_lossless_s"] = time.monotonic() - began
    warm = workdir / "dask-warm.db"
    if not warm.exists():
        fill_probe_db(warm, 60, seed=2)
    warm_ds = workdir / "dask-warm-parquet"
    if not warm_ds.exists():
        export(warm, "parquet", warm_ds, lossless=True)
    for n in (1, 2):
        db = workdir / f"dask-{n}.db"
        db.write_bytes(base.read_bytes())
        peaks: dict[str, float] = {}

        def done(client: Any, peaks: dict[str, float] = peaks) -> None:
            peaks.update(_worker_peak_mb(client))

        began = time.monotonic()
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=40) as cluster:
            up = time.monotonic() - began
            # warm the workers (imports, the fingerprints' regexes) on small copies: a
            # long-lived cluster pays this once, not per re-analysis
            reanalyze(str(warm), scheduler=cluster.scheduler_address, slice_size=30)
            began = time.monotonic()
            reanalyze(str(db), scheduler=cluster.scheduler_address,
                      slice_size=max(1, measurements // 16), on_done=done)
            wall = time.monotonic() - began
            # then the Parquet path on the same workers (warmed too), after the database
            # path's peak was read: that peak is its own
            reanalyze_parquet(str(warm_ds), str(workdir / "dask-warm-out"),
                              scheduler=cluster.scheduler_address)
            judged = workdir / f"dask-parquet-out-{n}"
            shutil.rmtree(judged, ignore_errors=True)
            began = time.monotonic()
            reanalyze_parquet(str(dataset), str(judged), scheduler=cluster.scheduler_address)
            parquet_wall = time.monotonic() - began
        out[f"workers_{n}"] = {"wall_s": wall, "cluster_start_s": up,
                               "worker_peak_mb": max(peaks.values(), default=0.0),
                               "parquet_wall_s": parquet_wall}
    out["speedup"] = out["workers_1"]["wall_s"] / out["workers_2"]["wall_s"]
    out["parquet_speedup"] = (out["workers_1"]["parquet_wall_s"]
                              / out["workers_2"]["parquet_wall_s"])
    out["parquet_files"] = len(list((dataset / "records").rglob("*.parquet")))
    return out


def bench_collector(workdir: Path, probes: int = 50, per_probe: int = 40,
                    dask_measurements: int = 6000,
                    say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Both figures (see the module docstring) as a JSON-able dict."""
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("probe-*.db*"):
        old.unlink()
    db = workdir / "collector.db"
    for old in workdir.glob("collector.db*"):
        old.unlink()
    say(f"collector: {probes} probes x {per_probe} measurements uploading at once…")
    with CollectorProcess(db, "--rate", "1000") as collector:
        f = fleet(workdir, collector, probes, per_probe)
        rss = collector.peak_rss_mb()
    say(f"collector: probe reanalyze --dask of {dask_measurements} measurements, "
        "1 then 2 workers…")
    d = bench_dask(workdir, dask_measurements)
    return {"upload": {**{k: v for k, v in dataclasses.asdict(f).items() if k != "latencies"},
                       "rate": f.rate, "p95_ms": f.p95_ms, "collector_rss_mb": rss,
                       "batches": len(f.latencies)},
            "dask": d}


def render_collector(figures: dict[str, Any]) -> str:
    u, d = figures["upload"], figures["dask"]
    exact = "exactly once" if u["arrived"] == u["distinct"] == u["measurements"] else (
        f"NOT exactly once: {u['arrived']} rows, {u['distinct']} distinct")
    lines = [
        f"collector (issue 16): {u['probes']} probes x "
        f"{u['measurements'] // max(1, u['probes'])} measurements uploading at once on loopback",
        f"  {u['rate']:.0f} measurements/s, p95 batch latency {u['p95_ms']:.0f} ms "
        f"({u['batches']} batches), collector peak RSS {u['collector_rss_mb']:.0f} MB; "
        f"every measurement arrived {exact}"
        + (f"; {len(u['errors'])} probes failed" if u["errors"] else ""),
        f"  probe reanalyze --dask, {d['measurements']} measurements: 1 worker "
        f"{d['workers_1']['wall_s']:.1f} s, 2 workers {d['workers_2']['wall_s']:.1f} s "
        f"(speed-up {d['speedup']:.2f}x; single-process path {d['single_s']:.1f} s; "
        f"cluster start-up {d['workers_2']['cluster_start_s']:.1f} s apart); peak RSS per "
        f"worker {d['workers_1']['worker_peak_mb']:.0f} MB (1 worker), "
        f"{d['workers_2']['worker_peak_mb']:.0f} MB (2 workers)",
        f"  probe reanalyze --parquet (lossless export, {d['parquet_files']} records files): "
        f"1 worker {d['workers_1']['parquet_wall_s']:.1f} s, 2 workers "
        f"{d['workers_2']['parquet_wall_s']:.1f} s (speed-up {d['parquet_speedup']:.2f}x)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    workdir = Path(args[0]) if args else Path(tempfile.mkdtemp(prefix="probe-bench-col-"))
    figures = bench_collector(workdir, say=lambda s: print(s, file=sys.stderr, flush=True))
    print(json.dumps(figures, indent=1))
    print(render_collector(figures), file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PROBE_ACCEPT_RISK", "1")
    sys.exit(main())
