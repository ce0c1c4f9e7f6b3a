"""Censor techniques (and network-quality behaviours), named and parameterised.

Each technique is a class registered in :data:`TECHNIQUES` under its scenario name. It knows
how to validate its parameters, what it adds to the ISP resolver, which shell commands apply
(and, for timed events, remove) it inside the router's namespace, which helper processes it
needs there (an NFQUEUE injector, a TLS interception proxy, a relay), and which self-checks
prove it works: the blocked thing really fails from the client, an innocuous variant through the
same path succeeds, and the control host sees a clean network.

Rules live only inside the simulator's namespaces (iptables chains named ``C_<id>``, nft tables
named ``c_<id>``, tc qdiscs on the router's client-facing interface), so deleting the
namespaces removes them.

Which kernel features are used is dictated by what this kernel has (reference/simnet-recipes.md):
iptables' NFQUEUE, string and connbytes matches (nft has no queue here), nft sets and reject,
htb + u32.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from probe.lab.simnet import addressing as A
from probe.lab.simnet.scenario_records import CensorSpec
from probe.lab.simnet.site_plan import (
    DOMESTIC_INNOCUOUS_HOST,
    INNOCUOUS_HOST,
    PORTAL_CHECK_HOSTS,
    World,
)
from probe.lab.simnet.topology import Topology
from probe.lab.world.spec import normalize_hostname

Check = dict[str, Any]
REQUIRED = object()

ROGUE_ISSUER = "Probe Test National CA"
WORLD_ISSUER = "Probe Test World"


@dataclass
class Ctx:
    """What a technique needs to know about the running simulation."""

    topo: Topology
    world: World
    rundir: Path
    pki_dir: Path
    ca_pem: str

    def lan_if(self, router: str) -> str:
        """The router's interface toward the client."""
        return "lan0" if router == "isp" else "dn0"

    def wan_if(self, router: str) -> str:
        return "wan0" if router == "isp" else "up0"


@dataclass
class Device:
    """A helper process in a namespace: ``python -m MODULE --config CFG --ready-file R``."""

    name: str
    role: str
    module: str
    config: dict[str, Any]

    def argv(self, config_path: Path, ready_path: Path) -> list[str]:
        return [sys.executable, "-m", self.module, "--config", str(config_path),
                "--ready-file", str(ready_path)]


def _nft(script: str) -> str:
    return f"nft -f - <<'NFT'\n{script}NFT\n"


def _check(cid: str, ns: str, kind: str, why: str, expect: dict[str, Any], **params: Any) -> Check:
    return {"id": cid, "ns": ns, "kind": kind, "why": why, "expect": expect, **params}


