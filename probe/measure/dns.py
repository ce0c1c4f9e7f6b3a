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

Encrypted resolvers (``--doh URL``, ``--dot HOST[:PORT]``; :class:`EncryptedResolver`): each
query goes on its own connection made with the probe's own TCP and TLS steps
(:mod:`probe.measure.tcp`, :mod:`probe.measure.tls`) rather than dnspython's
``dns.asyncquery.https``/``tls``, which hide the address dialled, the handshake and the HTTP
status that a censored provider is told apart by. dnspython builds and parses the messages.
The provider's name is resolved with the system resolver (a stub's bootstrap); its
certificate must validate for that name (or IP) against the trust anchors, as a real client
insists — an unvalidated answer is never recorded as an answer. DoT: a two-byte length
prefix per message (RFC 7858 §3.3, RFC 1035 §4.2.2); DoH: ``POST`` of
``application/dns-message`` over HTTP/1.1 (RFC 8484 §4.1), status 200 required. Each lookup
yields one :class:`DNSObservation` per query (engine ``doh``/``dot``, ``resolver`` the URL or
``host:port``) whose ``failure`` is the transport's when the exchange broke, and a dict in
``exchanges`` (:func:`resolve`) saying what happened underneath: address, TCP and TLS
outcome and times (``connect``/``handshake``: ``[t0, t]``), TLS version, cipher suite and
ALPN, certificate validation, HTTP status.
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
import httpx

from probe import addresses as _addresses
from probe import failures
from probe.measure import tcp as _tcp
from probe.measure import tls as _tls
from probe.measure.http import OneConnectionTransport
from probe.measure.settings import EncryptedResolver, MeasureSettings, Resolver
from probe.model import DNSAnswer, DNSObservation, TCPObservation, TLSObservation

QUERY_TYPES = ("A", "AAAA")
SYSTEM = "system"
UDP = "udp"
MAX_RECORDS = 64  # records parsed (and answers kept) per message
MAX_RESPONSES = 16  # responses recorded per query
MAX_QUEUED = 256  # datagrams waiting to be parsed
DOH = "doh"
DOT = "dot"
MAX_MESSAGE = 65535  # a DNS message over TCP or HTTP is at most this long (its length prefix)

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
    wire: bytes, queries: Sequence[dns.message.Message],
    query_types: Sequence[str] = QUERY_TYPES,
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
            return i, interpret(response, query_types[i] if i < len(query_types) else "A")
    return None


def is_loopback(ip: str) -> bool:
    """True for loopback and unspecified addresses, in any spelling and embedded in IPv6
    (dialling 0.0.0.0 or ::ffff:127.0.0.1 reaches this host): :mod:`probe.addresses`."""
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
    then ``settings.resolvers`` in order, then the encrypted resolvers), IPv4 before IPv6
    (stable), duplicates dropped, at most ``settings.max_addresses``, of which one is IPv6 when
    the answers have one. Loopback answers are dropped unless they come from a loopback
    resolver (our own test world); the system resolver's are always dropped.
    """
    order = [SYSTEM] + [str(r) for r in settings.resolvers]
    order += [str(r) for r in settings.encrypted_resolvers]
    loopback_ok = {str(r) for r in settings.resolvers if is_loopback(r.ip)}
    loopback_ok |= {str(r) for r in settings.encrypted_resolvers
                    if is_loopback(r.host) or r.host == "localhost"}
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


async def _bootstrap(host: str, limit: float) -> tuple[str | None, str | None]:
    """The address to dial for an encrypted resolver's ``host``: itself if an IP literal, else
    the system resolver's first answer (IPv4 first). Returns (address, failure)."""
    if _addresses.parse_host(host) is not None:
        return host.strip("[]"), None
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(limit):
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM,
                                           proto=socket.IPPROTO_TCP)
    except Exception as e:  # every resolver error becomes a failure string
        return None, failures.classify_exception(e)
    ips = [str(sa[0]) for family, *_, sa in infos if family in (socket.AF_INET, socket.AF_INET6)]
    ips.sort(key=lambda ip: ":" in ip)
    return (ips[0], None) if ips else (None, failures.DNS_NO_ANSWER)


