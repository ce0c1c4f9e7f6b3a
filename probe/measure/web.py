"""One target end to end: DNS → TCP → TLS → HTTP, following redirects as new steps.

Responsibility: sequencing the steps of :mod:`probe.measure` for one target and gathering
their observations into one :class:`~probe.model.Measurement`. This module decides *what* to
try next, never what a result means.

Flow for each hop (hop 0 is the target URL, then each redirect):

1. DNS with every configured engine (skipped for an IP-literal host);
2. TCP to each selected address concurrently (at most ``max_addresses``, IPv4 first, one of
   them IPv6 when DNS gave one: :func:`probe.measure.dns.select_addresses`), and for
   https a TLS handshake on each connection with SNI = the URL's host; each address is one
   transaction (``tx_id``) shared by its TCP, TLS and HTTP observations;
3. an HTTP GET over the connection of the *first* address (in address order) whose TCP and
   TLS succeeded and whose chain verified. HTTP is never sent over a connection whose chain
   did not verify: such an endpoint has TCP and TLS observations (``verified`` False) and no
   HTTP observation. With no usable endpoint the hop has no HTTP observation;
4. a redirect (3xx with a usable ``Location``) starts the next hop, at most
   ``max_redirects`` times; a redirect beyond that is recorded as the failure
   ``http_too_many_redirects`` on the last HTTP observation (its status/headers are kept).

5. HTTP/3 (``settings.http3``): for an https target whose first response advertises ``h3`` in
   ``Alt-Svc`` (or every https target with ``always``), after the TCP path: one QUIC handshake
   (:mod:`probe.measure.quic`) to each address of the target URL's hop, to the advertised port,
   and an HTTP/3 GET of the target URL over each whose chain verified. A handshake that fails
   (not a certificate problem) is tried once more with the innocuous SNI when
   ``settings.sni_retry`` is on. Redirects are not followed over HTTP/3.
   ``Measurement.extra["http3"]`` says why it was tried (``alt-svc``/``always``), the port and
   the transaction ids.

Loopback and unspecified addresses are never dialled, except an IP-literal target host that
is itself loopback, answers of a loopback resolver (the test world), and loopback redirect
targets when either of those holds. ``Measurement.extra["hops"]`` lists, per hop, the URL,
the DNS and endpoint transaction ids and the addresses dialled, so every observation can be
placed in its hop; with DoH/DoT resolvers, ``dns_exchanges`` the connections underneath.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from probe import failures
from probe.measure import certs, dns, http, quic, tcp, tls
from probe.measure.settings import MeasureSettings
from probe.model import (
    DNSObservation,
    HTTPObservation,
    Measurement,
    QUICHandshake,
    Target,
    TCPObservation,
    TLSObservation,
    utcnow_iso,
)


@dataclass(slots=True)
class _Record:
    """The observations gathered so far, in the order they are added."""

    dns: list[DNSObservation] = field(default_factory=list)
    tcp: list[TCPObservation] = field(default_factory=list)
    tls: list[TLSObservation] = field(default_factory=list)
    http: list[HTTPObservation] = field(default_factory=list)
    hops: list[dict[str, Any]] = field(default_factory=list)
    quic: list[QUICHandshake] = field(default_factory=list)
    http3: list[HTTPObservation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Hop:
    url: str
    scheme: str
    host: str  # without brackets
    port: int


def _hop_of(url: str) -> _Hop | None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return _Hop(url, parts.scheme, host, port or (443 if parts.scheme == "https" else 80))


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


_Observation = TCPObservation | TLSObservation
#: ``gate(ip)`` → an async context manager held while the probe uses ``ip`` (see measure_target).
Gate = Callable[[str], contextlib.AbstractAsyncContextManager[None]]
_EndpointResult = tuple[list[_Observation], tcp.Connection | None]


async def _endpoint(
    ip: str, hop: _Hop, settings: MeasureSettings, tx_id: int, clock: Any,
    next_tx: Callable[[], int],
) -> _EndpointResult:
    """TCP (+TLS for https) to one address: its observations in order, and the connection if
    it is usable (connected, and for https with a chain that verified).

    A connect that times out is tried once more (``settings.connect_retries``): loss that a
    retry survives is not blocking. When the TLS handshake itself fails (reset, timeout, EOF —
    not a certificate problem) and ``settings.sni_retry`` is on, the same address is tried
    once more with an innocuous SNI. Every extra attempt has its own ``tx_id``; the endpoint's
    ``tx_id`` belongs to the attempt that carries the connection.
    """
    observations: list[_Observation] = []
    tcp_obs, conn = await tcp.connect(ip, hop.port, settings.connect_timeout, tx_id, clock)
    for _ in range(settings.connect_retries):
        if conn is not None or tcp_obs.failure != failures.GENERIC_TIMEOUT:
            break
        observations.append(replace(tcp_obs, tx_id=next_tx()))
        tcp_obs, conn = await tcp.connect(ip, hop.port, settings.connect_timeout, tx_id, clock)
    observations.append(tcp_obs)
    if conn is None or hop.scheme != "https":
        return observations, conn
    try:
        tls_obs = await tls.handshake(conn, hop.host, ip, hop.port, settings.tls_timeout,
                                      settings.ca_bundle, tx_id, clock)
    except BaseException:
        conn.close()
        raise
    observations.append(tls_obs)
    if tls_obs.failure is None and tls_obs.verified:
        return observations, conn
    conn.close()
    if tls_obs.failure is not None and settings.sni_retry and hop.host != settings.innocuous_sni:
        observations.extend(await _innocuous_sni(ip, hop, settings, next_tx(), clock))
    return observations, None


async def _innocuous_sni(
    ip: str, hop: _Hop, settings: MeasureSettings, tx_id: int, clock: Any
) -> list[_Observation]:
    """Handshake with the same address using an innocuous SNI (is the SNI the trigger?)."""
    tcp_obs, conn = await tcp.connect(ip, hop.port, settings.connect_timeout, tx_id, clock)
    if conn is None:
        return [tcp_obs]
    try:
        tls_obs = await tls.handshake(conn, settings.innocuous_sni, ip, hop.port,
                                      settings.tls_timeout, settings.ca_bundle, tx_id, clock)
    finally:
        conn.close()
    return [tcp_obs, tls_obs]


async def _measure_hop(
    hop: _Hop,
    index: int,
    settings: MeasureSettings,
    rec: _Record,
    next_tx: Callable[[], int],
    clock: Callable[[], float],
    cookies: httpx.Cookies,
    loopback_ok: bool,
    on_addresses: Callable[[list[str]], None] | None = None,
    gate: Gate | None = None,
) -> HTTPObservation | None:
    info: dict[str, Any] = {"url": hop.url, "redirect_index": index, "dns_tx_ids": [],
                            "addresses": [], "tx_ids": [], "http_tx_id": None}
    rec.hops.append(info)
    literal = _ip_literal(hop.host)
    if literal is not None:
        if settings.endpoint_guard is not None:
            settings.endpoint_guard([str(literal)], hop.port)
        addresses = [] if dns.is_loopback(str(literal)) and not loopback_ok else [str(literal)]
    else:
        if settings.endpoint_guard is not None:
            settings.endpoint_guard([], hop.port)  # the port, before any query
        exchanges: list[dict[str, object]] = []
        observations = await dns.resolve(hop.host, settings, next_tx, clock, exchanges)
        rec.dns.extend(observations)
        if exchanges:
            info["dns_exchanges"] = exchanges
        info["dns_tx_ids"] = sorted({o.tx_id for o in observations})
        if settings.endpoint_guard is not None:
            settings.endpoint_guard(dns.answer_addresses(observations), hop.port)
        addresses = dns.select_addresses(observations, settings)
    if on_addresses is not None:
        on_addresses(list(addresses))
    if settings.address_filter is not None:
        info["not_allowed"] = [a for a in addresses if not settings.address_filter(a)]
        addresses = [a for a in addresses if settings.address_filter(a)]
    info["addresses"] = addresses
    if not addresses:
        return None
    tx_ids = [next_tx() for _ in addresses]
    info["tx_ids"] = tx_ids
    async with hold_addresses(gate, addresses):
        return await _connect_and_fetch(hop, index, settings, rec, info, addresses, tx_ids,
                                        next_tx, clock, cookies)


@contextlib.asynccontextmanager
async def hold_addresses(gate: Gate | None, addresses: list[str]) -> AsyncIterator[None]:
    """Hold ``gate``'s slot for each address while the hop may use it (politeness). Every
    target takes them in the same (sorted) order, so two targets never wait on each other;
    the wait comes before any step's clock starts."""
    async with contextlib.AsyncExitStack() as stack:
        if gate is not None:
            for ip in sorted(set(addresses)):
                await stack.enter_async_context(gate(ip))
        yield


