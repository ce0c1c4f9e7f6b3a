"""The raw-socket primitives of issue 8 (probe.measure.raw) against servers on loopback.

Root (or CAP_NET_RAW) only; every packet stays on 127.0.0.1. Loopback delivers locally, so
no TTL ever expires here: these tests pin down what each primitive reports for each kind of
answer (data, a TLS chain, a reset, an EOF, silence, a refused connection, SYN-ACK/RST to
SYNs, echo replies, two DNS responses to one query); expiry and hops are covered on the
simulated network (test_trace_simnet.py).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from probe.measure import raw
from probe.measure import trace as T

REASON = raw.raw_unavailable()
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(REASON is not None, reason=REASON or "")]
LO = "127.0.0.1"


@contextlib.contextmanager
def tcp_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback TCP server running ``handle`` on every connection; yields its port."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((LO, 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)
            threading.Thread(target=_safe, args=(handle, conn), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        srv.close()
        for c in held:
            with contextlib.suppress(OSError):
                c.close()


def _safe(handle: Callable[[socket.socket], None], conn: socket.socket) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        handle(conn)


def _answer(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    conn.close()


def _reset(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _eof(conn: socket.socket) -> None:
    conn.recv(4096)
    conn.shutdown(socket.SHUT_WR)


def _silent(conn: socket.socket) -> None:
    conn.recv(4096)


@pytest.fixture(scope="module")
def io() -> Iterator[raw.PacketIO]:
    with raw.PacketIO() as session:
        yield session


@pytest.mark.parametrize("handler,outcome", [
    (_answer, "answer"), (_reset, "reset"), (_eof, "eof"), (_silent, "silent")])
def test_stream_probe_outcomes(io: raw.PacketIO, handler: Callable[[socket.socket], None],
                               outcome: str) -> None:
    with tcp_server(handler) as port:
        got = io.stream_probe(LO, port, 5, request=T.http_request("blocked.example"),
                              timeout=0.8)
    assert got.outcome == outcome, got
    if outcome == "answer":
        assert got.data.startswith(b"HTTP/1.0 200 OK") and got.reply_ttl == 64
        assert got.source == LO


def test_stream_probe_refused_is_an_error(io: raw.PacketIO) -> None:
    with socket.socket() as s:
        s.bind((LO, 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        got = io.stream_probe(LO, port, 5, request=b"x", connect_timeout=1)
    assert (got.outcome, got.error) == ("error", "connection_refused")


def test_stream_probe_tls_reads_the_chain(io: raw.PacketIO, tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("blocked.example").configure_cert(ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    names: list[str | None] = []

    def serve(conn: socket.socket) -> None:
        ctx.sni_callback = lambda obj, name, _ctx: names.append(name)  # type: ignore[assignment]
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    with tcp_server(serve) as port:
        got = io.stream_probe(LO, port, 7, tls_name="blocked.example", timeout=2)
    assert got.outcome == "answer" and got.chain and got.tls_error is None
    assert names == ["blocked.example"]
    assert T.cert_problem(got, "blocked.example", str(bundle)) is None
    assert T.cert_problem(got, "blocked.example", None) == "ssl_unknown_authority"
    note = T.note_of("tls", got, "ssl_unknown_authority")
    assert note is not None and note.startswith("certificate issued by")


def test_syn_and_echo_sweeps(io: raw.PacketIO) -> None:
    with tcp_server(_silent) as port:
        syn = io.syn_sweep(LO, port, [1, 2], timeout=1)
    assert {t: r.outcome for t, r in syn.items()} == {1: "answer", 2: "answer"}
    with socket.socket() as s:
        s.bind((LO, 0))
        closed = s.getsockname()[1]
        refused = io.syn_sweep(LO, closed, [1], timeout=1)
    assert refused[1].outcome == "reset"
    echo = io.echo_sweep(LO, [1, 3], timeout=1)
    assert {t: r.outcome for t, r in echo.items()} == {1: "answer", 3: "answer"}


def test_dns_sweep_keeps_every_response(io: raw.PacketIO) -> None:
    import dns.message
    import dns.rrset

    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((LO, 0))
    srv.settimeout(3)
    port = srv.getsockname()[1]

    def answer_twice() -> None:
        with contextlib.suppress(OSError):
            for _ in range(2):  # the name query and the innocuous one
                data, peer = srv.recvfrom(4096)
                query = dns.message.from_wire(data)
                if query.question[0].name.to_text() != "blocked.example.":
                    continue
                for ip in ("10.10.34.35", "192.0.2.7"):  # forged first, genuine second
                    resp = dns.message.make_response(query)
                    resp.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN",
                                                           "A", ip))
                    srv.sendto(resp.to_wire(), peer)

    thread = threading.Thread(target=answer_twice, daemon=True)
    thread.start()
    try:
        got = io.dns_sweep(LO, [("blocked.example", 64), ("example.org", 64)], timeout=1,
                           attempts=1, port=port)
    finally:
        thread.join(timeout=3)
        srv.close()
    blocked = got[("blocked.example", 64)]
    assert (blocked.outcome, blocked.rcode, blocked.answers) == (
        "answer", "NOERROR", ("10.10.34.35", "192.0.2.7"))
    assert got[("example.org", 64)].outcome == "silent"
