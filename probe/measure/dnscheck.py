"""The ``dnscheck`` test (OONI's name): can the probe use this DoH or DoT resolver from here?

Responsibility: measuring one ``doh://host[:port]/path`` or ``dot://host[:port]`` input into a
:class:`~probe.model.Measurement`: the provider's name resolved with the plain resolvers (system
and ``--resolver``; skipped for an IP literal) — the DNS a censor can poison to hide the
provider — then, on each selected address concurrently, a TCP connect, a TLS handshake with
the provider's name as SNI (certificate validated) and one A query for
``settings.dnscheck_domain`` through it (:func:`probe.measure.dns.encrypted_lookup`; DoH:
``POST`` to the path, RFC 8484; DoT: RFC 7858 framing). OONI's dnscheck does the same per
address ("lookup of a known name through it: TCP/TLS/HTTP underneath").

Observations: the bootstrap DNS, then per address a TCP and a TLS observation, for DoH an
HTTP observation (method ``POST``, the DoH URL, its status), and the DNS observation of the
query (engine ``doh``/``dot``); all four share the address's ``tx_id``.
``extra``: ``resolver`` (the DoH URL or ``host:port``), ``domain``, ``addresses`` dialled,
``exchanges`` (the per-address dicts of :func:`~probe.measure.dns.encrypted_lookup`).
This module decides what to try, never what a result means (:mod:`probe.classify.dnscheck`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from probe import addresses as _addresses
from probe.measure import dns
from probe.measure.settings import EncryptedResolver, MeasureSettings
from probe.measure.web import Gate, hold_addresses
from probe.model import (
    DNSObservation,
    HTTPObservation,
    Measurement,
    Target,
    TCPObservation,
    TLSObservation,
    utcnow_iso,
)


def resolver_of(target: Target) -> EncryptedResolver:
    """The resolver a ``dnscheck`` target names."""
    return EncryptedResolver(target.scheme, target.hostname.strip("[]"), target.port,
                             target.path)


async def measure_dnscheck(
    target: Target,
    settings: MeasureSettings,
    on_addresses: Callable[[list[str]], None] | None = None,
    gate: Gate | None = None,
) -> Measurement:
    """Measure one ``dnscheck`` input (see the module docstring).

    ``on_addresses`` and ``gate`` as for :func:`probe.measure.web.measure_target`. Never
    raises for network trouble; cancellation propagates.
    """
    started_at = utcnow_iso()
    base = time.monotonic()

    def clock() -> float:
        return round(time.monotonic() - base, 6)

    counter = itertools.count(1)

    def next_tx() -> int:
        return next(counter)

    resolver = resolver_of(target)
    host = resolver.host
    literal = _addresses.parse_host(host)
    plain = replace(settings, encrypted_resolvers=())
    loopback_ok = (literal is not None and dns.is_loopback(host)) or any(
        dns.is_loopback(r.ip) for r in settings.resolvers)
    dns_obs: list[DNSObservation] = []
    underneath: list[TCPObservation | TLSObservation] = []
    http_obs: list[HTTPObservation] = []
    extra: dict[str, Any] = {"resolver": str(resolver), "domain": settings.dnscheck_domain,
                             "addresses": [], "exchanges": []}
    try:
        async with asyncio.timeout(settings.target_deadline()):
            guard = settings.endpoint_guard
            if literal is not None:
                if guard is not None:
                    guard([host], target.port)
                addresses = [] if dns.is_loopback(host) and not loopback_ok else [host]
            else:
                if guard is not None:
                    guard([], target.port)
                dns_obs.extend(await dns.resolve(host, plain, next_tx, clock))
                if guard is not None:
                    guard(dns.answer_addresses(dns_obs), target.port)
                addresses = dns.select_addresses(dns_obs, plain)
            if on_addresses is not None:
                on_addresses(list(addresses))
            if settings.address_filter is not None:
                extra["not_allowed"] = [a for a in addresses if not settings.address_filter(a)]
                addresses = [a for a in addresses if settings.address_filter(a)]
            extra["addresses"] = addresses
            tx_ids = [next_tx() for _ in addresses]
            async with hold_addresses(gate, addresses):
                found = await asyncio.gather(*(
                    dns.encrypted_lookup(settings.dnscheck_domain, resolver, "A", settings, tx,
                                         clock, ip=ip, underneath=underneath)
                    for ip, tx in zip(addresses, tx_ids, strict=True)))
            for obs, exchange in found:
                dns_obs.append(obs)
                extra["exchanges"].append(exchange)
                if resolver.engine == dns.DOH and _http_sent(exchange):
                    http_obs.append(_http_observation(resolver, exchange))
    except TimeoutError:
        extra["deadline_exceeded"] = settings.target_deadline()
    return Measurement(
        target=target, started_at=started_at, finished_at=utcnow_iso(), dns=tuple(dns_obs),
        tcp=tuple(o for o in underneath if isinstance(o, TCPObservation)),
        tls=tuple(o for o in underneath if isinstance(o, TLSObservation)),
        http=tuple(http_obs), extra=extra)


def _http_sent(exchange: dict[str, Any]) -> bool:
    """Was a DoH request sent (TLS completed and validated)?"""
    return exchange.get("tls_failure") is None and exchange.get("verified") is True


def _http_observation(resolver: EncryptedResolver, x: dict[str, Any]) -> HTTPObservation:
    """The DoH ``POST`` of one exchange as an HTTP observation (status, or the failure)."""
    status = x.get("http_status")
    return HTTPObservation(
        tx_id=int(x["tx_id"]), url=str(resolver), method="POST", ip=x.get("address"),
        port=resolver.port, t0=float(x["t0"]), t=float(x["t"]),
        failure=x.get("failure") if status is None else None, status=status)
