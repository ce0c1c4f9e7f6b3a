"""Reading a measurement's own observations: which belong to the last URL tried, and small facts.

Responsibility: pure helpers over :class:`~probe.model.Measurement` that every rule shares —
the redirect hop that matters (:func:`last_attempt`), the final response (:func:`final_hop`),
the innocuous-SNI retries (:func:`sni_retries`), address facts (:func:`is_bogon`), timing and
formatting. No judgement lives here: nothing in this module decides what a failure means.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any

from probe import addresses
from probe.model import (
    DNSObservation,
    HTTPObservation,
    Measurement,
    TCPObservation,
    TLSObservation,
    split_url,
)


@functools.lru_cache(maxsize=16384)  # pure; asked ~6 times a measurement about a few names
def host(name: str) -> str:
    """A hostname in comparable form (no brackets, no trailing dot, lower case)."""
    return name.strip("[]").rstrip(".").lower()


def endpoint(ip: str | None, port: int) -> str:
    if ip is None:
        return f"port {port}"
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def took(obs: Any) -> float:
    """Seconds an observation took (never negative)."""
    return max(0.0, float(obs.t) - float(obs.t0))


def secs(value: float) -> str:
    """A duration for evidence text: ``0.05 s``, ``2.4 s``."""
    return f"{value:.2f} s" if value < 0.1 else f"{value:.1f} s"


def via(d: DNSObservation) -> str:
    return "the system resolver" if d.engine == "system" else f"{d.resolver} ({d.engine})"


def is_ipv6(ip: str) -> bool:
    return ":" in ip


@functools.lru_cache(maxsize=16384)  # pure; the same addresses recur in every import
def is_bogon(ip: str) -> bool:
    """True for an address no public name should resolve to: private, loopback, link-local,
    shared (CGNAT), documentation, multicast, reserved or unspecified, also when an IPv6
    address carries such an IPv4 one — the kernel's one judgement of addresses
    (:func:`probe.addresses.not_public`, IANA's special-purpose registries, RFC 6890)."""
    addr = addresses.parse_host(ip)
    return addr is not None and addresses.not_public(addr) is not None


@functools.lru_cache(maxsize=4096)
def is_loopback(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return False
    return addr.is_loopback or addr.is_unspecified


def resolver_ip(resolver: str) -> str:
    """``1.2.3.4`` of ``1.2.3.4:53`` / ``[::1]:53``; the text itself otherwise."""
    if resolver.startswith("["):
        return resolver[1 : resolver.find("]")]
    return resolver.rsplit(":", 1)[0] if resolver.count(":") == 1 else resolver


def local_test_answer(d: DNSObservation, ip: str) -> bool:
    """A loopback answer from a loopback resolver: the local test world, not a lie (the
    measure step dials these too)."""
    return is_loopback(resolver_ip(d.resolver)) and is_loopback(ip)


def succeeded(h: HTTPObservation) -> bool:
    """A response status arrived and nothing failed afterwards."""
    return h.status is not None and h.failure is None


def final_hop(m: Measurement) -> HTTPObservation | None:
    """The HTTP observation of the deepest redirect hop (a successful one if there is one)."""
    if not m.http:
        return None
    depth = max(h.redirect_index for h in m.http)
    hops = [h for h in m.http if h.redirect_index == depth]
    return next((h for h in reversed(hops) if succeeded(h)), hops[-1])


def tls_of(m: Measurement, hop: HTTPObservation) -> TLSObservation | None:
    """The completed handshake the HTTP exchange ran over (same transaction)."""
    return next((t for t in m.tls if t.tx_id == hop.tx_id and t.failure is None), None)


@dataclass(frozen=True, slots=True)
class Attempt:
    """The last URL the probe tried to fetch and the observations that belong to it.

    ``redirect_index`` 0 is the target URL. ``via`` is the redirect hop that pointed here
    (None for the target); ``visited`` the URLs of the hops before it. ``http`` holds the HTTP
    observations for this URL's hop. ``tls`` excludes innocuous-SNI retries (see
    :func:`sni_retries`).
    """

    url: str
    hostname: str
    scheme: str
    redirect_index: int
    via: HTTPObservation | None
    visited: tuple[str, ...]
    dns: tuple[DNSObservation, ...]
    tcp: tuple[TCPObservation, ...]
    tls: tuple[TLSObservation, ...]
    http: tuple[HTTPObservation, ...]

    def location_details(self) -> dict[str, Any]:
        return {"url": self.url, "redirect_index": self.redirect_index or None}


def last_attempt(m: Measurement) -> Attempt:
    """Scope the observations to the last URL tried.

    That is the deepest hop's URL, or the URL it redirected to when the chain stopped at a
    redirect (the next hop then failed before any HTTP exchange). Connections used by earlier
    hops are left out; DNS and TLS are matched by name, TCP by the addresses that name resolved
    to when known.
    """
    t = m.target
    hop = final_hop(m)
    url, index, via_hop = t.url, 0, None
    if hop is not None:
        url, index = hop.url, hop.redirect_index
        if hop.location is not None and succeeded(hop):
            url, index, via_hop = hop.location, hop.redirect_index + 1, hop
    parts = split_url(url)
    hostname = host(parts.hostname or t.hostname)
    scheme = parts.scheme or t.scheme
    earlier = {h.tx_id for h in m.http if h.redirect_index < index}
    dns = tuple(d for d in m.dns if host(d.hostname) == hostname)
    addresses = {a for d in dns for a in d.addresses}
    tcp = tuple(c for c in m.tcp if c.tx_id not in earlier)
    if addresses and any(c.ip in addresses for c in tcp):
        tcp = tuple(c for c in tcp if c.ip in addresses)
    tls = tuple(h for h in m.tls if h.tx_id not in earlier and host(h.server_name) == hostname)
    http = tuple(h for h in m.http if h.redirect_index == index)
    visited = tuple(h.url for h in m.http if h.redirect_index < index)
    return Attempt(url, hostname, scheme, index, via_hop, visited, dns, tcp, tls, http)


def sni_retries(m: Measurement, hostname: str) -> tuple[TLSObservation, ...]:
    """Handshakes with an innocuous SNI: a server name that is not any host of this
    measurement's redirect chain (the measure step's retry after a failed handshake)."""
    hosts = {host(m.target.hostname)} | {host(split_url(h.url).hostname or "") for h in m.http}
    hosts.add(hostname)
    return tuple(t for t in m.tls if host(t.server_name) not in hosts)
