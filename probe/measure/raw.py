"""Packet-level IO with scapy: TTL-limited probes and the replies they provoke (issue 8).

Responsibility: everything that needs raw sockets lives here — the privilege check, one packet
session (:class:`PacketIO`: one scapy L3 socket that sends every hand-made packet, one
``AF_PACKET`` socket read by one capture thread) and the probe primitives the packet-level
tests are built from:

* :meth:`PacketIO.stream_probe` — a real kernel TCP connection (handshake with the normal TTL),
  then ``IP_TTL`` lowered to ``ttl`` just before the triggering bytes (a TLS ClientHello or an
  HTTP request) are sent. The kernel keeps the connection state, so there are no hand-made
  sequence numbers and no kernel RSTs to suppress; the capture sees the ICMP time-exceeded the
  trigger provokes and the packets that answer it (their IP TTL tells how far away their
  sender is).
* :meth:`PacketIO.syn_sweep`, :meth:`PacketIO.echo_sweep` — TCP SYNs / ICMP echo requests with
  TTL 1…N at once, one source port / sequence number per TTL, so every reply (SYN-ACK, RST,
  echo reply, or the ICMP error quoting the probe) maps back to its TTL.
* :meth:`PacketIO.dns_sweep` — DNS queries over UDP, one source port per (name, TTL).

Rules for this module:

* Everything here blocks. Async callers go through :func:`in_thread` (``asyncio.to_thread``):
  nothing of this runs on the event loop.
* One raw socket per session: scapy's ``send()`` opens a socket per call (~30 ms). The socket
  is scapy's ``L3RawSocket`` (``IP_HDRINCL``): the kernel routes what we send and resolves the
  next hop, so we do no ARP of our own.
* The capture keeps only what a probe can ask about — ICMP, and TCP/UDP from the addresses a
  probe registered — and drops the rest after reading four bytes of it, so a busy machine's
  other traffic costs little.
* Nothing here decides what a reply *means*: that is :mod:`probe.classify.traces`.
* scapy is imported inside the functions that use it, on purpose: importing it costs about a
  second and reads the routing table, and most commands never send a packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import random
import select
import socket
import ssl
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from probe import failures
from probe.measure.tls import client_context, presented_chain

#: What the probe prints (once) when it may not open raw sockets.
NEED_RAW = "packet-level checks need root or CAP_NET_RAW; skipped"

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
PROTO_ICMP, PROTO_TCP, PROTO_UDP = 1, 6, 17
ICMP_ECHO_REPLY, ICMP_UNREACHABLE, ICMP_ECHO, ICMP_TIME_EXCEEDED = 0, 3, 8, 11
#: The TTL used for "no limit" (what the kernel sends with by default here).
FULL_TTL = 64
#: Source ports of hand-made probes: below Linux's ephemeral range, so they never collide
#: with the kernel's own connections.
_PORT_BASE_MIN, _PORT_BASE_MAX = 20000, 31000
_MAX_KEPT = 4096  # captured packets kept (a ring)
_MAX_ANSWER = 64 * 1024  # bytes of an answer read

T = TypeVar("T")


def raw_unavailable() -> str | None:
    """Why packet-level checks cannot run here, or None when they can.

    They need ``AF_PACKET``/raw sockets (Linux; root or ``CAP_NET_RAW``) and scapy.
    """
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        sock.close()
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        raw.close()
    except PermissionError:
        return NEED_RAW
    except (AttributeError, OSError) as e:  # no AF_PACKET (not Linux), no raw sockets
        return f"packet-level checks are not possible here ({e}); skipped"
    try:
        import scapy.supersocket  # noqa: F401
    except ImportError:
        return "packet-level checks need scapy; skipped"
    return None


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking primitive of this module in a worker thread."""
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


