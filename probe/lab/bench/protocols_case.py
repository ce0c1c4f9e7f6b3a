"""Benchmark case: what the issue-15 measurements (``--doh``, ``--dot``, ``--http3``, dual stack)
cost per target in time and bytes, against the plain run, in the simulated network.

Two small worlds built in memory with the simulated network's API (nothing leaves the
namespaces): an IPv4-only one and a dual-stack one (``ipv6 = true``), each with
:data:`SITES` healthy sites that answer like the main benchmark's (32 kB after 0.2 s) and as
many that also serve HTTP/3 and advertise it in ``Alt-Svc``. Every run is
``python -m probe run`` in the client namespace, as a volunteer starts it (world CA, canaries,
ASN database, the world's control helper), at the probe's default concurrency, after one
short warm-up run per world (not counted):

* **plain**: the sites without HTTP/3, no option: today's run, the reference of every ratio;
* **--doh** / **--dot**: the same list with the public resolver's DoH URL / DoT name added (one
  more resolver per target, the HTTPS or TLS exchange underneath included);
* **--http3**: the sites that serve HTTP/3 (a QUIC handshake and an HTTP/3 GET per address after
  the TCP path);
* **dual stack**: the plain list in the dual-stack world (AAAA lookups, IPv6 connects, the IPv6
  canaries), and everything together there (``--doh --dot --http3`` on the HTTP/3 sites).

Figures per run: wall time of the process; the median of the targets' own durations (start to
end, from the run's database); and **bytes**: received + sent by every interface of the
client namespace (``/sys/class/net/*/statistics/{rx,tx}_bytes``, loopback excluded) from just
before the process starts to just after it exits. Only the probe runs in that namespace, so
this is everything the run put on or took off the volunteer's link — headers of every layer
down to Ethernet, DNS, handshakes, the control helper's requests and the health canaries
included — which is what a volunteer on a metered link pays. Divided by the targets, it is the
cost per target with the run's fixed part (canaries, start-up) spread over them.
"""

from __future__ import annotations

import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from probe.lab.simnet import addressing as A
from probe.lab.simnet import scenario as S
from probe.lab.simnet.sim import Sim, child_env
from probe.run.engine import DEFAULT_CONCURRENCY
from probe.store import Store

#: Sites of each kind (without / with HTTP/3) in each world: one run measures all of a kind.
SITES = 100
#: Body size and server-side delay of every page: the main benchmark's healthy class.
PAGE_SIZE = 32_000
DELAY = 0.2
#: Every network step's deadline (``probe run --timeout``), seconds.
TIMEOUT = 2.0
NETWORKS = ("eu-host", "us-host", "ru-host", "cdn", "kz-host", "cdn-kz")

#: The runs: label, world ("v4" or "dual"), list ("h1" = sites without HTTP/3, "h3" = with),
#: extra ``probe run`` options. The first is the reference of the ratios.
RUNS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("plain", "v4", "h1", ()),
    ("--doh", "v4", "h1", ("--doh", A.PUBLIC_DOH_URL)),
    ("--dot", "v4", "h1", ("--dot", A.PUBLIC_RESOLVER_NAME)),
    ("--http3 (sites serve HTTP/3)", "v4", "h3", ("--http3",)),
    ("dual stack", "dual", "h1", ()),
    ("dual stack --doh --dot --http3", "dual", "h3",
     ("--doh", A.PUBLIC_DOH_URL, "--dot", A.PUBLIC_RESOLVER_NAME, "--http3")),
)


def hostname(kind: str, index: int) -> str:
    return f"{kind}{index:04d}.bench-proto.net"


def urls(kind: str, count: int = SITES) -> list[str]:
    return [f"https://{hostname(kind, i)}/" for i in range(count)]


def scenario(ipv6: bool, count: int = SITES, timeout: float = TIMEOUT) -> S.Scenario:
    """One world of this case (validated by simnet's own parser)."""
    sites = []
    for n, (kind, h3) in enumerate((k, h) for k, h in (("h1", False), ("h3", True))
                                   for _ in range(count)):
        sites.append({"host": hostname(kind, n % count), "net": NETWORKS[n % len(NETWORKS)],
                      "size": PAGE_SIZE, "delay": DELAY, "http3": h3})
    data = {
        "description": "benchmark: the cost of --doh, --dot, --http3 and dual stack per target",
        "timeout": timeout,
        "ipv6": ipv6,
        "sites": sites,
        "targets": [{"url": u, "expect": "ok"} for u in urls("h1", count) + urls("h3", count)],
    }
    return S.parse(data, "bench-protocols", "<probe.lab.bench.protocols_case>")


