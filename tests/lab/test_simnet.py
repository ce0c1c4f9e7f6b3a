"""The simulated censoring network: scenario data, address plan, self-check logic (no root),
and every scenario end to end on real namespaces (root only), with a leak check."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe.lab.simnet import addressing as A
from probe.lab.simnet import netns
from probe.lab.simnet import scenario as S
from probe.lab.simnet.selfcheck import judge
from probe.lab.simnet.site_plan import World, base_sites
from probe.lab.simnet.techniques import TECHNIQUES
from probe.lab.simnet.topology import plan

ALL = S.names()


def _root_reason() -> str | None:
    ok, reason = netns.have_root()
    return None if ok else reason


ROOT_SKIP = _root_reason()
needs_root = pytest.mark.skipif(ROOT_SKIP is not None, reason=ROOT_SKIP or "")


# --------------------------------------------------------------------------- scenario data
def test_catalogue_is_big_enough() -> None:
    assert len(ALL) >= 30


@pytest.mark.parametrize("name", ALL)
def test_scenario_parses(name: str) -> None:
    sc = S.load(S.find(name))
    assert sc.description and sc.targets
    world = World.build(sc)
    for t in sc.targets:
        if not t.url.startswith(("http://", "https://")):
            continue  # an app (KIND://LIST): its endpoints are its list's (or [tor]'s)
        world.site(t.hostname)  # every target is a site of the world


def test_every_technique_is_used() -> None:
    used = {t for sc in S.load_all() for t in sc.techniques}
    assert set(TECHNIQUES) - used == set()


def test_catalogue_covers_verdicts_and_timed_events() -> None:
    scenarios = S.load_all()
    expected = {e.verdict for sc in scenarios for t in sc.targets for e in t.expect}
    assert expected >= {"ok", "blocked", "intercepted", "throttled", "down", "shutdown",
                        "inconclusive"}
    methods = {str(e) for sc in scenarios for t in sc.targets for e in t.expect}
    for m in ("blocked/dns.nxdomain", "blocked/dns.injected", "blocked/tls.reset",
              "blocked/tls.timeout", "blocked/tls.eof", "blocked/http.reset",
              "blocked/http.blockpage", "blocked/http.redirect", "intercepted/tls.mitm",
              "throttled/throttle", "down/down.dns", "down/down.tcp", "down/down.tls",
              "down/down.http", "shutdown/shutdown.full", "shutdown/shutdown.international",
              "shutdown/shutdown.allowlist", "inconclusive/local_outage"):
        assert m in methods, m
    assert any(sc.events for sc in scenarios)
    assert sum(1 for sc in scenarios if sc.demo) == 1


def test_xfail_names_an_issue() -> None:
    for sc in S.load_all():
        for t in sc.targets:
            assert t.xfail is None or t.xfail.startswith("issue ")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"description": "x"}, "missing 'targets'"),
        ({"description": "x", "targets": [{"url": "https://nowhere.example/", "expect": "ok"}]},
         "not a site"),
        ({"description": "x", "targets": [{"url": "https://www.gov.kz/", "expect": "fine"}]},
         "unknown verdict"),
        ({"description": "x", "targets": [{"url": "https://www.gov.kz/",
                                           "expect": "blocked/dns.magic"}]}, "unknown method"),
        ({"description": "x", "targets": [{"url": "https://www.gov.kz/", "expect": "ok",
                                           "xfail": "later"}]}, "issue N"),
        ({"description": "x", "censor": [{"technique": "teleport"}],
          "targets": [{"url": "https://www.gov.kz/", "expect": "ok"}]}, "unknown 'teleport'"),
        ({"description": "x", "censor": [{"technique": "sni_reset"}],
          "targets": [{"url": "https://www.gov.kz/", "expect": "ok"}]}, "missing parameter"),
        ({"description": "x", "censor": [{"technique": "sni_reset", "hosts": ["a.b"],
                                          "speed": 3}],
          "targets": [{"url": "https://www.gov.kz/", "expect": "ok"}]}, "unknown parameter"),
        ({"description": "x", "censor": [{"technique": "tls_mitm", "hosts": ["www.gov.kz"]}],
          "events": [{"at": 1, "apply": "tls_mitm0"}],
          "targets": [{"url": "https://www.gov.kz/", "expect": "ok"}]}, "cannot be toggled"),
        ({"description": "x", "sites": [{"host": "a.kz", "net": "moon"}],
          "targets": [{"url": "https://a.kz/", "expect": "ok"}]}, "unknown network"),
        ({"description": "x", "surprise": 1,
          "targets": [{"url": "https://www.gov.kz/", "expect": "ok"}]}, "unknown key"),
        ({"description": "x", "targets": [{"url": "https://www.gov.kz/", "expect": "ok",
                                           "quic": "blocked"}]}, "QUIC method"),
        ({"description": "x", "censor": [{"technique": "ip_block", "hosts": ["www.gov.kz"],
                                          "protocol": "udp"}],
          "targets": [{"url": "https://www.gov.kz/", "expect": "ok"}]}, "needs a port"),
        ({"description": "x", "targets": [{"url": "tor://tor", "expect": "ok"}]},
         "needs a \\[tor\\] network"),
        ({"description": "x", "tor": {}, "targets": [{"url": "tor://mine", "expect": "ok"}]},
         "LIST one of"),
    ],
)
def test_bad_scenarios_are_rejected(doc: dict, message: str) -> None:
    with pytest.raises(S.ScenarioError, match=message):
        S.parse(doc, "bad")


@pytest.mark.parametrize(("row_quic", "status"), [
    ({"method": "quic.blocked"}, "PASS"),
    ({"method": "quic.failed"}, "FAIL"),
    (None, "FAIL"),  # no QUIC finding at all
])
def test_compare_checks_the_quic_finding(row_quic: dict | None, status: str) -> None:
    from probe.lab.simnet.scenario_run import ScenarioResult, compare

    sc = S.parse({"description": "x", "targets": [
        {"url": "https://www.gov.kz/", "expect": "ok", "quic": "quic.blocked"}]}, "q")
    details = {} if row_quic is None else {"quic": row_quic}
    result = ScenarioResult("q", "x", [])
    compare(sc, [{"url": "https://www.gov.kz/", "verdict": "ok", "method": None,
                  "details": details}], result)
    (target,) = result.targets
    assert (target.status, result.status) == (status, status)


def test_app_lists_and_a_tor_network_in_one_scenario() -> None:
    """A scenario may measure the apps (its own endpoint lists) and the private Tor network."""
    sc = S.parse({"description": "x", "app_lists": "apps", "tor": {"relays": 0},
                  "targets": [{"url": "whatsapp://whatsapp", "expect": "ok"},
                              {"url": "tor://tor-obfs4", "expect": "ok"},
                              {"url": "https://www.gov.kz/", "expect": "ok"}]}, "both")
    assert sc.app_lists == "apps" and sc.tor == {"authorities": 3, "relays": 0}
    assert [t.hostname for t in sc.targets] == ["whatsapp", "tor-obfs4", "www.gov.kz"]


def test_expect_lists_and_matching() -> None:
    exp = S.parse_expect(["ok", "shutdown/shutdown.full"], "t")
    assert exp[0].matches("ok", None)
    assert exp[1].matches("shutdown", "shutdown.full")
    assert not exp[1].matches("shutdown", "shutdown.international")
    assert S.parse_expect("blocked", "t")[0].matches("blocked", "tcp.reset")


# --------------------------------------------------------------------------- addresses
def _bogon(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return not addr.is_global


def test_world_addresses_are_public_looking() -> None:
    for n in A.NETWORKS:
        assert ipaddress.ip_network(n.cidr).is_global, n
    for ip in (A.CLIENT_IP, A.GATEWAY_IP, A.ISP_RESOLVER_IP, A.PUBLIC_RESOLVER_IP,
               A.AUTH_DNS_IP, A.CONTROL_IP, A.BLOCKPAGE_IP):
        assert not _bogon(ip), ip
    assert _bogon(A.BOGON_IP)


def test_site_allocation_is_deterministic_and_unique() -> None:
    sc = S.load(S.find("redirect_then_blocked"))
    a, b = World.build(sc), World.build(sc)
    assert a.all_addresses() == b.all_addresses()
    ips = [ip for s in a.sites.values() for ip in s.served_ips]
    assert len(ips) == len(set(ips))
    for s in a.sites.values():
        for ip in s.ips:
            net = A.network_of(ip)
            assert net is not None and net.name == s.spec.net


def test_ip2asn_rows_cover_the_world(tmp_path: Path) -> None:
    path = A.write_ip2asn(tmp_path / "ip2asn.tsv")
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert all(len(r) == 5 for r in rows)
    starts = [int(ipaddress.ip_address(r[0])) for r in rows]
    assert starts == sorted(starts)
    world = World.build(S.load(S.find("baseline")))
    for ip in world.all_addresses():
        assert any(int(ipaddress.ip_address(r[0])) <= int(ipaddress.ip_address(ip))
                   <= int(ipaddress.ip_address(r[1])) for r in rows), ip
    from probe.run import asn

    table = asn.load(path)
    info = table.lookup(A.CLIENT_IP)
    assert info is not None and info.asn == 64501 and info.country == "KZ"
    assert table.lookup(A.UNROUTED_IP) is None  # AS 0 = not routed


@pytest.mark.parametrize(("scenario", "portal"), [("baseline", False),
                                                  ("captive_portal", True)])
def test_canaries_file_is_valid(tmp_path: Path, scenario: str, portal: bool) -> None:
    """Every scope has canaries; ``portal`` ones only in a world with the OSes' portal-check
    sites (their URLs are the probe's own known-answer table)."""
    from probe import targets
    from probe.measure.health import PORTAL_ANSWERS

    world = World.build(S.load(S.find(scenario)))
    path = tmp_path / "canaries.csv"
    path.write_text(world.canaries_csv())
    assert targets.validate_file(path) == []
    scopes = {c.scope for c in targets.load_canaries(path)}
    assert scopes == set(targets.CANARY_SCOPES) - (set() if portal else {"portal"})
    checks = [c.url_or_host for c in targets.load_canaries(path) if c.scope == "portal"]
    assert checks == (list(PORTAL_ANSWERS) if portal else [])
    names = {s.host for s in base_sites()}
    for c in targets.load_canaries(path):
        if c.scope in ("domestic", "international"):
            assert c.url_or_host.split("/")[2] in names


def test_topology_plan() -> None:
    topo = plan("psim0000", transit=3)
    assert topo.routers == ["isp", "t1", "t2", "t3"]
    assert [topo.hop_of(r) for r in topo.routers] == [1, 2, 3, 4]
    assert topo.hop_of("intl") == 5 and topo.hop_of("dom") == 3
    assert all(len(i.name) <= 15 for n in topo.nodes.values() for i in n.ifaces)
    # every link has both ends inside the simulation
    for node in topo.nodes.values():
        for i in node.ifaces:
            assert i.peer_role in topo.nodes
    assert topo.nodes["t3"].blackhole_default
    assert topo.nodes["cli"].default_via == A.GATEWAY_IP


# --------------------------------------------------------------------------- self-check logic
@pytest.mark.parametrize(
    ("expect", "got", "ok"),
    [
        ({"outcome": "ok"}, {"outcome": "ok"}, True),
        ({"outcome": ["timeout", "unreachable"]}, {"outcome": "unreachable"}, True),
        ({"outcome": "reset"}, {"outcome": "timeout"}, False),
        ({"first_addr": "10.10.34.35", "later_addr": "1.2.3.4"},
         {"addrs": ["10.10.34.35"], "responses": [{"addrs": ["10.10.34.35"]},
                                                   {"addrs": ["1.2.3.4"]}]}, True),
        ({"min_responses": 2}, {"responses": [{"addrs": []}]}, False),
        ({"issuer_contains": "National"}, {"issuer": "O=Probe Test National CA"}, True),
        ({"body_contains": "blocked"}, {"body": "fine"}, False),
        ({"min_seconds": 1.0}, {"seconds": 0.2}, False),
        ({"addrs_empty": True}, {"addrs": []}, True),
        # a freeze: the head and a few kB, then the read timed out (issue 12)
        ({"late_error": "timeout", "max_length": 16384},
         {"outcome": "ok", "late_error": "timeout", "length": 12000}, True),
        ({"late_error": "timeout", "max_length": 16384},
         {"outcome": "ok", "length": 200000}, False),
        ({"late_error": None}, {"outcome": "ok", "late_error": "timeout"}, False),
        ({"late_error": None}, {"outcome": "ok", "length": 1200}, True),
    ],
)
def test_selfcheck_judge(expect: dict, got: dict, ok: bool) -> None:
    assert (judge(expect, got) == []) is ok


def test_cli_help_and_list() -> None:
    from probe.cli.sim_cmd import app
    from tests.clirunner import CliRunner

    runner = CliRunner()
    for cmd in ("list", "up", "status", "exec", "down", "run"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0, (cmd, res.output)
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0 and "sni_drop" in res.output
    res = runner.invoke(app, ["list", "--techniques"])
    assert "tls_mitm" in res.output


def test_without_root_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from probe.cli.sim_cmd import app
    from tests.clirunner import CliRunner

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    ok, reason = netns.have_root()
    assert not ok and "root" in reason
    for args in (["run", "baseline"], ["up", "baseline"], ["down"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 1, res.output
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "needs root" in lines[0] and "--loopback" in lines[0]


# --------------------------------------------------------------------------- on real namespaces
def _leaks(prefix: str) -> list[str]:
    found = [f"namespace {ns}" for ns in netns.namespaces_of(prefix)]
    if (netns.RUN_ROOT / prefix).exists():
        found.append(f"state dir {netns.RUN_ROOT / prefix}")
    if netns.ETC_NETNS.is_dir():
        found += [f"/etc/netns/{e.name}" for e in netns.ETC_NETNS.iterdir()
                  if e.name.startswith(prefix)]
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    found += [f"process {line.strip()}" for line in out.splitlines()
              if f"/run/probe-sim/{prefix}" in line]
    return found


def _root_rules() -> str:
    ipt = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    return ipt + nft


@pytest.fixture(scope="module")
def root_rules_before() -> str:
    return _root_rules()


@needs_root
@pytest.mark.root
@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", ALL)
def test_scenario_end_to_end(name: str, root_rules_before: str) -> None:
    from probe.lab.simnet.scenario_run import (
        ERROR,
        FAIL,
        SELFCHECK_FAIL,
        render_scenario,
        run_scenario,
    )

    result = run_scenario(S.load(S.find(name)), say=lambda m: None)
    report = render_scenario(result)
    assert result.prefix, report
    assert _leaks(result.prefix) == [], report
    assert result.status != ERROR, report
    assert result.selfcheck_ok, report
    assert result.status != SELFCHECK_FAIL, report
    assert all(t.status != FAIL for t in result.targets), report
    assert result.status != FAIL, report
    assert _root_rules() == root_rules_before  # nothing touched the root namespace


@needs_root
@pytest.mark.root
@pytest.mark.timeout(60)
def test_crashed_run_is_cleaned_up() -> None:
    """A runner killed with SIGKILL mid-flight leaves state that `probe sim down` removes."""
    from probe.lab.simnet.sim import orphans, running, teardown

    code = (
        "import sys, time\n"
        "from probe.lab.simnet import scenario as S\n"
        "from probe.lab.simnet.sim import Sim\n"
        "sim = Sim.start(S.load(S.find('tls_mitm_kz2019')))\n"
        "print(sim.prefix, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=str(Path(__file__).resolve().parents[2]))
    assert proc.stdout is not None
    prefix = proc.stdout.readline().strip()
    assert netns.is_prefix(prefix)
    assert netns.namespaces_of(prefix)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)
    orphan = [s for s in running() if s["prefix"] == prefix]
    assert orphan and not orphan[0]["alive"]
    assert prefix in orphans()
    assert teardown([prefix]) == [prefix]
    assert _leaks(prefix) == []
    assert teardown([prefix]) == [prefix]  # idempotent
    assert _leaks(prefix) == []


def test_child_processes_import_this_checkouts_probe() -> None:
    import os as _os

    from probe.lab.simnet.sim import child_env

    first = Path(child_env()["PYTHONPATH"].split(_os.pathsep)[0])
    assert (first / "probe" / "__init__.py").is_file(), first