async def _connect_and_fetch(
    hop: _Hop, index: int, settings: MeasureSettings, rec: _Record, info: dict[str, Any],
    addresses: list[str], tx_ids: list[int], next_tx: Callable[[], int],
    clock: Callable[[], float], cookies: httpx.Cookies,
) -> HTTPObservation | None:
    tasks: list[asyncio.Task[_EndpointResult]] = []
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(_endpoint(ip, hop, settings, tx, clock, next_tx))
                     for ip, tx in zip(addresses, tx_ids, strict=True)]
    except BaseException:
        # Cancelled: close what the finished attempts opened, then propagate.
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is None:
                conn = task.result()[1]
                if conn is not None:
                    conn.close()
        raise
    results = [t.result() for t in tasks]
    chosen: tuple[str, int, tcp.Connection] | None = None
    for ip, tx, (attempts, conn) in zip(addresses, tx_ids, results, strict=True):
        for attempt in attempts:
            if isinstance(attempt, TCPObservation):
                rec.tcp.append(attempt)
            else:
                rec.tls.append(attempt)
            if attempt.tx_id != tx:
                info.setdefault("retry_tx_ids", []).append(attempt.tx_id)
        if conn is not None and chosen is None:
            chosen = (ip, tx, conn)
        elif conn is not None:
            conn.close()
    if chosen is None:
        return None
    ip, tx, conn = chosen
    info["http_tx_id"] = tx
    try:
        obs = await http.fetch(conn, hop.url, ip, hop.port, settings, tx, index, clock, cookies)
    finally:
        conn.close()
    rec.http.append(obs)
    return obs


