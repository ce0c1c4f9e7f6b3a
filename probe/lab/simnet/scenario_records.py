"""The records of a scenario and the validation of its [[sites]] entries.

Responsibility: the frozen records :mod:`.scenario` returns (sites, censors, events, targets,
expectations), the constants of the file format they need, and the parsing of one site entry.
The site plan (:mod:`.site_plan`) and the censor techniques (:mod:`.techniques`) depend on these
records only, and the scenario parser depends on both of them: this module is the bottom of
that chain, so every import in it, and in the modules above it, sits at the top.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.errors import UsageError
from probe.lab.simnet import addressing as A
from probe.lab.world.spec import SiteConfig, normalize_hostname, parse_web_behaviour

SCENARIO_DIR = Path(__file__).parent / "scenarios"

VERDICTS = ("ok", "blocked", "intercepted", "throttled", "down", "shutdown", "inconclusive")
#: Methods per verdict (DESIGN.md). ``inconclusive`` accepts any method word.
METHODS: dict[str, frozenset[str]] = {
    "ok": frozenset(),
    "blocked": frozenset(
        "dns.nxdomain dns.refused dns.servfail dns.timeout dns.bogon dns.blockpage "
        "dns.inconsistent dns.injected tcp.timeout tcp.reset tcp.unreachable tls.reset "
        "tls.timeout tls.eof tls.handshake http.blockpage http.redirect http.reset http.timeout "
        "http.eof http.status http.diff http.stall".split()
    ),
    "intercepted": frozenset({"tls.mitm"}),
    "throttled": frozenset({"throttle"}),
    "down": frozenset({"down.dns", "down.tcp", "down.tls", "down.http"}),
    "shutdown": frozenset({"shutdown.full", "shutdown.international", "shutdown.allowlist"}),
    "inconclusive": frozenset(),
}

#: Keys of a [[sites]] entry that belong to the simulator (the rest go to the world's
#: SiteConfig).
SIM_SITE_KEYS = ("host", "net", "ips", "geo_net", "geo_behaviour", "dns", "a", "down",
                 "tls_ports", "plain_ports")
#: probe.lab.world SiteConfig keys a site may set.
WORLD_SITE_KEYS = ("behaviour", "title", "body", "cert", "status", "headers", "content_type",
                   "aliases", "size", "delay", "region_block", "region_content", "http3")
SITE_DNS = ("answer", "nxdomain", "cname_only", "servfail", "refused", "silent")
SITE_DOWN = ("refused", "timeout")
#: Names usable instead of CIDRs in region_block / region_content.
REGION_ALIASES = {"client": A.NETWORK_BY_NAME["isp"].cidr, "isp": A.NETWORK_BY_NAME["isp"].cidr,
                  "control": A.NETWORK_BY_NAME["mlab"].cidr}

TOP_KEYS = ("description", "notes", "tags", "transit", "ipv6", "timeout", "concurrency",
            "resolvers", "require", "sites", "censor", "events", "clock", "targets", "demo",
            "selfchecks",
            "probe_args", "app_lists", "tor")
#: ``[tor]``: a private Tor network in the world (probe/lab/world/tor_net.py); its lists are
#: the only ``tor://LIST`` targets a scenario may name.
TOR_KEYS = ("authorities", "relays")
TOR_LISTS = ("tor", "tor-dirauths", "tor-vanilla", "tor-obfs4")
#: What event offsets count from: the probe's start, or its first connection to a target.
CLOCKS = ("first_target", "start")


class ScenarioError(UsageError, ValueError):
    """A scenario file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class SiteSpec:
    """One site of the world. ``ips``: explicit addresses, or () = allocate ``count``."""

    host: str
    net: str
    count: int = 1
    ips: tuple[str, ...] = ()
    geo_net: str | None = None  # also served from this network; the ISP resolver answers it
    geo_behaviour: str | None = None  # the behaviour of the copy in geo_net (default: the same)
    dns: str = "answer"  # what the authoritative does for the name
    a: tuple[str, ...] = ()  # explicit A record at the authoritative (overrides ips in DNS)
    down: str | None = None  # refused | timeout: the server is down for everyone
    site: dict[str, Any] = field(default_factory=dict)  # probe.lab.world SiteConfig keys
    tls_ports: tuple[int, ...] = ()  # also served over TLS on these ports (WhatsApp's 5222)
    # served over plain HTTP on exactly these ports, 443 included (Telegram's data centres)
    plain_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class CensorSpec:
    id: str
    technique: str
    params: dict[str, Any]
    active: bool = True
    router: str = "isp"


@dataclass(frozen=True)
class EventSpec:
    at: float
    action: str  # apply | remove
    censor: str


@dataclass(frozen=True)
class Expect:
    verdict: str
    method: str | None = None

    def __str__(self) -> str:
        return self.verdict if self.method is None else f"{self.verdict}/{self.method}"

    def matches(self, verdict: str | None, method: str | None) -> bool:
        return verdict == self.verdict and (self.method is None or method == self.method)


