"""Two kinds of test in one ``probe run``: web URLs and ``tcp://`` inputs on the loopback world.

The same run schedules both under the same limits (one target per host at once, a start rate),
asks the same control helper (on loopback, in its own thread) about both, stores both the same
way (``measurements.test_name``), and ``probe results`` / ``probe report`` show both.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from probe.cli.root import app
from probe.lab.world.loopback import DEMO_SITES, LoopbackWorld, demo_urls, demo_world
from tests.helperthread import world_helper


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with LoopbackWorld(demo_world(tmp_path_factory.mktemp("world"))) as w:
        yield w


def _host(key: str) -> str:
    return DEMO_SITES[key][0]


def test_web_and_tcp_inputs_run_store_and_report_alike(world, tmp_path: Path) -> None:
    urls = demo_urls(world)
    port = world.https_port
    tcp = {
        "ok": f"tcp://{_host('ok')}:{port}",
        "refused": f"tcp://{_host('refused')}:{port}",
        "nxdomain": f"tcp://{_host('nxdomain')}:{port}",
    }
    listing = tmp_path / "mixed.txt"
    listing.write_text(f"{urls['ok']}\n{tcp['ok']}\n{urls['refused']}\n{tcp['refused']}\n"
                       f"# a comment\n{tcp['nxdomain']}\n")
    db = tmp_path / "p.db"
    dns_host, dns_port = world.dns_address
    runner = CliRunner()
    with world_helper(world) as helper:
        res = runner.invoke(app, [
            "run", str(listing), urls["plain"], "--db", str(db), "--no-system-resolver",
            "--resolver", f"{dns_host}:{dns_port}", "--ca-bundle", world.ca_pem,
            "--timeout", "2", "--quiet", "--control", helper.url,
            "--concurrency", "4", "--per-host", "1", "--rate", "20"])
    assert res.exit_code == 0, res.output

    # probe results: one row per input, both kinds, with test_name
    res = runner.invoke(app, ["results", "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["url"]: r for r in json.loads(res.stdout)}
    assert len(rows) == 6
    assert {rows[u]["test_name"] for u in tcp.values()} == {"tcp_connect"}
    assert {rows[urls[k]]["test_name"] for k in ("ok", "refused", "plain")} == {
        "web_connectivity"}
    assert rows[urls["ok"]]["verdict"] == "ok"
    assert rows[tcp["ok"]]["verdict"] == "ok"
    assert rows[tcp["ok"]]["details"]["control"]["helpers"]  # the control was asked
    # the control sees the same failure: the site is down, not blocked, and the same evidence
    # gives the same verdict whichever kind measured it
    assert rows[tcp["refused"]]["verdict"] == "down"
    assert (rows[tcp["refused"]]["verdict"], rows[tcp["refused"]]["method"]) == (
        rows[urls["refused"]]["verdict"], rows[urls["refused"]]["method"])
    assert (rows[tcp["nxdomain"]]["verdict"], rows[tcp["nxdomain"]]["method"]) == (
        "down", "down.dns")
    assert rows[tcp["refused"]]["hostname"] == _host("refused")

    # stored the same way: observations in the same tables, the control answer kept
    with sqlite3.connect(db) as con:
        kinds = dict(con.execute("SELECT url, test_name FROM measurements"))
        tcp_rows = con.execute(
            "SELECT count(*) FROM tcp_connects t JOIN measurements m USING (measurement_id) "
            "WHERE m.test_name = 'tcp_connect'").fetchone()[0]
        controls = [json.loads(d) for (d,) in con.execute(
            "SELECT c.data FROM controls c JOIN measurements m USING (measurement_id) "
            "WHERE m.url = ?", [tcp["ok"]])]
        spans = list(con.execute("SELECT hostname, started_at, finished_at FROM measurements "
                                 "ORDER BY started_at"))
    assert kinds[tcp["ok"]] == "tcp_connect" and kinds[urls["ok"]] == "web_connectivity"
    assert tcp_rows >= 2
    assert controls and controls[0]["test_name"] == "tcp_connect" and controls[0]["http"] is None

    # the same limits: one input of a host at a time, whatever its kind (--per-host 1)
    by_host: dict[str, list[tuple[str, str]]] = {}
    for hostname, started, finished in spans:
        by_host.setdefault(hostname, []).append((started, finished))
    assert len(by_host[_host("ok")]) == 2
    for intervals in by_host.values():
        for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
            assert end <= start

    # the report shows both kinds' rows
    res = runner.invoke(app, ["report", "--db", str(db), "--format", "csv", "--out", "-"])
    assert res.exit_code == 0, res.output
    assert tcp["refused"] in res.stdout and urls["refused"] in res.stdout

    # the OONI export names each kind as OONI does (tcp_connect: input host:port, connection)
    res = runner.invoke(app, ["export", "--db", str(db), "--format", "ooni", "--out", "-"])
    assert res.exit_code == 0, res.output
    exported = {o["input"]: o for o in map(json.loads, res.stdout.splitlines())}
    ok_tcp = exported[tcp["ok"].partition("://")[2]]
    assert ok_tcp["test_name"] == "tcp_connect" and ok_tcp["test_keys"]["connection"] == "success"
    assert exported[urls["ok"]]["test_name"] == "web_connectivity"

    # reanalyze re-judges every kind, with the same verdicts
    res = runner.invoke(app, ["reanalyze", "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "0 verdicts changed" in res.stdout


def test_a_tcp_input_without_a_control_is_never_blocked(world, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    dns_host, dns_port = world.dns_address
    refused = f"tcp://{_host('refused')}:{world.https_port}"
    res = CliRunner().invoke(app, [
        "run", refused, "--db", str(db), "--no-system-resolver",
        "--resolver", f"{dns_host}:{dns_port}", "--timeout", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["results", "--db", str(db), "--format", "json"])
    (row,) = json.loads(res.stdout)
    assert (row["verdict"], row["method"]) == ("inconclusive", "no_control")
    assert row["test_name"] == "tcp_connect"



def test_the_helper_applies_its_port_and_address_policy_to_tcp_inputs(world) -> None:
    from probe.control import client
    from probe.control.protocol import MeasureRequest

    ok = f"tcp://{_host('ok')}:{world.https_port}"
    with world_helper(world) as helper:
        async def ask(url: str, addresses: tuple[str, ...] = ()) -> dict:
            (answer,) = await client.query_all([helper.url], MeasureRequest(url, addresses), 10)
            return answer

        answer = asyncio.run(ask(ok, ("127.0.0.1",)))
        closed_port = asyncio.run(ask(f"tcp://{_host('ok')}:25"))
        private = asyncio.run(ask(f"tcp://10.0.0.1:{world.https_port}"))
        bad = asyncio.run(ask("tcp://no-port.test"))
    assert answer["control_failure"] is None and answer["http"] is None
    assert answer["test_name"] == "tcp_connect" and answer["dns"]["addrs"] == ["127.0.0.1"]
    (endpoint,) = answer["endpoints"].values()
    assert endpoint["origin"] == "both" and endpoint["tcp_failure"] is None
    # refusals come back as a failed control (403): the verdict can only be inconclusive
    for refused in (closed_port, private, bad):
        assert refused["control_failure"] == "unknown_failure: http status 403"
