"""`make demo`: run the probe end to end against an embedded world that never leaves the machine.

As root (where network namespaces can be made) the demo runs the Kazakhstan-like scenario of the
simulated censoring network. Elsewhere it falls back to a small world on loopback (a DNS server,
HTTP and HTTPS servers with a test CA: a healthy site, one refusing connections, one timing out,
one with a bad certificate). Either way it stores the run in a database under ``reports/`` and
prints the results table.
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


def main() -> int:
    DEMO_DIR.mkdir(exist_ok=True)
    if os.geteuid() == 0 and "--loopback" not in sys.argv:
        return simnet_demo(DEMO_DIR)
    db_path = DEMO_DIR / "demo-loopback.db"
    print("probe demo: loopback world (no root, so no simulated censoring network)")
    print(loopback_demo(db_path))
    print(f"stored in {db_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