class Technique:
    """Base class: a technique applied on a router (``self.router``) of the simulation."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: param -> (type name, default or REQUIRED, help)
    PARAMS: ClassVar[dict[str, tuple[str, Any, str]]] = {}
    movable: ClassVar[bool] = False  # may run on a transit router
    removable: ClassVar[bool] = False  # may be toggled by timed events
    global_effect: ClassVar[bool] = False  # affects every destination (shutdowns, link down)
    censorship: ClassVar[bool] = True  # False for network-quality behaviours
    default_router: ClassVar[str] = "isp"

    def __init__(self, spec: CensorSpec, ctx: Ctx) -> None:
        self.spec = spec
        self.ctx = ctx
        self.p = spec.params
        self.router = spec.router if spec.router != "isp" else self.default_router

    # --- parameters --------------------------------------------------------------------
    @classmethod
    def validate(cls, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(cls.PARAMS))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; "
                             f"known: {', '.join(cls.PARAMS) or 'none'}")
        out: dict[str, Any] = {}
        for key, (kind, default, _help) in cls.PARAMS.items():
            if key not in params:
                if default is REQUIRED:
                    raise ValueError(f"missing parameter {key!r}")
                out[key] = default
                continue
            out[key] = _coerce(key, kind, params[key])
        cls.check_params(out)
        return out

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """Cross-parameter validation (override)."""

    # --- helpers -----------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def ns(self) -> str:
        return self.ctx.topo.ns(self.router)

    @property
    def lan(self) -> str:
        return self.ctx.lan_if(self.router)

    @property
    def hosts(self) -> list[str]:
        return list(self.p.get("hosts") or [])

    def ips(self) -> list[str]:
        out: list[str] = []
        for h in self.hosts:
            out.extend(ip for ip in self.ctx.world.ips_of(h) if ip not in out)
        for ip in self.p.get("ips") or []:
            if ip not in out:
                out.append(ip)
        return out

    def innocuous(self, exclude: list[str]) -> str:
        for h in (INNOCUOUS_HOST, DOMESTIC_INNOCUOUS_HOST, "www.debian.org", "kaspi.kz"):
            if h not in exclude:
                return h
        raise ValueError("no innocuous host left")

    def cid(self, what: str) -> str:
        return f"{self.id}:{what}"

    def sni_checks(self, host: str, innocuous: str, description: str,
                   expect: dict[str, Any]) -> list[Check]:
        """The three checks of a censor that reacts to a ClientHello's SNI: ``host``'s name
        meets it (``expect``), an innocuous name to the same address completes, and the
        control completes a handshake with ``host`` (verified, unless the site has a CA of its
        own — the Signal-like one — which the world CA does not vouch for)."""
        ip = self.ctx.world.ip_of(host)
        site = self.ctx.world.sites.get(host)
        own_ca = site is not None and site.spec.site.get("cert", "valid") != "valid"
        return [
            _check(self.cid(f"sni:{host}"), "cli", "tls", description, expect, ip=ip, sni=host,
                   timeout=2.0),
            _check(self.cid(f"innocuous:{host}"), "cli", "tls",
                   f"SNI {innocuous} to {ip} completes", {"outcome": "ok"}, ip=ip,
                   sni=innocuous, timeout=2.0),
            _check(self.cid(f"control:{host}"), "ctl", "tls",
                   f"the control completes a {'' if own_ca else 'valid '}handshake with {host}",
                   {"outcome": "ok"}, ip=ip, sni=host, verify=not own_ca,
                   cafile=self.ctx.ca_pem)]

    # --- hooks (override) --------------------------------------------------------------
    def resolver_behaviours(self) -> dict[str, str]:
        return {}

    def resolver_records(self) -> dict[str, Any]:
        return {}

    def setup(self) -> str:
        """Shell run once in the router namespace at bring-up (active or not)."""
        return ""

    def apply(self) -> str:
        """Shell that switches the technique on (router namespace)."""
        return ""

    def remove(self) -> str:
        """Shell that switches it off again (timed events)."""
        return ""

    def reset(self) -> str:
        """Shell run after the self-checks to restore state they consumed."""
        return ""

    def devices(self) -> list[Device]:
        return []

    def checks(self) -> list[Check]:
        """Self-checks that hold while the technique is applied."""
        return []

    def checks_removed(self) -> list[Check]:
        """Self-checks that hold after it is removed again (timed techniques)."""
        return []

    def touched_hosts(self) -> list[str]:
        """Hosts whose client-side behaviour this technique changes."""
        return self.hosts


def _coerce(key: str, kind: str, value: Any) -> Any:
    if kind == "hosts":
        vals = [value] if isinstance(value, str) else value
        if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
            raise ValueError(f"{key}: expected a list of hostnames")
        return [normalize_hostname(v) for v in vals]
    if kind == "ips":
        vals = [value] if isinstance(value, str) else value
        if not isinstance(vals, list):
            raise ValueError(f"{key}: expected a list of IPv4 addresses")
        try:
            return [str(ipaddress.IPv4Address(v)) for v in vals]
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    if kind == "ip":
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{key}: expected an integer")
        return value
    if kind == "float":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{key}: expected a number")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expected true or false")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"{key}: expected a string")
        return value
    if kind.startswith("choice:"):
        choices = kind.split(":", 1)[1].split("|")
        if value not in choices:
            raise ValueError(f"{key}: {value!r} not one of {', '.join(choices)}")
        return value
    raise AssertionError(kind)


# ============================================================================ DNS
class DnsLie(Technique):
    name = "dns_lie"
    summary = "the ISP resolver lies: NXDOMAIN, REFUSED, SERVFAIL, silence, bogon or block-page IP"
    PARAMS = {
        "hosts": ("hosts", REQUIRED, "names the resolver lies about"),
        "answer": ("choice:nxdomain|refused|servfail|silent|bogon|blockpage|localhost|ip",
                   REQUIRED, "what it answers instead"),
        "ip": ("ip", None, "the address for answer = ip"),
    }

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if (params["answer"] == "ip") != (params["ip"] is not None):
            raise ValueError("'ip' is required with answer = 'ip' and only then")

    def lie_ip(self) -> str | None:
        return {"bogon": A.BOGON_IP, "blockpage": A.BLOCKPAGE_IP, "localhost": "127.0.0.1",
                "ip": self.p["ip"]}.get(self.p["answer"])

    def resolver_behaviours(self) -> dict[str, str]:
        ip = self.lie_ip()
        behaviour = f"bogon:{ip}" if ip else self.p["answer"]
        return {h: behaviour for h in self.hosts}

    def checks(self) -> list[Check]:
        out = []
        ip = self.lie_ip()
        rcode = {"nxdomain": "NXDOMAIN", "refused": "REFUSED", "servfail": "SERVFAIL"}
        for h in self.hosts:
            genuine = self.ctx.world.site(h)
            if self.p["answer"] == "silent":
                expect: dict[str, Any] = {"outcome": "timeout"}
            elif ip:
                expect = {"rcode": "NOERROR", "first_addr": ip}
            else:
                expect = {"rcode": rcode[self.p["answer"]]}
            out.append(_check(self.cid(f"isp-resolver-lies:{h}"), "cli", "dns",
                              f"the ISP resolver answers {self.p['answer']} for {h}",
                              expect, server=A.ISP_RESOLVER_IP, name=h, timeout=2.0))
            if genuine.spec.dns == "answer":
                want = list(genuine.spec.a or genuine.ips)
                out.append(_check(self.cid(f"public-resolver-honest:{h}"), "cli", "dns",
                                  f"the public resolver gives the genuine answer for {h}",
                                  {"rcode": "NOERROR", "addrs_any": want},
                                  server=A.PUBLIC_RESOLVER_IP, name=h, timeout=2.0))
            elif genuine.spec.dns == "nxdomain":
                out.append(_check(self.cid(f"auth-nxdomain:{h}"), "ctl", "dns",
                                  f"{h} does not exist at the authoritative (ghost domain)",
                                  {"rcode": "NXDOMAIN"}, server=A.PUBLIC_RESOLVER_IP, name=h))
        other = self.innocuous(self.hosts)
        out.append(_check(self.cid("isp-resolver-innocuous"), "cli", "dns",
                          f"the ISP resolver answers {other} honestly",
                          {"rcode": "NOERROR", "addrs_any": self.ctx.world.ips_of(other)},
                          server=A.ISP_RESOLVER_IP, name=other))
        return out


class DnsProxy(Technique):
    name = "dns_proxy"
    summary = "the ISP resolver answers a transparent proxy of its own that serves the real site"
    PARAMS = {"hosts": ("hosts", REQUIRED, "names redirected to the proxy")}
    PROXY_BASE = "37.150.0.80"

    def proxy_ip(self, index: int) -> str:
        return str(ipaddress.IPv4Address(self.PROXY_BASE) + index)

    def resolver_behaviours(self) -> dict[str, str]:
        return {h: f"bogon:{self.proxy_ip(i)}" for i, h in enumerate(self.hosts)}

    def setup(self) -> str:
        return "".join(f"ip addr add {self.proxy_ip(i)}/32 dev lo\n"
                       for i in range(len(self.hosts)))

    def devices(self) -> list[Device]:
        routes = []
        for i, h in enumerate(self.hosts):
            real = self.ctx.world.ip_of(h)
            for port in (80, 443):
                routes.append({"listen": f"{self.proxy_ip(i)}:{port}",
                               "upstream": f"{real}:{port}"})
        return [Device(f"relay-{self.id}", self.router, "probe.lab.simnet.devices.relay",
                       {"routes": routes})]

    def checks(self) -> list[Check]:
        out = []
        for i, h in enumerate(self.hosts):
            pip = self.proxy_ip(i)
            out.append(_check(self.cid(f"resolver-proxy:{h}"), "cli", "dns",
                              f"the ISP resolver sends {h} to its proxy {pip}",
                              {"rcode": "NOERROR", "first_addr": pip},
                              server=A.ISP_RESOLVER_IP, name=h))
            out.append(_check(self.cid(f"proxy-serves:{h}"), "cli", "tls",
                              f"the proxy relays a valid TLS session for {h}",
                              {"outcome": "ok", "issuer_contains": WORLD_ISSUER},
                              ip=pip, sni=h, verify=True, cafile=self.ctx.ca_pem))
        return out


class DnsInject(Technique):
    name = "dns_inject"
    summary = "on-path DNS injection (NFQUEUE): a forged answer first, the genuine one second; " \
              "hits every resolver, foreign ones too"
    PARAMS = {
        "hosts": ("hosts", REQUIRED, "query names that trigger the injector"),
        "answer": ("choice:bogon|blockpage|localhost|ip", "bogon", "the forged address"),
        "ip": ("ip", None, "the address for answer = ip"),
        "drop_query": ("bool", False, "drop the query: only the forgery arrives"),
        "queue": ("int", 11, "NFQUEUE number"),
    }
    movable = True

    def forged_ip(self) -> str:
        return {"bogon": A.BOGON_IP, "blockpage": A.BLOCKPAGE_IP, "localhost": "127.0.0.1",
                "ip": self.p["ip"]}[self.p["answer"]]

    # Queries the router forwards (to any resolver beyond it) and queries to the router's own
    # resolver: like every technique here, the injector acts on packets the router forwards,
    # so a query needs a TTL of at least hop+1 to reach it on its way elsewhere.
    def apply(self) -> str:
        q = self.p["queue"]
        chain = f"C_{self.id}"
        return (
            f"iptables -t mangle -N {chain}\n"
            f"iptables -t mangle -A {chain} -p udp --dport 53 -j NFQUEUE --queue-num {q} "
            "--queue-bypass\n"
            f"iptables -t mangle -A FORWARD -i {self.lan} -j {chain}\n"
            f"iptables -t mangle -A INPUT -i {self.lan} -j {chain}\n"
        )

    def remove(self) -> str:
        chain = f"C_{self.id}"
        return (f"iptables -t mangle -D FORWARD -i {self.lan} -j {chain}\n"
                f"iptables -t mangle -D INPUT -i {self.lan} -j {chain}\n"
                f"iptables -t mangle -F {chain}\niptables -t mangle -X {chain}\n")

    def devices(self) -> list[Device]:
        return [Device(f"inject-{self.id}", self.router, "probe.lab.simnet.devices.injector", {
            "rules": [{"queue": self.p["queue"], "kind": "dns", "hosts": self.hosts,
                       "answer": self.forged_ip(), "drop_query": self.p["drop_query"]}],
        })]

    def checks(self) -> list[Check]:
        out = []
        ip = self.forged_ip()
        for h in self.hosts:
            genuine = self.ctx.world.ips_of(h)
            for server, label in ((A.PUBLIC_RESOLVER_IP, "public"), (A.ISP_RESOLVER_IP, "isp")):
                expect: dict[str, Any] = {"first_addr": ip}
                if not self.p["drop_query"]:
                    expect.update({"min_responses": 2, "later_addr": genuine[0]})
                out.append(_check(self.cid(f"injected-{label}:{h}"), "cli", "dns",
                                  f"a query for {h} to the {label} resolver gets the forged "
                                  f"{ip} first" + ("" if self.p["drop_query"] else
                                                   ", the genuine answer second"),
                                  expect, server=server, name=h, timeout=2.0, linger=0.8))
            out.append(_check(self.cid(f"no-resolver-answers:{h}"), "cli", "dns",
                              f"a query for {h} to an address that runs no resolver (the "
                              "control host) is answered anyway: only an injector can",
                              {"first_addr": ip}, server=A.CONTROL_IP, name=h, timeout=2.0,
                              linger=0.3))
            out.append(_check(self.cid(f"control-clean:{h}"), "ctl", "dns",
                              f"the control resolves {h} without injection",
                              {"addrs_any": genuine, "addrs_none": [ip]},
                              server=A.PUBLIC_RESOLVER_IP, name=h, linger=0.5))
        other = self.innocuous(self.hosts)
        out.append(_check(self.cid("innocuous"), "cli", "dns",
                          f"{other} is not injected", {"addrs_none": [ip], "rcode": "NOERROR"},
                          server=A.PUBLIC_RESOLVER_IP, name=other, linger=0.5))
        return out


# ============================================================================ TCP/IP
class IpBlock(Technique):
    name = "ip_block"
    summary = "IP blocking: drop (timeout), TCP reset, ICMP port/host/net unreachable"
    PARAMS = {
        "hosts": ("hosts", [], "sites whose addresses are blocked"),
        "ips": ("ips", [], "extra addresses"),
        "action": ("choice:drop|reset|refuse|host_unreachable|net_unreachable", "drop",
                   "what the router does with the packets"),
        "port": ("int", 0, "only this TCP port (0 = every protocol and port)"),
        "family": ("choice:ipv4|ipv6|both", "ipv4",
                   "which of the sites' addresses: IPv4, their IPv6 twins (ipv6 = true) or both"),
        "protocol": ("choice:tcp|udp", "tcp",
                     "with port: which protocol (udp with port 443 = QUIC dropped)"),
    }
    movable = True
    removable = True

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if not params["hosts"] and not params["ips"]:
            raise ValueError("give 'hosts' or 'ips'")
        if params["protocol"] == "udp" and (not params["port"] or params["action"] != "drop"):
            raise ValueError("protocol 'udp' needs a port and action 'drop'")

    def blocked_ips(self) -> list[str]:
        """The addresses the rule matches: IPv4 ones, and/or the hosts' IPv6 twins."""
        v4 = self.ips() if self.p["family"] in ("ipv4", "both") else []
        v6 = ([ip for h in self.hosts for ip in self.ctx.world.ips6_of(h)]
              if self.p["family"] in ("ipv6", "both") else [])
        return v4 + v6

    def apply(self) -> str:
        verdict = {
            "drop": "drop",
            "reset": "reject with tcp reset",
            "refuse": "reject with icmp type port-unreachable",
            "host_unreachable": "reject with icmp type host-unreachable",
            "net_unreachable": "reject with icmp type net-unreachable",
        }[self.p["action"]]
        match = f"{self.p['protocol']} dport {self.p['port']} " if self.p["port"] else ""
        if self.p["action"] == "reset" and not self.p["port"]:
            match = "meta l4proto tcp "
        if self.p["family"] != "ipv4":
            return self._apply_inet(verdict, match)
        elems = ", ".join(self.ips())
        extra = ""
        if self.p["action"] == "reset" and not self.p["port"]:
            extra = f'    iifname "{self.lan}" ip daddr @blocked drop\n'
        return _nft(
            f"table inet c_{self.id} {{\n"
            f"  set blocked {{ type ipv4_addr; elements = {{ {elems} }} }}\n"
            "  chain cforward { type filter hook forward priority -5; policy accept;\n"
            f'    iifname "{self.lan}" ip daddr @blocked {match}{verdict}\n{extra}'
            "  }\n}\n"
        )

    def _apply_inet(self, verdict: str, match: str) -> str:
        """IPv6 (or both): one set per family; ICMP rejects become their ICMPv6 kin through
        nft's ``icmpx`` (the inet family's family-neutral reject)."""
        verdict = verdict.replace("icmp type port-unreachable", "icmpx type port-unreachable")
        verdict = verdict.replace("icmp type host-unreachable", "icmpx type host-unreachable")
        verdict = verdict.replace("icmp type net-unreachable", "icmpx type no-route")
        v4 = [ip for ip in self.blocked_ips() if ":" not in ip]
        v6 = [ip for ip in self.blocked_ips() if ":" in ip]
        sets, rules = "", ""
        for name, kind, key, elems in (("blocked", "ipv4_addr", "ip", v4),
                                       ("blocked6", "ipv6_addr", "ip6", v6)):
            if not elems:
                continue
            sets += f"  set {name} {{ type {kind}; elements = {{ {', '.join(elems)} }} }}\n"
            rules += f'    iifname "{self.lan}" {key} daddr @{name} {match}{verdict}\n'
            if self.p["action"] == "reset" and not self.p["port"]:
                rules += f'    iifname "{self.lan}" {key} daddr @{name} drop\n'
        return _nft(
            f"table inet c_{self.id} {{\n{sets}"
            "  chain cforward { type filter hook forward priority -5; policy accept;\n"
            f"{rules}  }}\n}}\n"
        )

    def remove(self) -> str:
        return f"nft delete table inet c_{self.id}\n"

    def checks(self) -> list[Check]:
        want = {"drop": "timeout", "reset": "refused", "refuse": "refused",
                "host_unreachable": "unreachable", "net_unreachable": "unreachable"}
        port = self.p["port"] or 443
        out = []
        if self.p["protocol"] == "udp":
            return self._udp_checks(port)
        for ip in self.blocked_ips():
            out.append(_check(self.cid(f"blocked:{ip}"), "cli", "tcp",
                              f"TCP to {ip}:{port} fails ({self.p['action']})",
                              {"outcome": want[self.p["action"]]}, ip=ip, port=port, timeout=2.0))
            v4 = ip if ":" not in ip else None
            if v4 is None or self.ctx.world.role_of(v4) in ("dom", "intl"):
                out.append(_check(self.cid(f"control-connects:{ip}"), "ctl", "tcp",
                                  f"the control connects to {ip}:{port}", {"outcome": "ok"},
                                  ip=ip, port=port))
        if self.p["port"] not in (0, 80, 443):
            # a port of its own (DoT's 853): the same address still answers on 443, so it is
            # the port that is blocked (an innocuous site listens on no such port)
            ip = self.ips()[0]
            out.append(_check(self.cid("other-port"), "cli", "tcp",
                              f"TCP to {ip}:443 works (only port {port} is blocked)",
                              {"outcome": "ok"}, ip=ip, port=443))
            return out
        other = self.ctx.world.ip_of(self.innocuous(self.hosts))
        out.append(_check(self.cid("innocuous"), "cli", "tcp", f"TCP to {other}:{port} works",
                          {"outcome": "ok"}, ip=other, port=port))
        if self.p["family"] == "ipv6":
            # blocked over IPv6 only: the same hosts still answer over IPv4
            ip4 = self.ctx.world.ip_of(self.hosts[0])
            out.append(_check(self.cid("ipv4-works"), "cli", "tcp",
                              f"TCP to {self.hosts[0]} over IPv4 ({ip4}:{port}) works",
                              {"outcome": "ok"}, ip=ip4, port=port))
        return out

    def _udp_checks(self, port: int) -> list[Check]:
        """UDP dropped: a QUIC handshake from the client times out while TCP to the same
        address works, and the control's QUIC handshake gets through."""
        out = []
        for ip in self.ips():
            out.append(_check(self.cid(f"quic-dropped:{ip}"), "cli", "quic",
                              f"QUIC to {ip}:{port} times out", {"outcome": "timeout"},
                              ip=ip, port=port, timeout=2.0))
            out.append(_check(self.cid(f"tcp-works:{ip}"), "cli", "tcp",
                              f"TCP to {ip}:{port} still works", {"outcome": "ok"},
                              ip=ip, port=port))
            if self.ctx.world.role_of(ip) in ("dom", "intl"):
                out.append(_check(self.cid(f"control-quic:{ip}"), "ctl", "quic",
                                  f"the control's QUIC to {ip}:{port} works", {"outcome": "ok"},
                                  ip=ip, port=port, timeout=3.0))
        return out

    def checks_removed(self) -> list[Check]:
        port = self.p["port"] or 443
        return [_check(self.cid(f"restored:{ip}"), "cli", "tcp", f"TCP to {ip} works again",
                       {"outcome": "ok"}, ip=ip, port=port) for ip in self.ips()[:2]]


