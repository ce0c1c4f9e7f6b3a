"""The run's network comes from the control's view of the probe, looked up in the ASN table."""

from __future__ import annotations

import asyncio
import ipaddress
import sqlite3
from functools import partial

from probe.control.measure import measure_request
from probe.control.server import ControlServer, Policy
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world
from probe.measure.settings import MeasureSettings, Resolver
from probe.run.engine import RunOptions, run_targets
from probe.targets import parse_url


def test_run_records_its_network_but_never_the_address(tmp_path):
    asn_db = tmp_path / "ip2asn.tsv"
    asn_db.write_text("127.0.0.0\t127.255.255.255\t64501\tKZ\tSIMTELECOM-KZ Test ISP\n")
    db = tmp_path / "p.db"
    with LoopbackWorld(demo_world(tmp_path / "world")) as world:
        host, port = world.dns_address
        settings = MeasureSettings.with_timeout(1.0, use_system_resolver=False,
                                                resolvers=(Resolver(host, port),),
                                                ca_bundle=world.ca_pem)
        policy = Policy(allow=(ipaddress.ip_network("127.0.0.0/8"),),
                        ports=frozenset({world.http_port, world.https_port}))

        async def go():
            server = ControlServer(policy, partial(measure_request, settings=settings))
            h, p = await server.start("127.0.0.1", 0)
            try:
                options = RunOptions(concurrency=2, controls=(f"http://{h}:{p}",),
                                     asn_db=str(asn_db))
                targets = [parse_url(demo_urls(world)["ok"])]
                return await run_targets(targets, 1, settings, str(db), 2, None, options)
            finally:
                await server.close()

        asyncio.run(go())
    con = sqlite3.connect(db)
    assert con.execute("select probe_asn, probe_cc, network_name from runs").fetchone() == (
        64501, "KZ", "SIMTELECOM-KZ Test ISP")
    (data,) = con.execute("select data from controls").fetchone()
    assert "client_address" not in data


def test_a_busy_run_queues_for_the_helper_instead_of_getting_503(tmp_path, monkeypatch):
    import probe.run.engine

    monkeypatch.setattr(probe.run.engine, "HELPER_SLOTS", 2)
    db = tmp_path / "p.db"
    with LoopbackWorld(demo_world(tmp_path / "world")) as world:
        host, port = world.dns_address
        settings = MeasureSettings.with_timeout(1.0, use_system_resolver=False,
                                                resolvers=(Resolver(host, port),),
                                                ca_bundle=world.ca_pem)

        async def slow(req, policy):  # a helper that serves two requests at once, slowly
            await asyncio.sleep(1.5)
            return {"version": 1, "url": req.url, "failure": None}

        async def go():
            server = ControlServer(Policy(max_concurrent=2), slow)
            h, p = await server.start("127.0.0.1", 0)
            try:
                options = RunOptions(concurrency=8, controls=(f"http://{h}:{p}",))
                urls = [f"{demo_urls(world)['ok']}?page={i}" for i in range(8)]
                targets = [parse_url(u) for u in urls]
                return await run_targets(targets, 8, settings, str(db), 8, None, options)
            finally:
                await server.close()

        asyncio.run(go())
    con = sqlite3.connect(db)
    failures = [r[0] for r in con.execute("select data from controls")]
    assert len(failures) == 8 and all('"control_failure":null' in d.replace(" ", "")
                                      for d in failures), failures