# --- what the capture keeps ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Packet:
    """One received IPv4 packet, reduced to what the probes ask about.

    ``at`` is ``time.monotonic()`` when it was read. ``flags``: TCP flags as scapy spells them
    (``SA``, ``R``, ``FPA``…), empty for other protocols. ``payload``: TCP/UDP payload.
    ICMP messages: ``icmp_type``/``icmp_code`` and the quoted packet's ``inner_*`` fields
    (``inner_sport`` is the ICMP echo id and ``inner_dport`` its sequence number for a quoted
    echo request); None where not applicable.
    """

    at: float
    src: str
    dst: str
    ttl: int
    proto: int
    sport: int | None = None
    dport: int | None = None
    flags: str = ""
    payload: bytes = b""
    icmp_type: int | None = None
    icmp_code: int | None = None
    inner_dst: str | None = None
    inner_proto: int | None = None
    inner_sport: int | None = None
    inner_dport: int | None = None
    inner_seq: int | None = None  # the quoted TCP sequence number

    def quotes(self, proto: int, dst: str, sport: int | None = None,
               dport: int | None = None) -> bool:
        """An ICMP error quoting our packet ``proto`` to ``dst`` (and these ports)."""
        return (self.icmp_type in (ICMP_TIME_EXCEEDED, ICMP_UNREACHABLE)
                and self.inner_proto == proto and self.inner_dst == dst
                and (sport is None or self.inner_sport == sport)
                and (dport is None or self.inner_dport == dport))


