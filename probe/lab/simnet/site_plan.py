"""From a scenario's sites to addresses, DNS records and probe.lab.world server configs.

This module owns *what the world serves and where*: it allocates every site's addresses, builds
the authoritative DNS data (served by a server abroad and by its anycast instance at home), the
public resolver, the ISP resolver (forwarding, plus whatever lies the censor adds), one web
server per world namespace, the block-page server, and the per-run files handed to the probe
(ip2asn table, canaries, target list). It starts nothing; the runner does.

In a dual-stack scenario (``ipv6 = true``) every site also has the IPv6 twins of its addresses
(:func:`probe.lab.simnet.addressing.v6_of`): AAAA records next to the A ones, servers listening
on both, and IPv6 canaries (the twins of the international canaries, as address literals) so the
probe can tell whether IPv6 works from the client.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.lab.simnet import addressing as A
from probe.lab.simnet.scenario_records import SCENARIO_DIR, Scenario, SiteSpec, parse_site

BASE_WORLD = SCENARIO_DIR / "_base.toml"

#: Hosts of the base world that serve as the probe's health canaries, by scope.
CANARY_HOSTS = {
    "domestic": ["www.gov.kz", "kaspi.kz", "tengrinews.kz", "halykbank.kz"],
    "international": ["www.wikipedia.org", "www.example.com", "www.debian.org"],
}
#: The operating systems' captive-portal checks (:data:`probe.measure.health.PORTAL_ANSWERS`):
#: a world that has a site for one of these hosts (declared by the scenario, serving the real
#: expected answer) hands the probe a ``portal`` canary for it.
PORTAL_CHECK_HOSTS = {
    "connectivitycheck.gstatic.com": "http://connectivitycheck.gstatic.com/generate_204",
    "captive.apple.com": "http://captive.apple.com/hotspot-detect.html",
    "www.msftconnecttest.com": "http://www.msftconnecttest.com/connecttest.txt",
}
#: An innocuous host every scenario has (used as the "other SNI / Host" in self-checks).
INNOCUOUS_HOST = "www.example.com"
DOMESTIC_INNOCUOUS_HOST = "www.gov.kz"


@functools.cache
def base_sites() -> tuple[SiteSpec, ...]:
    """Sites present in every scenario (canaries, block page, resolver and control names)."""
    data = tomllib.loads(BASE_WORLD.read_text(encoding="utf-8"))
    return tuple(parse_site(s, f"{BASE_WORLD}: sites[{i}]") for i, s in enumerate(data["sites"]))


@dataclass(frozen=True)
class BuiltSite:
    spec: SiteSpec
    ips: tuple[str, ...]  # the addresses the authoritative DNS hands out
    geo_ips: tuple[str, ...] = ()  # also served; the ISP resolver answers these (CDN node)

    @property
    def host(self) -> str:
        return self.spec.host

    @property
    def names(self) -> list[str]:
        return [self.spec.host, *self.spec.site.get("aliases", [])]

    @property
    def served_ips(self) -> tuple[str, ...]:
        return self.ips + self.geo_ips


@dataclass
class World:
    """Every site with its addresses; builds server configs and per-run probe files."""

    scenario: Scenario
    sites: dict[str, BuiltSite] = field(default_factory=dict)

    @classmethod
    def build(cls, scenario: Scenario) -> World:
        alloc = A.Allocator({A.BLOCKPAGE_IP, A.PUBLIC_RESOLVER_IP, A.AUTH_DNS_IP,
                             A.AUTH_DNS_DOMESTIC_IP, A.CONTROL_IP, A.UNROUTED_IP})
        world = cls(scenario)
        overridden = {s.host for s in scenario.sites}
        specs = [s for s in base_sites() if s.host not in overridden] + list(scenario.sites)
        for spec in specs:
            if spec.ips:
                ips = tuple(alloc.take(spec.net, ip) for ip in spec.ips)
            else:
                ips = tuple(alloc.take(spec.net) for _ in range(spec.count))
            geo = (alloc.take(spec.geo_net),) if spec.geo_net else ()
            world.sites[spec.host] = BuiltSite(spec, ips, geo)
        return world

    # --- lookups -----------------------------------------------------------------------
    def site(self, host: str) -> BuiltSite:
        if host in self.sites:
            return self.sites[host]
        for s in self.sites.values():
            if host in s.names:
                return s
        raise KeyError(f"no site {host!r} in this world")

    def ips_of(self, host: str) -> list[str]:
        """Every address that serves ``host`` (authoritative ones first)."""
        return list(self.site(host).served_ips)

    @property
    def ipv6(self) -> bool:
        return self.scenario.ipv6

    def ips6_of(self, host: str) -> list[str]:
        """The IPv6 twins of :meth:`ips_of` (empty unless the scenario is dual stack)."""
        return [A.v6_of(ip) for ip in self.ips_of(host)] if self.ipv6 else []

    def _v6(self, ips: list[str]) -> list[str]:
        return [A.v6_of(ip) for ip in ips] if self.ipv6 else []

    def ip_of(self, host: str) -> str:
        return self.site(host).ips[0]

    @staticmethod
    def role_of(ip: str) -> str | None:
        net = A.network_of(ip)
        return net.host if net is not None else None

    # --- DNS ---------------------------------------------------------------------------
    def auth_records(self) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Records and behaviours of the authoritative server."""
        records: dict[str, dict[str, Any]] = {}
        behaviours: dict[str, str] = {}
        for s in self.sites.values():
            for name in s.names:
                if s.spec.dns == "answer":
                    records[name] = {"A": list(s.spec.a or s.ips), "ttl": 60}
                    if self.ipv6 and not s.spec.a:
                        records[name]["AAAA"] = self._v6(list(s.ips))
                elif s.spec.dns == "cname_only":
                    behaviours[name] = "cname_only"
                elif s.spec.dns != "nxdomain":
                    behaviours[name] = s.spec.dns
        return records, behaviours

    def isp_resolver(self, behaviours: dict[str, str], records: dict[str, Any]) -> dict[str, Any]:
        """The ISP resolver: forwards to the domestic DNS instance; lies where told to."""
        geo: dict[str, Any] = {
            name: {"A": list(s.geo_ips), "ttl": 60}
            for s in self.sites.values() if s.geo_ips for name in s.names
        }
        for rec in geo.values():
            if self.ipv6:
                rec["AAAA"] = self._v6(rec["A"])
        return {
            "listen": [f"{A.ISP_RESOLVER_IP}:53"],
            "records": {**geo, **records},
            "behaviours": behaviours,
            "default": "forward",
            "upstream": f"{A.AUTH_DNS_DOMESTIC_IP}:53",
        }

    # --- world processes ---------------------------------------------------------------
    def world_config(self, role: str, pki_dir: str) -> dict[str, Any] | None:
        """The probe.lab.world config of the ``dom`` or ``intl`` namespace (JSON-ready)."""
        records, behaviours = self.auth_records()
        dns: list[dict[str, Any]] = []
        web: list[dict[str, Any]] = []
        if role == "dom":
            dns.append({"listen": [f"{A.AUTH_DNS_DOMESTIC_IP}:53"], "records": records,
                        "behaviours": behaviours, "default": "nxdomain"})
            web.append({
                "listen_ips": [A.BLOCKPAGE_IP],
                "sites": {A.BLOCKPAGE_NAME: {"behaviour": "blockpage"}},
                "default_site": A.BLOCKPAGE_NAME,
            })
        elif role == "intl":
            dns.append({"listen": [f"{A.AUTH_DNS_IP}:53"], "records": records,
                        "behaviours": behaviours, "default": "nxdomain"})
            dns.append({"listen": [f"{A.PUBLIC_RESOLVER_IP}:53"], "default": "forward",
                        "upstream": f"{A.AUTH_DNS_IP}:53"})
        listen: list[str] = []
        sites: dict[str, Any] = {}
        for s in self.sites.values():
            mine = [ip for ip in s.served_ips if self.role_of(ip) == role]
            if not mine or A.BLOCKPAGE_IP in mine or A.PUBLIC_RESOLVER_IP in mine:
                continue  # the block-page server and the DoH endpoint are servers of their own
            if s.spec.plain_ports:
                continue  # served by servers of its own (_extra_servers)
            if s.spec.down != "refused":
                listen.extend(ip for ip in mine + self._v6(mine) if ip not in listen)
            site = dict(s.spec.site)
            if s.spec.geo_behaviour and set(mine) <= set(s.geo_ips):
                site["behaviour"] = s.spec.geo_behaviour  # the CDN node near the client
            sites[s.host] = site
        if listen and sites:
            web.append({"listen_ips": listen, "sites": sites, "handshake_timeout": 15.0,
                        "request_timeout": 15.0})
        web += self._extra_servers(role)
        if not dns and not web:
            return None
        return {"pki_dir": pki_dir, "dns": dns, "web": web}

    def _extra_servers(self, role: str) -> list[dict[str, Any]]:
        """Servers for the ports sites declare besides 80/443 in namespace ``role``: one
        TLS-only server per ``tls_ports`` port (WhatsApp-like chat endpoints on 5222), one
        plain-HTTP server per ``plain_ports`` port (Telegram-like data centres answering plain
        HTTP on 80 and 443; such a site's first name is its default site)."""
        by_port: dict[tuple[str, int], tuple[list[str], dict[str, Any]]] = {}
        for s in self.sites.values():
            mine = [ip for ip in s.served_ips if self.role_of(ip) == role]
            if not mine or s.spec.down == "refused":
                continue
            ports = [("tls", p) for p in s.spec.tls_ports] + [
                ("plain", p) for p in s.spec.plain_ports]
            for key in ports:
                ips, sites = by_port.setdefault(key, ([], {}))
                ips.extend(ip for ip in mine if ip not in ips)
                sites[s.host] = dict(s.spec.site)
        out: list[dict[str, Any]] = []
        for (kind, port), (ips, sites) in sorted(by_port.items()):
            server: dict[str, Any] = {"listen_ips": ips, "sites": sites,
                                      "handshake_timeout": 15.0, "request_timeout": 15.0}
            if kind == "tls":
                server.update(http_port=None, https_port=port)
            else:
                server.update(http_port=port, https_port=None, default_site=next(iter(sites)))
            out.append(server)
        return out

    def host_rules(self, role: str) -> str:
        """nft script for the world namespace ``role``: servers that are down (timeout)."""
        drops = [ip for s in self.sites.values() if s.spec.down == "timeout"
                 for ip in s.served_ips if self.role_of(ip) == role]
        if not drops:
            return ""
        elems = ", ".join(drops)
        v6 = (f"    ip6 daddr {{ {', '.join(self._v6(drops))} }} drop\n" if self.ipv6 else "")
        return (
            "table inet world_down {\n"
            "  chain cinput { type filter hook input priority 0; policy accept;\n"
            f"    ip daddr {{ {elems} }} drop\n{v6}"
            "  }\n}\n"
        )

    # --- files for the probe -----------------------------------------------------------
    def canaries_csv(self) -> str:
        rows = ["target,scope,name,notes",
                f"{A.GATEWAY_IP},gateway,ISP gateway,the client's default gateway",
                f"{A.ISP_RESOLVER_IP},resolver,ISP resolver,the system resolver"]
        for scope, hosts in CANARY_HOSTS.items():
            for h in hosts:
                rows.append(f"https://{h}/,{scope},{h},simulated world canary")
        rows.append(f"http://{A.CONTROL_IP}:{A.CONTROL_PORT}/,control,control helper,"
                    "simulated control host")
        for host, url in PORTAL_CHECK_HOSTS.items():
            if host in self.sites:
                rows.append(f"{url},portal,{host},simulated captive-portal check")
        if self.ipv6:
            for h in CANARY_HOSTS["international"]:
                rows.append(f"https://[{self.ips6_of(h)[0]}]/,international,{h} (IPv6),"
                            "simulated world canary over IPv6")
        return "\n".join(rows) + "\n"

    def targets_txt(self) -> str:
        return "".join(f"{t.url}\n" for t in self.scenario.targets)

    def all_addresses(self) -> list[str]:
        return sorted({ip for s in self.sites.values() for ip in s.served_ips})