def link_bytes(sim: Sim) -> int:
    """Bytes received + sent so far by every interface of the client namespace but ``lo``."""
    script = ("for d in /sys/class/net/*; do [ \"${d##*/}\" = lo ] && continue; "
              "echo $(cat $d/statistics/rx_bytes) $(cat $d/statistics/tx_bytes); done")
    out = subprocess.run(sim.exec_argv(["sh", "-c", script]), capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return sum(int(x) for line in out.splitlines() for x in line.split())


def _iso(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _probe(sim: Sim, targets: list[str], work: Path, label: str, extra: tuple[str, ...],
           timeout: float, concurrency: int) -> dict[str, Any]:
    """One ``probe run`` in the client namespace; its wall time, bytes, per-target times."""
    n = len(list(work.glob("*.db")))
    listing = work / f"targets-{n}.txt"
    listing.write_text("".join(u + "\n" for u in targets))
    db = work / f"run-{n}.db"
    argv = [sys.executable, "-m", "probe", "run", str(listing), "--db", str(db), "--ca-bundle",
            sim.files["ca"], "--timeout", str(timeout), "--concurrency", str(concurrency),
            "--quiet", "--accept-risk", "--asn-db", sim.files["asn"], "--canaries",
            sim.files["canaries"], *extra]
    if sim.control_url:
        argv += ["--control", sim.control_url]
    before = link_bytes(sim)
    t0 = time.monotonic()
    proc = subprocess.run(sim.exec_argv(argv), capture_output=True, text=True, timeout=600,
                          env=child_env(probe=True), cwd=str(work))
    wall = time.monotonic() - t0
    moved = link_bytes(sim) - before
    if proc.returncode != 0:
        raise RuntimeError(f"{label}: probe run exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-300:]}")
    with Store.open_readonly(db) as store:
        rows = store.results("latest")
    if len(rows) != len(targets):
        raise RuntimeError(f"{label}: {len(rows)} of {len(targets)} targets stored")
    durations = [_iso(r["finished_at"]) - _iso(r["started_at"]) for r in rows]
    verdicts = Counter(r["verdict"] for r in rows)
    return {"label": label, "targets": len(rows), "wall_s": wall, "bytes": moved,
            "median_ms": statistics.median(durations) * 1000,
            "verdicts": dict(sorted(verdicts.items()))}


def bench_protocols(count: int = SITES, timeout: float = TIMEOUT,
                    concurrency: int = DEFAULT_CONCURRENCY, say: Any = None) -> dict[str, Any]:
    """Bring up the two worlds in turn, run :data:`RUNS`; the figures (see the docstring)."""
    out: dict[str, Any] = {"sites": count, "timeout": timeout, "concurrency": concurrency,
                           "runs": []}
    lists = {"h1": urls("h1", count), "h3": urls("h3", count)}
    with tempfile.TemporaryDirectory(prefix="probe-bench-protocols-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        for world in ("v4", "dual"):
            t0 = time.monotonic()
            sim = Sim.start(scenario(world == "dual", count, timeout), probe_timeout=timeout)
            try:
                if say:
                    say(f"  protocols: {world} world up in {time.monotonic() - t0:.1f}s")
                # warm-up, not counted: the first run of a world pays for cold caches
                _probe(sim, lists["h3"][:4], work, "warm-up", ("--http3",), timeout, concurrency)
                for label, where, kind, extra in RUNS:
                    if where != world:
                        continue
                    r = _probe(sim, lists[kind], work, label, extra, timeout, concurrency)
                    if say:
                        say(f"  protocols: {label}: {r['wall_s']:.1f}s, "
                            f"{r['bytes'] / r['targets'] / 1024:.1f} KiB/target, {r['verdicts']}")
                    out["runs"].append(r)
            finally:
                sim.stop()
    return out


def render_protocols(figures: dict[str, Any]) -> str:
    """The table: per run, targets, wall s, median per-target ms, KiB per target, ratios."""
    from probe.lab.bench.stats import render_table

    runs = figures["runs"]
    ref = runs[0]
    ref_ms, ref_b = ref["median_ms"], ref["bytes"] / ref["targets"]
    rows = []
    for r in runs:
        per = r["bytes"] / r["targets"]
        rows.append([r["label"], str(r["targets"]), f"{r['wall_s']:.1f}",
                     f"{r['median_ms']:.0f}", f"{per / 1024:.1f}",
                     f"{r['median_ms'] / ref_ms:.2f}", f"{per / ref_b:.2f}",
                     " ".join(f"{k} {n}" for k, n in r["verdicts"].items())])
    head = (f"Cost of the issue-15 measurements ({figures['sites']} healthy sites per run, "
            f"32 kB after 0.2 s; concurrency {figures['concurrency']}, timeout "
            f"{figures['timeout']:g}s; bytes = rx + tx of the client namespace's link, every "
            "layer, control and canaries included)")
    return head + "\n" + render_table(
        ["run", "targets", "wall s", "median ms/target", "KiB/target", "× ms", "× bytes",
         "verdicts"], rows)


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m probe.lab.bench.protocols_case")
    p.add_argument("--sites", type=int, default=SITES)
    p.add_argument("--timeout", type=float, default=TIMEOUT)
    args = p.parse_args()

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    print(render_protocols(bench_protocols(args.sites, args.timeout, say=say)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
