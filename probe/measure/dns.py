"""DNS step: resolve one hostname with every configured engine and record every response.

Responsibility: the lookups (system resolver via getaddrinfo, each UDP resolver via dnspython)
and the choice of which resolved addresses the endpoint steps dial. Parsing of responses is a
pure function (:func:`parse_response`) so it can be tested without a network.

UDP method (after dnspython's ``send_udp`` + repeated ``receive_udp``, and OONI's v0.5 "wait
500 ms more"): the A and AAAA queries are sent once on one socket; we then keep receiving
until ``settings.dns_linger`` seconds after the first valid response to each query (or
``settings.dns_timeout`` with none). Every response becomes its own :class:`DNSObservation`
(``response_index`` 0, 1, …): an on-path injector answers first, the real resolver second.
Datagrams whose id/question do not match a query are ignored; datagrams that do not parse are
recorded as ``dns_server_misbehaving`` and we keep listening.

Caps against hostile resolvers and floods (constants below):

* datagrams whose id matches no query are dropped on arrival, unparsed, and at most
  :data:`MAX_QUEUED` datagrams wait to be parsed (a flood is dropped, never buffered);
* at most :data:`MAX_RESPONSES` responses are recorded per query; later ones are dropped;
* a message announcing more than :data:`MAX_RECORDS` records is parsed only up to its first
  :data:`MAX_RECORDS` answers (authority and additional sections skipped), so 4000 records
  cost what 64 do; a response with more than one question is ``dns_server_misbehaving``;
  dnspython itself refuses compression-pointer loops and lying counts;
* a hostname no DNS message can carry (empty or over-long label, bad IDNA) is recorded as a
  failure, never raised.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.message
import dns.rcode
import dns.rdatatype

from probe import failures
from probe.measure import addresses as _addresses
from probe.measure.settings import MeasureSettings, Resolver
from probe.model import DNSAnswer, DNSObservation

QUERY_TYPES = ("A", "AAAA")
SYSTEM = "system"
UDP = "udp"
MAX_RECORDS = 64  # records parsed (and answers kept) per message
MAX_RESPONSES = 16  # responses recorded per query
MAX_QUEUED = 256  # datagrams waiting to be parsed

_ANSWER_TYPES = {dns.rdatatype.A: "A", dns.rdatatype.AAAA: "AAAA", dns.rdatatype.CNAME: "CNAME"}


# --- pure part -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    """What one DNS response says: rcode text, answers, and the failure it implies."""

    rcode: str | None
    answers: tuple[DNSAnswer, ...]
    failure: str | None


def make_query(hostname: str, query_type: str) -> dns.message.QueryMessage:
    """A recursive query for ``hostname`` (random id, no EDNS, like most stub resolvers)."""
    return dns.message.make_query(hostname, query_type)


def answers_of(response: dns.message.Message) -> tuple[DNSAnswer, ...]:
    """The A, AAAA and CNAME records of the answer section, in wire order, with TTLs."""
    out: list[DNSAnswer] = []
    for rrset in response.answer:
        rtype = _ANSWER_TYPES.get(rrset.rdtype)
        if rtype is None:
            continue
        for rd in rrset:
            if len(out) >= MAX_RECORDS:
                return tuple(out)
            if rtype == "CNAME":
                value = rd.target.to_text(omit_final_dot=True)
            else:
                value = rd.address
            out.append(DNSAnswer(rtype=rtype, value=value, ttl=rrset.ttl))
    return tuple(out)


def interpret(response: dns.message.Message, query_type: str) -> ParsedResponse:
    """The rcode text, answers and failure of a response that matches our query.

    NXDOMAIN/REFUSED/SERVFAIL map through ``failures.RCODE_FAILURES``; other error rcodes are
    ``dns_server_misbehaving``; NOERROR without an address of the queried type is
    ``dns_no_answer``.
    """
    rcode = dns.rcode.to_text(response.rcode())
    answers = answers_of(response)
    failure: str | None
    if rcode in failures.RCODE_FAILURES:
        failure = failures.RCODE_FAILURES[rcode]
    elif rcode != "NOERROR":
        failure = failures.DNS_SERVER_MISBEHAVING
    elif not any(a.rtype == query_type for a in answers):
        failure = failures.DNS_NO_ANSWER
    else:
        failure = None
    return ParsedResponse(rcode=rcode, answers=answers, failure=failure)


class _NotOneQuestion(ValueError):
    """A response whose header announces more than one question."""


def bounded_wire(wire: bytes) -> bytes:
    """``wire`` with its header counts clamped so parsing costs at most :data:`MAX_RECORDS`
    records: above that, only the first answers are parsed (authority and additional counts
    are zeroed; the rest is trailing data). Raises :class:`ValueError` for more than one
    question. Too short a message is returned as is (the parser rejects it)."""
    if len(wire) < 12:
        return wire
    qd, an, ns, ar = struct.unpack("!HHHH", wire[4:12])
    if qd > 1:
        raise _NotOneQuestion(f"{qd} questions")
    if an + ns + ar <= MAX_RECORDS:
        return wire
    return wire[:4] + struct.pack("!HHHH", qd, min(an, MAX_RECORDS), 0, 0) + wire[12:]


def parse_response(
    wire: bytes, queries: Sequence[dns.message.Message]
) -> tuple[int, ParsedResponse] | None:
    """Match a datagram to one of ``queries`` and interpret it.

    Returns ``(index of the query, parsed)``, or None when the datagram answers none of them
    (wrong id or question: ignored). A datagram that does not parse is attributed to the query
    with its id (if any, else the first query) as ``dns_server_misbehaving`` with no rcode.
    """
    try:
        response = dns.message.from_wire(bounded_wire(wire), ignore_trailing=True)
    except Exception:  # any malformed message (dnspython raises many kinds)
        wire_id = int.from_bytes(wire[:2], "big") if len(wire) >= 2 else None
        index = next((i for i, q in enumerate(queries) if q.id == wire_id), 0)
        return index, ParsedResponse(None, (), failures.DNS_SERVER_MISBEHAVING)
    for i, query in enumerate(queries):
        try:
            matches = query.is_response(response)
        except Exception:  # dnspython may raise on odd question sections
            matches = False
        if matches:
            return i, interpret(response, QUERY_TYPES[i] if i < len(QUERY_TYPES) else "A")
    return None


def is_loopback(ip: str) -> bool:
    """True for loopback and unspecified addresses, in any spelling and embedded in IPv6
    (dialling 0.0.0.0 or ::ffff:127.0.0.1 reaches this host): :mod:`probe.measure.addresses`."""
    return _addresses.is_loopback(ip)


def answer_addresses(observations: Sequence[DNSObservation]) -> list[str]:
    """Every A/AAAA value of every response, each once, in order (selected or not)."""
    found: dict[str, None] = {}
    for o in observations:
        for a in o.answers:
            if a.rtype in ("A", "AAAA"):
                found.setdefault(a.value)
    return list(found)


def select_addresses(
    observations: Sequence[DNSObservation], settings: MeasureSettings
) -> list[str]:
    """The addresses the endpoint steps dial, in a deterministic order.

    Union of the addresses of the *first* response of each engine/resolver (system first,
    then ``settings.resolvers`` in order), IPv4 before IPv6 (stable), duplicates dropped,
    at most ``settings.max_addresses``, of which one is IPv6 when the answers have one.
    Loopback answers are dropped unless they come from a loopback resolver (our own test
    world); the system resolver's are always dropped.
    """
    order = [SYSTEM] + [str(r) for r in settings.resolvers]
    loopback_ok = {str(r) for r in settings.resolvers if is_loopback(r.ip)}
    found: list[str] = []
    for resolver in order:
        for obs in observations:
            if obs.resolver != resolver or obs.response_index != 0:
                continue
            for ip in obs.addresses:
                if is_loopback(ip) and resolver not in loopback_ok:
                    continue
                if ip not in found:
                    found.append(ip)
    found.sort(key=lambda ip: ":" in ip)
    return _both_families(found, settings.max_addresses)


def _both_families(found: list[str], cap: int) -> list[str]:
    """The first ``cap`` of ``found`` (IPv4 first), keeping one slot for the first IPv6
    address when there is one and the cap would leave IPv6 out (issue 15: AAAA addresses are
    measured like A ones, so per-family results exist even for a site with many A records)."""
    chosen = found[:cap]
    v6 = next((ip for ip in found if ":" in ip), None)
    if cap >= 2 and v6 is not None and v6 not in chosen:
        chosen[-1] = v6
    return chosen


# --- IO part ---------------------------------------------------------------------------------


async def system_lookup(
    hostname: str, limit: float, tx_id: int, clock: Callable[[], float]
) -> list[DNSObservation]:
    """getaddrinfo via the event loop's executor within ``limit`` seconds: one A and one AAAA
    observation, no TTLs."""
    loop = asyncio.get_running_loop()
    t0 = clock()
    failure: str | None = None
    addresses: list[str] = []
    try:
        async with asyncio.timeout(limit):
            infos = await loop.getaddrinfo(
                hostname, None, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        for family, *_, sockaddr in infos:
            ip = str(sockaddr[0])
            if family in (socket.AF_INET, socket.AF_INET6) and ip not in addresses:
                addresses.append(ip)
    except Exception as e:  # every resolver error becomes a failure string
        failure = failures.classify_exception(e)
    t = clock()
    out = []
    for qtype in QUERY_TYPES:
        want_v6 = qtype == "AAAA"
        answers = tuple(DNSAnswer(qtype, ip) for ip in addresses if (":" in ip) == want_v6)
        qfailure = failure or (None if answers else failures.DNS_NO_ANSWER)
        out.append(DNSObservation(tx_id=tx_id, hostname=hostname, query_type=qtype,
                                  engine=SYSTEM, resolver=SYSTEM, t0=t0, t=t,
                                  failure=qfailure, answers=answers))
    return out


class _Inbox(asyncio.DatagramProtocol):
    """Datagrams (or ICMP errors) from the resolver, queued for the receive loop.

    Only datagrams carrying one of ``ids`` are queued, at most :data:`MAX_QUEUED` at a time;
    the rest are counted in ``dropped`` and forgotten.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue(MAX_QUEUED)
        self.ids: set[int] = set()
        self.dropped = 0

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) < 2 or int.from_bytes(data[:2], "big") not in self.ids or (
            self.queue.full()
        ):
            self.dropped += 1
            return
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        if not self.queue.full():
            self.queue.put_nowait(exc)


