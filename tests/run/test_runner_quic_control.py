"""The probe asks the control helper about QUIC only where it decides something (issue 15):
a second request with ``"quic": 1`` after a measurement whose QUIC failed where TCP/TLS
worked; its QUIC entries join the first answer. Loopback world, real helper."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sqlite3
from dataclasses import replace
from typing import Any

import pytest

from probe.control.measure import measure_request
from probe.control.protocol import MeasureRequest
from probe.control.server import ControlServer, Policy
from probe.lab.world.loopback import LoopbackWorld, demo_urls, demo_world
from probe.measure.settings import MeasureSettings, Resolver
from probe.run.engine import RunOptions, run_targets
from probe.targets import parse_url


@pytest.mark.parametrize(("http3", "helper_speaks_quic", "asked", "control_quic"), [
    # QUIC to the site fails (nothing serves it) while TCP/TLS works: the helper is asked
    # again with "quic": 1 and its (failed) handshake joins the answer
    ("always", True, [0, 1], "generic_timeout_error"),
    # a helper that predates the field answers without "quic": the answer is as before
    ("always", False, [0, 1], None),
    # no QUIC attempt at all (no Alt-Svc, no --http3): one request, as before issue 15
    ("advertised", True, [0], None),
])
def test_second_request_only_where_quic_failed(tmp_path, http3, helper_speaks_quic, asked,
                                                control_quic):
    db = tmp_path / "p.db"
    seen: list[int] = []
    with LoopbackWorld(demo_world(tmp_path / "world")) as world:
        host, port = world.dns_address
        settings = replace(MeasureSettings.with_timeout(
            1.0, use_system_resolver=False, resolvers=(Resolver(host, port),),
            ca_bundle=world.ca_pem), http3=http3)
        policy = Policy(allow=(ipaddress.ip_network("127.0.0.0/8"),),
                        ports=frozenset({world.http_port, world.https_port}))

        async def measurer(req: MeasureRequest, policy: Policy) -> dict[str, Any]:
            seen.append(req.quic)
            if not helper_speaks_quic:
                req = replace(req, quic=0)  # what a helper that predates the field does
            return await measure_request(req, policy, settings)

        async def go():
            server = ControlServer(policy, measurer)
            h, p = await server.start("127.0.0.1", 0)
            try:
                options = RunOptions(concurrency=1, controls=(f"http://{h}:{p}",))
                targets = [parse_url(demo_urls(world)["ok"])]
                return await run_targets(targets, 1, settings, str(db), 1, None, options)
            finally:
                await server.close()

        asyncio.run(go())
    assert seen == asked
    con = sqlite3.connect(db)
    answers = [json.loads(d) for (d,) in con.execute("select data from controls")]
    assert len(answers) == 1  # one answer per helper, the QUIC entries merged into it
    entries = answers[0].get("quic")
    if control_quic is None:
        assert entries is None
    else:
        assert [e["failure"] for e in entries] == [control_quic]
    (details,) = con.execute("select details from verdicts").fetchone()
    quic = json.loads(details).get("quic")
    if http3 == "always":
        assert quic["method"] == "quic.failed"  # nothing shows QUIC reaches it: not a block
    else:
        assert quic is None
