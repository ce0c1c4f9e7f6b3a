"""The simulated network's wiring: namespaces, veth pairs, addresses and static routes.

Shape (hop distances from the client in brackets)::

    cli ── isp [1] ── t1 [2] ── t2 [3] ── … ── tN [N+1]
                       │                        ├── intl [N+2]  international sites, public
                       dom [3]                  │               resolver, authoritative DNS
                       domestic sites, block    └── ctl  [N+2]  the control host
                       page, domestic DNS

``isp`` is the volunteer's ISP router: the only place the censor acts, and the ISP resolver.
``t1``…``tN`` are transit routers (``transit`` of them, default 2) so that hop distances are not
trivial; the last one drops traffic to unknown destinations silently (a blackhole default route),
so bogon and unroutable addresses time out as they do on the real Internet.
World hosts own whole address ranges through ``local`` routes (AnyIP): every address of their
networks is local, so sites need no per-address set-up.

Dual stack (``plan(..., ipv6=True)``, issue 15): every interface, loopback address, owned range
and route also gets its IPv6 twin (:func:`probe.lab.simnet.addressing.v6_of`); routers forward
IPv6, world hosts may bind any address of their ranges (``ip_nonlocal_bind``). Without it IPv6
stays disabled in every namespace, exactly as before.

Nothing here touches the root namespace: veth pairs are created directly inside their two
namespaces and no namespace has a link or route out of the simulation.
"""

from __future__ import annotations

import shutil
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from probe.lab.simnet import addressing as A
from probe.lab.simnet.netns import ETC_NETNS, run_script

DEFAULT_TRANSIT = 2


@dataclass(frozen=True, slots=True)
class Iface:
    name: str
    addr: str  # "ip/len"
    peer_role: str

    @property
    def ip(self) -> str:
        return self.addr.split("/")[0]


@dataclass(frozen=True)
class Node:
    """One namespace: ``kind`` is client, router or host."""

    role: str
    ns: str
    kind: str
    hop: int
    ifaces: tuple[Iface, ...]
    lo_addrs: tuple[str, ...] = ()
    local_ranges: tuple[str, ...] = ()
    default_via: str | None = None  # next-hop IP; None = no default route
    default_src: str | None = None
    blackhole_default: bool = False
    routes: tuple[tuple[str, str], ...] = ()  # (prefix, via)

    def iface_to(self, role: str) -> Iface:
        for i in self.ifaces:
            if i.peer_role == role:
                return i
        raise KeyError(f"{self.role} has no link to {role}")


