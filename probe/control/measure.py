"""What the control helper does for one request: measure the URL from outside the censor.

It runs the same measurement steps as the probe (``probe.measure``): its own DNS, TCP and TLS to
its own addresses and to the addresses the probe resolved, and an HTTP fetch that follows
redirects. Every hop's port and addresses are checked against the server's :class:`Policy`
before anything is dialled, so the helper cannot be used to reach private networks, its own
host or other ports. The answer is the v1 response
of :mod:`probe.control.protocol`, summarised from the frozen observations.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from probe.addresses import parse_host
from probe.control.policy import Policy
from probe.control.protocol import PROTOCOL_VERSION, QUIC_CHECK, MeasureRequest
from probe.measure import quic, tcp, tls
from probe.measure.dnscheck import measure_dnscheck
from probe.measure.settings import MeasureSettings
from probe.measure.tcp_connect import measure_tcp_connect
from probe.measure.tor import measure_tor
from probe.measure.web import measure_target
from probe.model import (
    DNSCHECK,
    TCP_CONNECT,
    TOR,
    Measurement,
    Target,
    TCPObservation,
    TLSObservation,
)
from probe.targets import parse_input


def summarise(
    m: Measurement,
    extra_endpoints: list[tuple[TCPObservation, TLSObservation | None]],
    throughput: bool,
) -> dict[str, Any]:
    """The v1 response body for a finished measurement (pure)."""
    first = [o for o in m.dns if o.response_index == 0]
    addrs: list[str] = []
    cnames: list[str] = []
    for o in first:
        for a in o.answers:
            target = addrs if a.rtype in ("A", "AAAA") else cnames
            if a.value not in target:
                target.append(a.value)
    dns_failure = None
    if not addrs and first:
        dns_failure = next((o.failure for o in first if o.failure), None)
    endpoints: dict[str, dict[str, Any]] = {}
    pairs: list[tuple[TCPObservation, TLSObservation | None, str]] = []
    for conn_obs in m.tcp:
        tls_obs = next((t for t in m.tls if t.tx_id == conn_obs.tx_id), None)
        if tls_obs is not None and tls_obs.server_name != m.target.hostname:
            continue  # the innocuous-SNI retry is the probe's business, not the control's
        pairs.append((conn_obs, tls_obs, "control"))
    pairs += [(o, t, "probe") for o, t in extra_endpoints]
    for tcp_obs, tls_obs, origin in pairs:
        key = _endpoint_key(tcp_obs.ip, tcp_obs.port)
        entry = endpoints.get(key)
        if entry is not None:
            entry["origin"] = "both" if entry["origin"] != origin else origin
            continue
        endpoints[key] = {
            "origin": origin,
            "tcp_failure": tcp_obs.failure,
            "tls_failure": tls_obs.failure if tls_obs else None,
            "verified": tls_obs.verified if tls_obs else None,
            "verify_error": tls_obs.verify_error if tls_obs else None,
            "chain_sha256": [c.sha256 for c in tls_obs.certificates] if tls_obs else [],
            "spki_sha256": [c.spki_sha256 for c in tls_obs.certificates] if tls_obs else [],
            "issuers": [c.issuer for c in tls_obs.certificates] if tls_obs else [],
            "tls_handshake_time": round(tls_obs.t - tls_obs.t0, 6)
            if tls_obs and tls_obs.failure is None else None,
        }
    http: dict[str, Any] = {"status": None, "failure": None, "redirect_chain": []}
    if m.http:
        last = m.http[-1]
        elapsed = last.t - last.t0
        http = {
            "status": last.status,
            "failure": last.failure,
            "headers": [list(h) for h in last.headers],
            "body_length": last.body_length,
            "body_sha256": last.body_sha256,
            "body_truncated": last.body_truncated,
            "title": last.title,
            "redirect_chain": [h.url for h in m.http],
            "elapsed": round(elapsed, 6),
            "throughput_bps": round(8 * last.body_length / elapsed, 1)
            if throughput and last.body_length and elapsed > 0 else None,
        }
    elif m.tcp and all(o.failure for o in m.tcp):
        http["failure"] = m.tcp[0].failure
    return {
        "version": PROTOCOL_VERSION,
        "url": m.target.url,
        "failure": None,
        "dns": {"addrs": addrs, "cnames": cnames, "failure": dns_failure,
                "resolver": first[0].resolver if first else None},
        "endpoints": endpoints,
        "http": http,
    }


class Refused(Exception):
    """Raised by the policy guard to abort a measurement: something it would dial is refused."""


def _guard(policy: Policy) -> Callable[[list[str], int], None]:
    """The policy as a ``MeasureSettings.endpoint_guard``: raises :class:`Refused` for a
    refused port or any refused address of a hop."""

    def guard(addresses: list[str], port: int) -> None:
        reason = policy.port_refusal(port)
        for a in addresses:
            reason = reason or policy.refusal(a, port)
        if reason is not None:
            raise Refused(reason)

    return guard


async def measure_request(
    req: MeasureRequest, policy: Policy, settings: MeasureSettings
) -> dict[str, Any]:
    """Measure one request under ``policy``; refusals come back with ``refused: true``.

    The policy judges the URL, then every hop (the target and each redirect) before it is
    dialled: its port, and every address its host stands for (each DNS answer, any spelling).
    One refused address or port refuses the whole request, and the answer names no address
    (a name resolving to an internal address must not be echoed: no DNS oracle). The
    probe's addresses that the policy refuses are not dialled, only counted.

    A ``tcp://host:port`` input is a TCP reachability request (the ``tcp_connect`` test):
    the same port and address policy, the helper's own DNS and connects plus connects to the
    probe's addresses, and an answer without ``http`` (None: no fetch was made). A
    ``doh://``/``dot://`` input (``dnscheck``) is measured by the helper's own dnscheck (TCP,
    TLS, one query through the resolver), plus TLS handshakes with the probe's addresses.

    ``req.quic`` (an https web request only): QUIC handshakes to the probe's addresses that
    the policy allows, at the URL's port, all at once and each within the TLS timeout, beside
    the rest (:func:`_quic`); the answer's ``quic`` lists them.
    """
    started = time.monotonic()
    try:
        target = parse_input(req.url)
    except ValueError as e:
        return _refusal(req.url, f"bad url: {e}")
    if target.test_name == TOR:
        return await _tor(req, target, policy, settings, started)
    literal = parse_host(target.hostname)
    why = policy.refusal(str(literal), target.port) if literal else policy.port_refusal(
        target.port)
    if why is not None:
        return _refusal(req.url, why)

    # http3 off: the helper's answer has no QUIC part yet, and an Alt-Svc may name any UDP port
    own_settings = replace(settings, address_filter=policy.address_allowed,
                           endpoint_guard=_guard(policy), http3="off")
    probe_addrs = [a for a in req.addresses if policy.refusal(a, target.port) is None]
    tcp_only = target.test_name in (TCP_CONNECT, DNSCHECK)
    # A resolver under dnscheck: the helper runs the same dnscheck (its own TCP, TLS with the
    # provider's name as SNI, one query) and shakes hands with the probe's addresses.
    scheme = "https" if target.test_name == DNSCHECK else target.scheme
    own = {TCP_CONNECT: measure_tcp_connect, DNSCHECK: measure_dnscheck}.get(
        target.test_name, measure_target)
    quic_check = min(req.quic, QUIC_CHECK) if (
        req.quic and not tcp_only and target.scheme == "https") else 0
    refused: str | None = None
    try:
        async with asyncio.TaskGroup() as tg:
            measuring = tg.create_task(own(target, own_settings))
            probing = tg.create_task(_endpoints(probe_addrs, target.hostname, target.port,
                                                scheme, settings))
            quicking = tg.create_task(_quic(target.url, probe_addrs if quic_check else [],
                                            target.port, settings))
    except* Refused as group:
        refused = str(group.exceptions[0])
    if refused is not None:
        return _refusal(req.url, refused)
    m, extra = measuring.result(), probing.result()
    body = summarise(m, extra, req.throughput)
    if tcp_only:
        body.update(test_name=target.test_name, http=None)
    if quic_check:
        body.update(quic_check=quic_check, quic=quicking.result())
    body["refused_addresses"] = len(req.addresses) - len(probe_addrs)
    body["elapsed"] = round(time.monotonic() - started, 6)
    return body


async def _tor(req: MeasureRequest, target: Target, policy: Policy,
               settings: MeasureSettings, started: float) -> dict[str, Any]:
    """A ``tor://LIST`` request: the helper measures its own copy of the Tor list ``LIST``
    (packaged, or its ``--app-lists`` directory) — the ports are the ones that list declares,
    nothing the request names — with the same address policy: a target whose address or port
    the policy refuses is not dialled, only named under ``not_allowed``. The answer carries one line
    per target (id, protocol, failing step, failure) under ``tor``; ``http`` is None."""
    m = await measure_tor(target, replace(settings, address_filter=policy.address_allowed,
                                          endpoint_guard=_guard(policy)))
    info = m.extra.get("tor", {})
    if info.get("list_error"):
        return _refusal(req.url, f"no usable Tor list: {info['list_error']}")
    keep = ("id", "name", "protocol", "step", "failure", "t")
    return {"version": PROTOCOL_VERSION, "url": req.url, "failure": None, "test_name": TOR,
            "http": None, "endpoints": {},
            "tor": {"targets": [{k: t.get(k) for k in keep} for t in info.get("targets", [])],
                    "not_allowed": info.get("not_allowed", [])},
            "elapsed": round(time.monotonic() - started, 6)}


async def _endpoints(
    addresses: list[str], host: str, port: int, scheme: str, settings: MeasureSettings
) -> list[tuple[TCPObservation, TLSObservation | None]]:
    """TCP (+TLS) to the probe's addresses, to tell a blocked IP from a dead one."""
    base = time.monotonic()
    counter = itertools.count(1000)

    def clock() -> float:
        return round(time.monotonic() - base, 6)

    async def one(ip: str) -> tuple[TCPObservation, TLSObservation | None]:
        tcp_obs, conn = await tcp.connect(ip, port, settings.connect_timeout, next(counter), clock)
        if conn is None:
            return tcp_obs, None
        try:
            if scheme != "https":
                return tcp_obs, None
            tls_obs = await tls.handshake(conn, host, ip, port, settings.tls_timeout,
                                          settings.ca_bundle, tcp_obs.tx_id, clock)
            return tcp_obs, tls_obs
        finally:
            conn.close()

    return list(await asyncio.gather(*(one(ip) for ip in addresses)))


async def _quic(url: str, addresses: list[str], port: int, settings: MeasureSettings
                ) -> list[dict[str, Any]]:
    """One QUIC handshake (no request) to each address, all at once: does QUIC reach it from
    here? The entries the classifier reads (:mod:`probe.classify.quic`)."""
    base = time.monotonic()

    def clock() -> float:
        return round(time.monotonic() - base, 6)

    found = await asyncio.gather(*(quic.measure(url, ip, port, settings, 2000 + i, 0, clock,
                                                request=False)
                                   for i, ip in enumerate(addresses)))
    return [{"ip": h.ip, "port": h.port, "failure": h.failure, "quic_version": h.quic_version,
             "alpn": h.alpn, "verified": h.verified,
             "handshake_time": round(h.t - h.t0, 6) if h.failure is None else None}
            for h, _ in found]


def _endpoint_key(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _refusal(url: str, why: str) -> dict[str, Any]:
    return {"version": PROTOCOL_VERSION, "url": url, "failure": why, "refused": True}