async def _read_exact(conn: _tcp.Connection, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await conn.read(n - len(data))
        if not chunk:
            raise EOFError("connection closed mid-message")
        data += chunk
    return data


async def _dot_exchange(conn: _tcp.Connection, wire: bytes) -> bytes:
    """One DNS message over DoT/TCP framing: length-prefixed query, length-prefixed answer."""
    await conn.write(struct.pack("!H", len(wire)) + wire)
    (length,) = struct.unpack("!H", await _read_exact(conn, 2))
    return await _read_exact(conn, length)


async def _doh_exchange(conn: _tcp.Connection, resolver: EncryptedResolver, wire: bytes,
                        exchange: dict[str, object]) -> bytes | None:
    """POST ``wire`` to the DoH URL over ``conn``; records the HTTP status in ``exchange``.
    Returns the body of a 200 answer, else None (``exchange["failure"]`` says why)."""
    url = str(resolver)
    transport = OneConnectionTransport(conn, "https", resolver.host, resolver.port)
    client = httpx.AsyncClient(transport=transport, timeout=None, trust_env=False)
    try:
        request = client.build_request("POST", url, content=wire, headers={
            "content-type": "application/dns-message", "accept": "application/dns-message"})
        response = await transport.handle_async_request(request)
        exchange["http_status"] = response.status_code
        body = b""
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > MAX_MESSAGE:
                break
        await response.aclose()
    finally:
        await client.aclose()
    if response.status_code != 200:
        exchange["failure"] = failures.unknown(f"DoH answered HTTP {response.status_code}")
        return None
    return body


async def encrypted_lookup(
    hostname: str,
    resolver: EncryptedResolver,
    query_type: str,
    settings: MeasureSettings,
    tx_id: int,
    clock: Callable[[], float],
    ip: str | None = None,
    underneath: list[TCPObservation | TLSObservation] | None = None,
) -> tuple[DNSObservation, dict[str, object]]:
    """One ``query_type`` query for ``hostname`` through a DoH or DoT resolver on a connection
    of its own (see the module doc). Returns the observation and the exchange underneath.
    ``ip``: dial this address (None = bootstrap the provider's name with the system
    resolver); ``underneath`` (if given) receives the TCP and TLS observations (``tx_id``
    shared with the DNS one). Never raises for network trouble."""
    name = str(resolver)
    t0 = clock()
    exchange: dict[str, object] = {
        "tx_id": tx_id, "engine": resolver.engine, "resolver": name, "query_type": query_type,
        "server_name": resolver.host, "address": None, "port": resolver.port,
        "bootstrap_failure": None, "tcp_failure": None, "tls_failure": None,
        "tls_version": None, "verified": None, "verify_error": None, "http_status": None,
        "failure": None, "t0": t0, "t": t0}

    def done(failure: str | None, parsed: ParsedResponse | None = None) -> tuple[
            DNSObservation, dict[str, object]]:
        t = clock()
        failure = exchange["failure"] = str(exchange["failure"] or failure or "") or None
        exchange["t"] = t
        obs = DNSObservation(
            tx_id=tx_id, hostname=hostname, query_type=query_type, engine=resolver.engine,
            resolver=name, t0=t0, t=t, failure=parsed.failure if parsed else failure,
            rcode=parsed.rcode if parsed else None, answers=parsed.answers if parsed else ())
        return obs, exchange

    try:
        query = make_query(hostname, query_type)
    except Exception as e:  # a name no DNS message can carry
        return done(failures.unknown(f"invalid hostname: {type(e).__name__}: {e}"))
    if ip is None:
        ip, failure = await _bootstrap(resolver.host, settings.dns_timeout)
        if ip is None:
            exchange["bootstrap_failure"] = failure
            return done(failure)
    exchange["address"] = ip
    tcp_obs, conn = await _tcp.connect(ip, resolver.port, settings.connect_timeout, tx_id, clock)
    exchange["connect"] = [tcp_obs.t0, tcp_obs.t]
    if underneath is not None:
        underneath.append(tcp_obs)
    if conn is None:
        exchange["tcp_failure"] = tcp_obs.failure
        return done(tcp_obs.failure)
    try:
        tls_obs = await _tls.handshake(conn, resolver.host, ip, resolver.port,
                                       settings.tls_timeout, settings.ca_bundle, tx_id, clock)
        if underneath is not None:
            underneath.append(tls_obs)
        exchange.update(tls_failure=tls_obs.failure, tls_version=tls_obs.tls_version,
                        verified=tls_obs.verified, verify_error=tls_obs.verify_error,
                        handshake=[tls_obs.t0, tls_obs.t], cipher_suite=tls_obs.cipher_suite,
                        alpn=tls_obs.alpn)
        if tls_obs.failure is not None:
            return done(tls_obs.failure)
        if tls_obs.verified is not True:
            # A real client stops here: whatever such a server says is not the resolver's.
            return done(tls_obs.verify_error or failures.unknown("ssl_unverified"))
        try:
            async with asyncio.timeout(settings.dns_timeout):
                if resolver.engine == DOH:
                    wire = await _doh_exchange(conn, resolver, query.to_wire(), exchange)
                    if wire is None:
                        return done(None)
                else:
                    wire = await _dot_exchange(conn, query.to_wire())
        except Exception as e:  # resets, EOF, timeouts, HTTP framing errors
            return done(failures.classify_exception(e))
        match = parse_response(wire, [query], [query_type])
        if match is None:
            return done(failures.DNS_SERVER_MISBEHAVING)
        return done(None, match[1])
    finally:
        conn.close()


async def _encrypted(
    hostname: str, resolver: EncryptedResolver, settings: MeasureSettings,
    tx_ids: Sequence[int], clock: Callable[[], float], exchanges: list[dict[str, object]] | None,
) -> list[DNSObservation]:
    got = await asyncio.gather(*(encrypted_lookup(hostname, resolver, q, settings, tx_ids[i],
                                                  clock) for i, q in enumerate(QUERY_TYPES)))
    if exchanges is not None:
        exchanges.extend(x for _, x in got)
    return [o for o, _ in got]


async def resolve(
    hostname: str,
    settings: MeasureSettings,
    next_tx: Callable[[], int],
    clock: Callable[[], float],
    exchanges: list[dict[str, object]] | None = None,
) -> list[DNSObservation]:
    """Resolve ``hostname`` with every configured engine concurrently.

    Returns all observations: system resolver first, then each UDP resolver in order, then
    each encrypted resolver; within an engine, A before AAAA and responses in arrival order.
    ``exchanges``, if given, receives one dict per encrypted query describing the connection
    underneath (see the module doc). Never raises for network trouble.
    """
    jobs = []
    if settings.use_system_resolver:
        jobs.append(system_lookup(hostname, settings.dns_timeout, next_tx(), clock))
    for resolver in settings.resolvers:
        ids = [next_tx() for _ in QUERY_TYPES]
        jobs.append(udp_lookup(hostname, resolver, settings, ids, clock))
    for enc in settings.encrypted_resolvers:
        ids = [next_tx() for _ in QUERY_TYPES]
        jobs.append(_encrypted(hostname, enc, settings, ids, clock, exchanges))
    results = await asyncio.gather(*jobs)
    return [obs for group in results for obs in group]