@dataclass(frozen=True)
class Topology:
    prefix: str
    transit: int
    nodes: dict[str, Node] = field(default_factory=dict)
    ipv6: bool = False

    # --- names -------------------------------------------------------------------------
    def ns(self, role: str) -> str:
        return self.nodes[role].ns

    @property
    def client_ns(self) -> str:
        return self.ns("cli")

    @property
    def router_ns(self) -> str:
        return self.ns("isp")

    @property
    def routers(self) -> list[str]:
        """Router roles from the client outwards: isp, t1, …, tN."""
        return ["isp"] + [f"t{k}" for k in range(1, self.transit + 1)]

    @property
    def namespaces(self) -> list[str]:
        return [n.ns for n in self.nodes.values()]

    def hop_of(self, role: str) -> int:
        return self.nodes[role].hop

    def to_dict(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "transit": self.transit, "ipv6": self.ipv6,
                "nodes": {k: asdict(v) for k, v in self.nodes.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Topology:
        nodes = {}
        for role, n in data["nodes"].items():
            n = dict(n)
            n["ifaces"] = tuple(Iface(**i) for i in n["ifaces"])
            n["routes"] = tuple(tuple(r) for r in n["routes"])
            for key in ("lo_addrs", "local_ranges"):
                n[key] = tuple(n[key])
            nodes[role] = Node(**n)
        return cls(prefix=data["prefix"], transit=data["transit"], nodes=nodes,
                   ipv6=bool(data.get("ipv6", False)))


def plan(prefix: str, transit: int = DEFAULT_TRANSIT, ipv6: bool = False) -> Topology:
    """Compute every namespace, address and route of the topology (no side effects);
    ``ipv6``: dual stack (the IPv6 twins are derived when the topology is brought up)."""
    if not 1 <= transit <= 8:
        raise ValueError(f"transit router count {transit} out of range 1..8")
    last = f"t{transit}"
    links: list[tuple[str, str, str, str, str]] = []  # (roleA, ifA, roleB, ifB, subnet /24 base)
    links.append(("cli", "eth0", "isp", "lan0", "37.150.1"))
    links.append(("isp", "wan0", "t1", "dn0", "80.80.1"))
    for k in range(1, transit):
        links.append((f"t{k}", "up0", f"t{k + 1}", "dn0", f"80.80.{k + 1}"))
    links.append(("t1", "hdom", "dom", "eth0", "80.80.101"))
    links.append((last, "hintl", "intl", "eth0", "80.80.102"))
    links.append((last, "hctl", "ctl", "eth0", "80.80.103"))

    ifaces: dict[str, list[Iface]] = {}
    for ra, ia, rb, ib, base in links:
        # the side nearer the client gets .1 except on the client LAN, where the router is .1
        a_host, b_host = (2, 1) if ra == "cli" else (1, 2)
        ifaces.setdefault(ra, []).append(Iface(ia, f"{base}.{a_host}/24", rb))
        ifaces.setdefault(rb, []).append(Iface(ib, f"{base}.{b_host}/24", ra))

    adj: dict[str, list[str]] = {}
    for ra, _, rb, _, _ in links:
        adj.setdefault(ra, []).append(rb)
        adj.setdefault(rb, []).append(ra)

    # which role owns which prefix (beyond directly connected /24s)
    owned: dict[str, list[str]] = {"isp": [A.NETWORK_BY_NAME["isp"].cidr]}
    local_ranges: dict[str, list[str]] = {}
    for n in A.NETWORKS:
        if n.host in ("dom", "intl", "ctl"):
            owned.setdefault(n.host, []).append(n.cidr)
            local_ranges.setdefault(n.host, []).append(n.cidr)
    for ra, _, _rb, _, base in links:
        if ra != "cli":
            owned.setdefault(ra, []).append(f"{base}.0/24")

    def bfs(src: str) -> dict[str, str]:
        """role → first hop from src."""
        first: dict[str, str] = {}
        queue = deque([(nb, nb) for nb in adj[src]])
        seen = {src}
        while queue:
            node, hop1 = queue.popleft()
            if node in seen:
                continue
            seen.add(node)
            first[node] = hop1
            queue.extend((nb, hop1) for nb in adj[node] if nb not in seen)
        return first

    def hop_count(role: str) -> int:
        dist = {"cli": 0}
        queue = deque(["cli"])
        while queue:
            node = queue.popleft()
            for nb in adj[node]:
                if nb not in dist:
                    dist[nb] = dist[node] + 1
                    queue.append(nb)
        return dist[role]

    routers = ["isp"] + [f"t{k}" for k in range(1, transit + 1)]
    nodes: dict[str, Node] = {}
    for role in ["cli", *routers, "dom", "intl", "ctl"]:
        my_ifaces = tuple(ifaces[role])
        connected = {i.addr.rsplit(".", 1)[0] + ".0/24" for i in my_ifaces}
        routes: list[tuple[str, str]] = []
        default_via = None
        default_src = None
        blackhole = False
        lo: list[str] = []
        if role in routers:
            first = bfs(role)
            for owner, prefixes in owned.items():
                if owner == role:
                    continue
                via_role = first[owner]
                via_ip = _peer_ip(ifaces, role, via_role)
                for p in prefixes:
                    if p not in connected:
                        routes.append((p, via_ip))
            if role == "isp":
                default_via = _peer_ip(ifaces, "isp", "t1")
                default_src = A.ISP_ROUTER_SRC
                lo = [A.ISP_RESOLVER_IP, A.ISP_ROUTER_SRC]
                # the client LAN is connected; the rest of the ISP range is the router's
                routes = [r for r in routes if r[0] != A.NETWORK_BY_NAME["isp"].cidr]
            elif role == last:
                blackhole = True
            else:
                k = int(role[1:])
                default_via = _peer_ip(ifaces, role, f"t{k + 1}")
        elif role == "cli":
            default_via = A.GATEWAY_IP
        else:
            attach = my_ifaces[0].peer_role
            default_via = _peer_ip(ifaces, role, attach)
            default_src = {"dom": A.AUTH_DNS_DOMESTIC_IP, "intl": A.PUBLIC_RESOLVER_IP,
                           "ctl": A.CONTROL_IP}[role]
        nodes[role] = Node(
            role=role,
            ns=f"{prefix}-{role}",
            kind="client" if role == "cli" else "router" if role in routers else "host",
            hop=hop_count(role),
            ifaces=my_ifaces,
            lo_addrs=tuple(lo),
            local_ranges=tuple(local_ranges.get(role, ())),
            default_via=default_via,
            default_src=default_src,
            blackhole_default=blackhole,
            routes=tuple(routes),
        )
    return Topology(prefix=prefix, transit=transit, nodes=nodes, ipv6=ipv6)


def _peer_ip(ifaces: dict[str, list[Iface]], role: str, peer: str) -> str:
    for i in ifaces[peer]:
        if i.peer_role == role:
            return i.ip
    raise KeyError(f"no link {role} -> {peer}")


def resolv_conf(nameserver: str) -> str:
    return f"nameserver {nameserver}\noptions timeout:2 attempts:2\n"


def bringup_script(topo: Topology) -> str:
    """One bash script that builds the whole topology (run in the root namespace).

    It only creates namespaces and runs commands *inside* them; veth pairs are created with
    both ends already in their namespaces.
    """
    lines: list[str] = []
    have_ethtool = shutil.which("ethtool") is not None
    for node in topo.nodes.values():
        lines.append(f"ip netns add {node.ns}")
    for node in topo.nodes.values():
        sysctls = [
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ]
        if topo.ipv6:
            # no duplicate address detection (addresses usable at once), no router adverts
            sysctls += ["net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
                        "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                        "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0"]
            if node.kind == "router":
                sysctls.append("net.ipv6.conf.all.forwarding=1")
            if node.kind == "host":
                sysctls.append("net.ipv6.ip_nonlocal_bind=1")
        else:
            sysctls = ["net.ipv6.conf.all.disable_ipv6=1",
                       "net.ipv6.conf.default.disable_ipv6=1", *sysctls]
        if node.kind == "router":
            sysctls.append("net.ipv4.ip_forward=1")
        lines.append(f"ip netns exec {node.ns} sysctl -q -w {' '.join(sysctls)}")
    done: set[tuple[str, str]] = set()
    for node in topo.nodes.values():
        for i in node.ifaces:
            peer = topo.nodes[i.peer_role]
            if (peer.role, node.role) in done:
                continue
            done.add((node.role, peer.role))
            pi = peer.iface_to(node.role)
            lines.append(
                f"ip link add name {i.name} netns {node.ns} type veth "
                f"peer name {pi.name} netns {peer.ns}"
            )
    for node in topo.nodes.values():
        batch = ["link set lo up"]
        for i in node.ifaces:
            batch.append(f"addr add {i.addr} dev {i.name}")
            batch.append(f"link set {i.name} up")
        for a in node.lo_addrs:
            batch.append(f"addr add {a}/32 dev lo")
        for r in node.local_ranges:
            batch.append(f"route add local {r} dev lo")
        for prefix, via in node.routes:
            batch.append(f"route add {prefix} via {via}")
        if node.default_via:
            src = f" src {node.default_src}" if node.default_src else ""
            batch.append(f"route add default via {node.default_via}{src}")
        if node.blackhole_default:
            batch.append("route add blackhole default")
        if topo.ipv6:
            batch.extend(_v6_batch(node))
        body = "\n".join(batch)
        lines.append(f"ip -n {node.ns} -batch - <<'EOF'\n{body}\nEOF")
        if have_ethtool:
            # passive observers (scapy sniff) need valid checksums: no tx offload on veths
            for i in node.ifaces:
                lines.append(f"ip netns exec {node.ns} ethtool -K {i.name} tx off >/dev/null")
    etc = ETC_NETNS / topo.client_ns
    lines.append(f"mkdir -p {etc}")
    lines.append(f"cat > {etc}/resolv.conf <<'EOF'\n{resolv_conf(A.ISP_RESOLVER_IP)}EOF")
    return "\n".join(lines) + "\n"


def _v6_batch(node: Node) -> list[str]:
    """The IPv6 twins of a node's addresses and routes (``ip -batch`` lines)."""
    out: list[str] = []
    for i in node.ifaces:
        ip, _, _ = i.addr.partition("/")
        out.append(f"addr add {A.v6_of(ip)}/112 dev {i.name} nodad")
    for a in node.lo_addrs:
        out.append(f"addr add {A.v6_of(a)}/128 dev lo nodad")
    for r in node.local_ranges:
        out.append(f"route add local {A.v6_net(r)} dev lo")
    for prefix, via in node.routes:
        out.append(f"route add {A.v6_net(prefix)} via {A.v6_of(via)}")
    if node.default_src and node.default_src not in node.lo_addrs:
        # an IPv6 preferred source must be an assigned address (a local route is not enough)
        out.append(f"addr add {A.v6_of(node.default_src)}/128 dev lo nodad")
    if node.default_via:
        src = f" src {A.v6_of(node.default_src)}" if node.default_src else ""
        out.append(f"route add ::/0 via {A.v6_of(node.default_via)}{src}")
    if node.blackhole_default:
        out.append("route add blackhole ::/0")
    return out


def bring_up(topo: Topology) -> None:
    """Create the namespaces and wire them (raises NetnsError; the caller cleans up)."""
    run_script(bringup_script(topo))
