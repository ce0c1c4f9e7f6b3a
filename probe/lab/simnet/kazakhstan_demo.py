"""`make demo` on the simulated censoring network: the Kazakhstan-like scenario end to end, then
the messengers' cut of January 2022 (``apps_ip_ranges``) beside it.

Brings up ``scenarios/kazakhstan.toml`` (SNI drops, interception, throttling, an outage and a
shutdown window in the middle of the run), runs the probe inside it, keeps the probe's database
under the demo directory, prints the expected-vs-got table and the probe's own results table,
and writes a report when this checkout's probe has ``probe report``. Everything it creates in
the network is torn down before it returns.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from probe.lab.simnet import scenario as S
from probe.lab.simnet.scenario_run import (
    ERROR,
    SELFCHECK_FAIL,
    RunOptions,
    render_scenario,
    run_scenario,
)
from probe.lab.simnet.sim import child_env
from probe.store import Store

DEMO_SCENARIO = "kazakhstan"
#: The messengers' step (issue 14): January 2022's cut of the messengers by IP ranges while the
#: web works, a run of its own (the kazakhstan scenario measures one target at a time around a
#: timed shutdown window; 34 WhatsApp endpoints there would push it past its time budget).
APPS_SCENARIO = "apps_ip_ranges"


def _probe(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "probe", *args], capture_output=True, text=True,
                          env=child_env(probe=True), cwd="/", timeout=300)


def simnet_demo(directory: Path) -> int:
    """Run the demo scenario; the probe's database lands in ``directory``. Exit status."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "demo-simnet.db"  # kept across demos: the second one shows a comparison
    sc = S.load(S.find(DEMO_SCENARIO))
    print(f"probe demo: {sc.description}")
    print("bringing up the simulated network, self-checking it, running the probe inside it…",
          flush=True)
    result = run_scenario(sc, RunOptions(db=db), say=lambda m: None)
    print(render_scenario(result))
    if result.status in (ERROR, SELFCHECK_FAIL):
        return 1
    table = _probe(["results", "--db", str(db), "--format", "table"])
    print("\nthe probe's results:")
    print(table.stdout or table.stderr, end="")
    apps_db = directory / "demo-simnet-apps.db"
    apps = S.load(S.find(APPS_SCENARIO))
    print(f"\nthe messengers: {apps.description}", flush=True)
    result = run_scenario(apps, RunOptions(db=apps_db), say=lambda m: None)
    print(render_scenario(result))
    if result.status in (ERROR, SELFCHECK_FAIL):
        return 1
    table = _probe(["results", "--db", str(apps_db), "--format", "table"])
    print("\nthe probe's results (apps beside a website):")
    print(table.stdout or table.stderr, end="")
    out = directory / "demo-simnet-report.html"
    rep = _probe(["report", "--db", str(db), "--db", str(apps_db), "--format", "html",
                  "--out", str(out), "--tz", "Asia/Almaty"])
    if rep.returncode != 0:
        print(f"report not written: {rep.stderr.strip()[-300:]}")
        return 1
    with Store.open_readonly(db) as store:
        runs = len(store.run_ids())
    if runs >= 2:
        cmp = _probe(["compare", "--db", str(db), "--tz", "Asia/Almaty"])
        print("\nwhat changed since the previous demo run (probe compare previous latest):")
        print(cmp.stdout or cmp.stderr, end="")
    else:
        print("\n(run `make demo` again: the second run ends with `probe compare` of the two)")
    print(f"stored in {db}")
    print(f"report: {out}")
    return 0


def main() -> int:
    return simnet_demo(Path("reports"))


if __name__ == "__main__":
    sys.exit(main())
