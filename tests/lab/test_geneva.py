"""The packet logic of the Geneva-style censor device (devices/geneva.py) on real bytes: a real
ClientHello from Python's ssl, real HTTP request heads, packets serialised by scapy."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

pytest.importorskip("scapy")

from scapy.layers.inet import IP, TCP  # noqa: E402

from probe.lab.simnet.devices.geneva import (  # noqa: E402
    MODELS,
    TLS_ALERT_HANDSHAKE_FAILURE,
    GenevaCensor,
)

CLI, SRV = "10.20.0.2", "64.90.0.7"
CPORT = 40000
ISN, SSN = 1000, 50000


def client_hello(sni: str) -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def http_get(host: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode()


def cpkt(flags: str, payload: bytes = b"", port: int = 443, seq: int = ISN + 1,
         ack: int = SSN + 1) -> bytes:
    seg = IP(src=CLI, dst=SRV) / TCP(sport=CPORT, dport=port, flags=flags, seq=seq, ack=ack)
    return bytes(seg / payload if payload else seg)


def spkt(flags: str = "PA", payload: bytes = b"x" * 100, port: int = 443) -> bytes:
    seg = IP(src=SRV, dst=CLI) / TCP(sport=port, dport=CPORT, flags=flags, seq=SSN + 1,
                                     ack=ISN + 1)
    return bytes(seg / payload)


def censor(model: str, port: int = 443) -> tuple[GenevaCensor, list[Any]]:
    sent: list[Any] = []
    return GenevaCensor({"model": model, "port": port, "hosts": ["blocked.example"]},
                        send=sent.append), sent


def payload_for(port: int, name: str) -> bytes:
    return client_hello(name) if port == 443 else http_get(name)


# model, port -> (verdict for the trigger, [(direction, flags, seq, ack)] of the forgeries)
INJECTING = [
    ("rst_client", 443, "accept", [("client", "RA", SSN + 1, "next")]),
    ("rst_both", 80, "accept", [("client", "RA", SSN + 1, "next"),
                                ("server", "R", ISN + 1, None)]),
    ("rst_server", 443, "accept", [("server", "R", ISN + 1, None)]),
    ("rst_miss", 80, "accept", [("client", "RA", SSN + 2, "next"),
                                ("client", "RA", (SSN + 1 - (1 << 30)) & 0xFFFFFFFF, "next")]),
    ("rst_stale", 443, "accept", [("client", "RA", SSN + 1, ISN + 1),
                                  ("client", "RA", SSN + 1 + 1460, ISN + 1),
                                  ("client", "RA", SSN + 1 + 4380, ISN + 1)]),
    ("fin", 80, "accept", [("client", "FA", SSN + 1, "next")]),
    ("tls_alert", 443, "drop", [("client", "FPA", SSN + 1, "next"),
                                ("server", "R", ISN + 1, None)]),
]


@pytest.mark.parametrize(("model", "port", "verdict", "forged"), INJECTING)
def test_injecting_models(model: str, port: int, verdict: str, forged: list[Any]) -> None:
    dev, sent = censor(model, port)
    payload = payload_for(port, "www.blocked.example")
    assert dev.judge(cpkt("PA", payload, port)) == verdict
    assert len(sent) == len(forged)
    for pkt, (to, flags, seq, ack) in zip(sent, forged, strict=True):
        pkt = IP(bytes(pkt))  # what goes on the wire
        tcp = pkt[TCP]
        assert str(tcp.flags) == flags
        assert tcp.seq == seq
        if to == "client":
            assert (pkt.src, pkt.dst, tcp.sport, tcp.dport) == (SRV, CLI, port, CPORT)
            want_ack = ISN + 1 + len(payload) if ack == "next" else ack
            assert tcp.ack == want_ack
        else:
            assert (pkt.src, pkt.dst, tcp.sport, tcp.dport) == (CLI, SRV, CPORT, port)
    if model == "tls_alert":
        assert bytes(IP(bytes(sent[0]))[TCP].payload) == TLS_ALERT_HANDSHAKE_FAILURE


@pytest.mark.parametrize(("model", "port"), [(m, p) for m, p, _, _ in INJECTING])
def test_innocuous_names_pass_untouched(model: str, port: int) -> None:
    dev, sent = censor(model, port)
    for name in ("example.org", "notblocked.example.com", "blocked.example.org"):
        assert dev.judge(cpkt("PA", payload_for(port, name), port)) == "accept"
    assert dev.judge(cpkt("S", port=port, seq=ISN, ack=0)) == "accept"
    assert sent == []


def test_tcb_censors_only_after_the_handshake_it_saw() -> None:
    dev, sent = censor("tcb")
    hello = client_hello("blocked.example")
    # no SYN seen: a mid-stream ClientHello is not watched
    assert dev.judge(cpkt("PA", hello)) == "accept"
    # SYN, the handshake's ACK, then the trigger: dropped, and so is every later packet
    assert dev.judge(cpkt("S", seq=ISN, ack=0)) == "accept"
    assert dev.judge(cpkt("A")) == "accept"
    assert dev.judge(cpkt("PA", hello)) == "drop"
    assert dev.judge(cpkt("PA", hello)) == "drop"  # the retransmission
    assert dev.judge(cpkt("A")) == "drop"
    assert dev.judge(spkt()) == "accept"  # it drops the client's side only
    assert sent == []


def test_tcb_teardown_on_client_rst_or_fin() -> None:
    for teardown in ("R", "FA"):
        dev, _ = censor("tcb")
        assert dev.judge(cpkt("S", seq=ISN, ack=0)) == "accept"
        assert dev.judge(cpkt("A")) == "accept"
        assert dev.judge(cpkt(teardown)) == "accept"
        assert dev.judge(cpkt("PA", client_hello("blocked.example"))) == "accept"


def test_tcb_innocuous_flow_is_never_dropped() -> None:
    dev, _ = censor("tcb")
    assert dev.judge(cpkt("S", seq=ISN, ack=0)) == "accept"
    assert dev.judge(cpkt("A")) == "accept"
    assert dev.judge(cpkt("PA", client_hello("example.org"))) == "accept"
    assert dev.judge(cpkt("A")) == "accept"


def test_drop_reply_drops_the_servers_answer_not_the_request() -> None:
    dev, sent = censor("drop_reply", 80)
    assert dev.judge(spkt(port=80)) == "accept"  # nothing triggered yet
    assert dev.judge(cpkt("PA", http_get("blocked.example"), 80)) == "accept"
    assert dev.judge(spkt(port=80)) == "drop"
    assert dev.judge(spkt("FA", b"", port=80)) == "drop"
    # another client port (another connection) is not touched
    other = IP(src=SRV, dst=CLI) / TCP(sport=80, dport=CPORT + 1, flags="PA") / b"x"
    assert dev.judge(bytes(other)) == "accept"
    assert sent == []


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        GenevaCensor({"model": "nope", "port": 443, "hosts": []}, send=lambda p: None)
    assert "tcb" in MODELS
