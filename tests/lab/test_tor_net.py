"""The private Tor network's files and daemons without namespaces: keys, torrcs, a consensus
and the Tor lists, with real tor on 127.0.77.x (unprivileged ports), then every process
stopped and every file removed."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from probe.lab.world.tor_net import TorNet, TorNode, standard_nodes, tor_checks
from probe.measure.settings import MeasureSettings
from probe.measure.tor import measure_tor
from probe.targets import parse_input

needs_tor = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("tor", "tor-gencert", "obfs4proxy")),
    reason="tor / obfs4proxy not installed (deps/apt.txt)")


def test_the_standard_network_sits_at_the_documented_addresses() -> None:
    nodes = {n.name: n for n in standard_nodes(3, 1)}
    assert [nodes[f"auth{i}"].ip for i in (1, 2, 3)] == ["185.61.250.1", "185.61.250.2",
                                                         "185.61.250.3"]
    assert (nodes["bridge1"].ip, nodes["obfs4bridge"].pt_ip) == ("95.213.250.21", "64.90.250.31")
    assert {n.role for n in nodes.values()} == {"intl"}


@needs_tor
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_private_network_bootstraps_and_is_measured(tmp_path: Path) -> None:
    ip = "127.0.77"
    nodes = (TorNode("auth1", "authority", f"{ip}.1", 17101, 17131),
             TorNode("auth2", "authority", f"{ip}.2", 17102, 17132),
             TorNode("bridge1", "bridge", f"{ip}.21", 17121),
             TorNode("obfs4bridge", "bridge", f"{ip}.32", 17132, transport="obfs4",
                     pt_ip=f"{ip}.31", pt_port=17141))
    net = TorNet(tmp_path / "tor", nodes)
    net.prepare()
    lines = net.dir_authority_lines()
    assert len(lines) == 2 and all("v3ident=" in x and "orport=" in x for x in lines)
    torrc = net.torrc(nodes[0]).read_text()
    assert "TestingTorNetwork 1" in torrc and "AuthoritativeDirectory 1" in torrc
    assert "ServerTransportPlugin obfs4 exec" in net.torrc(nodes[3]).read_text()
    procs = [subprocess.Popen(net.argv(n), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for n in nodes]
    try:
        t0 = time.monotonic()
        while not (net.consensus_ready() and net.obfs4_cert(nodes[3])):
            assert all(p.poll() is None for p in procs), "a tor exited"
            assert time.monotonic() - t0 < 60, "no consensus within 60 s"
            time.sleep(0.2)
        paths = net.write_lists(tmp_path / "apps")
        assert set(paths) == {"tor", "tor-dirauths", "tor-vanilla", "tor-obfs4"}
        kinds = {c["kind"] for c in tor_checks(net, client_side=True, blocked=set())}
        assert kinds == {"tls", "http", "obfs4"}
        m = asyncio.run(measure_tor(parse_input("tor://tor"), MeasureSettings.with_timeout(
            3.0, app_lists=str(tmp_path / "apps"))))
        got = {(t["name"], t["protocol"]): t["failure"] for t in m.extra["tor"]["targets"]}
        assert got == {("auth1", "or_port_dirauth"): None, ("auth1", "dir_port"): None,
                       ("auth2", "or_port_dirauth"): None, ("auth2", "dir_port"): None,
                       ("bridge1", "or_port"): None, ("obfs4bridge", "obfs4"): None}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    assert all(p.returncode is not None for p in procs)
