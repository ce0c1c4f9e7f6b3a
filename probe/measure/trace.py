"""The packet-level tests of issue 8: DNS injection seen from a silent address, and censor
localisation by repeating the triggering exchange with increasing TTL.

Responsibility: which probes are sent in which order, and recording what came back. Each test
returns one :class:`~probe.model.TraceObservation` holding every probe (one
:class:`~probe.model.TraceProbe` per TTL and variant), the routers seen and the distances
measured; what that says about the censor (result, signature, hop) is
:mod:`probe.classify.traces`, which never sees a packet. The localisation tests raise the TTL
until the blocked and the innocuous exchange differ: the caller hands in that comparison
(``signature``, :func:`probe.classify.traces.signature`), so this module never judges. Packet
IO is :mod:`probe.measure.raw` (blocking, always run in a worker thread). docs/trace.md
explains how hops are read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from probe.measure import certs
from probe.measure.raw import FULL_TTL, PacketIO, Reply, in_thread
from probe.model import TraceHop, TraceObservation, TraceProbe, utcnow_iso

BLOCKED, INNOCUOUS = "blocked", "innocuous"
#: The comparison of the blocked and the innocuous probe at one TTL (kind, blocked,
#: innocuous): what the censor did, None = no difference (:func:`probe.classify.traces.signature`).
Signature = Callable[[str, TraceProbe, TraceProbe], str | None]
#: Trace kinds: what the triggering exchange is.
KINDS = ("dns", "tls", "http", "tcp")


@dataclass(frozen=True, slots=True)
class TraceSettings:
    """Knobs of the packet-level tests.

    ``max_ttl``: the highest TTL tried. ``timeout``: how long one TTL-limited trigger (or one
    sweep) waits for an answer; a silent probe costs this much. ``connect_timeout``: the
    normal-TTL TCP handshake before a trigger. ``grace``: how long to keep listening after an
    ICMP message about a trigger (an injector that lets the packet pass answers meanwhile).
    ``ca_bundle``: extra trust anchors (a certificate that does not validate is a forged one).
    ``innocuous_name``: the SNI / Host / DNS name of the comparison exchange.
    """

    max_ttl: int = 16
    timeout: float = 2.0
    connect_timeout: float = 5.0
    grace: float = 0.3
    ca_bundle: str | None = None
    innocuous_name: str = "example.org"

    def __post_init__(self) -> None:
        if not 1 <= self.max_ttl <= 64:
            raise ValueError(f"max_ttl {self.max_ttl} outside 1..64")


# --- what was seen ------------------------------------------------------------------------


def path_of(replies: Iterable[Reply]) -> tuple[TraceHop, ...]:
    """The routers seen: the first time-exceeded source for each TTL, by TTL."""
    seen: dict[int, str] = {}
    for r in replies:
        router = r.router or (r.source if r.outcome == "expired" else None)
        if router and r.ttl not in seen:
            seen[r.ttl] = router
    return tuple(TraceHop(t, seen[t]) for t in sorted(seen))


def first_answer_ttl(replies: Mapping[int, Reply]) -> int | None:
    """The lowest TTL whose reply is an answer (a SYN-ACK, an echo reply…)."""
    return min((t for t, r in replies.items() if r.outcome in ("answer",)), default=None)


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


def note_of(kind: str, r: Reply, cert_error: str | None = None) -> str | None:
    """A short description of what came back (stored with the probe)."""
    if r.outcome == "error":
        return r.error
    if r.outcome == "unreachable":
        return f"ICMP unreachable code {r.icmp_code}"
    if r.outcome != "answer":
        return None
    if kind == "dns":
        return f"{r.rcode or '?'} {', '.join(r.answers) or '(no address)'}"
    if kind == "tls":
        if r.tls_error and not r.chain:
            return f"not a TLS handshake: {r.tls_error}"
        if r.chain:
            issuer = certs.parse_certificate(r.chain[0]).issuer
            verdict = f"does not validate: {cert_error}" if cert_error else "validates"
            return f"certificate issued by {_short(issuer, 60)}; {verdict}"
        return "TLS handshake incomplete"
    if kind == "http":
        line = r.data.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        m = _TITLE.search(r.data)
        title = " ".join(m.group(1).decode("utf-8", "replace").split()) if m else ""
        return _short(line, 40) + (f" «{_short(title, 60)}»" if title else "")
    return None


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def cert_problem(r: Reply, name: str, ca_bundle: str | None) -> str | None:
    """Why the chain of a TLS answer does not validate for ``name``; None = it does (or none)."""
    if not r.chain:
        return None
    try:
        ok, error = certs.verify_chain(list(r.chain), name, dt.datetime.now(dt.UTC), ca_bundle)
    except Exception:  # a chain odd enough to trip the parser did not validate
        return "ssl_invalid_certificate"
    return None if ok else error


def http_request(host: str, path: str = "/") -> bytes:
    """A plain HTTP/1.1 GET naming ``host`` (the triggering or the innocuous request)."""
    return (f"GET {path or '/'} HTTP/1.1\r\nHost: {host}\r\n"
            "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/124.0 Safari/537.36\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n").encode("ascii", "replace")


# --- the DNS injection test ----------------------------------------------------------------


async def dns_injection(io: PacketIO, server: str, name: str,
                        settings: TraceSettings) -> TraceObservation:
    """Query ``server`` — an address beyond the censor that runs no resolver — for ``name``.

    The query is sent with the full TTL, then with TTL 1…``max_ttl`` at once (any answer is
    injected, and the lowest TTL that brings one back places the injector); an innocuous name
    is asked too (an address that answers it runs a resolver). Probes, in order: the full-TTL
    query, the innocuous one, then one per TTL. Silence below the first TTL that got anything
    from beyond is asked about again (a lost packet may hide the injector).
    """
    started, t0 = utcnow_iso(), time.monotonic()
    innocuous = settings.innocuous_name
    ttls = range(1, settings.max_ttl + 1)
    queries = [(name, FULL_TTL), (innocuous, FULL_TTL), *((name, t) for t in ttls)]
    replies = await in_thread(io.dns_sweep, server, queries, settings.timeout, attempts=1)
    swept = {t: replies[(name, t)] for t in ttls}
    beyond = min((t for t, r in swept.items() if r.outcome == "answer"
                  or (r.outcome == "unreachable" and r.source == server)), default=None)
    gaps = [(name, t) for t in ttls if swept[t].outcome == "silent"
            and (beyond is None or t < beyond)]
    if gaps:
        again = await in_thread(io.dns_sweep, server, gaps, settings.timeout, attempts=1)
        for (_, t), r in again.items():
            swept[t] = r
    full, control = replies[(name, FULL_TTL)], replies[(innocuous, FULL_TTL)]
    forged = tuple(dict.fromkeys(a for r in [full, *swept.values()] for a in r.answers))
    probes = [_probe("dns", full, BLOCKED), _probe("dns", control, INNOCUOUS)]
    probes += [_probe("dns", swept[t], BLOCKED) for t in ttls]
    details: dict[str, Any] = {"full_ttl": FULL_TTL}
    reached = min((t for t, r in swept.items() if r.outcome == "unreachable"
                   and r.source == server), default=None)
    if reached is not None:
        details["destination_ttl"] = reached
    return TraceObservation(
        kind="dns", target=server, port=53, name=name, innocuous=innocuous, started_at=started,
        elapsed=round(time.monotonic() - t0, 3), failure=None, path=path_of(swept.values()),
        probes=tuple(probes), answers=forged, details=details)


# --- censor localisation: TLS and HTTP ---------------------------------------------------------


async def locate_stream(io: PacketIO, kind: str, ip: str, port: int, name: str,
                        settings: TraceSettings, path: str = "/", *,
                        signature: Signature) -> TraceObservation:
    """Probe a censor triggered by the SNI (``kind`` tls) or the Host (``kind`` http).

    First the path: SYNs and pings to ``ip`` with every TTL (the TCP endpoint's distance, the
    destination's, the routers). Then, TTL by TTL up to the TCP endpoint, the exchange with the
    innocuous name and with ``name`` — a normal handshake, then the trigger with that TTL —
    until ``signature`` finds the two differ (a silence is asked about once more) or both reach
    the server alike.
    """
    if kind not in ("tls", "http"):
        raise ValueError(f"not a stream kind: {kind!r}")
    started, t0 = utcnow_iso(), time.monotonic()
    innocuous = settings.innocuous_name
    ttls = list(range(1, settings.max_ttl + 1))
    syn, echo = await asyncio.gather(
        in_thread(io.syn_sweep, ip, port, ttls, settings.timeout),
        in_thread(io.echo_sweep, ip, ttls, settings.timeout),
    )
    d_tcp, d_ip = first_answer_ttl(syn), first_answer_ttl(echo)
    details: dict[str, Any] = {"tcp_endpoint_ttl": d_tcp, "destination_ttl": d_ip}
    if d_tcp is not None and d_ip is not None and d_tcp < d_ip:
        details["endpoint"] = "middlebox"  # SYNs are answered nearer than pings
    limit = min(d_tcp or settings.max_ttl, settings.max_ttl)

    async def exchange(variant: str, ttl: int) -> TraceProbe:
        host = name if variant == BLOCKED else innocuous
        kw: dict[str, Any] = ({"tls_name": host} if kind == "tls"
                              else {"request": http_request(host, path)})
        r = await in_thread(io.stream_probe, ip, port, ttl,
                            connect_timeout=settings.connect_timeout,
                            timeout=settings.timeout, grace=settings.grace, **kw)
        seen.append(r)
        problem = cert_problem(r, host, settings.ca_bundle) if kind == "tls" else None
        return _probe(kind, r, variant, problem)

    probes: list[TraceProbe] = []
    seen: list[Reply] = [*syn.values(), *echo.values()]
    failure: str | None = None
    for ttl in range(1, limit + 1):
        inn = await exchange(INNOCUOUS, ttl)
        blk = await exchange(BLOCKED, ttl)
        probes += [inn, blk]
        if blk.outcome == "error" and inn.outcome == "error":
            failure = blk.note
            break
        sig = signature(kind, blk, inn)
        if sig == "drop":  # silence may be one lost ICMP message: ask once more
            blk = await exchange(BLOCKED, ttl)
            probes.append(blk)
            sig = signature(kind, blk, inn)
        if sig is not None or (inn.outcome == "answer" and blk.outcome == "answer"):
            break
    return TraceObservation(
        kind=kind, target=ip, port=port, name=name, innocuous=innocuous, started_at=started,
        elapsed=round(time.monotonic() - t0, 3), failure=failure, path=path_of(seen),
        probes=tuple(probes), details=details)


# --- censor localisation: IP blocking ------------------------------------------------------------


async def locate_address(io: PacketIO, ip: str, port: int, innocuous_ip: str,
                         settings: TraceSettings, *, signature: Signature) -> TraceObservation:
    """Probe IP blocking: SYNs to ``ip:port`` with every TTL against SYNs to another address
    (``innocuous_ip``, e.g. the control helper's) on the same port, and pings to ``ip``.

    Probes are recorded TTL by TTL until the blocked SYN is answered, ``signature`` finds a
    censor's difference, or both SYNs meet the same answer or reset.
    """
    started, t0 = utcnow_iso(), time.monotonic()
    ttls = list(range(1, settings.max_ttl + 1))
    blocked, other, echo = await asyncio.gather(
        in_thread(io.syn_sweep, ip, port, ttls, settings.timeout),
        in_thread(io.syn_sweep, innocuous_ip, port, ttls, settings.timeout),
        in_thread(io.echo_sweep, ip, ttls, settings.timeout),
    )
    details: dict[str, Any] = {"destination_ttl": first_answer_ttl(echo)}
    probes: list[TraceProbe] = []
    for ttl in ttls:
        i, b = _probe("tcp", other[ttl], INNOCUOUS), _probe("tcp", blocked[ttl], BLOCKED)
        probes += [i, b]
        s = signature("tcp", b, i)
        if (b.outcome == "answer" or (s is not None and s != "answer")
                or (i.outcome in ("answer", "reset") and b.outcome == i.outcome)):
            break
    route = path_of([*blocked.values(), *other.values(), *echo.values()])
    return TraceObservation(
        kind="tcp", target=ip, port=port, name=None, innocuous=innocuous_ip,
        started_at=started, elapsed=round(time.monotonic() - t0, 3), failure=None, path=route,
        probes=tuple(probes), details=details)


# --- helpers ------------------------------------------------------------------------------------


def _probe(kind: str, r: Reply, variant: str, cert_error: str | None = None) -> TraceProbe:
    return TraceProbe(ttl=r.ttl, variant=variant, outcome=r.outcome, source=r.source,
                      reply_ttl=r.reply_ttl, note=note_of(kind, r, cert_error),
                      cert_error=cert_error)
