"""The app tests (whatsapp, telegram, signal, facebook_messenger) and the endpoint test: measure
every endpoint an endpoint list declares, into one Measurement.

Responsibility: one ``KIND://LIST`` input (``whatsapp://whatsapp``, ``endpoint://vpn``) →
its list (:mod:`probe.applists`, ``settings.app_lists`` first) → one sub-measurement per
endpoint with the existing steps: ``tcp`` is the ``tcp_connect`` test
(:func:`probe.measure.tcp_connect.measure_tcp_connect`), ``https`` the web test
(:func:`probe.measure.web.measure_target`; the list's own root replaces the run's extra
anchors, as Signal pins its CA), ``tls`` DNS → TCP → a TLS handshake with the host as SNI,
``http_post`` DNS → TCP → ``POST path`` without TLS (Telegram's fallback to its data centres on
80 and 443), ``udp`` one request datagram and any answer. The sub-measurements are merged into
one :class:`~probe.model.Measurement`: observations with their ``tx_id`` shifted so they stay
unique and their times shifted onto the app measurement's clock. ``extra["endpoints"]`` says,
per endpoint, its list entry, its ``tx`` range ``[first, last]``, its time offset ``dt`` (s),
its own ``extra`` and its ``control_url`` (what the control helper is asked:
:func:`control_requests`). UDP exchanges (no observation record for them) go to the endpoint's
``udp`` entry. A list that cannot be read gives a measurement with ``extra["list_error"]``.

Every address is held through the run's ``gate`` (per-address limit), as for every kind. The
control helper is asked per endpoint after the measurement (:func:`control_requests`), so
``on_addresses`` is not called. This module decides what to try, never what a result means
(that is :mod:`probe.classify.apps`).
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
from probe.applists import AppEndpoint, AppList, BadAppList, find_app_list
from probe.measure import dns, http, tcp, tls
from probe.measure.settings import MeasureSettings
from probe.measure.tcp_connect import measure_tcp_connect
from probe.measure.web import Gate, hold_addresses, measure_target
from probe.model import (
    DNSObservation,
    HTTPObservation,
    Measurement,
    Target,
    TCPObservation,
    TLSObservation,
    utcnow_iso,
)
from probe.targets import parse_input

#: Endpoints of one app measured at once (the run's per-address gate still applies): all of
#: a packaged list, so an app in a cut network costs one deadline, not one per wave.
ENDPOINTS_AT_ONCE = 64
#: Bytes of a UDP answer recorded (hex) — enough to recognise a protocol, no more.
UDP_KEEP = 64


def control_url(e: AppEndpoint) -> str | None:
    """What the control helper is asked about for ``e`` (None = it cannot measure it):
    the URL itself for https, ``https://host:port/`` for a TLS endpoint (the helper's TLS to
    the probe's addresses), ``tcp://host:port`` for TCP and for Telegram-style POSTs (the
    helper fetches with GET only), nothing for UDP."""
    shown = f"[{e.host}]" if ":" in e.host else e.host
    if e.protocol == "https":
        return e.url
    if e.protocol == "tls":
        return f"https://{shown}:{e.port}/"
    if e.protocol in ("tcp", "http_post"):
        return f"tcp://{shown}:{e.port}"
    return None


def control_requests(m: Measurement) -> list[tuple[str, list[str]]]:
    """The control requests of an app measurement: ``(url, addresses the probe dialled)``
    per endpoint the helper can measure, duplicates merged."""
    out: dict[str, list[str]] = {}
    for e in m.extra.get("endpoints", []):
        url = e.get("control_url")
        if not url:
            continue
        seen = out.setdefault(url, [])
        for a in e.get("addresses", []):
            if a not in seen:
                seen.append(a)
    return list(out.items())


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


class _Clock:
    def __init__(self) -> None:
        self.base = time.monotonic()
        self._tx = itertools.count(1)

    def __call__(self) -> float:
        return round(time.monotonic() - self.base, 6)

    def next_tx(self) -> int:
        return next(self._tx)


async def _addresses(host: str, settings: MeasureSettings, clock: _Clock
                     ) -> tuple[list[DNSObservation], list[str], dict[str, Any]]:
    """DNS (skipped for an IP literal) and the address selection of the web test."""
    literal = _literal(host)
    loopback_ok = (literal is not None and dns.is_loopback(literal)) or any(
        dns.is_loopback(r.ip) for r in settings.resolvers)
    extra: dict[str, Any] = {}
    if literal is not None:
        obs: list[DNSObservation] = []
        addresses = [] if dns.is_loopback(literal) and not loopback_ok else [literal]
    else:
        obs = list(await dns.resolve(host, settings, clock.next_tx, clock))
        addresses = dns.select_addresses(obs, settings)
    if settings.address_filter is not None:
        extra["not_allowed"] = [a for a in addresses if not settings.address_filter(a)]
        addresses = [a for a in addresses if settings.address_filter(a)]
    extra["addresses"] = addresses
    return obs, addresses, extra


async def _connect(ip: str, port: int, settings: MeasureSettings, clock: _Clock
                   ) -> tuple[list[TCPObservation], tcp.Connection | None]:
    """A connect, retried once after a timeout (as the web test does)."""
    tx = clock.next_tx()
    attempts: list[TCPObservation] = []
    obs, conn = await tcp.connect(ip, port, settings.connect_timeout, tx, clock)
    for _ in range(settings.connect_retries):
        if conn is not None or obs.failure != failures.GENERIC_TIMEOUT:
            break
        attempts.append(replace(obs, tx_id=clock.next_tx()))
        obs, conn = await tcp.connect(ip, port, settings.connect_timeout, tx, clock)
    attempts.append(obs)
    return attempts, conn


async def _dial(target: Target, e: AppEndpoint, settings: MeasureSettings,
                gate: Gate | None) -> Measurement:
    """A ``tls`` or ``http_post`` endpoint: DNS, then per address TCP and the handshake or
    the POST. Never raises for network trouble."""
    started_at = utcnow_iso()
    clock = _Clock()
    dns_obs: list[DNSObservation] = []
    tcp_obs: list[TCPObservation] = []
    tls_obs: list[TLSObservation] = []
    http_obs: list[HTTPObservation] = []
    extra: dict[str, Any] = {"addresses": []}

    async def one(ip: str) -> None:
        attempts, conn = await _connect(ip, e.port, settings, clock)
        tcp_obs.extend(attempts)
        if conn is None:
            return
        tx = attempts[-1].tx_id
        try:
            if e.protocol == "tls":
                tls_obs.append(await tls.handshake(conn, e.host, ip, e.port,
                                                   settings.tls_timeout, settings.ca_bundle,
                                                   tx, clock))
            else:
                http_obs.append(await http.fetch(conn, target.url, ip, e.port, settings, tx, 0,
                                                 clock, method="POST"))
        finally:
            conn.close()

    try:
        async with asyncio.timeout(settings.target_deadline()):
            dns_obs, addresses, extra = await _addresses(e.host, settings, clock)
            async with hold_addresses(gate, addresses):
                await asyncio.gather(*(one(ip) for ip in addresses))
    except TimeoutError:
        extra["deadline_exceeded"] = settings.target_deadline()
    return Measurement(target=target, started_at=started_at, finished_at=utcnow_iso(),
                       dns=tuple(dns_obs), tcp=tuple(tcp_obs), tls=tuple(tls_obs),
                       http=tuple(http_obs), extra=extra)


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def _udp(target: Target, e: AppEndpoint, settings: MeasureSettings,
               gate: Gate | None) -> Measurement:
    """A ``udp`` endpoint: send the request to each address, wait for any answer."""
    started_at = utcnow_iso()
    clock = _Clock()
    extra: dict[str, Any] = {"addresses": [], "udp": []}

    async def one(ip: str) -> dict[str, Any]:
        t0 = clock()
        loop = asyncio.get_running_loop()
        transport = None
        try:
            transport, proto = await loop.create_datagram_endpoint(
                _Datagram, remote_addr=(ip, e.port))
            transport.sendto(e.payload)
            async with asyncio.timeout(settings.connect_timeout):
                data = await proto.answer
            return {"ip": ip, "port": e.port, "t0": t0, "t": clock(), "failure": None,
                    "sent_bytes": len(e.payload), "received_bytes": len(data),
                    "answer_hex": data[:UDP_KEEP].hex()}
        except Exception as exc:  # every network error becomes a failure string
            return {"ip": ip, "port": e.port, "t0": t0, "t": clock(),
                    "failure": failures.classify_exception(exc),
                    "sent_bytes": len(e.payload), "received_bytes": 0}
        finally:
            if transport is not None:
                transport.close()

    dns_obs: list[DNSObservation] = []
    try:
        async with asyncio.timeout(settings.target_deadline()):
            dns_obs, addresses, found = await _addresses(e.host, settings, clock)
            extra.update(found)
            async with hold_addresses(gate, addresses):
                extra["udp"] = list(await asyncio.gather(*(one(ip) for ip in addresses)))
    except TimeoutError:
        extra["deadline_exceeded"] = settings.target_deadline()
    return Measurement(target=target, started_at=started_at, finished_at=utcnow_iso(),
                       dns=tuple(dns_obs), extra=extra)


def endpoint_target(e: AppEndpoint) -> Target:
    """The input the endpoint is measured as: a web URL for https/http_post, ``tcp://`` for
    tcp, and an https target (TLS without HTTP) for tls and udp."""
    if e.protocol in ("https", "http_post", "tcp"):
        return parse_input(e.url)
    shown = f"[{e.host}]" if ":" in e.host else e.host
    return parse_input(f"https://{shown}:{e.port}/")


async def measure_endpoint(e: AppEndpoint, settings: MeasureSettings,
                           gate: Gate | None = None) -> Measurement:
    """One endpoint of a list, measured on its own (its own tx ids and clock)."""
    target = endpoint_target(e)
    if e.protocol == "tcp":
        return await measure_tcp_connect(target, settings, None, gate)
    if e.protocol == "https":
        return await measure_target(target, settings, None, gate)
    if e.protocol == "udp":
        return await _udp(target, e, settings, gate)
    return await _dial(target, e, settings, gate)


def _shift(obs: Any, dtx: int, dt: float) -> Any:
    if isinstance(obs, DNSObservation | TCPObservation | TLSObservation | HTTPObservation):
        changes: dict[str, Any] = {"tx_id": obs.tx_id + dtx, "t0": round(obs.t0 + dt, 6),
                                   "t": round(obs.t + dt, 6)}
        if isinstance(obs, HTTPObservation) and obs.last_byte_t is not None:
            changes["last_byte_t"] = round(obs.last_byte_t + dt, 6)
        return replace(obs, **changes)
    return obs


def _tx_ids(m: Measurement) -> list[int]:
    return [*(o.tx_id for o in m.dns), *(o.tx_id for o in m.tcp), *(o.tx_id for o in m.tls),
            *(o.tx_id for o in m.http)]


def _entry(e: AppEndpoint) -> dict[str, Any]:
    return {"role": e.role, "host": e.host, "port": e.port, "protocol": e.protocol,
            "url": e.url, "label": e.label, "source": e.source, "date": e.date,
            "origin": e.origin, "control_url": control_url(e)}


def merge(target: Target, started_at: str, finished_at: str, lst: AppList,
          parts: list[tuple[AppEndpoint, float, Measurement]]) -> Measurement:
    """One app measurement from its endpoints' sub-measurements (see the module docstring).
    ``parts``: (endpoint, seconds after the app's start its sub-measurement started, it)."""
    dns_obs: list[DNSObservation] = []
    tcp_obs: list[TCPObservation] = []
    tls_obs: list[TLSObservation] = []
    http_obs: list[HTTPObservation] = []
    endpoints: list[dict[str, Any]] = []
    offset = 0
    for e, dt, sub in parts:
        ids = _tx_ids(sub)
        dtx = offset
        dns_obs += [_shift(o, dtx, dt) for o in sub.dns]
        tcp_obs += [_shift(o, dtx, dt) for o in sub.tcp]
        tls_obs += [_shift(o, dtx, dt) for o in sub.tls]
        http_obs += [_shift(o, dtx, dt) for o in sub.http]
        top = max(ids, default=0)
        entry = _entry(e)
        entry.update(tx=[dtx + 1, dtx + top], dt=round(dt, 6),
                     addresses=list(sub.extra.get("addresses", [])),
                     extra={k: v for k, v in sub.extra.items() if k != "addresses"},
                     elapsed=_elapsed(sub))
        endpoints.append(entry)
        offset += top
    extra: dict[str, Any] = {"app": lst.app, "list": lst.name, "list_path": lst.path,
                             "endpoints": endpoints}
    if lst.asns:
        extra["asns"] = list(lst.asns)
    if lst.ca_file:
        extra["ca_file"] = lst.ca_file
    return Measurement(target=target, started_at=started_at, finished_at=finished_at,
                       dns=tuple(dns_obs), tcp=tuple(tcp_obs), tls=tuple(tls_obs),
                       http=tuple(http_obs), extra=extra)


def _elapsed(m: Measurement) -> float:
    from datetime import datetime

    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    try:
        return round((datetime.strptime(m.finished_at, fmt)
                      - datetime.strptime(m.started_at, fmt)).total_seconds(), 6)
    except ValueError:
        return 0.0


async def measure_app(
    target: Target,
    settings: MeasureSettings,
    on_addresses: Callable[[list[str]], None] | None = None,
    gate: Gate | None = None,
) -> Measurement:
    """Measure one ``KIND://LIST`` input (see the module docstring). Never raises for network
    trouble or a bad list (the measurement then says ``list_error``); cancellation
    propagates."""
    started_at = utcnow_iso()
    try:
        lst = find_app_list(target.hostname, settings.app_lists)
    except BadAppList as e:
        return Measurement(target=target, started_at=started_at, finished_at=utcnow_iso(),
                           extra={"list_error": str(e)})
    if lst.app != target.test_name:
        return Measurement(target=target, started_at=started_at, finished_at=utcnow_iso(),
                           extra={"list_error": f"{lst.path}:1: a list for {lst.app!r}, "
                                                f"not {target.test_name!r}"})
    sub_settings = replace(settings, ca_bundle=lst.ca_file) if lst.ca_file else settings
    base = time.monotonic()
    slots = asyncio.Semaphore(ENDPOINTS_AT_ONCE)

    async def one(e: AppEndpoint) -> tuple[AppEndpoint, float, Measurement]:
        async with slots:
            dt = time.monotonic() - base
            own = sub_settings if e.protocol in ("https", "tls") else settings
            return e, dt, await measure_endpoint(e, own, gate)

    parts = list(await asyncio.gather(*(one(e) for e in lst.endpoints)))
    return merge(target, started_at, utcnow_iso(), lst, parts)
