"""The QUIC SNI censor's Initial decryption (probe.lab.simnet.devices.quic_sni), no root."""

from __future__ import annotations

import time

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from probe.lab.simnet.devices.quic_sni import QuicSni, initial_sni


def _initial(name: str | None, version: int = 0x00000001) -> bytes:
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name=name,
                               supported_versions=[version])
    conn = QuicConnection(configuration=config)
    conn.connect(("192.0.2.1", 443), now=time.time())
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