class _StringMatch(Technique):
    """iptables string match on the client's packets to a port: REJECT with RST, or DROP."""

    PARAMS = {"hosts": ("hosts", REQUIRED, "names that trigger the censor (SNI / Host)")}
    movable = True
    removable = True
    port: ClassVar[int] = 443
    target: ClassVar[str] = "REJECT --reject-with tcp-reset"

    def apply(self) -> str:
        chain = f"C_{self.id}"
        lines = [f"iptables -N {chain}"]
        for h in self.hosts:
            lines.append(f"iptables -A {chain} -p tcp -m string --string '{h}' --algo bm --icase "
                         f"-j {self.target}")
        lines.append(f"iptables -A FORWARD -i {self.lan} -p tcp --dport {self.port} -j {chain}")
        return "\n".join(lines) + "\n"

    def remove(self) -> str:
        chain = f"C_{self.id}"
        return (f"iptables -D FORWARD -i {self.lan} -p tcp --dport {self.port} -j {chain}\n"
                f"iptables -F {chain}\niptables -X {chain}\n")


class SniReset(_StringMatch):
    name = "sni_reset"
    summary = "SNI-triggered TCP reset (iptables string match + REJECT tcp-reset)"

    def checks(self) -> list[Check]:
        return _sni_checks(self, "reset")


class SniDrop(_StringMatch):
    name = "sni_drop"
    summary = "SNI-triggered drop after the ClientHello: the handshake times out (KZ 2023-24)"
    target = "DROP"

    def checks(self) -> list[Check]:
        return _sni_checks(self, "timeout")


def _sni_checks(t: Technique, outcome: str) -> list[Check]:
    other = t.innocuous(t.hosts)
    return [c for h in t.hosts for c in t.sni_checks(
        h, other, f"a ClientHello with SNI {h} to {t.ctx.world.ip_of(h)} gets: {outcome}",
        {"outcome": outcome})]


