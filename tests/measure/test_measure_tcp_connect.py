"""The tcp_connect measure step on loopback: DNS, one connect per address, nothing sent."""

from __future__ import annotations

import asyncio
import socket

from probe import failures as f
from probe.lab.world.loopback import DEMO_SITES, LoopbackWorld, demo_world
from probe.measure.settings import MeasureSettings, Resolver
from probe.measure.tcp_connect import measure_tcp_connect
from probe.targets import parse_input


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def test_an_ip_literal_input_connects_without_dns() -> None:
    with _listener() as sock:
        port = sock.getsockname()[1]
        target = parse_input(f"tcp://127.0.0.1:{port}")
        m = asyncio.run(measure_tcp_connect(target, MeasureSettings.with_timeout(2.0)))
    assert m.test_name == "tcp_connect" and m.dns == () and m.http == () and m.tls == ()
    (c,) = m.tcp
    assert (c.ip, c.port, c.failure) == ("127.0.0.1", port, None)
    assert m.extra["addresses"] == ["127.0.0.1"]


def test_a_closed_port_is_refused() -> None:
    with _listener() as sock:
        port = sock.getsockname()[1]
    m = asyncio.run(measure_tcp_connect(parse_input(f"tcp://127.0.0.1:{port}"),
                                        MeasureSettings.with_timeout(2.0)))
    assert [c.failure for c in m.tcp] == [f.CONNECTION_REFUSED]


def test_names_resolve_with_the_configured_resolvers_and_the_gate_is_held(tmp_path) -> None:
    held: list[str] = []

    class Gate:
        def __init__(self, ip: str) -> None:
            self.ip = ip

        async def __aenter__(self) -> None:
            held.append(self.ip)

        async def __aexit__(self, *exc: object) -> None:
            return None

    with LoopbackWorld(demo_world(tmp_path)) as world:
        host, port = world.dns_address
        settings = MeasureSettings.with_timeout(
            2.0, use_system_resolver=False, resolvers=(Resolver(host, port),), dns_linger=0.0)
        seen: list[list[str]] = []
        target = parse_input(f"tcp://{DEMO_SITES['ok'][0]}:{world.https_port}")
        m = asyncio.run(measure_tcp_connect(target, settings, seen.append, Gate))
        missing = parse_input(f"tcp://{DEMO_SITES['nxdomain'][0]}:{world.https_port}")
        gone = asyncio.run(measure_tcp_connect(missing, settings))
    assert seen == [["127.0.0.1"]] and held == ["127.0.0.1"]
    assert m.dns and [c.failure for c in m.tcp] == [None]
    assert gone.tcp == () and any(d.failure == f.DNS_NXDOMAIN for d in gone.dns)


def test_addresses_the_filter_refuses_are_never_dialled() -> None:
    settings = MeasureSettings.with_timeout(1.0, use_system_resolver=False,
                                            address_filter=lambda ip: ip != "127.0.0.1")
    m = asyncio.run(measure_tcp_connect(parse_input("tcp://127.0.0.1:9"), settings))
    assert m.tcp == () and m.extra["not_allowed"] == ["127.0.0.1"]
