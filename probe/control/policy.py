"""The control helper's destination policy: which address and port it agrees to dial.

One judgement, :meth:`Policy.refusal`, is applied to everything the helper could be made to
reach: the request's URL, every redirect hop, every address a name resolves to and every
address the probe sends. An address is judged in every spelling and by the IPv4 it embeds
(:mod:`probe.addresses`); the helper's own interface addresses (public ones too) are
refused unless ``allow_self`` (:class:`OwnAddresses`, re-read with a short TTL). Ranges in
``allow`` are accepted although not public (a test world on loopback); ``deny`` adds ranges
(a cloud host's public address behind 1:1 NAT, which no interface shows).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from probe.addresses import IPAddress, Network, embedded_ipv4, not_public, parse_host

#: Seconds the helper's own addresses are trusted before they are read again.
OWN_ADDRESSES_TTL = 5.0
#: Measurements at once (503 beyond). Each mostly waits on the network (a body is capped at
#: ``MeasureSettings.body_cap``, 512 KiB): 32 serve four probes at full speed.
MAX_CONCURRENT = 32
#: Measurements at once for one client (429 beyond): what one probe keeps open
#: (``probe.run.engine.HELPER_SLOTS``), so no probe is refused and no client takes every slot.
MAX_PER_CLIENT = 8


def interface_addresses() -> frozenset[IPAddress]:
    """Every non-loopback address configured on this host's interfaces, secondary ones
    included (``getifaddrs(3)`` through psutil: no subprocess, microseconds, so it can run on
    the event loop). Loopback is left to the loopback rule, which only an explicit ``--allow``
    lifts (the loopback test world)."""
    found: set[IPAddress] = set()
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                addr = parse_host(a.address.split("%", 1)[0])
                if addr is not None and not addr.is_loopback:
                    found.add(addr)
    return frozenset(found)


class OwnAddresses:
    """The host's own addresses, read at most once per ``ttl`` seconds (cheap per request)."""

    def __init__(self, reader: Callable[[], frozenset[IPAddress]] = interface_addresses,
                 ttl: float = OWN_ADDRESSES_TTL) -> None:
        self._reader = reader
        self._ttl = ttl
        self._at = -float("inf")
        self._cached: frozenset[IPAddress] = frozenset()

    def get(self) -> frozenset[IPAddress]:
        now = time.monotonic()
        if now - self._at >= self._ttl:
            self._cached = self._reader()
            self._at = now
        return self._cached


@dataclass(frozen=True, slots=True)
class Policy:
    """What the helper agrees to measure.

    ``allow``: extra address ranges allowed although not public (private test worlds).
    ``deny``: extra ranges refused. ``ports``: allowed destination ports. ``token``: required
    ``Authorization: Bearer`` token; None = open. ``max_concurrent``: measurements at once
    before answering 503. ``max_per_client``: measurements at once for one client (its
    address; an IPv6 client's /64) before answering 429 — one probe keeps
    ``probe.run.engine.HELPER_SLOTS`` (8) requests open, so the default never refuses a probe
    while one client cannot take every slot (before: one client's 8 slow measurements made
    every other probe's control a 503). ``request_timeout``: deadline of one measurement (s).
    ``own``: the host's own addresses (refused); None = not checked (``--allow-self``).
    """

    allow: tuple[Network, ...] = ()
    ports: frozenset[int] = field(default_factory=lambda: frozenset({80, 443}))
    token: str | None = None
    max_concurrent: int = MAX_CONCURRENT
    max_per_client: int = MAX_PER_CLIENT
    request_timeout: float = 30.0
    deny: tuple[Network, ...] = ()
    own: OwnAddresses | None = field(default_factory=OwnAddresses)

    def address_refusal(self, text: str) -> str | None:
        """Why the helper refuses to dial ``text`` (any spelling); None = allowed."""
        addr = parse_host(text)
        if addr is None:
            return "not an IP address"
        candidates = (addr, *embedded_ipv4(addr))
        if any(a in net for a in candidates for net in self.deny if a.version == net.version):
            return "denied range"
        if self.own is not None and any(a in self.own.get() for a in candidates):
            return "the helper's own address"
        if any(addr in net for net in self.allow if addr.version == net.version):
            return None
        inner = embedded_ipv4(addr)
        if inner and all(any(v4 in net for net in self.allow if net.version == 4)
                         for v4 in inner):
            return None
        return not_public(addr)

    def address_allowed(self, text: str) -> bool:
        return self.address_refusal(text) is None

    def port_allowed(self, port: int) -> bool:
        return port in self.ports

    def port_refusal(self, port: int) -> str | None:
        return None if self.port_allowed(port) else f"port {port} not allowed"

    def refusal(self, text: str, port: int) -> str | None:
        """Why the helper refuses to dial ``text:port``; None = allowed. The reason names
        the port but never the address (no oracle for internal names)."""
        if not self.port_allowed(port):
            return self.port_refusal(port)
        return "address not allowed" if self.address_refusal(text) is not None else None


def parse_networks(values: list[str], option: str) -> tuple[Network, ...]:
    """CIDRs from the command line; ValueError names the option and the bad value."""
    nets = []
    for v in values:
        try:
            nets.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError as e:
            raise ValueError(f"{option} {v!r}: {e}") from None
    return tuple(nets)