class HttpReset(_StringMatch):
    name = "http_reset"
    summary = "HTTP Host-triggered TCP reset (string match on the Host header, port 80)"
    port = 80

    def apply(self) -> str:
        # match the Host header itself, not the name anywhere in the payload (which would also
        # hit e.g. a request to the control helper that carries the URL in its body)
        chain = f"C_{self.id}"
        lines = [f"iptables -N {chain}"]
        for h in self.hosts:
            lines.append(f"iptables -A {chain} -p tcp -m string --string 'host: {h}' --algo bm "
                         "--icase -j REJECT --reject-with tcp-reset")
        lines.append(f"iptables -A FORWARD -i {self.lan} -p tcp --dport {self.port} -j {chain}")
        return "\n".join(lines) + "\n"

    def checks(self) -> list[Check]:
        out = []
        for h in self.hosts:
            ip = self.ctx.world.ip_of(h)
            other = self.innocuous(self.hosts)
            out.append(_check(self.cid(f"host:{h}"), "cli", "http",
                              f"GET with Host: {h} to {ip} is reset", {"outcome": "reset"},
                              ip=ip, host=h, timeout=2.0))
            out.append(_check(self.cid(f"innocuous-host:{h}"), "cli", "http",
                              f"GET with Host: {other} to {ip} gets a response",
                              {"outcome": "ok"}, ip=ip, host=other, timeout=2.0))
            out.append(_check(self.cid(f"control:{h}"), "ctl", "http",
                              f"the control fetches http://{h}/", {"outcome": "ok", "status": 200},
                              ip=ip, host=h))
        return out


class TcpInject(Technique):
    """Userspace on-path injection (NFQUEUE + scapy) triggered by the HTTP Host or TLS SNI."""

    name = "tcp_inject"
    summary = "on-path injection (NFQUEUE + scapy) on Host/SNI: RST both ways, FIN, a block page " \
              "or a redirect to the block page"
    PARAMS = {
        "hosts": ("hosts", REQUIRED, "names that trigger the injector"),
        "port": ("int", 80, "80 (Host header) or 443 (TLS SNI)"),
        "action": ("choice:rst|fin|page|redirect", "page", "what is injected"),
        "location": ("str", f"http://{A.BLOCKPAGE_NAME}/", "redirect target (action=redirect)"),
        "queue": ("int", 21, "NFQUEUE number"),
    }
    movable = True
    removable = True

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if params["port"] not in (80, 443):
            raise ValueError("port must be 80 or 443")
        if params["port"] == 443 and params["action"] in ("page", "redirect"):
            raise ValueError("block pages and redirects can only be injected into plain HTTP")

    def apply(self) -> str:
        chain = f"C_{self.id}"
        lines = [f"iptables -N {chain}"]
        for h in self.hosts:
            lines.append(f"iptables -A {chain} -p tcp -m string --string '{h}' --algo bm --icase "
                         f"-j NFQUEUE --queue-num {self.p['queue']} --queue-bypass")
        lines.append(f"iptables -A FORWARD -i {self.lan} -p tcp --dport {self.p['port']} "
                     f"-j {chain}")
        return "\n".join(lines) + "\n"

    def remove(self) -> str:
        chain = f"C_{self.id}"
        return (f"iptables -D FORWARD -i {self.lan} -p tcp --dport {self.p['port']} -j {chain}\n"
                f"iptables -F {chain}\niptables -X {chain}\n")

    def devices(self) -> list[Device]:
        return [Device(f"inject-{self.id}", self.router, "probe.lab.simnet.devices.injector", {
            "rules": [{"queue": self.p["queue"], "kind": "tcp", "hosts": self.hosts,
                       "port": self.p["port"], "action": self.p["action"],
                       "location": self.p["location"]}],
        })]

    def checks(self) -> list[Check]:
        out = []
        other = self.innocuous(self.hosts)
        for h in self.hosts:
            ip = self.ctx.world.ip_of(h)
            if self.p["port"] == 443:
                want = {"rst": "reset", "fin": "eof"}[self.p["action"]]
                out += self.sni_checks(
                    h, other, f"ClientHello with SNI {h} gets an injected {self.p['action']}",
                    {"outcome": want})
                continue
            if self.p["action"] == "page":
                expect: dict[str, Any] = {"outcome": "ok", "status": 200,
                                          "body_contains": "probe-simnet-blockpage"}
            elif self.p["action"] == "redirect":
                expect = {"outcome": "ok", "status": 302,
                          "location_contains": self.p["location"]}
            else:
                expect = {"outcome": {"rst": "reset", "fin": "eof"}[self.p["action"]]}
            out.append(_check(self.cid(f"host:{h}"), "cli", "http",
                              f"GET with Host: {h} gets an injected {self.p['action']}",
                              expect, ip=ip, host=h, timeout=2.0))
            out.append(_check(self.cid(f"innocuous:{h}"), "cli", "http",
                              f"GET with Host: {other} to {ip} reaches the server",
                              {"outcome": "ok", "body_not_contains": "probe-simnet-blockpage"},
                              ip=ip, host=other, timeout=2.0))
            out.append(_check(self.cid(f"control:{h}"), "ctl", "http",
                              f"the control fetches the real http://{h}/",
                              {"outcome": "ok", "body_not_contains": "probe-simnet-blockpage"},
                              ip=ip, host=h))
        return out


class HttpBlockpage(TcpInject):
    name = "http_blockpage"
    summary = "an injected block page (small HTTP/1.0 200 + FIN) in answer to a Host header"
    PARAMS = {**TcpInject.PARAMS, "action": ("choice:page", "page", "a block page")}


class HttpRedirect(TcpInject):
    name = "http_redirect"
    summary = "an injected 302 redirect to the block-page server in answer to a Host header"
    PARAMS = {**TcpInject.PARAMS, "action": ("choice:redirect", "redirect", "a redirect")}


class SniFin(TcpInject):
    name = "sni_fin"
    summary = "an injected FIN after a ClientHello with the blocked SNI (EOF)"
    PARAMS = {**TcpInject.PARAMS, "port": ("int", 443, "443"), "action": ("choice:fin", "fin", "")}


# ============================================================================ TLS
class TlsMitm(Technique):
    name = "tls_mitm"
    summary = ("TLS interception: a transparent proxy forges the real leaf's subject/SAN "
               "under the rogue national CA")
    PARAMS = {
        "hosts": ("hosts", REQUIRED, "SNIs that are intercepted (others are relayed untouched)"),
        "all_sni": ("bool", False, "intercept every SNI to the hosts' addresses"),
        "port": ("int", 8443, "the proxy's local port"),
    }

    def apply(self) -> str:
        chain = f"C_{self.id}"
        lines = [f"iptables -t nat -N {chain}"]
        for ip in self.ips():
            lines.append(f"iptables -t nat -A {chain} -d {ip} -p tcp --dport 443 "
                         f"-j REDIRECT --to-ports {self.p['port']}")
        lines.append(f"iptables -t nat -A PREROUTING -i {self.lan} -j {chain}")
        return "\n".join(lines) + "\n"

    def devices(self) -> list[Device]:
        return [Device(f"mitm-{self.id}", self.router, "probe.lab.simnet.devices.mitm", {
            "listen": f"0.0.0.0:{self.p['port']}",
            "pki_dir": str(self.ctx.pki_dir),
            "intercept": [] if self.p["all_sni"] else self.hosts,
            "upstream_ca": self.ctx.ca_pem,
        })]

    def checks(self) -> list[Check]:
        out = []
        for h in self.hosts:
            ip = self.ctx.world.ip_of(h)
            other = self.innocuous(self.hosts)
            out.append(_check(self.cid(f"forged:{h}"), "cli", "tls",
                              f"the client gets a certificate for {h} from the rogue CA",
                              {"outcome": "ok", "issuer_contains": ROGUE_ISSUER},
                              ip=ip, sni=h, timeout=3.0))
            out.append(_check(self.cid(f"forged-untrusted:{h}"), "cli", "tls",
                              "the forged chain does not validate against the world CA",
                              {"outcome": "cert"}, ip=ip, sni=h, timeout=3.0, verify=True,
                              cafile=self.ctx.ca_pem))
            if not self.p["all_sni"]:
                out.append(_check(self.cid(f"innocuous-sni:{h}"), "cli", "tls",
                                  f"SNI {other} to {ip} is relayed untouched",
                                  {"outcome": "ok", "issuer_not_contains": ROGUE_ISSUER},
                                  ip=ip, sni=other, timeout=3.0))
            out.append(_check(self.cid(f"control:{h}"), "ctl", "tls",
                              f"the control sees the genuine certificate of {h}",
                              {"outcome": "ok", "issuer_contains": WORLD_ISSUER}, ip=ip, sni=h,
                              verify=True, cafile=self.ctx.ca_pem))
        return out


