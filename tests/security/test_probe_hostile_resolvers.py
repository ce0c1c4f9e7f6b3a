"""Hostile encrypted resolvers (DoH, DoT) on loopback: every misbehaviour ends as a named DNS
failure within the DNS deadline, with a bounded answer, and never raises.

A censor or a broken resolver answers the probe's DoH POST or DoT query: slowly, forever,
with garbage, with a message for another query, with a compressed body it never asked for,
with thousands of records or headers forever. The probe must keep its step deadline, its
memory, and its vocabulary (:mod:`probe.failures`); a DNS failure alone is never a
``blocked`` verdict without a control (it is judged like any resolver's failure).
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import struct
import time
from collections.abc import Awaitable, Callable

import dns.message
import dns.rrset
import pytest

from probe import failures
from probe.lab.world.pki import WorldPKI
from probe.measure import dns as mdns
from probe.measure.settings import EncryptedResolver, MeasureSettings

pytestmark = pytest.mark.timeout(60)

DEADLINE = 1.0
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> WorldPKI:
    return WorldPKI.create(tmp_path_factory.mktemp("pki"))


def _answer(query: bytes, records: int = 1, *, other_id: bool = False) -> bytes:
    q = dns.message.from_wire(query)
    r = dns.message.make_response(q)
    if other_id:
        r.id = (q.id + 1) % 65536
    ips = [f"192.0.{(i >> 8) % 256}.{i % 256}" for i in range(records)]
    r.answer.append(dns.rrset.from_text_list(q.question[0].name, 60, "IN", "A", ips))
    return r.to_wire()


def _head(length: int | None, extra: str = "") -> bytes:
    size = "" if length is None else f"content-length: {length}\r\n"
    return (f"HTTP/1.1 200 OK\r\ncontent-type: application/dns-message\r\n{size}{extra}"
            "\r\n").encode()


async def _doh_query(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return await reader.readexactly(length)


async def _drip(w: asyncio.StreamWriter, data: bytes) -> None:
    for b in data:
        w.write(bytes([b]))
        await w.drain()
        await asyncio.sleep(0.2)


async def _forever(w: asyncio.StreamWriter, chunk: bytes) -> None:
    while True:
        w.write(chunk)
        await w.drain()


DOH_CASES: dict[str, Callable[[bytes], Callable[[asyncio.StreamWriter], Awaitable[None]]]] = {
    "drips its answer a byte every 0.2 s": lambda q: lambda w: _drip(
        w, _head(len(_answer(q))) + _answer(q)),
    "an endless body": lambda q: lambda w: _forever(w, _head(None) + b"\0" * 65536),
    "garbage instead of a DNS message": lambda q: lambda w: _write(
        w, _head(600) + bytes(range(256)) * 2 + b"\xff" * 88),
    "a message for another query id": lambda q: lambda w: _write(
        w, _head(len(_answer(q, other_id=True))) + _answer(q, other_id=True)),
    "a gzip body it never asked for": lambda q: lambda w: _write(
        w, _head(len(gzip.compress(_answer(q))), "content-encoding: gzip\r\n")
        + gzip.compress(_answer(q))),
    "a body past 64 KiB": lambda q: lambda w: _write(w, _head(200_000) + b"\0" * 200_000),
    "3,000 records": lambda q: lambda w: _write(
        w, _head(len(_answer(q, 3000))) + _answer(q, 3000)),
    "header lines forever": lambda q: lambda w: _forever(w, b"HTTP/1.1 200 OK\r\n"
                                                         + b"x-a: b\r\n" * 4096),
    "HTTP 500": lambda q: lambda w: _write(w, b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n"),
}

DOT_CASES: dict[str, Callable[[bytes], bytes]] = {
    "drips its answer": lambda q: struct.pack("!H", len(_answer(q))) + _answer(q),
    "a length prefix and then nothing": lambda q: struct.pack("!H", 65535),
    "garbage": lambda q: struct.pack("!H", 300) + bytes(300),
    "3,000 records": lambda q: struct.pack("!H", len(_answer(q, 3000))) + _answer(q, 3000),
}


async def _write(w: asyncio.StreamWriter, data: bytes) -> None:
    w.write(data)
    await w.drain()
    await asyncio.sleep(DEADLINE * 3)  # hold the connection: the probe must not wait for it


def _ctx(pki: WorldPKI) -> ssl.SSLContext:
    chain, key = pki.issue(["localhost", "127.0.0.1"], "valid")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    return ctx


def _resolve(pki: WorldPKI, engine: str, respond: Callable[..., Awaitable[None]]
             ) -> tuple[list, float]:
    async def go() -> tuple[list, float]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await respond(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
                pass
            finally:
                writer.transport.abort()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=_ctx(pki))
        port = server.sockets[0].getsockname()[1]
        settings = MeasureSettings(
            use_system_resolver=False, ca_bundle=pki.ca_pem, dns_timeout=DEADLINE,
            connect_timeout=DEADLINE, tls_timeout=DEADLINE,
            encrypted_resolvers=(EncryptedResolver(engine, "127.0.0.1", port, "/dns-query"
                                                   if engine == mdns.DOH else ""),))
        t0 = time.monotonic()
        n = iter(range(1, 100))
        try:
            obs = await mdns.resolve("site.test", settings, lambda: next(n),
                                     lambda: time.monotonic() - t0)
        finally:
            server.close()
        return obs, time.monotonic() - t0

    return asyncio.run(go())


def _check(obs: list, took: float) -> None:
    assert took < 2 * DEADLINE + 1.0, f"{took:.1f} s"  # TLS + the DNS step, plus slack
    assert obs and all(failures.is_known(o.failure) for o in obs), [o.failure for o in obs]
    assert all(len(o.answers) <= mdns.MAX_RECORDS for o in obs)


def _check_case(obs, took, case):
    """Within the deadline; 3,000 records are cut to the cap, anything else is a failure."""
    _check(obs, took)
    if case == "3,000 records":
        assert all(o.failure is None and len(o.answers) == mdns.MAX_RECORDS
                   for o in obs if o.query_type == "A")
    else:
        assert all(o.failure is not None for o in obs), [o.failure for o in obs]


@pytest.mark.parametrize("case", list(DOH_CASES), ids=list(DOH_CASES))
def test_a_hostile_doh_answer_is_a_named_failure_within_the_deadline(pki, case):
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        query = await _doh_query(reader)
        await DOH_CASES[case](query)(writer)

    _check_case(*_resolve(pki, mdns.DOH, respond), case)


@pytest.mark.parametrize("case", list(DOT_CASES), ids=list(DOT_CASES))
def test_a_hostile_dot_answer_is_a_named_failure_within_the_deadline(pki, case):
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        query = await reader.readexactly(length)
        data = DOT_CASES[case](query)
        if case.startswith("drips"):
            await _drip(writer, data)
        else:
            await _write(writer, data)

    _check_case(*_resolve(pki, mdns.DOT, respond), case)
