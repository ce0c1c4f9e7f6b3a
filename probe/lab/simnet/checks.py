"""Self-checks derived from the world itself: the base network and each site's behaviour.

Technique checks (what the censor does) live with the techniques; this module derives what the
*world* must look like without the censor: the resolvers answer, the control host reaches every
site, and each not-censorship behaviour (server down, 5xx, NXDOMAIN at the authoritative,
unroutable, bad certificates, CDN answers, regional content or refusal) is visible the same way
from the client and from the control — or, for region-dependent sites, differently in exactly
the way the scenario claims.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

import dns.message

from probe.lab.simnet import addressing as A
from probe.lab.simnet.scenario import REGION_ALIASES
from probe.lab.simnet.site_plan import INNOCUOUS_HOST, BuiltSite, World

Check = dict[str, Any]
WORLD_ISSUER = "Probe Test World"


def _c(cid: str, ns: str, kind: str, why: str, expect: dict[str, Any], **params: Any) -> Check:
    return {"id": cid, "ns": ns, "kind": kind, "why": why, "expect": expect, **params}


def base_checks(world: World, ca_pem: str, client_side: bool) -> list[Check]:
    """The network is whole: resolvers answer, the control reaches the world."""
    example = world.ip_of(INNOCUOUS_HOST)
    query = dns.message.make_query(INNOCUOUS_HOST, "A")
    query.id = 0
    doh = base64.urlsafe_b64encode(query.to_wire()).decode().rstrip("=")
    out = [
        _c("base:public-doh", "ctl", "http", "the public resolver answers over DNS-over-HTTPS",
           {"outcome": "ok", "status": 200, "issuer_contains": WORLD_ISSUER},
           ip=A.PUBLIC_RESOLVER_IP, host=A.PUBLIC_RESOLVER_NAME, tls=True, verify=True,
           cafile=ca_pem, path=f"/dns-query?dns={doh}"),
        _c("base:public-resolver", "ctl", "dns", "the public resolver answers the control",
           {"rcode": "NOERROR", "addrs_any": [example]}, server=A.PUBLIC_RESOLVER_IP,
           name=INNOCUOUS_HOST),
        _c("base:control-tls", "ctl", "tls", "the control completes a valid TLS handshake",
           {"outcome": "ok", "issuer_contains": WORLD_ISSUER}, ip=example, sni=INNOCUOUS_HOST,
           verify=True, cafile=ca_pem),
    ]
    if client_side:
        out += [
            _c("base:isp-resolver", "cli", "resolve",
               "the system resolver (the ISP's) resolves a healthy name",
               {"outcome": "ok", "addrs_any": [example]}, name=INNOCUOUS_HOST),
            _c("base:client-tls", "cli", "tls", "the client reaches a healthy international site",
               {"outcome": "ok", "issuer_contains": WORLD_ISSUER}, ip=example,
               sni=INNOCUOUS_HOST, verify=True, cafile=ca_pem),
            _c("base:no-way-out", "cli", "tcp",
               "an address outside the simulated world leads nowhere (no route off the machine)",
               {"outcome": ["timeout", "unreachable"]}, ip="192.0.2.1", port=443, timeout=1.0),
        ]
    if world.ipv6:
        out += _dual_stack_checks(world, ca_pem, client_side)
    return out


def _dual_stack_checks(world: World, ca_pem: str, client_side: bool) -> list[Check]:
    """The world really is dual stack (issue 15): AAAA answers, IPv6 paths to a site."""
    example6 = world.ips6_of(INNOCUOUS_HOST)[0]
    out = [
        _c("base:public-resolver-aaaa", "ctl", "dns", "the public resolver answers AAAA",
           {"rcode": "NOERROR", "addrs_any": [example6]}, server=A.PUBLIC_RESOLVER_IP,
           name=INNOCUOUS_HOST, qtype="AAAA"),
        _c("base:control-tls-ipv6", "ctl", "tls",
           "the control completes a valid TLS handshake over IPv6",
           {"outcome": "ok", "issuer_contains": WORLD_ISSUER}, ip=example6, sni=INNOCUOUS_HOST,
           verify=True, cafile=ca_pem),
        _c("base:no-way-out-ipv6", "cli", "tcp",
           "an IPv6 address outside the simulated world leads nowhere",
           {"outcome": ["timeout", "unreachable"]}, ip="2001:db8::1", port=443, timeout=1.0),
    ]
    if client_side:
        out.append(_c("base:isp-resolver-aaaa", "cli", "dns", "the ISP resolver answers AAAA",
                      {"rcode": "NOERROR", "addrs_any": [example6]}, server=A.ISP_RESOLVER_IP,
                      name=INNOCUOUS_HOST, qtype="AAAA"))
    return out


def _region_of(ns: str) -> str:
    return REGION_ALIASES["client"] if ns == "cli" else REGION_ALIASES["control"]


def _in(cidr_list: list[str], cidr: str) -> bool:
    net = ipaddress.IPv4Network(cidr)
    return any(net.subnet_of(ipaddress.IPv4Network(c)) for c in cidr_list)


def site_checks(world: World, site: BuiltSite, ns: str, ca_pem: str) -> list[Check]:
    """What ``ns`` (``cli`` or ``ctl``) must see of ``site`` with no censor in the way."""
    spec = site.spec
    host = spec.host
    pre = f"site:{host}:{ns}"
    out: list[Check] = []
    who = "the client" if ns == "cli" else "the control"
    # --- DNS through the resolver each side uses
    server = A.ISP_RESOLVER_IP if ns == "cli" else A.PUBLIC_RESOLVER_IP
    if spec.dns == "answer":
        want = list(spec.a or site.ips)
        if ns == "cli" and site.geo_ips:
            want = list(site.geo_ips)
        out.append(_c(f"{pre}:dns", ns, "dns", f"{who}'s resolver answers {host} with {want}",
                      {"rcode": "NOERROR", "addrs_any": want}, server=server, name=host))
    elif spec.dns in ("nxdomain", "refused", "servfail"):
        rcode = {"nxdomain": "NXDOMAIN", "refused": "REFUSED", "servfail": "SERVFAIL"}[spec.dns]
        # a forwarding resolver turns an authoritative REFUSED into SERVFAIL or passes it on
        expect: dict[str, Any] = {"rcode": rcode} if rcode != "REFUSED" else {"outcome": "ok"}
        out.append(_c(f"{pre}:dns", ns, "dns", f"{host} is {rcode} for everyone", expect,
                      server=server, name=host))
        return out
    elif spec.dns == "cname_only":
        out.append(_c(f"{pre}:dns", ns, "dns", f"{host} is a CNAME without an address",
                      {"rcode": "NOERROR", "addrs_empty": True}, server=server, name=host))
        return out
    else:
        return out
    if spec.a:
        return out  # e.g. 127.0.0.1 everywhere: nothing to connect to
    ip = site.geo_ips[0] if ns == "cli" and site.geo_ips else site.ips[0]
    if world.role_of(ip) not in ("dom", "intl"):
        out.append(_c(f"{pre}:unroutable", ns, "tcp", f"{ip} ({host}) is unroutable",
                      {"outcome": "timeout"}, ip=ip, port=443, timeout=1.5))
        return out
    if spec.down == "refused":
        out.append(_c(f"{pre}:down", ns, "tcp", f"nothing listens at {ip} ({host})",
                      {"outcome": "refused"}, ip=ip, port=443))
        return out
    if spec.down == "timeout":
        out.append(_c(f"{pre}:down", ns, "tcp", f"{ip} ({host}) does not answer",
                      {"outcome": "timeout"}, ip=ip, port=443, timeout=1.5))
        return out
    cfg = spec.site
    behaviour = str(cfg.get("behaviour", "ok"))
    if ns == "cli" and site.geo_ips and spec.geo_behaviour:
        behaviour = spec.geo_behaviour
    kind, _, arg = behaviour.partition(":")
    cert = cfg.get("cert", "valid")
    tls_outcome = {"tls_reset": "reset", "tls_close": "eof", "tls_hang": "timeout"}.get(kind)
    if spec.plain_ports:
        # a data centre answering plain HTTP on its ports (443 included): no TLS to check
        out.append(_c(f"{pre}:plain", ns, "tcp", f"{host} listens at {ip}:{spec.plain_ports[-1]}",
                      {"outcome": "ok"}, ip=ip, port=spec.plain_ports[-1]))
    elif tls_outcome:
        out.append(_c(f"{pre}:tls", ns, "tls", f"{host} ends the handshake: {tls_outcome}",
                      {"outcome": tls_outcome}, ip=ip, sni=host, timeout=1.5))
    else:
        out.append(_c(f"{pre}:tls", ns, "tls", f"{host} presents a {cert} certificate",
                      {"outcome": "ok" if cert == "valid" else "cert"}, ip=ip, sni=host,
                      verify=True, cafile=ca_pem, timeout=2.0))
    region = _region_of(ns)
    blocked_here = _in(cfg.get("region_block", []), region)
    http: dict[str, Any]
    if blocked_here:
        http = {"outcome": "ok", "status": 403, "body_contains": "not available in your region"}
    elif kind in ("ok", "echo", "geo", "big", "slow", "delay"):
        http = {"outcome": "ok", "status": 200 if kind != "echo" else 302}
        if cfg.get("status") and kind != "echo":
            http["status"] = cfg["status"]
        verbatim = not str(cfg.get("content_type", "text/html")).startswith("text/html")
        if kind == "ok" and verbatim and cfg.get("body") is not None:
            # served as it is (a portal check's known answer): exactly that body
            known = str(cfg["body"])
            http["max_length"] = len(known.encode())
            if known:
                http["body_contains"] = known
        if kind == "geo":
            body = None
            for cidr, text in cfg.get("region_content", {}).items():
                if _in([cidr], region):
                    body = text
            if body:
                http["body_contains"] = body[:40]
        if kind == "slow" and cfg.get("size"):
            # slow for everyone: the server trickles the padded page at its rate (issue 12's
            # slow-everywhere site), so this side must see it slow too
            http["min_seconds"] = round(0.6 * int(cfg["size"]) / int(arg), 2)
    elif kind == "status":
        http = {"outcome": "ok", "status": int(arg)}
    elif kind == "reset":
        http = {"outcome": "reset"}
    elif kind == "close":
        http = {"outcome": "eof"}
    elif kind == "hang":
        http = {"outcome": "timeout"}
    elif kind in ("redirect", "redirect_loop"):
        http = {"outcome": "ok", "status": 302}
    elif kind == "blockpage":
        http = {"outcome": "ok", "body_contains": "Страница заблокирована"}
    elif kind == "challenge":
        http = {"outcome": "ok", "status": 403, "body_contains": "Just a moment"}
    else:
        return out
    timeout = 1.5 if kind == "hang" else 3.0
    out.append(_c(f"{pre}:http", ns, "http", f"{who} gets http://{host}/: {http}", http,
                  ip=ip, host=host, timeout=timeout, max_bytes=256 * 1024))
    return out


def world_checks(world: World, ca_pem: str, touched: set[str], client_side: bool) -> list[Check]:
    """Base checks + a check set per scenario site (client side only for untouched sites)."""
    out = base_checks(world, ca_pem, client_side)
    scenario_hosts = {s.host for s in world.scenario.sites}
    for host in sorted(scenario_hosts):
        site = world.sites[host]
        out.extend(site_checks(world, site, "ctl", ca_pem))
        if client_side and host not in touched:
            out.extend(site_checks(world, site, "cli", ca_pem))
    return out
