"""probe watch inside the simulated network across a shutdown: runs before, during, after.

The timed-shutdown scenario's world is brought up; `probe watch` runs in the client namespace;
the test cuts the network (the scenario's own full-shutdown technique) after the first run and
restores it once a run has met the cut. The database must then hold a run with everything ok,
a run whose targets are all `shutdown/shutdown.full` (never blocked) plus health-only rounds
while offline, and a run after the cut that is ok again.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from probe.lab.simnet import scenario as S
from probe.lab.simnet.scenario_run import RunOptions, probe_argv
from probe.lab.simnet.sim import Sim, child_env

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
]


def _runs(db: Path) -> list[tuple[str, int, str]]:
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT run_id, targets_total, status FROM runs "
                               "ORDER BY started_at").fetchall()
    except sqlite3.OperationalError:
        return []


def _wait(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_watch_records_runs_before_during_and_after_a_cut(tmp_path):
    sc = S.load(S.find("shutdown_timed"))
    (cut,) = [t.id for t in sc.censors]
    db = tmp_path / "watch.db"
    sim = Sim.start(sc)
    proc = None
    try:
        argv = probe_argv(sim, db, RunOptions(db=db))
        argv[argv.index("run")] = "watch"
        argv += ["--every", "1s", "--jitter", "0", "--health-every", "1s", "--max-runs", "3",
                 "--accept-risk", "--concurrency", "12"]
        proc = subprocess.Popen(sim.exec_argv(argv), env=child_env(probe=True),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                cwd=str(sim.rundir))

        def full_runs_done() -> int:
            return sum(1 for _, total, status in _runs(db) if total and status == "completed")

        _wait(lambda: full_runs_done() >= 1, 90, "the first run")
        sim.set_active(cut, True)
        _wait(lambda: full_runs_done() >= 2, 120, "a run during the cut")
        _wait(lambda: any(total == 0 and status == "completed" for _, total, status in _runs(db)),
              60, "a health-only round")
        sim.set_active(cut, False)
        _, err = proc.communicate(timeout=150)
        assert proc.returncode == 0, err
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        sim.stop()
    con = sqlite3.connect(db)
    runs = _runs(db)
    full = [r for r in runs if r[1]]
    assert len(full) == 3 and all(status == "completed" for _, _, status in runs)
    health_only = [r for r in runs if not r[1]]
    assert health_only, "no health-only rounds while the network was cut"

    def verdicts(run_id: str) -> set[str]:
        return {f"{v}/{m}" if m else v for v, m in con.execute(
            "SELECT v.verdict, v.method FROM verdicts v JOIN measurements m "
            "USING (measurement_id) WHERE v.is_current = 1 AND m.run_id = ?", [run_id])}

    before, during, after = (verdicts(r[0]) for r in full)
    assert before == {"ok"}
    assert during == {"shutdown/shutdown.full"}  # never blocked, never down
    assert after == {"ok"}
    states = [s for (s,) in con.execute(
        "SELECT group_concat(scope || '=' || coalesce(failure, 'up')) FROM health_samples "
        "WHERE run_id = ? GROUP BY at", [health_only[0][0]])]
    assert states and all("international=up" not in s for s in states)
