"""One owner per run (issue 13): resuming a run whose owner is stopped, not dead, is refused
with the reason and how long to wait; a dead owner's run is taken over at once; a stopped
owner continued after a take-over stores nothing more; no target is measured twice.

Real processes: ``python -m probe run`` in a subprocess, stopped with SIGSTOP, continued with
SIGCONT or killed with SIGKILL; the resumer runs through the CLI's boundary.
"""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe.cli.root import app
from probe.errors import StorageError
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world
from probe.run import lease
from tests.clirunner import CliRunner

pytestmark = pytest.mark.timeout(90)

N = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackWorld]:
    with LoopbackWorld(demo_world(tmp_path_factory.mktemp("world"))) as w:
        yield w


def _args(world: LoopbackWorld, db: Path) -> list[str]:
    host, port = world.dns_address
    return ["--db", str(db), "--no-system-resolver", "--resolver", f"{host}:{port}",
            "--ca-bundle", world.ca_pem, "--timeout", "2", "--quiet"]


def _query(db: Path, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return []  # not created yet
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _start_owner(world: LoopbackWorld, tmp_path: Path) -> tuple[subprocess.Popen[str], Path,
                                                                Path, str]:
    """A probe run of N targets, slowed to 4 a second, once it owns its run and stored 3."""
    ok = demo_urls(world)["ok"]
    targets = tmp_path / "list.txt"
    targets.write_text("".join(f"{ok}page{i}\n" for i in range(N)))
    db = tmp_path / "p.db"
    proc = subprocess.Popen([sys.executable, "-m", "probe", "run", str(targets),
                             *_args(world, db), "--rate", "4", "--concurrency", "1"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        leased = _query(db, "select run_id from run_leases")
        stored = _query(db, "select count(*) from measurements")
        if leased and stored and stored[0][0] >= 3:
            return proc, db, targets, leased[0][0]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the owner did not start")


def _each_once(db: Path, run_id: str) -> None:
    urls = [u for (u,) in _query(db, f"select url from measurements where run_id='{run_id}'")]
    assert len(urls) == N and len(set(urls)) == N, (len(urls), len(set(urls)))


def test_stopped_owner_refused_then_taken_over_after_its_lease_and_stores_nothing(
        world: LoopbackWorld, tmp_path: Path) -> None:
    owner, db, targets, run_id = _start_owner(world, tmp_path)
    try:
        owner.send_signal(signal.SIGSTOP)
        res = CliRunner().invoke(app, ["run", str(targets), *_args(world, db),
                                       "--resume", run_id])
        assert res.exit_code == 1, res.output
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, res.stderr
        assert f"owned by probe process {owner.pid} on this machine" in lines[0]
        assert "lease runs out in" in lines[0] and " s " in lines[0]
        stored_before = _query(db, "select count(*) from measurements")[0][0]
        # time passes: the stopped owner's lease lapses (it cannot renew it while stopped)
        con = sqlite3.connect(db, timeout=10)
        with con:
            con.execute("update run_leases set expires_at = '2000-01-01T00:00:00.000000Z'")
        con.close()
        res = CliRunner().invoke(app, ["run", str(targets), *_args(world, db),
                                       "--resume", run_id])
        assert res.exit_code == 0, res.output
        assert _query(db, f"select status from runs where run_id='{run_id}'") == [
            ("completed",)]
        _each_once(db, run_id)
        owner.send_signal(signal.SIGCONT)
        _, err = owner.communicate(timeout=30)
        assert owner.returncode == 1, err
        assert "taken over by another probe process" in err.strip().splitlines()[-1]
        _each_once(db, run_id)  # the continued owner stored nothing
        assert _query(db, f"select status from runs where run_id='{run_id}'") == [
            ("completed",)]
        assert stored_before < N
    finally:
        owner.kill()
        owner.wait()


def test_dead_owner_is_taken_over_at_once(world: LoopbackWorld, tmp_path: Path) -> None:
    owner, db, targets, run_id = _start_owner(world, tmp_path)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    expires = _query(db, "select expires_at from run_leases")[0][0]
    assert expires > dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")  # still valid
    res = CliRunner().invoke(app, ["run", str(targets), *_args(world, db), "--resume", run_id])
    assert res.exit_code == 0, res.output
    _each_once(db, run_id)
    assert _query(db, "select count(*) from run_leases") == [(0,)]  # released at the end


NOW = dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)
ME = lease.Owner("mine", 100, "host-a", "boot-1")


def _holder(pid: int = 200, host: str = "host-a", boot: str = "boot-1",
            left: float = 20.0) -> lease.Holder:
    return lease.Holder(lease.Owner("theirs", pid, host, boot), NOW + dt.timedelta(seconds=left))


@pytest.mark.parametrize(("holder", "alive", "last_seen_ago", "refused"), [
    (None, False, 3600, None),                                   # old run, long silent
    (None, False, 5, "resume it again in 25 s"),                 # old run, just active
    (_holder(), True, 0, "owned by probe process 200 on this machine"),  # stopped or live
    (_holder(), False, 0, None),                                 # pid gone: dead
    (_holder(left=-1), True, 0, None),                           # lease lapsed
    (_holder(host="host-b"), False, 0, "another machine or boot"),  # cannot see its pid
    (_holder(boot="boot-0"), False, 0, "another machine or boot"),  # before a reboot
    (_holder(boot=""), False, 0, "another machine or boot"),     # boot unknown: expiry only
])
def test_who_may_take_a_run_over(holder: lease.Holder | None, alive: bool,
                                 last_seen_ago: float, refused: str | None) -> None:
    why = lease.refusal("r1", holder, NOW - dt.timedelta(seconds=last_seen_ago), ME, NOW,
                        alive=lambda pid: alive)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why, why


def test_claiming_is_a_compare_and_swap(tmp_path: Path) -> None:
    from probe.store import Store

    a = lease.Owner("a", 1, "h", "b")
    b = lease.Owner("b", 2, "h", "b")
    c = lease.Owner("c", 3, "h", "b")
    with Store.open(tmp_path / "p.db") as first, Store.open(tmp_path / "p.db") as second:
        run = first.start_run({}, 1)
        assert first.claim_run(run, lease.lease_fields(a), None, 30)
        # two resumers judged owner a dead: one wins, the other finds the lease changed
        assert second.claim_run(run, lease.lease_fields(b), "a", 30)
        assert not second.claim_run(run, lease.lease_fields(c), "a", 30)
        with pytest.raises(StorageError, match="taken over"):
            first.touch_run(run)  # the old owner may not renew, write or finish
        with pytest.raises(StorageError, match="taken over"):
            first.finish_run(run, "completed")
        second.finish_run(run, "completed")
        assert not first.claim_run(run, lease.lease_fields(a), None, 30)  # completed
        assert second.run_claim_state(run)["lease"] is None
