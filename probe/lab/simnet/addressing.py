"""The simulated world's address plan: networks, the AS each stands for, fixed service addresses.

Everything that says *which address belongs to whom* lives here: the volunteer's ISP, the transit
backbone, domestic and international hosting networks, the public resolver, the authoritative DNS
and the control host. Addresses are public-looking on purpose — private, CGNAT and documentation
ranges are bogons, and a world built from them would make every honest DNS answer look like
tampering — but they exist only inside the simulator's namespaces, which have no link out of
the machine. True bogons (10.10.34.35) are kept for the censor's lies.

Dual stack (``ipv6 = true`` in a scenario, issue 15): every IPv4 address and range has an IPv6
twin (:func:`v6_of`, :func:`v6_net`), ``a.b.c.d`` → ``2a00:AABB::c:d`` inside the network's
``2a00:AABB::/32``. The twins are global-looking for the same reason as the IPv4 plan: ULA
(fd00::/8) is not global unicast, so the classifier would take every honest AAAA answer for a
bogon. They exist only inside the namespaces, like the IPv4 ones.

The same table produces the world's ip2asn file (iptoasn TSV: range_start, range_end, AS number,
country, AS name) handed to the probe with ``--asn-db``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Network:
    """One address range standing for one network/AS.

    ``host`` is the namespace role that owns the range (``dom``, ``intl``, ``ctl``, ``isp``) or
    None for ranges nobody routes (the "unroutable" range) or link ranges.
    ``domestic`` marks ranges inside the censored country (the international-only shutdown keeps
    them reachable).
    """

    name: str
    cidr: str
    asn: int
    country: str
    as_name: str
    host: str | None
    domestic: bool

    @property
    def net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)


#: The world's networks. Sites pick one by name (``net = "kz-host"``).
NETWORKS: tuple[Network, ...] = (
    Network("isp", "37.150.0.0/16", 64501, "KZ", "SIMTELECOM-KZ Sim Telecom (the volunteer's ISP)",
            "isp", True),
    Network("transit", "80.80.0.0/16", 64510, "KZ", "KZ-BACKBONE-SIM national backbone", None,
            True),
    Network("kz-gov", "178.89.0.0/16", 64522, "KZ", "KZ-GOV-SIM government network", "dom", True),
    Network("kz-host", "91.201.0.0/16", 64520, "KZ", "KZ-HOSTING-SIM domestic hosting", "dom",
            True),
    Network("kz-bank", "92.47.0.0/16", 64521, "KZ", "KZ-BANK-SIM domestic bank network", "dom",
            True),
    Network("kz-ix", "87.247.0.0/16", 64523, "KZ", "KZ-IX-SIM exchange point (DNS anycast)", "dom",
            True),
    Network("cdn", "104.28.0.0/16", 64530, "US", "GLOBALCDN-SIM content delivery network", "intl",
            False),
    Network("cdn-kz", "195.210.0.0/16", 64530, "KZ", "GLOBALCDN-SIM content delivery network",
            "dom", True),
    Network("eu-host", "185.61.0.0/16", 64531, "DE", "EUROHOST-SIM hosting", "intl", False),
    Network("ru-host", "95.213.0.0/16", 64532, "RU", "RU-HOST-SIM hosting", "intl", False),
    Network("us-host", "64.90.0.0/16", 64533, "US", "US-HOST-SIM hosting", "intl", False),
    Network("pubdns", "149.112.0.0/16", 64540, "CH", "PUBLICDNS-SIM public resolver", "intl",
            False),
    Network("rootdns", "199.7.0.0/16", 64541, "US", "ROOTDNS-SIM authoritative DNS", "intl", False),
    Network("mlab", "141.106.0.0/16", 64550, "NL", "MEASUREMENT-SIM control host", "ctl", False),
    Network("unrouted", "45.129.0.0/16", 0, "None", "Not routed", None, False),
    # the messengers' own networks (issue 14): the packaged endpoint lists' addresses and the
    # operator's AS (Facebook's AS32934 for WhatsApp/Messenger, Telegram's data centres)
    Network("facebook", "157.240.0.0/16", 32934, "US", "FACEBOOK-SIM (WhatsApp, Messenger)",
            "intl", False),
    Network("telegram", "149.154.160.0/20", 62041, "GB", "TELEGRAM-SIM data centres", "intl",
            False),
    Network("telegram-2", "95.161.64.0/20", 62041, "GB", "TELEGRAM-SIM data centres", "intl",
            False),
)

NETWORK_BY_NAME: dict[str, Network] = {n.name: n for n in NETWORKS}

# Fixed addresses of the world's services.
CLIENT_IP = "37.150.1.2"
CLIENT_NET = "37.150.1.0/24"
GATEWAY_IP = "37.150.1.1"
ISP_RESOLVER_IP = "37.150.0.53"
ISP_ROUTER_SRC = "37.150.0.1"  # the router's own traffic (resolver upstream, proxies)
PUBLIC_RESOLVER_IP = "149.112.0.10"
PUBLIC_RESOLVER_NAME = "dns.publicdns-sim.net"
PUBLIC_DOH_URL = f"https://{PUBLIC_RESOLVER_NAME}/dns-query"
AUTH_DNS_IP = "199.7.83.42"  # the authoritative server every resolver asks
AUTH_DNS_DOMESTIC_IP = "87.247.0.53"  # its anycast instance inside the country
CONTROL_IP = "141.106.0.10"
CONTROL_PORT = 80
BLOCKPAGE_IP = "178.89.0.10"  # the ISP's block-page server (the resolver lies with it)
BLOCKPAGE_NAME = "blocked.gov.kz"
BOGON_IP = "10.10.34.35"  # a true bogon the censor's resolver answers with
UNROUTED_IP = "45.129.0.10"

#: The first host index handed out in each network (x.y.1.10, x.y.1.11, …).
_FIRST_HOST = 256 + 10


def v6_of(ip: str) -> str:
    """The IPv6 twin of an IPv4 address of the plan: ``37.150.1.2`` → ``2a00:2596::1:2``."""
    a, b, c, d = (int(x) for x in ip.split("."))
    return str(ipaddress.IPv6Address(f"2a00:{a:02x}{b:02x}::{c:x}:{d:x}"))


def v6_net(cidr: str) -> str:
    """The IPv6 twin of an IPv4 range of the plan, the smallest range holding the twins of all
    its addresses: a /16 → /32, a /20 → /108, a /24 → /112, a /32 → /128."""
    net = ipaddress.IPv4Network(cidr)
    n = net.prefixlen
    # a.b sit in the second group (16 bits), c and d in the low bytes of the last two groups
    plen = 16 + n if n <= 16 else 88 + n if n <= 24 else 96 + n
    base = ipaddress.IPv6Address(v6_of(str(net.network_address)))
    return str(ipaddress.IPv6Network((base, plen), strict=False))


def domestic_cidrs() -> list[str]:
    return [n.cidr for n in NETWORKS if n.domestic]


def network_of(ip: str) -> Network | None:
    addr = ipaddress.IPv4Address(ip)
    for n in NETWORKS:
        if addr in n.net:
            return n
    return None


class Allocator:
    """Hands out site addresses per network, deterministically in request order."""

    def __init__(self, taken: set[str] | None = None) -> None:
        self._next: dict[str, int] = {}
        self._taken = set(taken or ())

    def take(self, network: str, ip: str | None = None) -> str:
        net = NETWORK_BY_NAME[network].net
        if ip is not None:
            if ipaddress.IPv4Address(ip) not in net:
                raise ValueError(f"{ip} is not in network {network} ({net})")
            self._taken.add(ip)
            return ip
        while True:
            index = self._next.get(network, _FIRST_HOST)
            self._next[network] = index + 1
            candidate = str(net.network_address + index)
            if candidate not in self._taken:
                self._taken.add(candidate)
                return candidate


def ip2asn_rows() -> list[tuple[str, str, int, str, str]]:
    """The world's iptoasn rows, sorted by range start."""
    rows = []
    for n in sorted(NETWORKS, key=lambda n: int(n.net.network_address)):
        rows.append(
            (str(n.net.network_address), str(n.net.broadcast_address), n.asn, n.country, n.as_name)
        )
    return rows


def write_ip2asn(path: Path) -> Path:
    """Write the iptoasn TSV (range_start, range_end, AS_number, country, AS_name)."""
    lines = ["\t".join(map(str, row)) for row in ip2asn_rows()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
