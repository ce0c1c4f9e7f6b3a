"""The command line end to end on the loopback world: run, results, targets, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe.cli.root import app
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world
from tests.clirunner import CliRunner

CONTRACT = {"run_id", "url", "hostname", "category", "started_at", "verdict", "method",
            "confidence", "evidence", "analysis_version"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with LoopbackWorld(demo_world(tmp_path_factory.mktemp("world"))) as w:
        yield w


def _run_args(world, db: Path) -> list[str]:
    host, port = world.dns_address
    return ["--db", str(db), "--no-system-resolver", "--resolver", f"{host}:{port}",
            "--ca-bundle", world.ca_pem, "--timeout", "3", "--quiet"]


def test_run_then_results_json_follows_the_contract(world, tmp_path):
    runner = CliRunner()
    urls = demo_urls(world)
    db = tmp_path / "p.db"
    res = runner.invoke(app, ["run", urls["ok"], urls["refused"], urls["nxdomain"],
                              *_run_args(world, db)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["results", "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 3
    for row in rows:
        assert CONTRACT <= row.keys()
        assert row["started_at"].endswith("Z")
        assert 0.0 <= row["confidence"] <= 1.0
    by_url = {r["url"]: r for r in rows}
    assert by_url[urls["ok"]]["verdict"] == "ok"
    # without a control vantage a failure cannot be called blocked or down
    assert by_url[urls["refused"]]["method"] == "no_control"
    assert "refused" in by_url[urls["refused"]]["evidence"]
    assert by_url[urls["nxdomain"]]["details"]["failure"] == "dns_nxdomain_error"
    table = runner.invoke(app, ["results", "--db", str(db)])
    assert table.exit_code == 0 and "no_control" in table.stdout
    csv_out = runner.invoke(app, ["results", "--db", str(db), "--format", "csv"])
    assert csv_out.stdout.splitlines()[0].startswith("run_id,")


def test_bad_list_gets_file_line_errors_and_stores_nothing(world, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "url,category_code,category_description,date_added,source,notes\n"
        "https://ok.example/,NEWS,News,2024-01-01,x,\n"
        "ftp://x.example/,NEWS,News,2024-01-01,x,\n"
        "https://y.example/,NOPE,?,2024-01-01,x,\n"
    )
    db = tmp_path / "p.db"
    res = CliRunner().invoke(app, ["run", str(bad), *_run_args(world, db)])
    assert res.exit_code == 1
    assert f"{bad}:3: " in res.output and f"{bad}:4: " in res.output
    if db.exists():
        assert sqlite3.connect(db).execute("select count(*) from runs").fetchone()[0] == 0
    res = CliRunner().invoke(app, ["targets", "validate", str(bad)])
    assert res.exit_code == 1 and f"{bad}:3: " in res.output


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["run", "https://a.example/", "--resolver", "not-an-ip"], 2),
        (["run", "https://a.example/", "--concurrency", "0"], 2),
        (["results", "--format", "xml"], 2),
        (["run"], 2),
    ],
)
def test_bad_usage_exits_2(args, code, tmp_path):
    res = CliRunner().invoke(app, [*args, "--db", str(tmp_path / "x.db")])
    assert res.exit_code == code, res.output


def test_shipped_lists_validate_and_list():
    root = Path(__file__).resolve().parents[2] / "targets"
    res = CliRunner().invoke(app, ["targets", "validate", str(root / "kz.csv"),
                                   str(root / "global.csv")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["targets", "list", str(root / "kz.csv"), "--category",
                                   "NEWS"])
    assert res.exit_code == 0 and "\tNEWS" in res.stdout


def test_ctrl_c_keeps_finished_targets_and_marks_the_run_interrupted(world, tmp_path):
    urls = demo_urls(world)
    db = tmp_path / "p.db"
    args = _run_args(world, db)
    args[args.index("--timeout") + 1] = "30"  # the hanging site would block for 30 s
    proc = subprocess.Popen(
        [sys.executable, "-m", "probe", "run", urls["ok"], urls["timeout"], *args,
         "--concurrency", "2"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        deadline = time.monotonic() + 20
        done = 0
        while time.monotonic() < deadline and done < 1:
            time.sleep(0.2)
            if db.exists():
                try:
                    done = sqlite3.connect(db).execute(
                        "select count(*) from measurements").fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
        assert done == 1, "the healthy target never finished"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "INTERRUPTED" in err
    con = sqlite3.connect(db)
    assert con.execute("select status from runs").fetchone()[0] == "interrupted"
    assert con.execute("select url from measurements").fetchall() == [(urls["ok"],)]
    assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
