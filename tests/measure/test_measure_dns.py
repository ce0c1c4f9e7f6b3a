"""probe.measure.dns: response parsing, address selection, and the UDP listening window.

The UDP tests run against a tiny in-process resolver on 127.0.0.1 whose behaviour is a
function from query to the datagrams to send back (after delays), so injection (two answers),
silence, garbage and wrong ids are exact.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dns.message
import dns.rcode
import dns.rrset
import pytest

from probe import failures
from probe.measure import dns as mdns
from probe.measure.settings import MeasureSettings, Resolver
from probe.model import DNSAnswer, DNSObservation

pytestmark = pytest.mark.timeout(20)


def response(query: dns.message.Message, *records: tuple[str, str], rcode: int = 0,
             ttl: int = 60) -> dns.message.Message:
    r = dns.message.make_response(query)
    r.set_rcode(rcode)
    name = query.question[0].name
    for rtype, value in records:
        r.answer.append(dns.rrset.from_text(name, ttl, "IN", rtype, value))
    return r


# --- pure ------------------------------------------------------------------------------------


def test_parse_response_matches_query_and_reads_answers() -> None:
    a, aaaa = mdns.make_query("site.test", "A"), mdns.make_query("site.test", "AAAA")
    wire = response(aaaa, ("CNAME", "cdn.test."), ("AAAA", "2001:db8::1")).to_wire()
    index, parsed = mdns.parse_response(wire, [a, aaaa]) or (None, None)
    assert index == 1 and parsed is not None
    assert parsed.rcode == "NOERROR" and parsed.failure is None
    assert parsed.answers == (DNSAnswer("CNAME", "cdn.test", 60), DNSAnswer("AAAA", "2001:db8::1",
                                                                            60))


@pytest.mark.parametrize(
    ("rcode", "records", "failure"),
    [
        (dns.rcode.NXDOMAIN, (), failures.DNS_NXDOMAIN),
        (dns.rcode.REFUSED, (), failures.DNS_REFUSED),
        (dns.rcode.SERVFAIL, (), failures.DNS_SERVFAIL),
        (dns.rcode.FORMERR, (), failures.DNS_SERVER_MISBEHAVING),
        (dns.rcode.NOERROR, (), failures.DNS_NO_ANSWER),
        (dns.rcode.NOERROR, (("CNAME", "only.test."),), failures.DNS_NO_ANSWER),
        (dns.rcode.NOERROR, (("A", "192.0.2.1"),), None),
    ],
)
def test_rcodes_and_empty_answers(rcode: int, records: tuple[tuple[str, str], ...],
                                  failure: str | None) -> None:
    q = mdns.make_query("site.test", "A")
    _, parsed = mdns.parse_response(response(q, *records, rcode=rcode).to_wire(), [q]) or (0, None)
    assert parsed is not None
    assert parsed.failure == failure
    assert parsed.rcode == dns.rcode.to_text(rcode)


def test_wrong_id_or_question_is_ignored() -> None:
    q = mdns.make_query("site.test", "A")
    other = mdns.make_query("other.test", "A")
    assert mdns.parse_response(response(other, ("A", "192.0.2.9")).to_wire(), [q]) is None
    forged = response(other, ("A", "192.0.2.9"))
    forged.id = q.id  # right id, wrong question
    assert mdns.parse_response(forged.to_wire(), [q]) is None


def test_garbage_is_server_misbehaving_for_the_query_with_its_id() -> None:
    a, aaaa = mdns.make_query("site.test", "A"), mdns.make_query("site.test", "AAAA")
    wire = aaaa.id.to_bytes(2, "big") + b"\xff" * 7
    assert mdns.parse_response(wire, [a, aaaa]) == (
        1, mdns.ParsedResponse(None, (), failures.DNS_SERVER_MISBEHAVING))
    truncated = response(a, ("A", "192.0.2.1")).to_wire()[:-3]
    assert mdns.parse_response(truncated, [a, aaaa]) == (
        0, mdns.ParsedResponse(None, (), failures.DNS_SERVER_MISBEHAVING))


def _obs(resolver: str, index: int, *ips: str, qtype: str = "A") -> DNSObservation:
    return DNSObservation(tx_id=1, hostname="h", query_type=qtype, engine="udp",
                          resolver=resolver, t0=0, t=0, failure=None,
                          answers=tuple(DNSAnswer("AAAA" if ":" in i else "A", i) for i in ips),
                          response_index=index)


def test_select_addresses_order_loopback_and_cap() -> None:
    settings = MeasureSettings(
        resolvers=(Resolver("192.0.2.53"), Resolver("127.0.0.1", 5353)), max_addresses=3)
    observations = [
        _obs("192.0.2.53:53", 0, "2001:db8::1", "198.51.100.1", "127.0.0.1"),
        _obs("192.0.2.53:53", 1, "203.0.113.66"),  # a later (genuine) answer: not dialled
        _obs("system", 0, "198.51.100.2", "0.0.0.0", "127.0.0.53"),
        _obs("127.0.0.1:5353", 0, "127.0.0.1", "198.51.100.1"),
    ]
    # system first, IPv4 first, loopback only from the loopback resolver, deduplicated, capped
    # with one slot kept for IPv6 (issue 15)
    assert mdns.select_addresses(observations, settings) == [
        "198.51.100.2", "198.51.100.1", "2001:db8::1"]
    assert mdns.select_addresses(observations, MeasureSettings(
        resolvers=settings.resolvers, max_addresses=1)) == ["198.51.100.2"]
    v4_only = [o for o in observations if o.resolver != "192.0.2.53:53"]
    assert mdns.select_addresses(v4_only, MeasureSettings(
        resolvers=settings.resolvers, max_addresses=2)) == ["198.51.100.2", "127.0.0.1"]
    assert mdns.select_addresses(observations, MeasureSettings(
        resolvers=settings.resolvers, max_addresses=10))[-1] == "2001:db8::1"


# --- UDP against an in-process resolver ------------------------------------------------------

Behaviour = Callable[[dns.message.Message], list[tuple[float, bytes]]]


@contextmanager
def udp_resolver(behaviour: Behaviour) -> Iterator[int]:
    """A blocking UDP resolver on 127.0.0.1 in a thread; yields its port."""
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        pending: list[tuple[float, bytes, object]] = []
        while not stop.is_set():
            now = time.monotonic()
            for item in [p for p in pending if p[0] <= now]:
                pending.remove(item)
                sock.sendto(item[1], item[2])  # type: ignore[arg-type]
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            for delay, wire in behaviour(query):
                pending.append((time.monotonic() + delay, wire, addr))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        sock.close()


def _addr(q: dns.message.Message) -> tuple[str, str]:
    return ("A", "192.0.2.10") if q.question[0].rdtype == 1 else ("AAAA", "2001:db8::10")


def run_lookup(port: int, **kw: float) -> tuple[list[DNSObservation], float]:
    settings = MeasureSettings(use_system_resolver=False, resolvers=(Resolver("127.0.0.1", port),),
                               dns_timeout=kw.get("timeout", 1.0), dns_linger=kw.get("linger", 0.3))
    counter = iter(range(1, 100))
    start = time.monotonic()

    async def go() -> list[DNSObservation]:
        return await mdns.resolve("site.test", settings, lambda: next(counter),
                                  lambda: time.monotonic() - start)

    result = asyncio.run(go())
    return result, time.monotonic() - start


def test_udp_answer_then_linger() -> None:
    with udp_resolver(lambda q: [(0, response(q, _addr(q)).to_wire())]) as port:
        got, took = run_lookup(port, linger=0.3)
    assert [(o.query_type, o.response_index, o.failure) for o in got] == [
        ("A", 0, None), ("AAAA", 0, None)]
    assert got[0].answers == (DNSAnswer("A", "192.0.2.10", 60),)
    assert got[0].engine == "udp" and got[0].resolver == f"127.0.0.1:{port}"
    assert got[0].tx_id != got[1].tx_id
    assert 0.3 <= took < 0.9  # lingered, but did not wait for the full timeout


def test_udp_injected_then_genuine_both_recorded() -> None:
    def twice(q: dns.message.Message) -> list[tuple[float, bytes]]:
        forged = response(q, ("A", "10.10.34.35")) if q.question[0].rdtype == 1 else response(q)
        return [(0, forged.to_wire()), (0.1, response(q, _addr(q)).to_wire())]

    with udp_resolver(twice) as port:
        got, _ = run_lookup(port, linger=0.4)
    a = [o for o in got if o.query_type == "A"]
    assert [o.response_index for o in a] == [0, 1]
    assert a[0].addresses == ("10.10.34.35",) and a[1].addresses == ("192.0.2.10",)
    assert a[0].tx_id == a[1].tx_id and a[0].t <= a[1].t
    # only the first response of each resolver is dialled
    assert mdns.select_addresses(got, MeasureSettings(
        resolvers=(Resolver("127.0.0.1", port),)))[0] == "10.10.34.35"


def test_udp_silent_resolver_times_out_within_deadline() -> None:
    with udp_resolver(lambda q: []) as port:
        got, took = run_lookup(port, timeout=0.5, linger=0.3)
    assert [(o.query_type, o.failure, o.rcode) for o in got] == [
        ("A", failures.GENERIC_TIMEOUT, None), ("AAAA", failures.GENERIC_TIMEOUT, None)]
    assert 0.5 <= took < 1.0


def test_udp_garbage_recorded_and_listening_continues() -> None:
    def garbage_then_answer(q: dns.message.Message) -> list[tuple[float, bytes]]:
        return [(0, q.id.to_bytes(2, "big") + b"\x81\x80garbage"),
                (0.05, response(q, _addr(q)).to_wire())]

    with udp_resolver(garbage_then_answer) as port:
        got, _ = run_lookup(port)
    a = [o for o in got if o.query_type == "A"]
    assert [(o.response_index, o.failure, o.rcode) for o in a] == [
        (0, failures.DNS_SERVER_MISBEHAVING, None), (1, None, "NOERROR")]


def test_udp_wrong_id_ignored() -> None:
    def wrong_id(q: dns.message.Message) -> list[tuple[float, bytes]]:
        bad = response(q, ("A", "203.0.113.1"))
        bad.id = (q.id + 1) % 65536
        return [(0, bad.to_wire()), (0.05, response(q, _addr(q)).to_wire())]

    with udp_resolver(wrong_id) as port:
        got, _ = run_lookup(port)
    assert [o.addresses for o in got] == [("192.0.2.10",), ("2001:db8::10",)]


def test_udp_port_closed_is_connection_refused() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    got, took = run_lookup(port, timeout=2.0)
    assert {o.failure for o in got} == {failures.CONNECTION_REFUSED}
    assert took < 1.0


def test_system_resolver_on_an_ip_literal_needs_no_network() -> None:
    async def go() -> list[DNSObservation]:
        return await mdns.system_lookup("127.0.0.1", 2.0, 7, lambda: 0.0)

    got = asyncio.run(go())
    assert [(o.query_type, o.engine, o.resolver, o.failure, o.rcode) for o in got] == [
        ("A", "system", "system", None, None),
        ("AAAA", "system", "system", failures.DNS_NO_ANSWER, None)]
    assert got[0].answers == (DNSAnswer("A", "127.0.0.1", None),)


def test_system_resolver_failure_is_classified(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_such_name(*args: object, **kw: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def go() -> list[DNSObservation]:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_such_name)
        return await mdns.system_lookup("site.test", 2.0, 7, lambda: 0.0)

    got = asyncio.run(go())
    assert [(o.query_type, o.failure) for o in got] == [
        ("A", failures.DNS_NXDOMAIN), ("AAAA", failures.DNS_NXDOMAIN)]


# --- hostile resolvers -----------------------------------------------------------------------


def test_huge_answer_is_parsed_only_up_to_the_record_cap() -> None:
    q = mdns.make_query("site.test", "A")
    huge = response(q)
    ips = [f"127.18.{i // 250}.{i % 250 + 1}" for i in range(4000)]
    huge.answer.append(dns.rrset.from_text_list(q.question[0].name, 60, "IN", "A", ips))
    wire = huge.to_wire()
    start = time.monotonic()
    _, parsed = mdns.parse_response(wire, [q]) or (0, None)
    assert time.monotonic() - start < 0.05  # 4000 records would take ~0.2 s
    assert parsed is not None and parsed.failure is None
    assert len(parsed.answers) == mdns.MAX_RECORDS
    assert {a.value for a in parsed.answers} <= set(ips) and parsed.answers[0].ttl == 60


def _bare(q: dns.message.Message, qd: int = 1, an: int = 0) -> bytes:
    wire = dns.message.make_response(q).to_wire()
    return wire[:4] + struct.pack("!HHHH", qd, an, 0, 0) + wire[12:]


@pytest.mark.parametrize("case", ["pointer_loop", "bad_rdata", "lying_counts", "questions"])
def test_malformed_answers_are_server_misbehaving(case: str) -> None:
    q = mdns.make_query("site.test", "A")
    if case == "pointer_loop":  # the owner name points at itself
        base = _bare(q, an=1)
        wire = base + struct.pack("!HHHIH", 0xC000 | len(base), 1, 1, 60, 4) + bytes(4)
    elif case == "bad_rdata":  # an A record of 7 bytes
        wire = _bare(q, an=1) + struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 7) + bytes(7)
    elif case == "lying_counts":
        wire = _bare(q, an=65535) + struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + bytes(4)
    else:  # 2000 questions, ours first
        wire = _bare(q, qd=2000) + struct.pack("!HHH", 0xC00C, 1, 1) * 1999
    assert mdns.parse_response(wire, [q]) == (
        0, mdns.ParsedResponse(None, (), failures.DNS_SERVER_MISBEHAVING))


def test_cname_loop_has_no_address() -> None:
    q = mdns.make_query("site.test", "A")
    r = response(q, ("CNAME", "loop.site.test."))
    r.answer.append(dns.rrset.from_text("loop.site.test.", 60, "IN", "CNAME", "site.test."))
    _, parsed = mdns.parse_response(r.to_wire(), [q]) or (0, None)
    assert parsed is not None and parsed.failure == failures.DNS_NO_ANSWER
    assert [a.rtype for a in parsed.answers] == ["CNAME", "CNAME"]


def test_udp_flood_of_wrong_ids_is_dropped_and_the_answer_kept() -> None:
    def flood(q: dns.message.Message) -> list[tuple[float, bytes]]:
        genuine = response(q, _addr(q)).to_wire()
        wrong = [((q.id + 1 + i) % 65536).to_bytes(2, "big") + genuine[2:] for i in range(3000)]
        return [(0, w) for w in wrong] + [(0.1, genuine)]

    with udp_resolver(flood) as port:
        got, took = run_lookup(port, timeout=1.5, linger=0.2)
    assert [o.addresses for o in got] == [("192.0.2.10",), ("2001:db8::10",)]
    assert took < 1.5


def test_udp_duplicate_flood_records_at_most_the_cap() -> None:
    def dup(q: dns.message.Message) -> list[tuple[float, bytes]]:
        return [(0, response(q, _addr(q)).to_wire())] * 500

    with udp_resolver(dup) as port:
        got, _ = run_lookup(port, timeout=1.0, linger=0.3)
    for qtype in ("A", "AAAA"):
        mine = [o for o in got if o.query_type == qtype]
        assert 1 <= len(mine) <= mdns.MAX_RESPONSES
        assert [o.response_index for o in mine] == list(range(len(mine)))


@pytest.mark.parametrize("name", ["a..b.test", "x" * 70 + ".test", ("a" * 60 + ".") * 5 + "t"])
def test_a_name_dns_cannot_carry_is_a_failure_not_an_exception(name: str) -> None:
    settings = MeasureSettings(use_system_resolver=False,
                               resolvers=(Resolver("127.0.0.1", 9),), dns_timeout=0.2)
    got = asyncio.run(mdns.resolve(name, settings, iter(range(1, 9)).__next__, lambda: 0.0))
    assert [o.query_type for o in got] == ["A", "AAAA"]
    assert all(o.failure and o.failure.startswith(failures.UNKNOWN_PREFIX) for o in got)
    assert all("invalid hostname" in (o.failure or "") for o in got)