def alt_svc_h3_port(headers: tuple[tuple[str, str], ...]) -> int | None:
    """The port of an ``h3`` alternative on the same host advertised in ``Alt-Svc`` headers
    (RFC 7838 §3: ``h3=":443"; ma=86400, h3-29=":443"``); None = none (or ``clear``).
    Alternatives on another host are not followed (a different server to measure)."""
    for name, value in headers:
        if name.lower() != "alt-svc":
            continue
        for entry in value.split(","):
            proto, _, rest = entry.strip().partition("=")
            if proto.strip() != "h3":
                continue
            authority = rest.split(";", 1)[0].strip().strip('"')
            host, _, port = authority.rpartition(":")
            if host == "" and port.isdigit() and 0 < int(port) < 65536:
                return int(port)
    return None


async def _try_http3(
    hop: _Hop, info: dict[str, Any], settings: MeasureSettings, rec: _Record,
    next_tx: Callable[[], int], clock: Callable[[], float], gate: Gate | None,
) -> dict[str, Any] | None:
    """The HTTP/3 attempt of step 5 (module docstring); None = not tried."""
    if hop.scheme != "https" or settings.http3 == "off" or not info["addresses"]:
        return None
    first = [h for h in rec.http if h.redirect_index == 0]
    advertised = next((p for h in first if (p := alt_svc_h3_port(h.headers))), None)
    if advertised is not None:
        reason, port = "alt-svc", advertised
    elif settings.http3 == "always":
        reason, port = "always", hop.port
    else:
        return None
    addresses = list(info["addresses"])
    tx_ids = [next_tx() for _ in addresses]

    async def one(ip: str, tx: int) -> list[tuple[QUICHandshake, HTTPObservation | None]]:
        done = [await quic.measure(hop.url, ip, port, settings, tx, 0, clock)]
        failed = done[0][0].failure
        if failed is not None and settings.sni_retry and hop.host != settings.innocuous_sni:
            innocuous = f"https://{settings.innocuous_sni}:{port}/"
            done.append(await quic.measure(innocuous, ip, port, settings, next_tx(), 0, clock))
        return done

    async with hold_addresses(gate, addresses):
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(ip, tx)) for ip, tx in zip(addresses, tx_ids,
                                                                   strict=True)]
    retries: list[int] = []
    for task in tasks:
        for handshake, request in task.result():
            rec.quic.append(handshake)
            if handshake.tx_id not in tx_ids:
                retries.append(handshake.tx_id)
            if request is not None:
                rec.http3.append(request)
    return {"reason": reason, "port": port, "addresses": addresses, "tx_ids": tx_ids,
            "retry_tx_ids": retries}