@dataclass(frozen=True)
class TargetSpec:
    url: str
    hostname: str
    expect: tuple[Expect, ...]
    xfail: str | None = None
    note: str = ""
    #: the verdict's per-family results (``details["families"]``) that must be seen; None =
    #: not checked (dual-stack scenarios, issue 15)
    families: tuple[tuple[str, str], ...] | None = None
    quic: str | None = None  # the expected QUIC finding (details.quic.method); None = not checked

    @property
    def expect_text(self) -> str:
        text = " | ".join(map(str, self.expect))
        if self.families is not None:
            text += " " + ",".join(f"{k}:{v}" for k, v in self.families)
        return text


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    description: str
    notes: str = ""
    tags: tuple[str, ...] = ()
    transit: int = 2
    ipv6: bool = False  # dual stack: IPv6 twins of every address, AAAA records (issue 15)
    timeout: float = 3.0
    concurrency: int = 8
    resolvers: tuple[str, ...] = ()
    probe_args: tuple[str, ...] = ()  # more `probe run` options, e.g. --residual-cooldown 15
    require: tuple[Expect, ...] = ()
    sites: tuple[SiteSpec, ...] = ()
    censors: tuple[CensorSpec, ...] = ()
    events: tuple[EventSpec, ...] = ()
    clock: str = "first_target"
    targets: tuple[TargetSpec, ...] = ()
    selfchecks: tuple[dict[str, Any], ...] = ()
    demo: bool = False
    app_lists: str | None = None  # a directory of endpoint lists beside the scenarios
    tor: dict[str, int] | None = None  # [tor]: authorities, relays; None = no Tor network

    @property
    def techniques(self) -> list[str]:
        seen: list[str] = []
        for c in self.censors:
            if c.technique not in seen:
                seen.append(c.technique)
        return seen

    def censor(self, cid: str) -> CensorSpec:
        for c in self.censors:
            if c.id == cid:
                return c
        raise KeyError(cid)


def check_keys(data: Any, allowed: Iterable[str], where: str, required: Iterable[str] = ()) -> dict:
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a table")
    allowed = tuple(allowed)
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(allowed)}"
        )
    for key in required:
        if key not in data:
            raise ScenarioError(f"{where}: missing {key!r}")
    return data


def str_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScenarioError(f"{where}: expected a list of strings")
    return tuple(value)


def region(value: str, where: str) -> str:
    text = REGION_ALIASES.get(value, value)
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ScenarioError(
            f"{where}: {value!r} is not a CIDR or one of {list(REGION_ALIASES)}"
        ) from None


def host_name(text: str, where: str) -> str:
    try:
        return normalize_hostname(text)
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def parse_site(data: Any, where: str) -> SiteSpec:
    d = check_keys(data, SIM_SITE_KEYS + WORLD_SITE_KEYS, where, required=("host",))
    host = host_name(d["host"], f"{where}.host")
    default_net = "kz-host" if host.endswith(".kz") else "eu-host"
    net = d.get("net", default_net)
    if net not in A.NETWORK_BY_NAME or net in ("isp", "transit"):
        raise ScenarioError(f"{where}.net: unknown network {net!r}")
    ips: tuple[str, ...] = ()
    count = 1
    raw_ips = d.get("ips", 1)
    if isinstance(raw_ips, int) and not isinstance(raw_ips, bool):
        if not 1 <= raw_ips <= 16:
            raise ScenarioError(f"{where}.ips: count out of range 1..16")
        count = raw_ips
    else:
        ips = str_list(raw_ips, f"{where}.ips")
        for ip in ips:
            n = A.network_of(ip)
            if n is None or n.name in ("isp", "transit"):
                raise ScenarioError(f"{where}.ips: {ip} is not in a world network")
        count = len(ips)
    geo_net = d.get("geo_net")
    if geo_net is not None and geo_net not in A.NETWORK_BY_NAME:
        raise ScenarioError(f"{where}.geo_net: unknown network {geo_net!r}")
    geo_behaviour = d.get("geo_behaviour")
    if geo_behaviour is not None:
        if geo_net is None:
            raise ScenarioError(f"{where}.geo_behaviour: needs geo_net")
        if A.NETWORK_BY_NAME[geo_net].host == A.NETWORK_BY_NAME[net].host:
            raise ScenarioError(f"{where}.geo_behaviour: geo_net must be hosted apart from net")
        try:
            parse_web_behaviour(geo_behaviour)
        except ValueError as exc:
            raise ScenarioError(f"{where}.geo_behaviour: {exc}") from None
    dns = d.get("dns", "answer")
    if dns not in SITE_DNS:
        raise ScenarioError(f"{where}.dns: {dns!r} not one of {', '.join(SITE_DNS)}")
    a = str_list(d.get("a", []), f"{where}.a")
    for ip in a:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise ScenarioError(f"{where}.a: {ip!r} is not an IPv4 address") from None
    down = d.get("down")
    if down is not None and down not in SITE_DOWN:
        raise ScenarioError(f"{where}.down: {down!r} not one of {', '.join(SITE_DOWN)}")
    tls_ports = d.get("tls_ports", [])
    if not isinstance(tls_ports, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536
            and p not in (80, 443) for p in tls_ports):
        raise ScenarioError(f"{where}.tls_ports: expected port numbers other than 80 and 443")
    plain_ports = d.get("plain_ports", [])
    if not isinstance(plain_ports, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536
            for p in plain_ports) or (plain_ports and tls_ports):
        raise ScenarioError(f"{where}.plain_ports: expected port numbers (and no tls_ports)")
    site = {k: d[k] for k in WORLD_SITE_KEYS if k in d}
    if "region_block" in site:
        site["region_block"] = [region(c, f"{where}.region_block")
                                for c in str_list(site["region_block"], f"{where}.region_block")]
    if "region_content" in site:
        rc = site["region_content"]
        if not isinstance(rc, dict):
            raise ScenarioError(f"{where}.region_content: expected a table")
        site["region_content"] = {region(k, f"{where}.region_content"): v for k, v in rc.items()}
    try:
        SiteConfig.from_dict(site)
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    return SiteSpec(host=host, net=net, count=count, ips=ips, geo_net=geo_net,
                    geo_behaviour=geo_behaviour, dns=dns, a=a,
                    down=down, site=site, tls_ports=tuple(tls_ports),
                    plain_ports=tuple(plain_ports))
