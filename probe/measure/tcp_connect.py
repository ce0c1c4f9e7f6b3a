"""The ``tcp_connect`` test (OONI's name): can the probe open a TCP connection to ``host:port``?

Responsibility: measuring one ``tcp://host:port`` input into a
:class:`~probe.model.Measurement`: DNS with every configured engine (the web test's
resolvers and address selection; skipped for an IP-literal host), then a TCP connect to each
selected address concurrently, each its own transaction, closed at once. A connect that times
out is tried once more (``settings.connect_retries``), as in the web test: loss that a retry
survives is not blocking. Nothing is sent over the connection.

Loopback and unspecified addresses are dialled only under the web test's rule: an IP-literal
host that is itself loopback, or answers of a loopback resolver (the test world).
``Measurement.extra["addresses"]`` lists the addresses dialled. This module decides what to
try, never what a result means (that is :mod:`probe.classify.tcp_connect`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from probe import failures
from probe.measure import dns, tcp
from probe.measure.settings import MeasureSettings
from probe.measure.web import Gate, hold_addresses
from probe.model import Measurement, Target, TCPObservation, utcnow_iso


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def _connect(ip: str, port: int, settings: MeasureSettings, tx_id: int,
                   clock: Callable[[], float], next_tx: Callable[[], int]
                   ) -> list[TCPObservation]:
    """Every attempt at ``ip:port`` (a timed-out connect is retried); the last carries
    ``tx_id``. The connection, if any, is closed at once."""
    attempts: list[TCPObservation] = []
    obs, conn = await tcp.connect(ip, port, settings.connect_timeout, tx_id, clock)
    for _ in range(settings.connect_retries):
        if conn is not None or obs.failure != failures.GENERIC_TIMEOUT:
            break
        attempts.append(replace(obs, tx_id=next_tx()))
        obs, conn = await tcp.connect(ip, port, settings.connect_timeout, tx_id, clock)
    if conn is not None:
        conn.close()
    attempts.append(obs)
    return attempts


async def measure_tcp_connect(
    target: Target,
    settings: MeasureSettings,
    on_addresses: Callable[[list[str]], None] | None = None,
    gate: Gate | None = None,
) -> Measurement:
    """Measure one ``tcp://host:port`` input (see the module docstring).

    ``on_addresses`` and ``gate`` as for :func:`probe.measure.web.measure_target`: called
    once with the resolved addresses (for the control helper), held around every use of an
    address (politeness). Never raises for network trouble; cancellation propagates.
    """
    started_at = utcnow_iso()
    base = time.monotonic()

    def clock() -> float:
        return round(time.monotonic() - base, 6)

    counter = itertools.count(1)

    def next_tx() -> int:
        return next(counter)

    host = target.hostname.strip("[]")
    literal = _literal(host)
    loopback_ok = (literal is not None and literal.is_loopback) or any(
        dns.is_loopback(r.ip) for r in settings.resolvers)
    dns_obs: tuple[Any, ...] = ()
    tcp_obs: list[TCPObservation] = []
    extra: dict[str, Any] = {"addresses": []}
    try:
        async with asyncio.timeout(settings.target_deadline()):
            guard = settings.endpoint_guard
            if literal is not None:
                if guard is not None:
                    guard([str(literal)], target.port)
                addresses = [] if dns.is_loopback(host) and not loopback_ok else [str(literal)]
            else:
                if guard is not None:
                    guard([], target.port)
                exchanges: list[dict[str, object]] = []
                dns_obs = tuple(await dns.resolve(host, settings, next_tx, clock, exchanges))
                if exchanges:
                    extra["dns_exchanges"] = exchanges
                if guard is not None:
                    guard(dns.answer_addresses(dns_obs), target.port)
                addresses = dns.select_addresses(list(dns_obs), settings)
            if on_addresses is not None:
                on_addresses(list(addresses))
            if settings.address_filter is not None:
                extra["not_allowed"] = [a for a in addresses if not settings.address_filter(a)]
                addresses = [a for a in addresses if settings.address_filter(a)]
            extra["addresses"] = addresses
            tx_ids = [next_tx() for _ in addresses]
            extra["tx_ids"] = tx_ids
            async with hold_addresses(gate, addresses):
                found = await asyncio.gather(*(
                    _connect(ip, target.port, settings, tx, clock, next_tx)
                    for ip, tx in zip(addresses, tx_ids, strict=True)))
            for attempts in found:
                tcp_obs.extend(attempts)
    except TimeoutError:
        extra["deadline_exceeded"] = settings.target_deadline()
    return Measurement(target=target, started_at=started_at, finished_at=utcnow_iso(),
                       dns=dns_obs, tcp=tuple(tcp_obs), extra=extra)