async def measure_target(
    target: Target,
    settings: MeasureSettings,
    on_addresses: Callable[[list[str]], None] | None = None,
    gate: Gate | None = None,
) -> Measurement:
    """Measure one target end to end (see the module docstring for the flow).

    ``on_addresses`` is called once, as soon as the target URL's addresses are known (empty
    when DNS gave none), so a control helper can be asked about the same addresses while the
    probe connects to them.

    ``gate(ip)``: an async context manager held around every use of ``ip`` (connections of a
    hop, up to its HTTP exchange); the runner uses it to cap connections per server.
    None = no cap.

    Never raises for network trouble; cancellation propagates (connections are closed).
    Raises :class:`~probe.errors.ProbeError` only for a tool error: an unreadable
    ``settings.ca_bundle``.
    """
    started_at = utcnow_iso()
    base = time.monotonic()

    def clock() -> float:
        return round(time.monotonic() - base, 6)

    counter = itertools.count(1)

    def next_tx() -> int:
        return next(counter)

    # Load the trust anchors up front (a tool error surfaces here, not inside a task group).
    await asyncio.to_thread(certs.trust_anchors, settings.ca_bundle)

    rec = _Record()
    cookies = httpx.Cookies()
    target_literal = _ip_literal(target.hostname)
    loopback_ok = (target_literal is not None and target_literal.is_loopback) or any(
        dns.is_loopback(r.ip) for r in settings.resolvers
    )
    hop: _Hop | None = _hop_of(target.url) or _Hop(
        target.url, target.scheme, target.hostname.strip("[]"), target.port
    )
    index = 0
    extra: dict[str, Any] = {"hops": rec.hops}
    first_hop = hop
    try:
        async with asyncio.timeout(settings.target_deadline()):
            while hop is not None:
                obs = await _measure_hop(hop, index, settings, rec, next_tx, clock, cookies,
                                         loopback_ok, on_addresses if index == 0 else None, gate)
                if obs is None or obs.location is None or obs.failure is not None:
                    break
                if index >= settings.max_redirects:
                    rec.http[-1] = replace(obs, failure=failures.HTTP_TOO_MANY_REDIRECTS)
                    break
                hop = _hop_of(obs.location)
                if hop is None:
                    rec.http[-1] = replace(
                        obs, failure=failures.HTTP_INVALID_REDIRECT_LOCATION_HOST)
                    break
                index += 1
            if rec.hops and first_hop is not None:
                attempt = await _try_http3(first_hop, rec.hops[0], settings, rec, next_tx,
                                           clock, gate)
                if attempt is not None:
                    extra["http3"] = attempt
    except TimeoutError:
        # Every step has its own deadline; this one bounds a chain of slow-but-legal hops.
        # The step in flight is abandoned (no observation), the others are kept.
        extra["deadline_exceeded"] = settings.target_deadline()
    return Measurement(
        target=target,
        started_at=started_at,
        finished_at=utcnow_iso(),
        dns=tuple(rec.dns),
        tcp=tuple(rec.tcp),
        tls=tuple(rec.tls),
        http=tuple(rec.http),
        quic=tuple(rec.quic),
        http3=tuple(rec.http3),
        extra=extra,
    )

