"""The simulated network's dual stack (issue 15), without root: the IPv6 address plan, the
bring-up script, the world's AAAA records and IPv6 canaries, and the family-aware censor rules.
The scenarios themselves run end to end in tests/lab/test_simnet.py (root)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from probe.lab.simnet import addressing as A
from probe.lab.simnet import scenario as S
from probe.lab.simnet.site_plan import World
from probe.lab.simnet.techniques import Ctx, instantiate
from probe.lab.simnet.topology import bringup_script, plan

IPV6_SCENARIOS = ("ipv6_broken_local", "ipv6_only_block", "shutdown_ipv4_only",
                  "shutdown_ipv6_only")


def test_v6_twins_are_global_unique_and_inside_their_network() -> None:
    nets = [ipaddress.ip_network(A.v6_net(n.cidr)) for n in A.NETWORKS]
    assert len(set(nets)) == len(nets)
    for n, net6 in zip(A.NETWORKS, nets, strict=True):
        assert net6.is_global, n  # ULA would make every AAAA answer a bogon
        host = str(ipaddress.ip_network(n.cidr).network_address + 266)
        assert ipaddress.ip_address(A.v6_of(host)) in net6
    assert A.v6_of(A.CLIENT_IP) == "2a00:2596::1:2"
    assert ipaddress.ip_address(A.v6_of(A.CLIENT_IP)) in ipaddress.ip_network(
        A.v6_net(A.CLIENT_NET))
    for cidr, twin in (("10.0.0.0/8", "2a00:a00::/24"), ("149.154.160.0/20", "2a00:959a::a0:0/108"),
                       ("80.80.101.0/24", "2a00:5050::65:0/112"),
                       ("37.150.1.2/32", "2a00:2596::1:2/128")):
        assert A.v6_net(cidr) == twin
        v4 = ipaddress.ip_network(cidr)
        for host in (v4.network_address, v4.broadcast_address):
            assert ipaddress.ip_address(A.v6_of(str(host))) in ipaddress.ip_network(twin)


def test_bringup_is_unchanged_without_ipv6_and_dual_stack_with_it() -> None:
    v4 = bringup_script(plan("psim0000"))
    assert "disable_ipv6=1" in v4 and "2a00:" not in v4 and "forwarding" not in v4
    v6 = bringup_script(plan("psim0000", ipv6=True))
    assert "disable_ipv6=1" not in v6 and "net.ipv6.conf.all.forwarding=1" in v6
    assert f"addr add {A.v6_of(A.CLIENT_IP)}/112 dev eth0 nodad" in v6
    assert f"route add ::/0 via {A.v6_of(A.GATEWAY_IP)}" in v6
    assert "route add blackhole ::/0" in v6  # the last transit router, as for IPv4
    # every IPv4 route line has its IPv6 twin
    assert v6.count("route add ") == 2 * v4.count("route add ")
    assert plan("p", ipv6=True).to_dict()["ipv6"] is True


@pytest.mark.parametrize("name", IPV6_SCENARIOS)
def test_ipv6_scenarios_are_dual_stack(name: str) -> None:
    assert S.load(S.find(name)).ipv6


def test_only_opted_in_scenarios_are_dual_stack() -> None:
    assert not S.load(S.find("baseline")).ipv6
    with pytest.raises(S.ScenarioError, match="ipv6"):
        S.parse({"description": "x", "ipv6": "yes",
                 "targets": [{"url": "https://www.gov.kz/", "expect": "ok"}]}, "bad")


def test_world_answers_aaaa_and_has_ipv6_canaries(tmp_path: Path) -> None:
    from probe import targets

    world = World.build(S.load(S.find("ipv6_only_block")))
    records, _ = world.auth_records()
    ip = world.ip_of("meduza.io")
    assert records["meduza.io"]["A"] == [ip]
    assert records["meduza.io"]["AAAA"] == [A.v6_of(ip)]
    cfg = world.world_config("intl", "/pki")
    assert cfg is not None and A.v6_of(ip) in cfg["web"][0]["listen_ips"]
    path = tmp_path / "canaries.csv"
    path.write_text(world.canaries_csv())
    assert targets.validate_file(path) == []
    v6 = [c for c in targets.load_canaries(path) if "[" in c.url_or_host]
    assert len(v6) == 3 and {c.scope for c in v6} == {"international"}
    plain = World.build(S.load(S.find("baseline")))
    assert "AAAA" not in plain.auth_records()[0]["www.example.com"]
    assert "[" not in plain.canaries_csv()


def _technique(name: str, index: int = 0):  # type: ignore[no-untyped-def]
    sc = S.load(S.find(name))
    world = World.build(sc)
    ctx = Ctx(topo=plan("psim0000", ipv6=True), world=world, rundir=Path("/nonexistent"),
              pki_dir=Path("/nonexistent"), ca_pem="")
    return instantiate(sc.censors[index], ctx), world


def test_ip_block_over_ipv6_only() -> None:
    t, world = _technique("ipv6_only_block")
    ip = world.ip_of("meduza.io")
    script = t.apply()
    assert "ip6 daddr @blocked6 drop" in script and A.v6_of(ip) in script
    assert f" {ip} " not in script and "ipv4_addr" not in script
    checks = {c["id"]: c for c in t.checks()}
    assert checks[f"{t.id}:blocked:{A.v6_of(ip)}"]["expect"] == {"outcome": "timeout"}
    assert checks[f"{t.id}:ipv4-works"]["ip"] == ip
    assert checks[f"{t.id}:control-connects:{A.v6_of(ip)}"]["ns"] == "ctl"


@pytest.mark.parametrize(("name", "nfproto", "verdict", "outcome"), [
    ("ipv6_broken_local", "ipv6", "reject with icmpx type no-route", "unreachable"),
    ("shutdown_ipv6_only", "ipv6", "drop", "timeout"),
    ("shutdown_ipv4_only", "ipv4", "drop", "timeout"),
])
def test_family_cut(name: str, nfproto: str, verdict: str, outcome: str) -> None:
    t, world = _technique(name)
    assert f'iifname "lan0" meta nfproto {nfproto} {verdict}' in t.apply()
    cut = {c["id"].split(":")[1]: c for c in t.checks()}
    v4, v6 = world.ip_of("www.example.com"), world.ips6_of("www.example.com")[0]
    assert cut["cut"]["ip"] == (v4 if nfproto == "ipv4" else v6)
    assert cut["cut"]["expect"] == {"outcome": outcome}
    assert cut["other-family"]["ip"] == (v6 if nfproto == "ipv4" else v4)
    assert t.global_effect and t.remove() == f"nft delete table inet c_{t.id}\n"


def _row(url: str, verdict: str, method: str | None, families: object) -> dict[str, object]:
    details = {} if families is None else {"families": families}
    return {"url": url, "verdict": verdict, "method": method, "details": details}


@pytest.mark.parametrize(("families", "status"), [
    ({"ipv4": "ok", "ipv6": "tcp.timeout"}, "PASS"),
    ({"ipv4": "ok", "ipv6": "ok"}, "FAIL"),  # right verdict, wrong family story
    (None, "FAIL"),
])
def test_scenario_targets_check_their_families(families: object, status: str) -> None:
    from probe.lab.simnet.scenario_run import ScenarioResult, compare

    sc = S.load(S.find("ipv6_only_block"))
    result = ScenarioResult(sc.name, sc.description, sc.techniques)
    compare(sc, [_row("https://meduza.io/", "blocked", "tcp.timeout", families),
                 _row("https://www.debian.org/", "ok", None, {"ipv4": "ok", "ipv6": "ok"})],
            result)
    assert result.targets[0].status == status and result.targets[1].status == "PASS"
    assert result.status == status
    assert "ipv6:tcp.timeout" in result.targets[0].expected


def test_families_key_is_validated() -> None:
    with pytest.raises(S.ScenarioError, match="families"):
        S.parse({"description": "x", "targets": [{"url": "https://www.gov.kz/", "expect": "ok",
                                                  "families": {"ipv5": "ok"}}]}, "bad")
