"""The QUIC SNI censor's Initial decryption (probe.lab.simnet.devices.quic_sni), no root."""

from __future__ import annotations

import time

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from probe.lab.simnet.devices.quic_sni import QuicSni, initial_sni, udp_payload


def _initial(name: str | None, version: int = 0x00000001, peer: str = "192.0.2.1") -> bytes:
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name=name,
                               supported_versions=[version])
    conn = QuicConnection(configuration=config)
    addr = (peer, 443, 0, 0) if ":" in peer else (peer, 443)
    conn.connect(addr, now=time.time())
    ((datagram, _),) = conn.datagrams_to_send(now=time.time())
    return datagram


@pytest.mark.parametrize(("datagram", "sni"), [
    (_initial("www.youtube.com"), "www.youtube.com"),
    (_initial("Example.ORG"), "example.org"),
    (_initial("quic.test", 0x6B3343CF), "quic.test"),  # QUIC v2 (RFC 9369)
    (_initial(None), None),  # no SNI sent
    (b"\x40" + b"\x00" * 40, None),  # a short-header packet
    (b"", None),
])
def test_initial_sni(datagram: bytes, sni: str | None) -> None:
    assert initial_sni(datagram) == sni


def _ipv4_udp(payload: bytes) -> bytes:
    header = bytes([0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 192, 0, 2, 1])
    return header + b"\x30\x39\x01\xbb" + (8 + len(payload)).to_bytes(2, "big") + b"\0\0" + payload


@pytest.mark.parametrize(("name", "verdict"), [
    ("www.youtube.com", "drop"), ("www.example.com", "accept")])
def test_device_drops_only_the_blocked_name(name: str, verdict: str) -> None:
    device = QuicSni({"keywords": ["WWW.YOUTUBE.COM"]})
    assert device.judge(_ipv4_udp(_initial(name))) == verdict


def _udp(payload: bytes) -> bytes:
    return b"\x30\x39\x01\xbb" + (8 + len(payload)).to_bytes(2, "big") + b"\0\0" + payload


def _ipv6(next_header: int, body: bytes) -> bytes:
    """An IPv6 fixed header (RFC 8200 §3) from 2a00:2596::1:2 to 2a00:5fd5::1:a, then ``body``."""
    src = bytes.fromhex("2a002596000000000000000000010002")
    dst = bytes.fromhex("2a005fd500000000000000000001000a")
    return (bytes([0x60, 0, 0, 0]) + len(body).to_bytes(2, "big") + bytes([next_header, 64])
            + src + dst + body)


def _ext(next_header: int, octets: int = 8) -> bytes:
    """One hop-by-hop/routing/destination-options header of ``octets`` bytes (PadN inside)."""
    return bytes([next_header, octets // 8 - 1, 1, octets - 4]) + b"\0" * (octets - 4)


V6_INITIAL = _initial("www.youtube.com", peer="2a00:5fd5::1:a")


@pytest.mark.parametrize(("packet", "verdict"), [
    # a real aioquic Initial to an IPv6 address, in an IPv6 + UDP packet
    (_ipv6(17, _udp(V6_INITIAL)), "drop"),
    (_ipv6(17, _udp(_initial("www.example.com", peer="2a00:5fd5::1:a"))), "accept"),
    # behind a hop-by-hop and a 16-byte destination-options header
    (_ipv6(0, _ext(60) + _ext(17, 16) + _udp(V6_INITIAL)), "drop"),
    # a fragment is not reassembled: passed unjudged
    (_ipv6(44, b"\x11\0\0\0\0\0\0\1" + _udp(V6_INITIAL)), "accept"),
    # not UDP (TCP), cut short, not IP at all
    (_ipv6(6, _udp(V6_INITIAL)), "accept"),
    (_ipv6(17, _udp(V6_INITIAL))[:45], "accept"),
    (b"\x00" * 60, "accept"),
])
def test_device_reads_ipv6(packet: bytes, verdict: str) -> None:
    device = QuicSni({"keywords": ["www.youtube.com"]})
    assert device.judge(packet) == verdict


@pytest.mark.parametrize(("packet", "payload"), [
    (_ipv4_udp(b"abc"), b"abc"),
    (_ipv6(17, _udp(b"abc")), b"abc"),
    (_ipv6(43, _ext(17) + _udp(b"abc")), b"abc"),  # a routing header first
    (_ipv6(58, b"\x80" * 16), None),  # ICMPv6
    (b"", None),
])
def test_udp_payload(packet: bytes, payload: bytes | None) -> None:
    assert udp_payload(packet) == payload
