"""Probes uploading to a real collector process on loopback: round trip, resume, TLS, load,
kill -9 of either side (counted: nothing lost, nothing twice), and the commands."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trustme

from probe.cli.root import app
from probe.collector.upload import UploadOptions, check_url, upload
from probe.errors import StorageError, UsageError
from probe.lab.bench.collector_case import (
    CollectorProcess,
    enroll,
    fill_probe_db,
    fleet,
    received,
)
from probe.run.watch import WatchPlan, upload_round
from probe.store import Store
from probe.store.outbox import Outbox
from tests.clirunner import CliRunner

FAST = UploadOptions(batch_size=10, base_delay=0.05, max_delay=0.5, attempts=200, timeout=10)


def _pending(db: Path) -> int:
    with Store.open(db) as store:
        return Outbox(store).status().pending


def _wait_received(db: Path, at_least: int, proc: subprocess.Popen | None = None,
                   timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(db).exists():
            with contextlib.suppress(sqlite3.Error, StorageError):
                n = received(db)[0]
                if n >= at_least:
                    return n
        if proc is not None and proc.poll() is not None:
            raise AssertionError("the uploader ended before it was killed")
        time.sleep(0.02)
    raise AssertionError(f"fewer than {at_least} measurements arrived in {timeout}s")


def test_an_upload_arrives_namespaced_once_and_every_read_command_reads_it(tmp_path):
    col = tmp_path / "collector.db"
    ids = fill_probe_db(tmp_path / "p.db", 12)
    probe_id, token = enroll(col, "one")
    with CollectorProcess(col) as c:
        r = upload(str(tmp_path / "p.db"), c.url, token, FAST)
        assert (r.accepted, r.duplicates, r.refused, r.pending, r.batches) == (12, 0, 0, 0, 2)
        again = upload(str(tmp_path / "p.db"), c.url, token, FAST)
        assert (again.accepted, again.batches) == (0, 0)  # resumes: nothing left to send
        more = fill_probe_db(tmp_path / "p.db", 3, seed=9)
        assert upload(str(tmp_path / "p.db"), c.url, token, FAST).accepted == 3
    conn = sqlite3.connect(col)
    stored = {r[0] for r in conn.execute("SELECT measurement_id FROM measurements")}
    assert stored == {f"{m}@{probe_id}" for m in ids + more}
    assert conn.execute("SELECT count(*) FROM verdicts WHERE is_current = 1").fetchone()[0] == 15
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    conn.close()
    runner = CliRunner()
    out = runner.invoke(app, ["export", "--format", "jsonl", "--db", str(col), "--out", "-"])
    assert out.exit_code == 0, out.output
    assert sum(line.startswith("{") for line in out.output.splitlines()) == 15
    rep = runner.invoke(app, ["report", "--db", str(col), "--format", "json", "--out", "-"])
    assert rep.exit_code == 0, rep.output
    cmp = runner.invoke(app, ["compare", "--db", str(col), "--format", "json"])
    assert cmp.exit_code == 0, cmp.output  # the collector's two runs are the two periods
    ana = runner.invoke(app, ["reanalyze", "--db", str(col)])
    assert ana.exit_code == 0 and "reanalyzed 15 measurements" in ana.output


def test_tls_is_built_in(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    col = tmp_path / "collector.db"
    fill_probe_db(tmp_path / "p.db", 4)
    _, token = enroll(col)
    with CollectorProcess(col, "--tls-cert", str(tmp_path / "server.pem"),
                          "--tls-key", str(tmp_path / "server.pem")) as c:
        assert c.url.startswith("https://")
        r = upload(str(tmp_path / "p.db"), c.url, token,
                   UploadOptions(ca_bundle=str(tmp_path / "ca.pem")))
        assert r.accepted == 4


@pytest.mark.parametrize(("url", "ok"), [
    ("https://collector.example:8790", True), ("http://127.0.0.1:8790/", True),
    ("http://[::1]:1", True), ("http://collector.example", False), ("ftp://x", False),
])
def test_a_token_never_crosses_a_network_in_clear_text(url, ok):
    if ok:
        assert check_url(url) == url.rstrip("/")
    else:
        with pytest.raises(UsageError):
            check_url(url)


def test_fifty_probes_at_once_every_measurement_arrives_exactly_once(tmp_path):
    col = tmp_path / "collector.db"
    with CollectorProcess(col, "--rate", "1000") as c:
        f = fleet(tmp_path, c, probes=50, per_probe=8, batch_size=4)
    assert f.errors == []
    assert (f.arrived, f.distinct) == (400, 400)
    assert all(_pending(tmp_path / f"probe-{i:03d}.db") == 0 for i in range(50))


def test_kill_9_of_the_collector_mid_upload_loses_nothing_and_stores_nothing_twice(tmp_path):
    col, db = tmp_path / "collector.db", tmp_path / "p.db"
    fill_probe_db(db, 300)
    _, token = enroll(col)
    c = CollectorProcess(col).start()
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(upload(str(db), c.url, token, FAST)))
    t.start()
    try:
        _wait_received(col, 30)
        c.kill(signal.SIGKILL)
        killed_at = received(col)[0]
        assert killed_at < 300
        c = CollectorProcess(col, port=c.port).start()  # the same address: the probe retries
        t.join(120)
        assert not t.is_alive()
    finally:
        c.kill()
    assert len(result) == 1 and getattr(result[0], "pending", None) == 0, result
    assert received(col) == (300, 300)
    assert _pending(db) == 0


def test_kill_9_of_the_probe_mid_upload_then_retry_loses_nothing_and_sends_nothing_twice(
        tmp_path):
    col, db = tmp_path / "collector.db", tmp_path / "p.db"
    fill_probe_db(db, 200)
    _, token = enroll(col)
    with CollectorProcess(col) as c:
        proc = subprocess.Popen(
            [sys.executable, "-m", "probe", "upload", "--db", str(db), "--collector", c.url,
             "--token", token, "--batch-size", "5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_received(col, 40, proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert received(col)[0] < 200
        assert _pending(db) > 0
        r = upload(str(db), c.url, token, FAST)
    assert r.pending == 0
    assert received(col) == (200, 200)
    with Store.open(db) as store:
        s = Outbox(store).status()
    assert (s.pending, s.sent, s.refused) == (0, 200, 0)


def test_watch_uploads_after_a_round_and_keeps_the_queue_when_it_cannot(tmp_path):
    col, db = tmp_path / "collector.db", tmp_path / "p.db"
    fill_probe_db(db, 5)
    _, token = enroll(col)
    with CollectorProcess(col) as c:
        line = upload_round(str(db), WatchPlan(60, collector=c.url, collector_token=token))
        assert line.startswith("upload: 5 sent")
        fill_probe_db(db, 2, seed=3)
        down = upload_round(str(db), WatchPlan(60, collector=c.url, collector_token="wrong"))
    assert "kept in the queue" in down and "unknown token" in down
    assert _pending(db) == 2


def test_the_commands(tmp_path, monkeypatch):
    runner = CliRunner()
    col, db = tmp_path / "collector.db", tmp_path / "p.db"
    fill_probe_db(db, 3)
    out = runner.invoke(app, ["collector", "enroll", "--db", str(col), "--label", "kitchen"])
    assert out.exit_code == 0, out.output
    lines = dict(line.split(" ", 1) for line in out.output.splitlines())
    probe_id, token = lines["probe_id"], lines["token"]
    st = runner.invoke(app, ["upload", "--db", str(db), "--status"])
    assert st.exit_code == 0 and "pending 3" in st.output
    missing = runner.invoke(app, ["upload", "--db", str(db)])
    assert missing.exit_code == 2 and "--collector" in missing.output
    with CollectorProcess(col) as c:
        config = tmp_path / "config.toml"
        config.write_text(f'collector = "{c.url}"\ncollector_token = "{token}"\n')
        up = runner.invoke(app, ["upload", "--db", str(db), "--config", str(config)])
        assert up.exit_code == 0, up.output
        assert "uploaded 3 measurements" in up.output
        listed = runner.invoke(app, ["collector", "probes", "--db", str(col)])
        assert f"{probe_id}\tvalid\t3 measurements\tkitchen" in listed.output
        rv = runner.invoke(app, ["collector", "revoke", "--db", str(col), probe_id])
        assert rv.exit_code == 0
        fill_probe_db(db, 1, seed=4)
        refused = runner.invoke(app, ["upload", "--db", str(db), "--config", str(config)])
        assert refused.exit_code == 1 and "token revoked" in refused.output
    again = runner.invoke(app, ["collector", "revoke", "--db", str(col), probe_id])
    assert again.exit_code == 2
    # the collector logged the batch and the refusal, and no client address
    assert any("3 accepted" in line for line in c.log), c.log
    assert any("token revoked" in line for line in c.log), c.log
    assert not any("127.0.0.1" in line for line in c.log if "listening" not in line), c.log


def test_probe_watch_uploads_after_its_round(tmp_path):
    from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world

    col, db = tmp_path / "collector.db", tmp_path / "w.db"
    _, token = enroll(col)
    with LoopbackWorld(demo_world(tmp_path / "world")) as world, CollectorProcess(col) as c:
        host, port = world.dns_address
        res = subprocess.run(
            [sys.executable, "-m", "probe", "watch", demo_urls(world)["ok"], "--max-runs", "1",
             "--db", str(db), "--no-system-resolver", "--resolver", f"{host}:{port}",
             "--ca-bundle", world.ca_pem, "--timeout", "1.5", "--collector", c.url,
             "--collector-token", token],
            capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "upload: 1 sent" in res.stderr
    assert received(col) == (1, 1)
    assert _pending(db) == 0