# ============================================================================ throttling
class Throttle(Technique):
    name = "throttle"
    summary = "throttling of chosen destinations (htb class + u32 match on the source address)"
    PARAMS = {
        "hosts": ("hosts", REQUIRED, "sites whose traffic to the client is shaped"),
        "rate": ("str", "150kbit", "tc rate, e.g. 150kbit"),
    }
    movable = True

    def apply(self) -> str:
        lines = [
            f"tc qdisc add dev {self.lan} root handle 1: htb default 10",
            f"tc class add dev {self.lan} parent 1: classid 1:10 htb rate 10gbit",
            f"tc class add dev {self.lan} parent 1: classid 1:20 htb rate {self.p['rate']} "
            f"ceil {self.p['rate']}",
        ]
        for ip in self.ips():
            lines.append(f"tc filter add dev {self.lan} parent 1: protocol ip prio 1 u32 "
                         f"match ip src {ip}/32 flowid 1:20")
        return "\n".join(lines) + "\n"

    def rate_bps(self) -> float:
        text = self.p["rate"].lower()
        for suffix, mult in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)):
            if text.endswith(suffix):
                return float(text[: -len(suffix)]) * mult
        return float(text)

    def checks(self) -> list[Check]:
        out = []
        for h in self.hosts:
            site = self.ctx.world.site(h)
            size = site.spec.site.get("size") or 0
            beh = site.spec.site.get("behaviour", "ok")
            if beh.startswith("big:"):
                size = int(beh.split(":", 1)[1])
            if size < 20000:
                continue
            expected = size * 8 / self.rate_bps()
            ip = site.ips[0]
            out.append(_check(self.cid(f"slow:{h}"), "cli", "http",
                              f"{size} bytes from {h} take about {expected:.1f}s at "
                              f"{self.p['rate']}",
                              {"outcome": "ok", "min_seconds": round(expected * 0.6, 2),
                               "min_length": size},
                              ip=ip, host=h, tls=True, timeout=expected * 3 + 3,
                              total_timeout=expected * 3 + 5))
            out.append(_check(self.cid(f"control-fast:{h}"), "ctl", "http",
                              f"the control fetches {h} fast",
                              {"outcome": "ok", "max_seconds": round(expected * 0.2, 2)},
                              ip=ip, host=h, tls=True))
        return out


# ============================================================================ shutdowns
class Shutdown(Technique):
    name = "shutdown"
    summary = "network shutdown: full, international-only (domestic reachable) or allow-list"
    PARAMS = {
        "mode": ("choice:full|international|allowlist", "full", "what stays reachable"),
        "allow": ("hosts", [], "allow-list mode: the domestic sites that stay reachable"),
    }
    removable = True
    global_effect = True

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if (params["mode"] == "allowlist") != bool(params["allow"]):
            raise ValueError("'allow' is required with mode = 'allowlist' and only then")

    def touched_hosts(self) -> list[str]:
        return list(self.ctx.world.sites)

    def apply(self) -> str:
        lan = self.lan
        mode = self.p["mode"]
        if mode == "full":
            fwd = f'    iifname "{lan}" drop\n    oifname "{lan}" drop\n'
            inp = f'    iifname != "{lan}" iifname != "lo" drop\n'
            sets = ""
        elif mode == "international":
            elems = ", ".join(A.domestic_cidrs())
            sets = f"  set home {{ type ipv4_addr; flags interval; elements = {{ {elems} }} }}\n"
            fwd = (f'    iifname "{lan}" ip daddr != @home drop\n'
                   f'    oifname "{lan}" ip saddr != @home drop\n')
            inp = f'    iifname != "{lan}" iifname != "lo" ip saddr != @home drop\n'
        else:
            allowed = [ip for h in self.p["allow"] for ip in self.ctx.world.ips_of(h)]
            elems = ", ".join(allowed)
            sets = f"  set allowed {{ type ipv4_addr; elements = {{ {elems} }} }}\n"
            fwd = (f'    iifname "{lan}" ip daddr != @allowed drop\n'
                   f'    oifname "{lan}" ip saddr != @allowed drop\n')
            # the ISP resolver keeps its domestic upstream so allowed names still resolve
            inp = (f'    iifname != "{lan}" iifname != "lo" ip saddr != '
                   f'{A.AUTH_DNS_DOMESTIC_IP} drop\n')
        return _nft(
            f"table inet c_{self.id} {{\n{sets}"
            "  chain cforward { type filter hook forward priority -10; policy accept;\n"
            f"{fwd}  }}\n"
            f"  chain cinput {{ type filter hook input priority -10; policy accept;\n{inp}  }}\n"
            "}\n"
        )

    def remove(self) -> str:
        return f"nft delete table inet c_{self.id}\n"

    def checks(self) -> list[Check]:
        w = self.ctx.world
        mode = self.p["mode"]
        intl = w.ip_of(INNOCUOUS_HOST)
        dom = w.ip_of(DOMESTIC_INNOCUOUS_HOST)
        out = [
            _check(self.cid("gateway-up"), "cli", "tcp", "the gateway still answers (RST on a "
                   "closed port): the client's own link is fine", {"outcome": "refused"},
                   ip=A.GATEWAY_IP, port=9, timeout=2.0),
            _check(self.cid("international-cut"), "cli", "tcp",
                   f"an international host ({INNOCUOUS_HOST}) times out", {"outcome": "timeout"},
                   ip=intl, port=443, timeout=1.5),
            _check(self.cid("control-fine"), "ctl", "tcp", "the control still reaches the host",
                   {"outcome": "ok"}, ip=intl, port=443),
        ]
        if mode == "full":
            out.append(_check(self.cid("domestic-cut"), "cli", "tcp",
                              "a domestic host times out too", {"outcome": "timeout"},
                              ip=dom, port=443, timeout=1.5))
        elif mode == "international":
            out.append(_check(self.cid("domestic-up"), "cli", "tcp",
                              "a domestic host is still reachable", {"outcome": "ok"},
                              ip=dom, port=443))
        else:
            allow = self.p["allow"]
            out.append(_check(self.cid("allowed-up"), "cli", "tcp",
                              f"allow-listed {allow[0]} is reachable", {"outcome": "ok"},
                              ip=w.ip_of(allow[0]), port=443))
            other = next(h for h in ("www.gov.kz", "tengrinews.kz", "kaspi.kz", "halykbank.kz")
                         if h not in allow)
            out.append(_check(self.cid("not-allowed-cut"), "cli", "tcp",
                              f"domestic {other}, not on the list, times out",
                              {"outcome": "timeout"}, ip=w.ip_of(other), port=443, timeout=1.5))
        return out

    def checks_removed(self) -> list[Check]:
        return [_check(self.cid("restored"), "cli", "tcp",
                       "after the shutdown the international host is reachable again",
                       {"outcome": "ok"}, ip=self.ctx.world.ip_of(INNOCUOUS_HOST), port=443)]


class FamilyCut(Technique):
    """One address family cut on the client's access link, the other untouched (issue 15).

    ``family = "ipv6"`` with ``action = "unreachable"`` is a volunteer whose IPv6 is broken (the
    router answers ICMPv6 "no route", as a CPE without an IPv6 uplink does); with ``drop`` it is
    a shutdown of IPv6 only. ``family = "ipv4"`` is a shutdown of IPv4 while IPv6 still works.
    Only forwarded traffic is cut: the ISP resolver on the router still answers (over IPv4).
    """

    name = "family_cut"
    summary = "cut one address family (IPv4 or IPv6) on the client's link, keep the other"
    PARAMS = {
        "family": ("choice:ipv4|ipv6", REQUIRED, "the family that is cut"),
        "action": ("choice:drop|unreachable", "drop",
                   "drop (timeouts, a shutdown) or reject with ICMP no-route (broken IPv6)"),
    }
    removable = True
    global_effect = True

    def touched_hosts(self) -> list[str]:
        return list(self.ctx.world.sites)

    def apply(self) -> str:
        key = "ip" if self.p["family"] == "ipv4" else "ip6"
        what = "drop" if self.p["action"] == "drop" else "reject with icmpx type no-route"
        return _nft(
            f"table inet c_{self.id} {{\n"
            "  chain cforward { type filter hook forward priority -10; policy accept;\n"
            f'    iifname "{self.lan}" meta nfproto {"ipv4" if key == "ip" else "ipv6"} {what}\n'
            f'    oifname "{self.lan}" meta nfproto {"ipv4" if key == "ip" else "ipv6"} drop\n'
            "  }\n}\n"
        )

    def remove(self) -> str:
        return f"nft delete table inet c_{self.id}\n"

    def checks(self) -> list[Check]:
        w = self.ctx.world
        v4, v6 = w.ip_of(INNOCUOUS_HOST), w.ips6_of(INNOCUOUS_HOST)[0]
        cut, kept = (v4, v6) if self.p["family"] == "ipv4" else (v6, v4)
        want = "timeout" if self.p["action"] == "drop" else "unreachable"
        return [
            _check(self.cid("cut"), "cli", "tcp",
                   f"{INNOCUOUS_HOST} over {self.p['family']} ({cut}) fails ({want})",
                   {"outcome": want}, ip=cut, port=443, timeout=1.5),
            _check(self.cid("other-family"), "cli", "tcp",
                   f"{INNOCUOUS_HOST} over the other family ({kept}) works", {"outcome": "ok"},
                   ip=kept, port=443),
            _check(self.cid("control-fine"), "ctl", "tcp",
                   f"the control reaches {cut}", {"outcome": "ok"}, ip=cut, port=443),
        ]

    def checks_removed(self) -> list[Check]:
        w = self.ctx.world
        ip = w.ip_of(INNOCUOUS_HOST) if self.p["family"] == "ipv4" else w.ips6_of(
            INNOCUOUS_HOST)[0]
        return [_check(self.cid("restored"), "cli", "tcp", f"{ip} is reachable again",
                       {"outcome": "ok"}, ip=ip, port=443)]


