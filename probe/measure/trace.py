"""The packet-level tests of issue 8: DNS injection seen from a silent address, and censor
localisation by repeating the triggering exchange with increasing TTL.

Responsibility: which probes are sent in which order, and the decisions over their replies —
what differs between the blocked and the innocuous exchange, from which TTL on, and what that
says about the censor's hop. Each test returns one :class:`~probe.model.TraceObservation`;
packet IO is :mod:`probe.measure.raw` (blocking, always run in a worker thread). The decisions
(:func:`signature`, :func:`censor_hop`, :func:`path_of`) are pure and table-tested.

How hops are counted (docs/trace.md). A packet sent with TTL ``k`` expires at the router ``k``
hops away, whose ICMP time-exceeded names it. A router checks the TTL before its forwarding
path (netfilter's FORWARD hook, a tap on its outgoing link), so a device acting on what router
``h`` forwards is first triggered by TTL ``h + 1``: an in-path censor's hop is the trigger TTL
minus one, and the router that answered time-exceeded for that TTL is its address. A device
that *terminates* the connection (an interception proxy: the TCP endpoint answering SYNs is
nearer than the destination answering pings) receives the trigger as soon as the TTL reaches
it: its hop is the trigger TTL. A trigger that works from TTL 1 is put at hop 1 (the first
router, or something between it and the volunteer). This is how CenTrace (Censored Planet,
"Network Measurement Methods for Locating and Examining Censorship Devices", CoNEXT 2022)
reads TTL-limited replays too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from probe.measure import certs
from probe.measure.raw import FULL_TTL, PacketIO, Reply, in_thread
from probe.model import TraceHop, TraceObservation, TraceProbe, utcnow_iso

BLOCKED, INNOCUOUS = "blocked", "innocuous"
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


# --- pure decisions ------------------------------------------------------------------------


def signature(kind: str, blocked: Reply, innocuous: Reply, cert_bad: bool = False) -> str | None:
    """What the censor did to the blocked exchange at one TTL, judged against the innocuous
    exchange at the same TTL; None = no difference that points at a censor.

    ``cert_bad``: the blocked TLS exchange got a certificate that does not validate for its
    name (interception shows itself even when every SNI is intercepted). An answer the
    innocuous exchange did not get at this TTL (it expired on the way), or one sent from
    nearer (a higher IP TTL on arrival than the innocuous answer's), was injected.
    """
    if "error" in (blocked.outcome, innocuous.outcome):
        return None
    if kind == "tls" and blocked.outcome == "answer" and blocked.chain and cert_bad:
        return "cert"
    if blocked.outcome == innocuous.outcome and blocked.outcome != "answer":
        return None
    injected = "blockpage" if kind == "http" else "answer"
    match blocked.outcome:
        case "reset" | "eof" | "unreachable":
            return blocked.outcome
        case "silent":
            return "drop"
        case "answer":
            if innocuous.outcome in ("expired", "silent", "unreachable"):
                return injected
            if (innocuous.outcome == "answer" and blocked.reply_ttl is not None
                    and innocuous.reply_ttl is not None
                    and blocked.reply_ttl > innocuous.reply_ttl):
                return injected
    return None


def censor_hop(trigger_ttl: int, terminating: bool) -> int:
    """The censor's hop from the first TTL that triggered it (module docstring)."""
    return trigger_ttl if terminating else max(trigger_ttl - 1, 1)


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

    Any answer is injected. The same query is sent with TTL 1…``max_ttl`` at once: the first
    TTL that brings a forged answer back places the injector (it acts on what the router one
    hop nearer forwards). An innocuous name is asked too: an address that answers it runs a
    resolver and proves nothing (``answering``).
    """
    started, t0 = utcnow_iso(), time.monotonic()
    innocuous = settings.innocuous_name
    ttls = range(1, settings.max_ttl + 1)
    queries = [(name, FULL_TTL), (innocuous, FULL_TTL), *((name, t) for t in ttls)]
    replies = await in_thread(io.dns_sweep, server, queries, settings.timeout, attempts=1)
    swept = {t: replies[(name, t)] for t in ttls}
    # Silence below the first TTL that got anything from beyond (an answer, or the silent
    # address's port-unreachable) may be a lost packet that hides the injector: ask again.
    beyond = min((t for t, r in swept.items() if r.outcome == "answer"
                  or (r.outcome == "unreachable" and r.source == server)), default=None)
    gaps = [(name, t) for t in ttls if swept[t].outcome == "silent"
            and (beyond is None or t < beyond)]
    if gaps:
        again = await in_thread(io.dns_sweep, server, gaps, settings.timeout, attempts=1)
        for (_, t), r in again.items():
            swept[t] = r
    full, control = replies[(name, FULL_TTL)], replies[(innocuous, FULL_TTL)]
    answered = sorted(t for t, r in swept.items() if r.outcome == "answer")
    forged = tuple(dict.fromkeys(a for r in [full, *swept.values()] for a in r.answers))
    probes = [_probe("dns", full, BLOCKED), _probe("dns", control, INNOCUOUS)]
    probes += [_probe("dns", swept[t], BLOCKED) for t in ttls]
    path = path_of(swept.values())
    hop = trigger = hop_address = None
    details: dict[str, Any] = {"full_ttl": FULL_TTL}
    if control.outcome == "answer":
        result, sig = "answering", None
    elif full.outcome == "answer" or answered:
        result, sig = "injected", "injected"
        if answered:
            trigger = answered[0]
            hop = censor_hop(trigger, terminating=False)
            hop_address = _address(path, hop)
            first = swept[trigger]
            details["reply_ttl"] = first.reply_ttl
    else:
        result, sig = "not_injected", None
    reached = min((t for t, r in swept.items() if r.outcome == "unreachable"
                   and r.source == server), default=None)
    if reached is not None:
        details["destination_ttl"] = reached
    return TraceObservation(
        kind="dns", target=server, port=53, name=name, innocuous=innocuous, started_at=started,
        elapsed=round(time.monotonic() - t0, 3), failure=None, result=result, signature=sig,
        trigger_ttl=trigger, hop=hop, hop_address=hop_address, path=path,
        probes=tuple(probes), answers=forged, details=details)


# --- censor localisation: TLS and HTTP ---------------------------------------------------------


async def locate_stream(io: PacketIO, kind: str, ip: str, port: int, name: str,
                        settings: TraceSettings, path: str = "/") -> TraceObservation:
    """Localise a censor triggered by the SNI (``kind`` tls) or the Host (``kind`` http).

    First the path: SYNs and pings to ``ip`` with every TTL (the TCP endpoint's distance, the
    destination's, the routers). Then, TTL by TTL up to the TCP endpoint, the exchange with the
    innocuous name and with ``name`` — a normal handshake, then the trigger with that TTL —
    until the two differ (a reset, a drop, an EOF, an injected answer or a forged certificate)
    or both reach the server alike.
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
    middlebox = d_tcp is not None and d_ip is not None and d_tcp < d_ip
    if middlebox:
        details["endpoint"] = "middlebox"  # SYNs are answered nearer than pings
    limit = min(d_tcp or settings.max_ttl, settings.max_ttl)

    async def exchange(variant: str, ttl: int) -> Reply:
        host = name if variant == BLOCKED else innocuous
        kw: dict[str, Any] = ({"tls_name": host} if kind == "tls"
                              else {"request": http_request(host, path)})
        return await in_thread(io.stream_probe, ip, port, ttl,
                               connect_timeout=settings.connect_timeout,
                               timeout=settings.timeout, grace=settings.grace, **kw)

    probes: list[TraceProbe] = []
    seen: list[Reply] = [*syn.values(), *echo.values()]
    result: str = "not_located"
    sig: str | None = None
    trigger: int | None = None
    failure: str | None = None
    for ttl in range(1, limit + 1):
        inn = await exchange(INNOCUOUS, ttl)
        blk = await exchange(BLOCKED, ttl)
        problem = cert_problem(blk, name, settings.ca_bundle) if kind == "tls" else None
        probes += [_probe(kind, inn, INNOCUOUS, cert_problem(inn, innocuous, settings.ca_bundle)
                          if kind == "tls" else None),
                   _probe(kind, blk, BLOCKED, problem)]
        seen += [inn, blk]
        if blk.outcome == "error" and inn.outcome == "error":
            failure = blk.error
            result = None  # type: ignore[assignment]
            break
        sig = signature(kind, blk, inn, problem is not None)
        if sig == "drop":  # silence may be one lost ICMP message: ask once more
            again = await exchange(BLOCKED, ttl)
            problem = cert_problem(again, name, settings.ca_bundle) if kind == "tls" else None
            probes.append(_probe(kind, again, BLOCKED, problem))
            seen.append(again)
            sig = signature(kind, again, inn, problem is not None)
            blk = again
        if sig is not None:
            trigger, result = ttl, "located"
            details["reply_ttl"] = blk.reply_ttl
            if sig == "drop":
                # TTLs where neither trigger brought anything back hide where the drop starts
                _drop_range(details, probes, ttl)
            break
        if inn.outcome == "answer" and blk.outcome == "answer":
            result = "not_blocked"
            break
    route = path_of(seen)
    hop = hop_address = None
    if trigger is not None:
        terminating = sig == "cert" or (middlebox and d_tcp is not None and trigger >= d_tcp)
        hop = censor_hop(trigger, terminating)
        hop_address = _address(route, hop)
        if terminating:
            details["terminates"] = True
    return TraceObservation(
        kind=kind, target=ip, port=port, name=name, innocuous=innocuous, started_at=started,
        elapsed=round(time.monotonic() - t0, 3), failure=failure, result=result,
        signature=sig, trigger_ttl=trigger, hop=hop, hop_address=hop_address, path=route,
        probes=tuple(probes), details=details)


# --- censor localisation: IP blocking ------------------------------------------------------------


async def locate_address(io: PacketIO, ip: str, port: int, innocuous_ip: str,
                         settings: TraceSettings) -> TraceObservation:
    """Localise IP blocking: SYNs to ``ip:port`` with every TTL against SYNs to another
    address (``innocuous_ip``, e.g. the control helper's) on the same port.

    The first TTL where the blocked address's SYN is reset, answered by an ICMP unreachable
    or lost while the other's still expires on a router places the censor. A RST or an
    unreachable from no nearer than the destination itself (which answers pings there) is
    the destination's own answer, not a censor's.
    """
    started, t0 = utcnow_iso(), time.monotonic()
    ttls = list(range(1, settings.max_ttl + 1))
    blocked, other, echo = await asyncio.gather(
        in_thread(io.syn_sweep, ip, port, ttls, settings.timeout),
        in_thread(io.syn_sweep, innocuous_ip, port, ttls, settings.timeout),
        in_thread(io.echo_sweep, ip, ttls, settings.timeout),
    )
    d_ip = first_answer_ttl(echo)
    details: dict[str, Any] = {"destination_ttl": d_ip}
    probes: list[TraceProbe] = []
    result, sig, trigger = "not_located", None, None
    for ttl in ttls:
        b, i = blocked[ttl], other[ttl]
        probes += [_probe("tcp", i, INNOCUOUS), _probe("tcp", b, BLOCKED)]
        if b.outcome == "answer":
            result = "not_blocked"  # the SYN-ACK came: the address accepts connections
            break
        s = signature("tcp", b, i)
        if s is not None and s != "answer":
            if d_ip is not None and ttl >= d_ip:
                break  # the destination itself answers so: no censor on the way
            sig, trigger, result = s, ttl, "located"
            details["reply_ttl"] = b.reply_ttl
            break
        if i.outcome in ("answer", "reset") and b.outcome == i.outcome:
            break
    if sig == "drop" and trigger is not None:
        _drop_range(details, probes, trigger)
    route = path_of([*blocked.values(), *other.values(), *echo.values()])
    hop = censor_hop(trigger, terminating=False) if trigger is not None else None
    return TraceObservation(
        kind="tcp", target=ip, port=port, name=None, innocuous=innocuous_ip,
        started_at=started, elapsed=round(time.monotonic() - t0, 3), failure=None,
        result=result, signature=sig, trigger_ttl=trigger, hop=hop,
        hop_address=_address(route, hop) if hop is not None else None, path=route,
        probes=tuple(probes), details=details)


# --- helpers ------------------------------------------------------------------------------------


def _probe(kind: str, r: Reply, variant: str, cert_error: str | None = None) -> TraceProbe:
    return TraceProbe(ttl=r.ttl, variant=variant, outcome=r.outcome, source=r.source,
                      reply_ttl=r.reply_ttl, note=note_of(kind, r, cert_error))


def _drop_range(details: dict[str, Any], probes: list[TraceProbe], trigger: int) -> None:
    """A drop first seen at TTL ``trigger`` lies after the last router the blocked trigger
    still expired on; when silent TTLs sit in between, record every hop it may be at
    (``details["hop_range"]``; the reported hop, ``trigger - 1``, is the farthest)."""
    last = max((p.ttl for p in probes if p.variant == BLOCKED and p.ttl < trigger
                and p.outcome != "silent"), default=0)
    if last < trigger - 1:
        details["hop_range"] = [max(last, 1), censor_hop(trigger, terminating=False)]


def _address(path: tuple[TraceHop, ...], ttl: int) -> str | None:
    return next((h.address for h in path if h.ttl == ttl), None)
