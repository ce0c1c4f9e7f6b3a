"""The app measurer (probe/measure/apps.py) on loopback: endpoints merged into one measurement
with unique tx ids, UDP request/response, a bad list recorded (never raised)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from probe.classify import classify
from probe.measure.apps import measure_app
from probe.measure.settings import MeasureSettings
from probe.model import ENDPOINT, Target

VPN = Target("endpoint://vpn", "vpn", "endpoint", 443, "", test_name=ENDPOINT)


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def]
        self.transport.sendto(b"pong:" + data, addr)


def _silent_port() -> tuple[socket.socket, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def _list(tmp: Path, entries: list[tuple[str, int, str]]) -> None:
    text = 'app = "endpoint"\n'
    for role, port, protocol in entries:
        text += (f'\n[[endpoints]]\nrole = "{role}"\nhost = "127.0.0.1"\nport = {port}\n'
                 f'protocol = "{protocol}"\n' + ('payload_hex = "70696e67"\n'
                                                 if protocol == "udp" else "")
                 + 'source = "test"\ndate = "2026-12-07"\n')
    (tmp / "vpn.toml").write_text(text)


def test_udp_answer_and_silence_and_refused_tcp(tmp_path: Path) -> None:
    silent, quiet_port = _silent_port()
    refused, closed_port = _silent_port()  # a UDP socket: nothing listens on its TCP port
    refused.close()

    async def go():
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        _list(tmp_path, [("wireguard", port, "udp"), ("openvpn", quiet_port, "udp"),
                         ("tcpvpn", closed_port, "tcp")])
        try:
            return await measure_app(VPN, MeasureSettings.with_timeout(
                0.5, use_system_resolver=False, app_lists=str(tmp_path)))
        finally:
            transport.close()

    try:
        m = asyncio.run(go())
    finally:
        silent.close()
    eps = m.extra["endpoints"]
    assert [e["role"] for e in eps] == ["wireguard", "openvpn", "tcpvpn"]
    (answer,) = eps[0]["extra"]["udp"]
    assert answer["failure"] is None and bytes.fromhex(answer["answer_hex"]) == b"pong:ping"
    assert eps[1]["extra"]["udp"][0]["failure"] == "generic_timeout_error"
    assert m.tcp and m.tcp[0].failure == "connection_refused"
    ids = [o.tx_id for o in (*m.dns, *m.tcp, *m.tls, *m.http)]
    assert len(ids) == len(set(ids))  # unique after the merge
    v = classify(m)
    # no control: the refused TCP endpoint cannot be judged, silence is never blocking
    assert v.verdict.value == "inconclusive"
    assert v.details["roles"]["wireguard"] == "ok"
    assert {e["label"].split()[0]: e["method"] for e in v.details["endpoints"]} == {
        "wireguard": None, "openvpn": "no_control", "tcpvpn": "no_control"}


def test_a_bad_list_is_recorded_not_raised(tmp_path: Path) -> None:
    (tmp_path / "vpn.toml").write_text('app = "endpoint"\n')
    m = asyncio.run(measure_app(VPN, MeasureSettings(app_lists=str(tmp_path))))
    assert "no [[endpoints]]" in m.extra["list_error"]
    v = classify(m)
    assert (v.verdict.value, v.method) == ("inconclusive", "incomplete")