class LocalLinkDown(Technique):
    name = "local_link_down"
    summary = "not censorship: the volunteer's own access link is down (no carrier)"
    PARAMS: ClassVar[dict[str, tuple[str, Any, str]]] = {}
    removable = True
    global_effect = True
    censorship = False

    def touched_hosts(self) -> list[str]:
        return list(self.ctx.world.sites)

    def apply(self) -> str:
        return f"ip link set {self.lan} down\n"

    def remove(self) -> str:
        return f"ip link set {self.lan} up\n"

    def checks(self) -> list[Check]:
        return [
            _check(self.cid("gateway-down"), "cli", "tcp", "the gateway does not answer",
                   {"outcome": ["timeout", "unreachable"]}, ip=A.GATEWAY_IP, port=9, timeout=1.5),
            _check(self.cid("resolver-down"), "cli", "dns", "the ISP resolver does not answer",
                   {"outcome": ["timeout", "unreachable"]}, server=A.ISP_RESOLVER_IP,
                   name=INNOCUOUS_HOST, timeout=1.5),
            _check(self.cid("control-fine"), "ctl", "tcp", "the world is fine",
                   {"outcome": "ok"}, ip=self.ctx.world.ip_of(INNOCUOUS_HOST), port=443),
        ]

    def checks_removed(self) -> list[Check]:
        return [_check(self.cid("restored"), "cli", "tcp", "the link is back",
                       {"outcome": "ok"}, ip=self.ctx.world.ip_of(INNOCUOUS_HOST), port=443,
                       timeout=3.0)]


class Flaky(Technique):
    name = "flaky"
    summary = "not censorship: packet loss on a transit link that a retry survives " \
              "(the first SYNs to the hosts are lost)"
    PARAMS = {
        "hosts": ("hosts", REQUIRED, "destinations whose first SYNs are lost"),
        "syns": ("int", 3, "how many SYNs are lost (per destination set, then none)"),
    }
    movable = True
    censorship = False
    default_router = "t1"
    SYN_BYTES = 74  # as nft counts it here: Ethernet 14 + IPv4 20 + TCP 20 + SYN options 20

    def apply(self) -> str:
        elems = ", ".join(self.ips())
        quota = self.p["syns"] * self.SYN_BYTES + self.SYN_BYTES // 2  # N SYNs fit, N+1 do not
        return _nft(
            f"table inet c_{self.id} {{\n"
            f"  quota lossy {{ until {quota} bytes }}\n"
            f"  set dests {{ type ipv4_addr; elements = {{ {elems} }} }}\n"
            "  chain cforward { type filter hook forward priority -5; policy accept;\n"
            '    ip daddr @dests tcp flags & (syn | ack) == syn quota name "lossy" drop\n'
            "  }\n}\n"
        )

    def reset(self) -> str:
        return f"nft reset quota inet c_{self.id} lossy >/dev/null\n"

    def checks(self) -> list[Check]:
        out = []
        h = self.hosts[0]
        ip = self.ctx.world.ip_of(h)
        connect_for = 0.5 + sum(2**k for k in range(self.p["syns"] - 1))  # SYN retries 1s, 2s…
        out.append(_check(self.cid(f"lossy-then-fine:{h}"), "cli", "sequence",
                          f"the first connect to {h} loses its {self.p['syns']} SYNs, "
                          "a retry gets through", {},
                          steps=[
                              {"kind": "tcp", "ip": ip, "port": 443, "timeout": connect_for,
                               "expect": {"outcome": "timeout"}},
                              {"kind": "tcp", "ip": ip, "port": 443, "timeout": 2.0,
                               "expect": {"outcome": "ok"}},
                          ]))
        return out


# ============================================================================ freezes
class Freeze(Technique):
    """Russia 2025 (TSPU): a connection from a chosen server freezes after its first bytes.

    The censor lets the first ~16 KB of a server's reply through, then drops every further
    packet of that connection; the client has a status and part of the body and waits until
    its deadline, the control gets the whole page (Cloudflare's blog, 2025-06-26, and
    net4people/bbs#417 and #490 on the "16 KB" freeze of Cloudflare/Hetzner/DigitalOcean
    hosted sites). Here: iptables ``connbytes`` on
    the reply direction (conntrack accounting on), per server address, on the client-facing
    interface (reference/simnet-recipes.md, "Stateful byte counts"). ``bytes`` counts whole IP
    packets of the reply, handshake included, and the router sees the server's flights as
    GSO super-packets (a first flight of ~14 KB is one packet): the cut falls at a flight
    boundary, so 20480 lets the TLS handshake and ~16.7 KB of HTTP through.
    """

    name = "freeze"
    summary = ("connections from chosen servers freeze after their first N bytes (iptables "
               "connbytes on the reply direction; Russia's TSPU 2025)")
    PARAMS = {
        "hosts": ("hosts", REQUIRED, "servers whose connections to the client freeze"),
        "bytes": ("int", 16384, "reply bytes (IP packets) let through per connection"),
    }
    movable = True
    removable = True

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if params["bytes"] < 1024:
            raise ValueError("bytes must be at least 1024 (the handshake must get through)")

    def apply(self) -> str:
        chain = f"C_{self.id}"
        lines = ["sysctl -qw net.netfilter.nf_conntrack_acct=1 || true", f"iptables -N {chain}"]
        for ip in self.ips():
            lines.append(f"iptables -A {chain} -s {ip} -p tcp -m connbytes --connbytes "
                         f"{self.p['bytes']}: --connbytes-dir reply --connbytes-mode bytes "
                         "-j DROP")
        lines.append(f"iptables -A FORWARD -o {self.lan} -p tcp -j {chain}")
        return "\n".join(lines) + "\n"

    def remove(self) -> str:
        chain = f"C_{self.id}"
        return (f"iptables -D FORWARD -o {self.lan} -p tcp -j {chain}\n"
                f"iptables -F {chain}\niptables -X {chain}\n")

    def checks(self) -> list[Check]:
        out = []
        limit = self.p["bytes"]
        for h in self.hosts:
            site = self.ctx.world.site(h)
            size = site.spec.site.get("size") or 0
            ip = site.ips[0]
            if size <= 2 * limit:
                # the innocuous variant: a reply that fits under the limit is untouched
                out.append(_check(self.cid(f"small-whole:{h}"), "cli", "http",
                                  f"{h}'s small page (under {limit} bytes) arrives whole",
                                  {"outcome": "ok", "status": 200, "late_error": None},
                                  ip=ip, host=h, tls=True, timeout=2.0))
                continue
            out.append(_check(self.cid(f"frozen:{h}"), "cli", "http",
                              f"the status and at most {limit} bytes of {h}'s {size}-byte page "
                              "arrive, then nothing", {"outcome": "ok", "status": 200,
                                                       "late_error": "timeout",
                                                       "max_length": limit},
                              ip=ip, host=h, tls=True, timeout=2.0, total_timeout=6.0))
            out.append(_check(self.cid(f"control-whole:{h}"), "ctl", "http",
                              f"the control gets all {size} bytes of {h}",
                              {"outcome": "ok", "status": 200, "min_length": size,
                               "max_seconds": 2.0}, ip=ip, host=h, tls=True))
        return out


