"""A censor that filters QUIC by the server name in the client's Initial packet.

Written for this simulator after the behaviour documented for the Great Firewall since April
2024 (issue 15; Zohaib et al., "Exposing and Circumventing SNI-based QUIC Censorship of the
Great Firewall of China", USENIX Security 2025): the censor decrypts the client's Initial
packet — its keys derive from the Destination Connection ID alone (RFC 9001 §5.2), so anyone
on the path can — reads the ClientHello's SNI from its CRYPTO frames and drops the datagram
when the name is blocked; the handshake times out. Other names, and every non-Initial packet,
pass.

Runs on a router. iptables (and ip6tables in a dual-stack world) queue the client's UDP
datagrams to port 443 (``--queue-bypass``) to this device, which reads IPv4 and IPv6 packets
(:func:`udp_payload`: the IPv6 fixed header, then hop-by-hop, routing and destination-options
extension headers, RFC 8200 §4; a fragment is passed unjudged); decryption uses aioquic's
Initial keys and header-protection removal (:class:`aioquic.quic.crypto.CryptoPair`). Only
QUIC v1 and v2 Initials whose ClientHello starts in the packet (CRYPTO offset 0) are judged.
Config::

    {"queue": 33, "keywords": ["www.youtube.com"]}
"""

from __future__ import annotations

import socket
from typing import Any

from probe.lab.simnet.devices.common import parse_args, run_nfqueue_device
from probe.lab.world.web_server import parse_sni

PROG = "probe.lab.simnet.devices.quic_sni"
_V1, _V2 = 0x00000001, 0x6B3343CF


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of a QUIC variable-length integer (RFC 9000 §16)."""
    first = data[pos]
    size = 1 << (first >> 6)
    value = first & 0x3F
    for b in data[pos + 1 : pos + size]:
        value = (value << 8) | b
    return value, pos + size


def initial_sni(datagram: bytes) -> str | None:
    """The SNI of the ClientHello in a client Initial packet; None = not an Initial we can
    read, or no SNI."""
    from aioquic.quic.crypto import CryptoPair  # the world's QUIC stack (aioquic)

    if len(datagram) < 7 or not datagram[0] & 0x80:
        return None  # short header: not an Initial
    version = int.from_bytes(datagram[1:5], "big")
    packet_type = (datagram[0] & 0x30) >> 4
    if (version, packet_type) not in ((_V1, 0), (_V2, 1)):
        return None
    pos = 5
    dcid = datagram[pos + 1 : pos + 1 + datagram[pos]]
    pos += 1 + datagram[pos]
    pos += 1 + datagram[pos]  # source connection id
    token_length, pos = _varint(datagram, pos)
    pos += token_length
    length, pos = _varint(datagram, pos)
    packet = datagram[: pos + length]
    crypto = CryptoPair()
    crypto.setup_initial(cid=dcid, is_client=False, version=version)
    _, payload, _ = crypto.decrypt_packet(packet, pos, 0)
    hello = b""
    i = 0
    while i < len(payload):
        frame = payload[i]
        if frame in (0x00, 0x01):  # PADDING, PING
            i += 1
        elif frame == 0x06:  # CRYPTO: offset, length, data
            offset, i = _varint(payload, i + 1)
            size, i = _varint(payload, i)
            if offset == len(hello):
                hello += payload[i : i + size]
            i += size
        else:
            break  # ACK or anything else: the ClientHello's frames come first in practice
    if not hello:
        return None
    record = b"\x16\x03\x01" + len(hello).to_bytes(2, "big") + hello
    return parse_sni(record)


#: IPv6 extension headers walked past to the UDP header (RFC 8200 §4.3, §4.4, §4.6): each
#: starts with its next header and its length in 8-octet units beyond the first 8.
_IPV6_OPTIONS = frozenset({0, 43, 60})
_IPV6_FRAGMENT = 44


def udp_payload(packet: bytes) -> bytes | None:
    """The UDP payload of an IPv4 or IPv6 packet; None = not UDP (or a fragment, or cut)."""
    if not packet:
        return None
    if packet[0] >> 4 == 4:
        if len(packet) < 20 or packet[9] != socket.IPPROTO_UDP:
            return None
        start = (packet[0] & 0x0F) * 4
    elif packet[0] >> 4 == 6:
        if len(packet) < 40:
            return None
        nxt, start = packet[6], 40
        while nxt in _IPV6_OPTIONS and len(packet) >= start + 8:
            nxt, start = packet[start], start + 8 + packet[start + 1] * 8
        if nxt != socket.IPPROTO_UDP:
            return None  # a fragment (44), ICMPv6, TCP…: not judged
    else:
        return None
    if len(packet) < start + 8:
        return None
    return packet[start + 8:]


class QuicSni:
    def __init__(self, config: dict[str, Any]) -> None:
        self.keywords = {k.lower() for k in config["keywords"]}
        self.count = 0

    def judge(self, data: bytes) -> str:
        payload = udp_payload(data)
        if payload is None:
            return "accept"
        sni = initial_sni(payload)
        if sni is not None and sni in self.keywords:
            self.count += 1
            return "drop"
        return "accept"


def main() -> int:
    config, ready_file = parse_args(PROG)
    device = QuicSni(config)
    return run_nfqueue_device(PROG, config["queue"], device.judge, ready_file,
                              lambda: f"stopped after {device.count} drops")


if __name__ == "__main__":
    raise SystemExit(main())