def parse_packet(data: bytes, at: float) -> Packet | None:
    """A received IPv4 packet (starting at the IP header) as a :class:`Packet` (scapy)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP, ICMPerror, IPerror, TCPerror, UDPerror

    try:
        ip = IP(data)
    except Exception:  # a malformed packet is not ours to worry about
        return None
    base: dict[str, Any] = {"at": at, "src": ip.src, "dst": ip.dst, "ttl": int(ip.ttl),
                            "proto": int(ip.proto)}
    if ip.haslayer(TCP) and not ip.haslayer(ICMP):
        tcp = ip[TCP]
        return Packet(**base, sport=tcp.sport, dport=tcp.dport, flags=str(tcp.flags),
                      payload=bytes(tcp.payload))
    if ip.haslayer(UDP) and not ip.haslayer(ICMP):
        udp = ip[UDP]
        return Packet(**base, sport=udp.sport, dport=udp.dport, payload=bytes(udp.payload))
    if not ip.haslayer(ICMP):
        return Packet(**base)
    icmp = ip[ICMP]
    base.update(icmp_type=int(icmp.type), icmp_code=int(icmp.code))
    if icmp.type in (ICMP_ECHO_REPLY, ICMP_ECHO):
        return Packet(**base, inner_sport=int(icmp.id), inner_dport=int(icmp.seq))
    inner = ip.getlayer(IPerror)
    if inner is None:
        return Packet(**base)
    base.update(inner_dst=inner.dst, inner_proto=int(inner.proto))
    if ip.haslayer(TCPerror):
        t = ip[TCPerror]
        return Packet(**base, inner_sport=t.sport, inner_dport=t.dport,
                      inner_seq=t.getfieldval("seq"))
    if ip.haslayer(UDPerror):
        u = ip[UDPerror]
        return Packet(**base, inner_sport=u.sport, inner_dport=u.dport)
    if ip.haslayer(ICMPerror):
        e = ip[ICMPerror]
        return Packet(**base, inner_sport=int(e.id or 0), inner_dport=int(e.seq or 0))
    return Packet(**base)


# --- one probe's reply ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """What came back for one probe sent with IP TTL ``ttl``.

    ``outcome``: ``expired`` (ICMP time-exceeded), ``unreachable`` (ICMP destination
    unreachable), ``reset``, ``eof`` (FIN without data), ``answer`` (data, a SYN-ACK, an echo
    reply, a DNS response), ``silent`` or ``error`` (the probe could not be sent: ``error``
    holds the failure string). ``source``: the router of the ICMP message or the address the
    answer claims to come from; ``reply_ttl``: that packet's IP TTL as received (None =
    unknown). ``data``: the first bytes of an answer (HTTP); ``chain``: the certificates a
    TLS peer presented (leaf first); ``tls_error``: failure string of a TLS handshake that got
    bytes but failed. ``icmp_code``: of an unreachable. ``rcode``/``answers``: DNS.
    ``router``: the router whose time-exceeded quoted the probe, also when an answer came too
    (an injector that lets the packet go on); None = none seen.
    """

    ttl: int
    outcome: str
    source: str | None = None
    reply_ttl: int | None = None
    data: bytes = b""
    chain: tuple[bytes, ...] = ()
    tls_error: str | None = None
    error: str | None = None
    icmp_code: int | None = None
    rcode: str | None = None
    answers: tuple[str, ...] = ()
    router: str | None = None


# --- the session -----------------------------------------------------------------------------


#: Receive buffer of the capture socket (bytes).
_RX_BUFFER = 8 << 20


class PacketIO:
    """One packet session: a scapy L3 socket for sending and a capture thread for receiving.

    Use as a context manager (or call :meth:`close`). Raises PermissionError / OSError when raw
    sockets cannot be opened (check :func:`raw_unavailable` first).
    """

    def __init__(self) -> None:
        from scapy.config import conf
        from scapy.supersocket import L3RawSocket

        conf.verb = 0
        self._l3 = L3RawSocket()  # the one sending socket (IP_HDRINCL: the kernel routes)
        # Our own cooked receive socket: the kernel strips the link layer, whatever the device.
        self._rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        # It sees every IP packet of the host; on a busy host (other traffic on loopback) the
        # default buffer overflows between two reads of the capture thread and the kernel drops
        # the very answer we wait for. Ask for a larger one (FORCE: beyond rmem_max, as root).
        for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                self._rx.setsockopt(socket.SOL_SOCKET, option, _RX_BUFFER)
                break
        self._packets: deque[Packet] = deque(maxlen=_MAX_KEPT)
        self._peers: Counter[str] = Counter()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._drained = 0.0  # the last instant the capture thread found the socket empty
        self._thread = threading.Thread(target=self._capture, name="probe-capture", daemon=True)
        self._thread.start()

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the capture and close both sockets (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            self._rx.close()
        with contextlib.suppress(OSError):
            self._l3.close()

    def __enter__(self) -> PacketIO:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- capture ---------------------------------------------------------------------------

    def _capture(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._rx], [], [], 0)
                if not ready:  # everything that arrived so far has been read
                    with self._cond:
                        self._drained = time.monotonic()
                        self._cond.notify_all()
                    ready, _, _ = select.select([self._rx], [], [], 0.1)
                    if not ready:
                        continue
                data, sa_ll = self._rx.recvfrom(65535)
            except (OSError, ValueError):
                if self._stop.is_set():
                    return
                time.sleep(0.01)
                continue
            at = time.monotonic()
            if len(sa_ll) > 2 and sa_ll[2] == PACKET_OUTGOING or len(data) < 20:
                continue
            proto = data[9]
            if proto != PROTO_ICMP:
                src = socket.inet_ntoa(data[12:16])
                with self._cond:
                    wanted = self._peers[src] > 0
                if not wanted:
                    continue
            packet = parse_packet(data, at)
            if packet is None:
                continue
            with self._cond:
                self._packets.append(packet)
                self._cond.notify_all()

    @contextlib.contextmanager
    def watching(self, *addresses: str) -> Iterator[None]:
        """Keep TCP/UDP packets from these addresses while the block runs (ICMP is always kept)."""
        with self._cond:
            self._peers.update(addresses)
        try:
            yield
        finally:
            self.caught_up()  # packets that arrived while watching are read while still wanted
            with self._cond:
                self._peers.subtract(addresses)
                for a in addresses:
                    if self._peers[a] <= 0:
                        del self._peers[a]

    def caught_up(self, limit: float = 1.0) -> None:
        """Wait (at most ``limit`` s) until the capture thread has read every packet that had
        arrived when this was called: on a busy host the thread may lag behind the kernel, and
        a packet it reads only after its exchange ended would be dropped as unwanted."""
        now = time.monotonic()
        with self._cond:
            while self._drained < now and time.monotonic() < now + limit:
                self._cond.wait(0.05)

    def packets(self, match: Callable[[Packet], bool], since: float) -> list[Packet]:
        """Captured packets read at or after ``since`` that ``match``."""
        with self._cond:
            return [p for p in self._packets if p.at >= since and match(p)]

    def wait(self, match: Callable[[Packet], bool], since: float, until: float) -> list[Packet]:
        """Block until a packet matching ``match`` has been read (or ``until``, a monotonic
        instant, passes); returns the matching packets read since ``since``."""
        with self._cond:
            while True:
                found = [p for p in self._packets if p.at >= since and match(p)]
                left = until - time.monotonic()
                if found or left <= 0:
                    return found
                self._cond.wait(min(left, 0.1))

    def send(self, packet: Any) -> None:
        """Send one scapy IP packet (the kernel routes it)."""
        self._l3.send(packet)

    # --- primitive: a real TCP connection with a TTL-limited trigger ------------------------

    def stream_probe(
        self,
        ip: str,
        port: int,
        ttl: int,
        *,
        request: bytes | None = None,
        tls_name: str | None = None,
        connect_timeout: float = 5.0,
        timeout: float = 2.0,
        grace: float = 0.3,
    ) -> Reply:
        """Connect to ``ip:port`` normally, lower the IP TTL to ``ttl`` and send the trigger.

        The trigger is ``request`` (raw bytes, e.g. an HTTP request) or, with ``tls_name``, a
        TLS ClientHello with that SNI (the handshake is then continued to read the presented
        chain, without verification). Waits up to ``timeout`` for an answer; once an ICMP
        message about the trigger arrives only ``grace`` longer (an injector that lets the
        packet pass answers at about the same time). The connection is then aborted with a RST
        sent with the normal TTL, so the server does not keep it.
        """
        tls: _TLSClient | None = _TLSClient(tls_name) if tls_name is not None else None
        trigger = tls.hello if tls is not None else (request or b"")
        with self.watching(ip):
            try:
                sock = socket.create_connection((ip, port), timeout=connect_timeout)
            except OSError as e:
                return Reply(ttl, "error", error=failures.classify_exception(e))
            try:
                return self._exchange(sock, ip, port, ttl, trigger, tls, timeout, grace)
            finally:
                _abort(sock)

    def _exchange(self, sock: socket.socket, ip: str, port: int, ttl: int, trigger: bytes,
                  tls: _TLSClient | None, timeout: float, grace: float) -> Reply:
        lport = sock.getsockname()[1]
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        since = time.monotonic()
        deadline = since + timeout
        try:
            sock.sendall(trigger)
        except OSError as e:
            return Reply(ttl, "error", error=failures.classify_exception(e))
        sock.setblocking(False)

        def about_us(p: Packet) -> bool:
            return p.quotes(PROTO_TCP, ip, lport, port)

        data = bytearray()
        closed: str | None = None  # reset | eof | done
        icmp: Packet | None = None
        while time.monotonic() < deadline and closed is None:
            try:
                readable, _, _ = select.select([sock], [], [], 0.02)
            except (OSError, ValueError):
                break
            if readable:
                try:
                    chunk = sock.recv(_MAX_ANSWER)
                except BlockingIOError:
                    chunk = None
                except ConnectionResetError:
                    closed = "reset"
                    break
                except OSError as e:
                    if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT):
                        chunk = None  # an ICMP error the kernel reports: the capture has it
                    else:
                        closed = "reset" if e.errno == errno.ECONNRESET else "eof"
                        break
                if chunk == b"":
                    closed = "eof"
                elif chunk:
                    if not data:  # the answer has started: give it a moment to complete
                        deadline = min(deadline, time.monotonic() + max(grace, 1.0))
                    data += chunk
                    if tls is not None:
                        out = tls.feed(bytes(chunk))
                        if out:
                            with contextlib.suppress(OSError):
                                sock.sendall(out)
                        if tls.done:
                            closed = "done"
                    elif len(data) >= _MAX_ANSWER:
                        closed = "done"
            if icmp is None:
                seen = self.packets(about_us, since)
                if seen:
                    icmp = seen[0]
                    deadline = min(deadline, time.monotonic() + grace)
        # the packet that answered, as captured (its source and IP TTL)
        answer_packet = None
        if closed is not None:
            self.caught_up()
            def from_peer(p: Packet) -> bool:
                return (p.proto == PROTO_TCP and p.src == ip and p.sport == port
                        and p.dport == lport and (bool(p.payload) or "R" in p.flags
                                                  or "F" in p.flags))
            found = self.wait(from_peer, since, time.monotonic() + 0.1)
            answer_packet = found[0] if found else None
        source = answer_packet.src if answer_packet else ip
        reply_ttl = answer_packet.ttl if answer_packet else None
        if data:
            chain = tls.chain if tls is not None else ()
            tls_error = tls.error if tls is not None else None
            return Reply(ttl, "answer", source, reply_ttl, data=bytes(data[:_MAX_ANSWER]),
                         chain=chain, tls_error=tls_error)
        if closed in ("reset", "eof"):
            return Reply(ttl, closed, source, reply_ttl)
        if icmp is None:
            icmp = next(iter(self.packets(about_us, since)), None)
        if icmp is not None:
            return _icmp_reply(ttl, icmp)
        return Reply(ttl, "silent")

    # --- primitive: SYN and echo sweeps ------------------------------------------------------

    def syn_sweep(self, ip: str, port: int, ttls: Sequence[int], timeout: float = 2.0,
                  attempts: int = 2) -> dict[int, Reply]:
        """A TCP SYN to ``ip:port`` with each TTL at once; the reply to each, by TTL.

        The kernel answers a SYN-ACK to these hand-made SYNs with a RST (it knows no such
        connection), which is harmless: nothing is ever sent on them.
        """
        from scapy.layers.inet import IP, TCP

        base = _port_base(len(ttls))
        seqs = {t: random.getrandbits(32) for t in ttls}

        def make(t: int) -> Any:
            return IP(dst=ip, ttl=t) / TCP(sport=base + t, dport=port, flags="S", seq=seqs[t],
                                           window=64240, options=[("MSS", 1460)])

        def reply_of(t: int, packets: list[Packet]) -> Reply | None:
            for p in packets:
                if p.proto == PROTO_TCP and p.src == ip and p.sport == port \
                        and p.dport == base + t:
                    if "R" in p.flags:
                        return Reply(t, "reset", p.src, p.ttl)
                    if "S" in p.flags and "A" in p.flags:
                        return Reply(t, "answer", p.src, p.ttl)
                elif p.quotes(PROTO_TCP, ip, base + t, port):
                    return _icmp_reply(t, p)
            return None

        with self.watching(ip):
            return self._sweep(ttls, make, reply_of, timeout, attempts)

    def echo_sweep(self, ip: str, ttls: Sequence[int], timeout: float = 2.0,
                   attempts: int = 2) -> dict[int, Reply]:
        """An ICMP echo request to ``ip`` with each TTL at once; the reply to each, by TTL."""
        from scapy.layers.inet import ICMP, IP

        ident = random.getrandbits(16)

        def make(t: int) -> Any:
            return IP(dst=ip, ttl=t) / ICMP(type=ICMP_ECHO, id=ident, seq=t) / b"probe-trace"

        def reply_of(t: int, packets: list[Packet]) -> Reply | None:
            for p in packets:
                if p.icmp_type == ICMP_ECHO_REPLY and p.src == ip and p.inner_sport == ident \
                        and p.inner_dport == t:
                    return Reply(t, "answer", p.src, p.ttl)
                if p.quotes(PROTO_ICMP, ip, ident, t):
                    return _icmp_reply(t, p)
            return None

        return self._sweep(ttls, make, reply_of, timeout, attempts)

    # --- primitive: DNS queries ----------------------------------------------------------------

    def dns_sweep(self, server: str, queries: Sequence[tuple[str, int]], timeout: float = 2.0,
                  attempts: int = 2, port: int = 53) -> dict[tuple[str, int], Reply]:
        """DNS A queries for (name, TTL) pairs, all at once, to ``server:port`` over UDP.

        Waits the whole ``timeout`` (an injected answer may be followed by a genuine one, and
        silence is an answer too); queries that got nothing are sent once more
        (``attempts``). An ``answer`` reply carries the first response's rcode and addresses,
        ``answers`` those of every response.
        """
        from scapy.layers.inet import IP, UDP

        base = _port_base(len(queries))
        ids = {q: random.getrandbits(16) for q in queries}
        index = {q: i for i, q in enumerate(queries)}

        def make(q: tuple[str, int]) -> Any:
            msg = dns.message.make_query(q[0], "A")
            msg.id = ids[q]
            return IP(dst=server, ttl=q[1]) / UDP(sport=base + index[q], dport=port) / \
                msg.to_wire()

        def reply_of(q: tuple[str, int], packets: list[Packet]) -> Reply | None:
            responses: list[tuple[Packet, Any]] = []
            icmp = None
            for p in packets:
                if p.proto == PROTO_UDP and p.src == server and p.sport == port \
                        and p.dport == base + index[q]:
                    parsed = _dns_response(p.payload, ids[q])
                    if parsed is not None:
                        responses.append((p, parsed))
                elif icmp is None and p.quotes(PROTO_UDP, server, base + index[q], port):
                    icmp = p
            if responses:
                first, msg = responses[0]
                addresses = tuple(dict.fromkeys(a for _, m in responses for a in _addresses(m)))
                router = icmp.src if icmp is not None and icmp.icmp_type == \
                    ICMP_TIME_EXCEEDED else None
                return Reply(q[1], "answer", first.src, first.ttl,
                             rcode=dns.rcode.to_text(msg.rcode()), answers=addresses,
                             router=router)
            return _icmp_reply(q[1], icmp) if icmp is not None else None

        with self.watching(server):
            return self._sweep(queries, make, reply_of, timeout, attempts, wait_all=True)

    # --- shared sweep loop ---------------------------------------------------------------------

    def _sweep(self, keys: Sequence[Any], make: Callable[[Any], Any],
               reply_of: Callable[[Any, list[Packet]], Reply | None], timeout: float,
               attempts: int, wait_all: bool = False) -> dict[Any, Reply]:
        """Send one packet per key, collect replies until every key has one (or, with
        ``wait_all``, for the whole ``timeout``); resend the silent ones ``attempts - 1``
        times."""
        replies: dict[Any, Reply] = {}
        pending = list(keys)
        for _ in range(max(1, attempts)):
            since = time.monotonic()
            for k in pending:
                self.send(make(k))
            until = since + timeout
            while True:
                seen = self.packets(lambda p: True, since)
                for k in pending:
                    if k not in replies:
                        r = reply_of(k, seen)
                        if r is not None:
                            replies[k] = r
                left = until - time.monotonic()
                if left <= 0 or (not wait_all and all(k in replies for k in pending)):
                    break
                now = time.monotonic()
                self.wait(lambda p: True, now, now + min(left, 0.05))  # the next packet
            if wait_all:  # late answers of the last round (a genuine one after a forgery)
                seen = self.packets(lambda p: True, since)
                for k in pending:
                    r = reply_of(k, seen)
                    if r is not None:
                        replies[k] = r
            pending = [k for k in pending if k not in replies]
            if not pending:
                break
        ttl_of: Callable[[Any], int] = (lambda k: k[1]) if keys and isinstance(
            next(iter(keys)), tuple) else (lambda k: int(k))
        for k in pending:
            replies[k] = Reply(ttl_of(k), "silent")
        return replies


# --- helpers -----------------------------------------------------------------------------------


class _TLSClient:
    """A TLS client over memory BIOs: the ClientHello up front, then bytes in, bytes out."""

    def __init__(self, server_name: str) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        sni = server_name or None
        self._obj = client_context().wrap_bio(self._in, self._out, server_hostname=sni)
        self.done = False
        self.error: str | None = None
        self.chain: tuple[bytes, ...] = ()
        with contextlib.suppress(ssl.SSLWantReadError):
            self._obj.do_handshake()
        self.hello = self._out.read()

    def feed(self, data: bytes) -> bytes:
        """Give the peer's bytes to the handshake; returns what to send back."""

        self._in.write(data)
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLError, OSError, ValueError) as e:
            self.error = failures.classify_exception(e)
            self.done = True
        else:
            self.chain = tuple(presented_chain(self._obj))
            self.done = True
        if not self.done:
            with contextlib.suppress(ValueError, ssl.SSLError):
                self.chain = tuple(presented_chain(self._obj))
        return self._out.read()


def _abort(sock: socket.socket) -> None:
    """Close a probe connection with a RST that reaches the server (normal TTL again)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, FULL_TTL)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _icmp_reply(ttl: int, p: Packet) -> Reply:
    if p.icmp_type == ICMP_TIME_EXCEEDED:
        return Reply(ttl, "expired", p.src, p.ttl, router=p.src)
    return Reply(ttl, "unreachable", p.src, p.ttl, icmp_code=p.icmp_code)


def _port_base(count: int) -> int:
    return random.randrange(_PORT_BASE_MIN, _PORT_BASE_MAX - count - 1)


def _dns_response(payload: bytes, qid: int) -> Any:
    try:
        msg = dns.message.from_wire(payload[:4096])
    except (dns.exception.DNSException, ValueError):
        return None
    return msg if msg.id == qid else None


def _addresses(msg: Any) -> Iterable[str]:
    for rrset in msg.answer:
        if rrset.rdtype == dns.rdatatype.A:
            for rr in rrset:
                yield rr.address
