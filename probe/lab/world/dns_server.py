"""The simulated world's DNS server: authoritative answers plus scripted misbehaviour.

This module owns what the world's DNS servers say and how they say it. The decision of *what*
to send for one query lives in :class:`DNSLogic` (records, behaviours, the server default,
forwarding); two thin asyncio drivers put its replies on the wire, one for UDP and one for
TCP (RFC 1035 §4.2.2 two-byte length framing, several queries per connection). A reply is a
list of :class:`Send` (delay + wire bytes): empty for ``silent``, two for ``twice``.

Behaviours, records and defaults are described in :mod:`probe.lab.world.spec`
(:data:`~probe.lab.world.spec.DNS_BEHAVIOURS`). Answers from ``records`` carry the AA flag;
servers with an ``upstream`` also set RA. Forwarding keeps no cache (deterministic scenarios).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import struct
from dataclasses import dataclass
from typing import Any, cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rrset

from .spec import Behaviour, DNSServerConfig, format_hostport, parse_dns_behaviour, parse_hostport

log = logging.getLogger(__name__)

TWICE_DELAY = 0.1  # seconds between the forged and the genuine answer of ``twice``
FORWARD_TIMEOUT = 3.0
TCP_IDLE_TIMEOUT = 30.0
CNAME_ONLY_TARGET = "cname-only.invalid"
BOGON_TTL = 60
OVERSIZED_COUNT = 400  # loopback records in an ``oversized`` answer (≈ 6.4 KiB for A)
MAX_WIRE = 65000  # hostile answers stay within one UDP datagram / one TCP frame
FLOOD_BATCH = 100  # a flood sends this many messages, then pauses FLOOD_PAUSE
FLOOD_PAUSE = 0.01
HOSTILE_ADDRESS = "127.0.0.1"  # address in hostile answers when the name has no record
#: Hostile kinds answered by :meth:`DNSLogic._hostile`.
HOSTILE_KINDS = frozenset(
    {
        "pointer_loop",
        "huge_answer",
        "cname_loop",
        "bad_rdata",
        "lying_counts",
        "binary_names",
        "many_questions",
        "wrong_id_flood",
        "dup_flood",
    }
)


@dataclass(frozen=True, slots=True)
class Send:
    """One message to send ``delay`` seconds after the query arrived."""

    delay: float
    wire: bytes


class DNSLogic:
    """Decides the reply to one query; knows nothing about sockets (except forwarding)."""

    def __init__(self, config: DNSServerConfig, upstream: tuple[str, int] | None = None) -> None:
        self.config = config
        self.behaviours = {k: parse_dns_behaviour(v) for k, v in config.behaviours.items()}
        if upstream is None and config.upstream is not None:
            upstream = parse_hostport(config.upstream)
        self.upstream = upstream

    # -- lookups ----------------------------------------------------------------------------

    def behaviour_for(self, name: str) -> Behaviour | None:
        """The most specific behaviour for ``name`` (exact, then ``*.``/``.`` parents)."""
        table = self.behaviours
        if name in table:
            return table[name]
        if "." + name in table:
            return table["." + name]
        labels = name.split(".")
        for i in range(1, len(labels)):
            parent = ".".join(labels[i:])
            for key in ("*." + parent, "." + parent):
                if key in table:
                    return table[key]
        return None

    def record_for(self, name: str) -> dict[str, Any] | None:
        """The records of ``name`` (exact, then the nearest ``*.parent`` wildcard)."""
        records = self.config.records
        if name in records:
            return records[name]
        labels = name.split(".")
        for i in range(1, len(labels)):
            key = "*." + ".".join(labels[i:])
            if key in records:
                return records[key]
        return None

    # -- replies ----------------------------------------------------------------------------

    async def reply(self, wire: bytes, transport: str) -> list[Send]:
        """The messages to send for query ``wire`` received over ``transport`` (udp|tcp)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # unparseable query: real servers mostly drop it
            log.debug("dropping unparseable query (%d bytes)", len(wire))
            return []
        if query.flags & dns.flags.QR or len(query.question) != 1:
            return [Send(0.0, self._rcode(query, dns.rcode.FORMERR).to_wire())]
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower() or "."
        behaviour = self.behaviour_for(name) or Behaviour("answer")
        log.debug(
            "%s %s %s -> %s", transport, name, dns.rdatatype.to_text(question.rdtype), behaviour
        )
        kind, arg = behaviour.kind, behaviour.arg
        if kind in HOSTILE_KINDS:
            return await self._hostile(query, kind, arg, transport)
        if kind == "silent":
            return []
        if kind in ("nxdomain", "refused", "servfail"):
            rcode = {
                "nxdomain": dns.rcode.NXDOMAIN,
                "refused": dns.rcode.REFUSED,
                "servfail": dns.rcode.SERVFAIL,
            }[kind]
            return [Send(0.0, self._rcode(query, rcode).to_wire())]
        if kind == "bogon":
            assert arg is not None
            return [Send(0.0, self._address_answer(query, [arg]).to_wire())]
        if kind == "twice":
            assert arg is not None
            forged = self._address_answer(query, [arg]).to_wire()
            genuine = await self._genuine(query, transport)
            return [Send(0.0, forged)] + [Send(TWICE_DELAY + s.delay, s.wire) for s in genuine]
        if kind == "garbage":
            return [Send(0.0, wire[:2] + os.urandom(62))]
        if kind == "truncated":
            full = self._truncatable(query)
            return [Send(0.0, full[: max(14, len(full) * 2 // 3)])]
        if kind == "oversized":
            return [Send(0.0, self._oversized(query).to_wire())]
        if kind == "cname_only":
            record = self.record_for(name) or {}
            target = record.get("CNAME") or CNAME_ONLY_TARGET
            response = self._response(query)
            response.answer.append(
                dns.rrset.from_text(
                    question.name, record.get("ttl", 300), "IN", "CNAME", target + "."
                )
            )
            return [Send(0.0, response.to_wire())]
        if kind == "tc":
            if transport == "udp":
                response = self._response(query)
                response.flags |= dns.flags.TC
                return [Send(0.0, response.to_wire())]
            return await self._genuine(query, transport)
        if kind == "forward":
            return [Send(0.0, await self._forward(query, transport))]
        if kind == "delay":
            assert arg is not None
            return [
                Send(float(arg) + s.delay, s.wire) for s in await self._genuine(query, transport)
            ]
        return await self._genuine(query, transport)  # "answer"

    async def _hostile(
        self, query: dns.message.Message, kind: str, arg: str | None, transport: str
    ) -> list[Send]:
        """Malformed or abusive replies (see :data:`probe.lab.world.spec.DNS_BEHAVIOURS`)."""
        question = query.question[0]
        qname = question.name
        record = self.record_for(qname.to_text(omit_final_dot=True).lower()) or {}
        address = (record.get("A") or [HOSTILE_ADDRESS])[0]
        a_rdata = ipaddress.IPv4Address(address).packed
        if kind == "pointer_loop":
            base = self._bare(query, ancount=1)
            # owner name = a compression pointer to its own offset
            rr = struct.pack("!HHHIH", 0xC000 | len(base), 1, 1, 60, 4) + a_rdata
            return [Send(0.0, base + rr)]
        if kind == "bad_rdata":
            rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 7) + a_rdata + b"\x00\x00\x00"
            return [Send(0.0, self._bare(query, ancount=1) + rr)]
        if kind == "lying_counts":
            rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + a_rdata
            return [Send(0.0, self._bare(query, ancount=65535) + rr)]
        if kind == "many_questions":
            base = self._bare(query, qdcount=2000)
            repeat = struct.pack("!HHH", 0xC00C, question.rdtype, question.rdclass)
            return [Send(0.0, base + repeat * 1999)]
        if kind == "huge_answer":
            assert arg is not None
            return [Send(0.0, self._huge(query, int(arg)))]
        response = self._response(query)
        if kind == "cname_loop":
            other = dns.name.Name((b"loop-back", *qname.labels))
            response.answer.append(dns.rrset.from_text(qname, 60, "IN", "CNAME", other.to_text()))
            response.answer.append(dns.rrset.from_text(other, 60, "IN", "CNAME", qname.to_text()))
            return [Send(0.0, response.to_wire())]
        if kind == "binary_names":
            odd = dns.name.Name((b"\x00\xff", b"dot.inside", b"\xc3\x28 \x80", *qname.labels))
            cname = dns.rdtypes.ANY.CNAME.CNAME(dns.rdataclass.IN, dns.rdatatype.CNAME, odd)
            response.answer.append(dns.rrset.from_rdata(qname, 60, cname))
            if question.rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(odd, 60, "IN", "A", address))
            return [Send(0.0, response.to_wire())]
        # floods: wrong_id_flood / dup_flood
        assert arg is not None
        count = int(arg)
        genuine = [s.wire for s in await self._genuine(query, transport)] or [
            self._rcode(query, dns.rcode.SERVFAIL).to_wire()
        ]
        sends = []
        for i in range(count):
            wire = genuine[0]
            if kind == "wrong_id_flood":
                wrong = (query.id + 1 + i % 65535) % 65536
                wire = wrong.to_bytes(2, "big") + wire[2:]
            sends.append(Send((i // FLOOD_BATCH) * FLOOD_PAUSE, wire))
        end = (count // FLOOD_BATCH + 1) * FLOOD_PAUSE
        return sends + [Send(end, w) for w in genuine]

    def _bare(self, query: dns.message.Message, *, qdcount: int = 1, ancount: int = 0) -> bytes:
        """Header + question of a response without EDNS, with these counts patched in."""
        response = self._response(query)
        response.use_edns(False)
        wire = response.to_wire()
        return wire[:4] + struct.pack("!HHHH", qdcount, ancount, 0, 0) + wire[12:]

    def _huge(self, query: dns.message.Message, count: int) -> bytes:
        """``count`` A or AAAA records (as many as fit in :data:`MAX_WIRE`); else NODATA."""
        response = self._response(query)
        response.use_edns(False)
        question = query.question[0]
        if question.rdtype == dns.rdatatype.A:
            values = _loopback_range(min(count, (MAX_WIRE - 512) // 16), v6=False)
            rtype = "A"
        elif question.rdtype == dns.rdatatype.AAAA:
            values = _loopback_range(min(count, (MAX_WIRE - 512) // 28), v6=True)
            rtype = "AAAA"
        else:
            return response.to_wire()
        response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", rtype, values))
        return response.to_wire()

    async def _genuine(self, query: dns.message.Message, transport: str) -> list[Send]:
        """What an honest server answers: records, else the server default."""
        response = self._from_records(query)
        if response is not None:
            return [Send(0.0, response.to_wire())]
        default = self.config.default
        if default == "silent":
            return []
        if default == "forward":
            return [Send(0.0, await self._forward(query, transport))]
        rcode = {
            "nxdomain": dns.rcode.NXDOMAIN,
            "refused": dns.rcode.REFUSED,
            "servfail": dns.rcode.SERVFAIL,
        }[default]
        return [Send(0.0, self._rcode(query, rcode).to_wire())]

    def _response(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if self.upstream is not None:
            response.flags |= dns.flags.RA
        return response

    def _rcode(self, query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
        response = dns.message.make_response(query)
        if self.upstream is not None:
            response.flags |= dns.flags.RA
        response.set_rcode(rcode)
        return response

    def _from_records(self, query: dns.message.Message) -> dns.message.Message | None:
        """Answer from ``records`` following CNAMEs inside them; None = name unknown."""
        question = query.question[0]
        qtype = question.rdtype
        qname = question.name
        name = qname.to_text(omit_final_dot=True).lower()
        record = self.record_for(name)
        if record is None:
            return None
        response = self._response(query)
        owner = qname
        for _ in range(8):  # CNAME chain limit
            ttl = record.get("ttl", 300)
            cname = record.get("CNAME")
            if cname and qtype not in (dns.rdatatype.CNAME,):
                response.answer.append(dns.rrset.from_text(owner, ttl, "IN", "CNAME", cname + "."))
                owner = dns.name.from_text(cname)
                record = self.record_for(cname)
                if record is None:
                    break
                continue
            for rtype, key in (("A", "A"), ("AAAA", "AAAA"), ("CNAME", "CNAME"), ("TXT", "TXT")):
                values = record.get(key)
                if not values:
                    continue
                if qtype not in (dns.rdatatype.from_text(rtype), dns.rdatatype.ANY):
                    continue
                if key == "CNAME":
                    values = [values + "."]
                elif key == "TXT":
                    values = [
                        '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values
                    ]
                response.answer.append(dns.rrset.from_text_list(owner, ttl, "IN", rtype, values))
            break
        return response

    def _address_answer(self, query: dns.message.Message, ips: list[str]) -> dns.message.Message:
        """Answer A/AAAA (whichever matches the query and the IPs) with ``ips``; else NODATA."""
        response = self._response(query)
        question = query.question[0]
        v6 = [ip for ip in ips if ipaddress.ip_address(ip).version == 6]
        v4 = [ip for ip in ips if ipaddress.ip_address(ip).version == 4]
        if question.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY) and v4:
            response.answer.append(
                dns.rrset.from_text_list(question.name, BOGON_TTL, "IN", "A", v4)
            )
        if question.rdtype in (dns.rdatatype.AAAA, dns.rdatatype.ANY) and v6:
            response.answer.append(
                dns.rrset.from_text_list(question.name, BOGON_TTL, "IN", "AAAA", v6)
            )
        return response

    def _truncatable(self, query: dns.message.Message) -> bytes:
        """A response with at least one record, to be cut short by ``truncated``."""
        response = self._from_records(query)
        if response is None or not response.answer:
            response = self._address_answer(query, ["192.0.2.1", "2001:db8::1"])
        if not response.answer:
            response.answer.append(
                dns.rrset.from_text(query.question[0].name, 60, "IN", "TXT", '"truncated"')
            )
        return response.to_wire()

    def _oversized(self, query: dns.message.Message) -> dns.message.Message:
        response = self._response(query)
        question = query.question[0]
        if question.rdtype == dns.rdatatype.AAAA:
            values = _loopback_range(OVERSIZED_COUNT, v6=True)
            rtype = "AAAA"
        elif question.rdtype == dns.rdatatype.A:
            values = _loopback_range(OVERSIZED_COUNT, v6=False)
            rtype = "A"
        else:
            values = [f'"oversized answer {i:04d} ' + "x" * 40 + '"' for i in range(100)]
            rtype = "TXT"
        response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", rtype, values))
        return response

    async def _forward(self, query: dns.message.Message, transport: str) -> bytes:
        """Ask the upstream resolver; SERVFAIL when it does not answer usably."""
        if self.upstream is None:
            return self._rcode(query, dns.rcode.SERVFAIL).to_wire()
        host, port = self.upstream
        try:
            if transport == "tcp":
                answer = await dns.asyncquery.tcp(query, host, port=port, timeout=FORWARD_TIMEOUT)
            else:
                answer = await dns.asyncquery.udp(query, host, port=port, timeout=FORWARD_TIMEOUT)
                if answer.flags & dns.flags.TC:
                    answer = await dns.asyncquery.tcp(
                        query, host, port=port, timeout=FORWARD_TIMEOUT
                    )
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            log.debug("forward to %s failed: %r", format_hostport(host, port), exc)
            return self._rcode(query, dns.rcode.SERVFAIL).to_wire()
        answer.id = query.id
        answer.flags = (answer.flags | dns.flags.RA) & ~dns.flags.AA  # as a recursive resolver
        return answer.to_wire()


def _loopback_range(count: int, *, v6: bool) -> list[str]:
    """``count`` distinct loopback addresses (127.18.0.1, … / ``::ffff:127.18.0.1``, …).

    Many-record answers only ever name loopback addresses, so a client that dials them never
    leaves the host (nothing listens there: connection refused).
    """
    base = int(ipaddress.IPv4Address("127.18.0.1"))
    v4 = [ipaddress.IPv4Address(base + i) for i in range(count)]
    return [f"::ffff:{ip}" if v6 else str(ip) for ip in v4]


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None:
            self.server._spawn(self.server._serve_udp(self.transport, data, addr))

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable
        log.debug("udp error: %r", exc)


class DNSServer:
    """Serves one :class:`DNSServerConfig` over UDP and TCP on every ``listen`` address."""

    def __init__(self, config: DNSServerConfig, upstream: tuple[str, int] | None = None) -> None:
        """``upstream`` overrides ``config.upstream`` (used when ports are OS-chosen)."""
        self.config = config
        self.logic = DNSLogic(config, upstream)
        self.bound: list[tuple[str, int]] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> list[tuple[str, int]]:
        """Bind every listen address (UDP and TCP on the same port); returns the bound ones."""
        try:
            for text in self.config.listen:
                host, port = parse_hostport(text)
                self.bound.append(await self._bind(host, port))
        except BaseException:
            await self.stop()
            raise
        return list(self.bound)

    async def _bind(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for _ in range(20 if port == 0 else 1):
            transport, _proto = await loop.create_datagram_endpoint(
                lambda: _UDPProtocol(self), local_addr=(host, port)
            )
            actual = transport.get_extra_info("sockname")[1]
            try:
                server = await asyncio.start_server(self._serve_tcp, host, actual)
            except OSError as exc:  # TCP port taken: try another OS-chosen port
                transport.close()
                last = exc
                continue
            self._udp.append(transport)
            self._tcp.append(server)
            log.info("dns listening on %s (udp+tcp)", format_hostport(host, actual))
            return host, actual
        assert last is not None
        raise last

    async def stop(self) -> None:
        """Close every socket and cancel replies in flight."""
        for transport in self._udp:
            transport.close()
        for server in self._tcp:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._tcp:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._udp.clear()
        self._tcp.clear()

    async def _serve_udp(
        self, transport: asyncio.DatagramTransport, data: bytes, addr: tuple[Any, int]
    ) -> None:
        try:
            sends = await self.logic.reply(data, "udp")
        except Exception:  # a bug here must not go unnoticed, nor stop the server
            log.exception("dns: error answering %r", addr)
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        for send in sorted(sends, key=lambda s: s.delay):
            wait = start + send.delay - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if transport.is_closing():
                return
            transport.sendto(send.wire, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                        header = await reader.readexactly(2)
                        (length,) = struct.unpack("!H", header)
                        wire = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                try:
                    sends = await self.logic.reply(wire, "tcp")
                except Exception:  # a bug here must not go unnoticed, nor stop the server
                    log.exception("dns: error answering over TCP")
                    return
                start = loop.time()
                for send in sorted(sends, key=lambda s: s.delay):
                    wait = start + send.delay - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    writer.write(struct.pack("!H", len(send.wire)) + send.wire)
                    await writer.drain()
        except (ConnectionError, OSError):
            return
        except asyncio.CancelledError:  # server stopping; asyncio's stream callback would
            return  # log a cancelled handler task as an error
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)
