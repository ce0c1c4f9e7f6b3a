"""`make demo`: run the probe end to end against an embedded world that never leaves the machine.

As root (where network namespaces can be made) the demo runs the Kazakhstan-like scenario of the
simulated censoring network. Elsewhere it falls back to a small world on loopback (a DNS server,
HTTP and HTTPS servers with a test CA: a healthy site, one refusing connections, one timing out,
one with a bad certificate). Either way it stores the run in a database under ``reports/`` and
prints the results table. Then (:func:`collector_demo`, issue 16) two probes — a copy of that
database and a small synthetic one — upload to a collector on loopback, and a report is written
over the collector's database (``reports/demo-collector.html``).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from probe.lab.simnet.kazakhstan_demo import simnet_demo
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world
from probe.measure.settings import MeasureSettings, Resolver
from probe.report.run_results import render_results
from probe.run.engine import run_targets
from probe.store import Store
from probe.targets import parse_url

DEMO_DIR = Path("reports")


def loopback_demo(db_path: Path) -> str:
    """Measure the loopback demo world; returns the rendered results table."""

    with tempfile.TemporaryDirectory(prefix="probe-demo-") as tmp:
        with LoopbackWorld(demo_world(tmp)) as world:
            targets = [parse_url(u) for u in demo_urls(world).values()]
            host, port = world.dns_address
            settings = MeasureSettings.with_timeout(
                3.0,
                use_system_resolver=False,
                resolvers=(Resolver(host, port),),
                ca_bundle=world.ca_pem,
            )
            progress = asyncio.run(
                run_targets(targets, len(targets), settings, str(db_path), concurrency=4)
            )
    with Store.open_readonly(db_path) as store:
        rows = store.results(progress.run_id)
    return render_results(rows, "table", width=120)


def collector_demo(directory: Path, probe_db: Path) -> int:
    """Two probes upload to a collector on loopback; a report over the collector's database."""
    import shutil
    import subprocess

    from probe.collector.upload import upload
    from probe.lab.bench.collector_case import CollectorProcess, enroll, fill_probe_db

    print("probe demo: two probes upload to a collector on loopback (probe collector serve)")
    with tempfile.TemporaryDirectory(prefix="probe-demo-collector-") as tmp:
        work = Path(tmp)
        first, second = work / "volunteer-1.db", work / "volunteer-2.db"
        with Store.open(probe_db) as store:
            store.checkpoint()  # every row in the file, then a copy: the demo's queue stays
        shutil.copy(probe_db, first)
        fill_probe_db(second, 12, seed=5)
        db = work / "collector.db"
        with CollectorProcess(db) as collector:
            for name, path in (("volunteer-1", first), ("volunteer-2", second)):
                probe_id, token = enroll(db, name)
                r = upload(str(path), collector.url, token)
                print(f"  {name} ({probe_id}): {r.accepted} measurements uploaded "
                      f"in {r.batches} batch(es), {r.pending} pending")
        out = directory / "demo-collector.html"
        rep = subprocess.run(
            [sys.executable, "-m", "probe", "report", "--db", str(db), "--since", "2020-01-01",
             "--out", str(out)], capture_output=True, text=True, timeout=120)
        if rep.returncode != 0:
            print(rep.stderr.strip(), file=sys.stderr)
            return 1
    print(f"  report over the collector's database: {out}")
    return 0


def main() -> int:
    DEMO_DIR.mkdir(exist_ok=True)
    if os.geteuid() == 0 and "--loopback" not in sys.argv:
        status = simnet_demo(DEMO_DIR)
        db_path = DEMO_DIR / "demo-simnet.db"
    else:
        db_path = DEMO_DIR / "demo-loopback.db"
        print("probe demo: loopback world (no root, so no simulated censoring network)")
        print(loopback_demo(db_path))
        print(f"stored in {db_path}")
        status = 0
    if status != 0 or "--no-collector" in sys.argv:
        return status
    return collector_demo(DEMO_DIR, db_path)


if __name__ == "__main__":
    sys.exit(main())