# ============================================================================ residual censorship
class QuicSni(Technique):
    """QUIC filtered by the SNI of the client's Initial, decrypted on the path (its keys derive
    from the connection id; devices/quic_sni.py): the Initial is dropped, the handshake times
    out, TCP/TLS is untouched (China since April 2024, issue 15)."""

    name = "quic_sni"
    summary = ("QUIC SNI filtering: the censor decrypts the client's Initial (NFQUEUE) and drops "
               "it when its SNI is blocked; TCP/TLS untouched")
    PARAMS = {
        "hosts": ("hosts", REQUIRED, "server names whose QUIC Initials are dropped"),
        "queue": ("int", 33, "NFQUEUE number"),
    }
    movable = True
    removable = True

    def _rule(self, op: str) -> str:
        tools = ("iptables", "ip6tables") if self.ctx.topo.ipv6 else ("iptables",)
        return "".join(f"{tool} {op} FORWARD -i {self.lan} -p udp --dport 443 "
                       f"-j NFQUEUE --queue-num {self.p['queue']} --queue-bypass\n"
                       for tool in tools)

    def apply(self) -> str:
        return self._rule("-A")

    def remove(self) -> str:
        return self._rule("-D")

    def devices(self) -> list[Device]:
        return [Device(f"quicsni-{self.id}", self.router, "probe.lab.simnet.devices.quic_sni",
                       {"queue": self.p["queue"], "keywords": self.hosts})]

    def checks(self) -> list[Check]:
        out = []
        for h in self.hosts:
            ip = self.ctx.world.ip_of(h)
            other = self.innocuous(self.hosts)
            out.append(_check(self.cid(f"quic-sni:{h}"), "cli", "quic",
                              f"a QUIC Initial with SNI {h} to {ip} is dropped",
                              {"outcome": "timeout"}, ip=ip, port=443, sni=h, timeout=2.0))
            out.append(_check(self.cid(f"quic-innocuous:{h}"), "cli", "quic",
                              f"SNI {other} to the same address {ip} completes the handshake",
                              {"outcome": "ok"}, ip=ip, port=443, sni=other, timeout=3.0))
            out.append(_check(self.cid(f"tls:{h}"), "cli", "tls",
                              f"TLS over TCP with SNI {h} still works", {"outcome": "ok"},
                              ip=ip, sni=h, timeout=3.0))
            out.append(_check(self.cid(f"control:{h}"), "ctl", "quic",
                              f"the control's QUIC with SNI {h} works", {"outcome": "ok"},
                              ip=ip, port=443, sni=h, timeout=3.0))
        return out


class ResidualBlock(Technique):
    """After a keyword (HTTP request or TLS SNI), the client is blocked from the same server or
    from every server for ``seconds`` (GFW-style residual censorship; devices/penalty.py)."""

    name = "residual"
    summary = ("residual censorship: after a keyword in an HTTP request or a TLS SNI, drop or "
               "reset the client's packets to the same server (or any server) for a while")
    PARAMS = {
        "hosts": ("hosts", REQUIRED, "keywords (the blocked sites' names) that trigger it"),
        "port": ("int", 80, "80 (keyword in the HTTP request head) or 443 (in the TLS SNI)"),
        "scope": ("choice:server|any", "server",
                  "server: the (client, server, port) triple; any: everything of the client"),
        "action": ("choice:drop|reset", "drop", "what the residual block does to packets"),
        "seconds": ("float", 90.0, "how long the block lasts after each trigger"),
        "queue": ("int", 31, "NFQUEUE number"),
    }
    movable = True

    def __init__(self, spec: CensorSpec, ctx: Ctx) -> None:
        super().__init__(spec, ctx)
        # a client-wide block hits every site from the client: the base network's client-side
        # self-checks (run at the same time as these) must not count on it
        self.global_effect = self.p["scope"] == "any"  # type: ignore[misc]

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if params["port"] not in (80, 443):
            raise ValueError("port must be 80 or 443")
        if not 1.0 <= params["seconds"] <= 600.0:
            raise ValueError("seconds must be 1..600")

    @property
    def table(self) -> str:
        return f"c_{self.id}"

    def touched_hosts(self) -> list[str]:
        if self.p["scope"] == "any":
            return list(self.ctx.world.sites)
        blocked = set(self.ips())
        return [h for h in self.ctx.world.sites if set(self.ctx.world.ips_of(h)) & blocked]

    def apply(self) -> str:
        lan = self.lan
        verdict = "reject with tcp reset" if self.p["action"] == "reset" else "drop"
        nft = _nft(
            f"table inet {self.table} {{\n"
            "  set flows { type ipv4_addr . ipv4_addr . inet_service; flags timeout; }\n"
            "  set clients { type ipv4_addr; flags timeout; }\n"
            "  chain cforward { type filter hook forward priority -5; policy accept;\n"
            f'    iifname "{lan}" ip saddr . ip daddr . tcp dport @flows ip protocol tcp '
            f"{verdict}\n"
            f'    oifname "{lan}" ip daddr . ip saddr . tcp sport @flows drop\n'
            f'    iifname "{lan}" ip saddr @clients ip protocol tcp {verdict}\n'
            f'    iifname "{lan}" ip saddr @clients drop\n'
            f'    oifname "{lan}" ip daddr @clients drop\n'
            "  }\n}\n")
        chain = f"C_{self.id}"
        lines = [f"iptables -N {chain}"]
        for h in self.hosts:
            lines.append(f"iptables -A {chain} -p tcp -m string --string '{h}' --algo bm --icase "
                         f"-j NFQUEUE --queue-num {self.p['queue']} --queue-bypass")
        lines.append(f"iptables -A FORWARD -i {lan} -p tcp --dport {self.p['port']} -j {chain}")
        return nft + "\n".join(lines) + "\n"

    def remove(self) -> str:
        chain = f"C_{self.id}"
        return (f"iptables -D FORWARD -i {self.lan} -p tcp --dport {self.p['port']} -j {chain}\n"
                f"iptables -F {chain}\niptables -X {chain}\n"
                f"nft delete table inet {self.table}\n")

    def reset(self) -> str:
        # the self-checks triggered it: the probe must start with a clean slate
        return (f"nft flush set inet {self.table} flows\n"
                f"nft flush set inet {self.table} clients\n")

    def devices(self) -> list[Device]:
        return [Device(f"residual-{self.id}", self.router, "probe.lab.simnet.devices.penalty", {
            "queue": self.p["queue"], "port": self.p["port"], "keywords": self.hosts,
            "scope": self.p["scope"], "seconds": self.p["seconds"], "table": self.table,
            "family": "inet"})]

    def _trigger_step(self, h: str, ip: str) -> Check:
        if self.p["port"] == 443:
            return {"kind": "tls", "ip": ip, "sni": h, "timeout": 2.0,
                    "expect": {"outcome": "timeout" if self.p["action"] == "drop" else "reset"}}
        return {"kind": "http", "ip": ip, "host": h, "timeout": 2.0,
                "expect": {"outcome": "timeout" if self.p["action"] == "drop" else "reset"}}

    def checks(self) -> list[Check]:
        h = self.hosts[0]
        ip = self.ctx.world.ip_of(h)
        port = self.p["port"]
        blocked = "timeout" if self.p["action"] == "drop" else "refused"  # a RST to a SYN
        steps = [self._trigger_step(h, ip),
                 {"kind": "tcp", "ip": ip, "port": port, "timeout": 1.5,
                  "expect": {"outcome": blocked}}]
        other = self.ctx.world.ip_of(self.innocuous(self.hosts))
        if self.p["scope"] == "any":
            steps.append({"kind": "tcp", "ip": other, "port": port, "timeout": 1.5,
                          "expect": {"outcome": blocked}})
        out = [_check(self.cid(f"residual:{h}"), "cli", "sequence",
                      f"a request with {h} is blocked, then so is a plain connect to "
                      + ("every server" if self.p["scope"] == "any" else f"{ip}:{port}"),
                      {}, steps=steps)]
        out.append(_check(self.cid(f"control:{h}"), "ctl", "tcp",
                          f"the control connects to {ip}:{port}", {"outcome": "ok"},
                          ip=ip, port=port))
        return out