def write_probe_files(world: World, directory: Path) -> dict[str, Path]:
    """Write targets.txt, canaries.csv and ip2asn.tsv for the probe; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "targets": directory / "targets.txt",
        "canaries": directory / "canaries.csv",
        "asn": directory / "ip2asn.tsv",
    }
    paths["targets"].write_text(world.targets_txt(), encoding="utf-8")
    paths["canaries"].write_text(world.canaries_csv(), encoding="utf-8")
    A.write_ip2asn(paths["asn"])
    return paths


#: The app whose own roots are the world's third CA (``unknown_ca`` certificates): a
#: "Signal-like" CA that only the app's endpoint list trusts, as Signal pins its own.
SIGNAL_LIKE_CA = "signal-ca.pem"


def write_app_lists(directory: str, pki: Any, rundir: Path) -> Path:
    """Copy a scenario's endpoint lists (``app_lists``, beside the scenarios) into the run
    directory with the Signal-like CA (the world's third CA, ``pki.unknown_ca_pem``) next to
    them as :data:`SIGNAL_LIKE_CA`; the probe gets the copy as ``--app-lists``."""
    out = rundir / "app-lists"
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((SCENARIO_DIR / directory).glob("*.toml")):
        (out / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (out / SIGNAL_LIKE_CA).write_text(Path(pki.unknown_ca_pem).read_text())
    return out
