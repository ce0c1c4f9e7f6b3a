"""Volunteers in the field, on loopback: watch across an outage, kill -9, resume, two writers.

The simulated network has its own watch-across-a-timed-shutdown scenario; these tests check
the same machinery quickly with loopback canaries that are switched off and on.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from probe.cli.root import app
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world
from probe.measure.settings import MeasureSettings, Resolver
from probe.run.engine import RunOptions
from probe.run.watch import WatchPlan, next_pause, parse_duration, watch
from probe.targets import parse_url
from tests.clirunner import CliRunner


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with LoopbackWorld(demo_world(tmp_path_factory.mktemp("world"))) as w:
        yield w


def _settings(world, timeout=1.0) -> MeasureSettings:
    host, port = world.dns_address
    return MeasureSettings.with_timeout(timeout, use_system_resolver=False,
                                        resolvers=(Resolver(host, port),),
                                        ca_bundle=world.ca_pem)


def _cli_args(world, db: Path, timeout: str = "1.5") -> list[str]:
    host, port = world.dns_address
    return ["--db", str(db), "--no-system-resolver", "--resolver", f"{host}:{port}",
            "--ca-bundle", world.ca_pem, "--timeout", timeout, "--quiet"]


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900),
                                                 ("1.5h", 5400), ("1d", 86400), ("250ms", 0.25)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "0", "-5m", "15 minutes", "m"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


def test_jitter_stays_within_bounds():
    import random

    rng = random.Random(1)
    pauses = [next_pause(WatchPlan(every=100, jitter=0.2), rng) for _ in range(200)]
    assert min(pauses) >= 80 and max(pauses) <= 120 and len(set(pauses)) > 100


class _Switch:
    """A TCP listener that can be turned on and off: a canary for a network that comes back."""

    def __init__(self) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.sock: socket.socket | None = None

    def on(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)

    def off(self) -> None:
        if self.sock:
            self.sock.close()
            self.sock = None


def test_watch_rides_out_an_outage_and_measures_when_it_returns(world, tmp_path):
    switch = _Switch()
    canaries = (("gateway", "127.0.0.1:9"),  # refused: the local link is up
                ("domestic", f"http://127.0.0.1:{switch.port}/"),
                ("international", f"http://127.0.0.1:{switch.port}/"))
    options = RunOptions(concurrency=2, canaries=canaries, health_interval=30)
    db = tmp_path / "watch.db"
    urls = demo_urls(world)
    events: list[str] = []

    def event(text: str) -> None:
        events.append(text)
        if text.startswith("network shutdown.full: health check") and \
                sum("health check" in e for e in events) == 2:
            switch.on()  # connectivity returns during the second pause

    try:
        log = asyncio.run(watch(lambda: [parse_url(urls["ok"])], _settings(world), str(db),
                                options, WatchPlan(every=0.3, jitter=0.0, health_every=0.1,
                                                   max_runs=2), on_event=event))
    finally:
        switch.off()
    assert [p.network for p in log.full_runs] == ["shutdown.full", "whole"]
    assert len(log.health_runs) == 2
    assert log.health_runs[0].network == "shutdown.full"
    assert log.health_runs[-1].network == "whole"
    con = sqlite3.connect(db)
    runs = con.execute("select targets_total, status from runs order by started_at").fetchall()
    assert runs == [(1, "completed"), (0, "completed"), (0, "completed"), (1, "completed")]
    verdicts = [r[0] for r in con.execute(
        "select v.verdict from verdicts v join measurements m using (measurement_id) "
        "where v.is_current = 1 order by m.started_at")]
    # the healthy site was reachable even during the "cut": only its canaries were off
    assert verdicts == ["ok", "ok"]
    # full runs sample before and after, health-only runs once; 3 canaries each time
    assert con.execute("select count(*) from health_samples").fetchone()[0] == (2 + 1 + 1 + 2) * 3


def test_watch_stops_cleanly_on_sigterm(world, tmp_path):
    db = tmp_path / "w.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "probe", "watch", demo_urls(world)["ok"], "--every", "1h",
         *_cli_args(world, db)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if db.exists() and _count(db, "select count(*) from runs where status='completed'"):
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert _count(db, "select count(*) from runs where status='completed'") == 1


def _count(db: Path, sql: str) -> int:
    try:
        return int(sqlite3.connect(db, timeout=5).execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _list(tmp_path: Path, urls: list[str]) -> Path:
    path = tmp_path / "list.txt"
    path.write_text("\n".join(urls) + "\n")
    return path


def test_kill_9_keeps_finished_targets_and_resume_measures_only_the_rest(world, tmp_path):
    urls = demo_urls(world)
    fast = [urls["ok"], urls["refused"], urls["nxdomain"], urls["plain"]]
    targets = _list(tmp_path, [*fast, urls["timeout"]])
    db = tmp_path / "k.db"
    args = _cli_args(world, db, timeout="30")  # the hanging site would take 30 s
    proc = subprocess.Popen([sys.executable, "-m", "probe", "run", str(targets), *args,
                             "--concurrency", "5"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _count(db, "select count(*) from measurements") < 4:
            time.sleep(0.1)
        assert _count(db, "select count(*) from measurements") == 4
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    con = sqlite3.connect(db)
    assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert con.execute("select status from runs").fetchone()[0] == "running"
    run_id = con.execute("select run_id from runs").fetchone()[0]
    con.execute("update runs set last_seen_at = '2000-01-01T00:00:00.000000Z'")  # long dead
    con.commit()
    con.close()
    # the next start marks the dead run interrupted; --resume then measures only the missing
    short = _cli_args(world, db)
    res = CliRunner().invoke(app, ["run", urls["ok"], *short])
    assert res.exit_code == 0, res.output
    assert _count(db, f"select count(*) from runs where run_id='{run_id}' "
                      "and status='interrupted'") == 1
    res = CliRunner().invoke(app, ["run", str(targets), *short, "--resume", run_id[:20]])
    assert res.exit_code == 0, res.output
    con = sqlite3.connect(db)
    got = sorted(r[0] for r in con.execute(
        "select url from measurements where run_id = ?", [run_id]))
    assert got == sorted([*fast, urls["timeout"]])  # each target exactly once
    assert con.execute("select status from runs where run_id = ?",
                       [run_id]).fetchone()[0] == "completed"
    res = CliRunner().invoke(app, ["run", str(targets), *short, "--resume", run_id])
    assert res.exit_code == 1 and "only an interrupted run can be resumed" in res.output


def test_two_probes_and_a_reader_share_one_database(world, tmp_path):
    urls = demo_urls(world)
    targets = _list(tmp_path, [urls["ok"], urls["refused"], urls["nxdomain"], urls["plain"]])
    db = tmp_path / "shared.db"
    CliRunner().invoke(app, ["results", "--db", str(db)])  # create the schema first
    env = {**os.environ, "PROBE_ACCEPT_RISK": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "probe", "run", str(targets),
                               *_cli_args(world, db), "--concurrency", "1"], env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    reads: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            reads.append(_count(db, "select count(*) from verdicts"))
            time.sleep(0.05)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        outcomes = [p.communicate(timeout=60) for p in procs]
    finally:
        stop.set()
        thread.join()
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outcomes
    con = sqlite3.connect(db)
    assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert con.execute("select count(*), sum(status='completed') from runs").fetchone() == (2, 2)
    assert con.execute("select count(*) from measurements").fetchone()[0] == 8
    assert reads and max(reads) >= 1
    res = CliRunner().invoke(app, ["results", "--db", str(db), "--format", "json"])
    assert len(json.loads(res.stdout)) == 4


@pytest.mark.parametrize("path", ["/proc/probe-test/p.db", "/proc/version"])
def test_unusable_database_is_a_one_line_error(world, path):
    res = CliRunner().invoke(app, ["run", demo_urls(world)["ok"], *_cli_args(world, Path(path))])
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("probe: error:") and path in lines[0]