class Geneva(Technique):
    """An on-path NFQUEUE censor with one documented behaviour each (``model``; devices/geneva.py,
    after the Geneva project's censor models and the reports cited in docs/simnet.md)."""

    name = "geneva"
    summary = ("censor behaviours we did not write (Geneva's models and field reports): RST to "
               "the client only, the server only or both ends, stale RSTs, RSTs that miss, FIN, "
               "TLS alert, TCB-tracking drop, the server's reply dropped")
    PARAMS = {
        "hosts": ("hosts", REQUIRED, "names that trigger it (HTTP Host / TLS SNI)"),
        "port": ("int", 443, "80 (Host header) or 443 (TLS SNI)"),
        "model": ("choice:rst_client|rst_both|rst_server|rst_stale|rst_miss|fin|tls_alert|tcb|"
                  "drop_reply",
                  REQUIRED, "the behaviour (devices/geneva.py)"),
        "queue": ("int", 41, "NFQUEUE number (one per censor of this kind)"),
    }
    movable = True
    removable = True
    #: model -> what the client sees in the self-check (selfcheck.outcome_of's words)
    OUTCOMES: ClassVar[dict[str, str]] = {
        "rst_client": "reset", "rst_both": "reset", "rst_server": "reset", "rst_stale": "reset",
        "rst_miss": "ok", "fin": "eof",
        "tls_alert": "tls_error", "tcb": "timeout", "drop_reply": "timeout"}

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        if params["port"] not in (80, 443):
            raise ValueError("port must be 80 or 443")
        if params["model"] == "tls_alert" and params["port"] != 443:
            raise ValueError("model tls_alert needs port 443 (it answers a ClientHello)")

    def _rules(self) -> list[str]:
        port = self.p["port"]
        rules = [f"-i {self.lan} -p tcp -d {ip} --dport {port}" for ip in self.ips()]
        if self.p["model"] in ("tcb", "drop_reply"):
            rules += [f"-o {self.lan} -p tcp -s {ip} --sport {port}" for ip in self.ips()]
        return rules

    def apply(self) -> str:
        chain = f"C_{self.id}"
        lines = [f"iptables -N {chain}",
                 f"iptables -A {chain} -j NFQUEUE --queue-num {self.p['queue']} --queue-bypass"]
        lines += [f"iptables -A FORWARD {r} -j {chain}" for r in self._rules()]
        return "\n".join(lines) + "\n"

    def remove(self) -> str:
        chain = f"C_{self.id}"
        lines = [f"iptables -D FORWARD {r} -j {chain}" for r in self._rules()]
        lines += [f"iptables -F {chain}", f"iptables -X {chain}"]
        return "\n".join(lines) + "\n"

    def devices(self) -> list[Device]:
        return [Device(f"geneva-{self.id}", self.router, "probe.lab.simnet.devices.geneva", {
            "queue": self.p["queue"], "model": self.p["model"], "port": self.p["port"],
            "hosts": self.hosts})]

    def checks(self) -> list[Check]:
        out = []
        other = self.innocuous(self.hosts)
        want = self.OUTCOMES[self.p["model"]]
        tls = self.p["port"] == 443
        for h in self.hosts:
            ip = self.ctx.world.ip_of(h)
            if tls:
                out += self.sni_checks(
                    h, other, f"a ClientHello with SNI {h} meets {self.p['model']}: {want}",
                    {"outcome": want})
                continue
            out.append(_check(self.cid(f"host:{h}"), "cli", "http",
                              f"GET with Host: {h} meets {self.p['model']}: {want}",
                              {"outcome": want}, ip=ip, host=h, timeout=2.0))
            out.append(_check(self.cid(f"innocuous:{h}"), "cli", "http",
                              f"GET with Host: {other} to {ip} gets a response",
                              {"outcome": "ok"}, ip=ip, host=other, timeout=2.0))
            out.append(_check(self.cid(f"control:{h}"), "ctl", "http",
                              f"the control fetches http://{h}/", {"outcome": "ok"},
                              ip=ip, host=h))
        return out


# ============================================================================ captive portal
class CaptivePortal(Technique):
    """Not censorship: a captive portal between the volunteer and the Internet.

    A hotel Wi-Fi before its login, or a mobile line whose prepaid balance ran out (the
    operator's walled garden: every HTTP request goes to its top-up page), intercepts the
    client's plain HTTP alike and lets nothing else through. Here: iptables DNAT of the
    client's TCP port 80 to a portal web server in the router's namespace
    (:mod:`probe.lab.simnet.devices.portal`: a 302 to its login page, the page itself for its
    own name), and every other forwarded packet of the client refused (``others = "reset"``:
    TCP gets a RST, the rest is dropped) or dropped (``"drop"``). Real portals do both:
    walled gardens built on the Linux netfilter recipe reject what they do not redirect,
    many Wi-Fi portals just drop it (the client sees timeouts); DNS to the ISP resolver is
    left alone, as portals let DNS through so that the redirect's name resolves.
    """

    name = "captive_portal"
    summary = ("not censorship: a captive portal (hotel Wi-Fi, exhausted prepaid balance) "
               "redirects all plain HTTP to its login page and refuses or drops the rest")
    PARAMS = {
        "others": ("choice:reset|drop", "reset",
                   "what happens to everything but TCP 80: refused (TCP RST) or dropped"),
        "portal_name": ("str", "portal.simtelecom-sim.kz", "the portal's host name"),
        "title": ("str", "Top up your balance", "the login page's <title>"),
    }
    removable = True
    global_effect = True
    censorship = False
    PORTAL_IP = "37.150.0.90"

    def touched_hosts(self) -> list[str]:
        return list(self.ctx.world.sites)

    def resolver_records(self) -> dict[str, Any]:
        return {self.p["portal_name"]: {"A": [self.PORTAL_IP], "ttl": 60}}

    def setup(self) -> str:
        return f"ip addr add {self.PORTAL_IP}/32 dev lo\n"

    def apply(self) -> str:
        chain = f"C_{self.id}"
        tcp = ("meta l4proto tcp reject with tcp reset" if self.p["others"] == "reset"
               else "drop")
        return (f"iptables -t nat -N {chain}\n"
                f"iptables -t nat -A {chain} -p tcp --dport 80 "
                f"-j DNAT --to-destination {self.PORTAL_IP}:80\n"
                f"iptables -t nat -A PREROUTING -i {self.lan} -j {chain}\n"
                + _nft(f"table inet c_{self.id} {{\n"
                       "  chain cforward { type filter hook forward priority -10; "
                       "policy accept;\n"
                       f'    iifname "{self.lan}" {tcp}\n'
                       f'    iifname "{self.lan}" drop\n'
                       "  }\n}\n"))

    def remove(self) -> str:
        chain = f"C_{self.id}"
        return (f"iptables -t nat -D PREROUTING -i {self.lan} -j {chain}\n"
                f"iptables -t nat -F {chain}\niptables -t nat -X {chain}\n"
                f"nft delete table inet c_{self.id}\n")

    def devices(self) -> list[Device]:
        return [Device(f"portal-{self.id}", self.router, "probe.lab.simnet.devices.portal", {
            "listen": f"{self.PORTAL_IP}:80", "name": self.p["portal_name"],
            "title": self.p["title"]})]

    def checks(self) -> list[Check]:
        w = self.ctx.world
        name = self.p["portal_name"]
        intl = w.ip_of(INNOCUOUS_HOST)
        refused = "refused" if self.p["others"] == "reset" else "timeout"
        out = [
            _check(self.cid("redirected"), "cli", "http",
                   f"plain HTTP to {INNOCUOUS_HOST} ({intl}) is redirected to the portal",
                   {"outcome": "ok", "status": 302, "location_contains": f"http://{name}/"},
                   ip=intl, host=INNOCUOUS_HOST, timeout=2.0),
            _check(self.cid("login-page"), "cli", "http", f"the portal {name} serves its page",
                   {"outcome": "ok", "status": 200, "body_contains": self.p["title"]},
                   ip=self.PORTAL_IP, host=name, timeout=2.0),
            _check(self.cid("https-refused"), "cli", "tcp",
                   f"HTTPS to {INNOCUOUS_HOST} is "
                   f"{'refused (RST)' if refused == 'refused' else 'dropped'}",
                   {"outcome": refused},
                   ip=intl, port=443, timeout=1.5),
            _check(self.cid("gateway-up"), "cli", "tcp", "the gateway answers: the client's "
                   "own link is fine", {"outcome": "refused"}, ip=A.GATEWAY_IP, port=9,
                   timeout=2.0),
            _check(self.cid("control-fine"), "ctl", "http",
                   f"the control fetches http://{INNOCUOUS_HOST}/ itself",
                   {"outcome": "ok", "status": 200}, ip=intl, host=INNOCUOUS_HOST),
        ]
        for host in PORTAL_CHECK_HOSTS:
            if host in w.sites:
                out.append(_check(self.cid(f"check:{host}"), "cli", "http",
                                  f"the portal check {host} is redirected to the portal too",
                                  {"outcome": "ok", "status": 302,
                                   "location_contains": f"http://{name}/"},
                                  ip=w.ip_of(host), host=host, timeout=2.0))
        return out

    def checks_removed(self) -> list[Check]:
        ip = self.ctx.world.ip_of(INNOCUOUS_HOST)
        return [_check(self.cid("restored"), "cli", "http", "plain HTTP is not redirected",
                       {"outcome": "ok", "status": 200}, ip=ip, host=INNOCUOUS_HOST,
                       timeout=3.0)]


TECHNIQUES: dict[str, type[Technique]] = {
    cls.name: cls
    for cls in (DnsLie, DnsProxy, DnsInject, IpBlock, SniReset, SniDrop, HttpReset, TcpInject,
                HttpBlockpage, HttpRedirect, SniFin, TlsMitm, Throttle, Shutdown, LocalLinkDown,
                Flaky, Freeze, ResidualBlock, FamilyCut, QuicSni, Geneva, CaptivePortal)
}


def instantiate(spec: CensorSpec, ctx: Ctx) -> Technique:
    return TECHNIQUES[spec.technique](spec, ctx)


def describe() -> list[dict[str, Any]]:
    """Every technique with its parameters (for docs and `probe sim list --techniques`)."""
    out = []
    for cls in TECHNIQUES.values():
        out.append({
            "name": cls.name,
            "summary": cls.summary,
            "censorship": cls.censorship,
            "timed": cls.removable,
            "params": {k: {"type": v[0], "default": None if v[1] is REQUIRED else v[1],
                           "required": v[1] is REQUIRED, "help": v[2]}
                       for k, v in cls.PARAMS.items()},
        })
    return out


def dump_json(checks: list[Check]) -> str:
    return json.dumps(checks, indent=1)


__all__ = ["TECHNIQUES", "Technique", "Ctx", "Device", "instantiate", "describe", "field"]