async def udp_lookup(
    hostname: str,
    resolver: Resolver,
    settings: MeasureSettings,
    tx_ids: Sequence[int],
    clock: Callable[[], float],
) -> list[DNSObservation]:
    """Query ``resolver`` for A and AAAA over UDP and record every response (see module doc).

    ``tx_ids`` gives one transaction id per query type. Never raises for network trouble.
    """
    loop = asyncio.get_running_loop()
    name = str(resolver)
    try:
        queries = [make_query(hostname, q) for q in QUERY_TYPES]
    except Exception as e:  # a name no DNS message can carry (bad label, bad IDNA)
        bad = failures.unknown(f"invalid hostname: {type(e).__name__}: {e}")
        return [DNSObservation(tx_id=tx_ids[i], hostname=hostname, query_type=q, engine=UDP,
                               resolver=name, t0=clock(), t=clock(), failure=bad)
                for i, q in enumerate(QUERY_TYPES)]
    responses: list[list[DNSObservation]] = [[] for _ in queries]
    deadlines: list[float | None] = [None for _ in queries]  # linger end, once answered
    t0s = [0.0 for _ in queries]
    ended: str | None = None  # failure that ends listening early (ICMP unreachable…)
    transport: asyncio.DatagramTransport | None = None

    def record(i: int, parsed: ParsedResponse) -> None:
        responses[i].append(DNSObservation(
            tx_id=tx_ids[i], hostname=hostname, query_type=QUERY_TYPES[i], engine=UDP,
            resolver=name, t0=t0s[i], t=clock(), failure=parsed.failure, rcode=parsed.rcode,
            answers=parsed.answers, response_index=len(responses[i])))

    try:
        # Upper bound on the whole exchange, in case the loop below is starved.
        async with asyncio.timeout(settings.dns_timeout + settings.dns_linger + 1.0):
            transport, inbox = await loop.create_datagram_endpoint(
                _Inbox, remote_addr=(resolver.ip, resolver.port))
            inbox.ids.update(q.id for q in queries)
            start = loop.time()
            for i, q in enumerate(queries):
                t0s[i] = clock()
                transport.sendto(q.to_wire())
            while True:
                now = loop.time()
                ends = [d if d is not None else start + settings.dns_timeout for d in deadlines]
                if now >= max(ends):
                    break
                try:
                    async with asyncio.timeout(max(ends) - now):
                        item = await inbox.queue.get()
                except TimeoutError:
                    break
                if isinstance(item, Exception):
                    ended = failures.classify_exception(item)
                    break
                await asyncio.sleep(0)  # a full queue must not starve the other tasks
                match = parse_response(item, queries)
                if match is None:
                    continue
                i, parsed = match
                if loop.time() > ends[i] or len(responses[i]) >= MAX_RESPONSES:
                    continue  # this query's window has closed, or it has enough
                record(i, parsed)
                if len(responses[i]) >= MAX_RESPONSES:
                    inbox.ids.discard(queries[i].id)
                if deadlines[i] is None and parsed.rcode is not None:
                    deadlines[i] = loop.time() + settings.dns_linger
    except Exception as e:  # socket errors, the safety deadline
        ended = failures.classify_exception(e)
    finally:
        if transport is not None:
            transport.close()
    out: list[DNSObservation] = []
    for i, got in enumerate(responses):
        if not got:
            got = [DNSObservation(
                tx_id=tx_ids[i], hostname=hostname, query_type=QUERY_TYPES[i], engine=UDP,
                resolver=name, t0=t0s[i], t=clock(), failure=ended or failures.GENERIC_TIMEOUT)]
        out.extend(got)
    return out


async def resolve(
    hostname: str,
    settings: MeasureSettings,
    next_tx: Callable[[], int],
    clock: Callable[[], float],
) -> list[DNSObservation]:
    """Resolve ``hostname`` with every configured engine concurrently.

    Returns all observations: system resolver first, then each UDP resolver in order; within
    an engine, A before AAAA and responses in arrival order. Never raises for network trouble.
    """
    jobs = []
    if settings.use_system_resolver:
        jobs.append(system_lookup(hostname, settings.dns_timeout, next_tx(), clock))
    for resolver in settings.resolvers:
        ids = [next_tx() for _ in QUERY_TYPES]
        jobs.append(udp_lookup(hostname, resolver, settings, ids, clock))
    results = await asyncio.gather(*jobs)
    return [obs for group in results for obs in group]
