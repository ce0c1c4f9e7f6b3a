"""Canary sampling on loopback: each scope's question, and the state the round shows."""

from __future__ import annotations

import asyncio
import socket

import pytest

from probe.classify.health import NetworkState, infer_state
from probe.lab.world.loopback import LoopbackWorld, demo_world
from probe.measure import health


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with LoopbackWorld(demo_world(tmp_path_factory.mktemp("world"))) as w:
        yield w


def test_a_round_samples_every_scope(world):
    dns_host, dns_port = world.dns_address
    canaries = [
        ("gateway", "127.0.0.1"),  # nothing on :53 -> refused, which proves the link is up
        ("resolver", f"{dns_host}:{dns_port}"),
        ("domestic", f"https://127.0.0.1:{world.https_port}/"),
        ("international", f"https://127.0.0.9:{world.https_port}/"),  # nothing listens
        ("control", f"http://127.0.0.1:{world.http_port}/"),
    ]
    samples = asyncio.run(health.HealthSampler(canaries, 1.0, "ok.world.test").round("before"))
    got = {s.scope.value: s.failure for s in samples}
    assert got == {"gateway": None, "resolver": None, "domestic": None,
                   "international": "connection_refused", "control": None}
    assert len({s.at for s in samples}) == 1 and all(s.phase == "before" for s in samples)
    assert infer_state(samples) is NetworkState.WHOLE


def test_silent_resolver_times_out_within_the_step_deadline():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        sampler = health.HealthSampler([("resolver", f"127.0.0.1:{port}")], 0.5)
        (sample,) = asyncio.run(sampler.round("during"))
    finally:
        silent.close()
    assert sample.failure == "generic_timeout_error"
    assert sample.elapsed < 1.5


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("Iface\tDestination\tGateway\tFlags\n"
         "eth0\t00000000\t0101A8C0\t0003\neth0\t0001A8C0\t00000000\t0001\n", "192.168.1.1"),
        ("Iface\tDestination\tGateway\tFlags\neth0\t0001A8C0\t00000000\t0001\n", None),
    ],
)
def test_default_gateway_from_the_routing_table(tmp_path, route, expected):
    p = tmp_path / "route"
    p.write_text(route)
    assert health.default_gateway(str(p)) == expected


def test_system_resolver_from_resolv_conf(tmp_path):
    p = tmp_path / "resolv.conf"
    p.write_text("# comment\nsearch lan\nnameserver 10.0.0.53\nnameserver 1.1.1.1\n")
    assert health.system_resolver(str(p)) == "10.0.0.53"
    assert health.system_resolver(str(tmp_path / "missing")) is None


# --- named canaries over IPv6 (issue 15), on loopback: ::1 ------------------------------------


class _Zone(asyncio.DatagramProtocol):
    """A tiny authoritative answerer on loopback: v6.test and dead6.test have A 127.0.0.1
    and AAAA ::1; v4only.test has only the A record."""

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        import dns.message
        import dns.rrset

        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().rstrip(".")
        rtype = dns.rdatatype.to_text(question.rdtype)
        records = {"A": "127.0.0.1", "AAAA": "::1"}
        if name in ("v6.test", "dead6.test") or (name == "v4only.test" and rtype == "A"):
            reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", rtype,
                                                    records[rtype]))
        self.transport.sendto(reply.to_wire(), addr)


async def _dual_listener():
    """A TCP server on ::1 and on 127.0.0.1 at the same port."""
    server6 = await asyncio.start_server(lambda r, w: w.close(), "::1", 0)
    port = server6.sockets[0].getsockname()[1]
    server4 = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    return port, (server4, server6)


@pytest.mark.parametrize(("ipv6", "name", "listening", "v6_failure"), [
    # IPv6 on, the name has AAAA, something listens on ::1: an IPv6 sample that answered
    (True, "v6.test", True, None),
    # IPv6 on, nothing listens on the IPv6 side: the IPv6 sample failed
    (True, "dead6.test", False, "connection_refused"),
    # no AAAA record: the name says nothing about IPv6, no IPv6 sample
    (True, "v4only.test", True, "none"),
    # IPv6 off for the run: no IPv6 sample
    (False, "v6.test", True, "none"),
])
def test_named_canary_over_ipv6(ipv6, name, listening, v6_failure):
    from probe.classify.health import IPv6State, ipv6_state, sample_family

    async def go():
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(_Zone, local_addr=("127.0.0.1", 0))
        dns_port = transport.get_extra_info("sockname")[1]
        port, servers = await _dual_listener()
        if not listening:
            servers[1].close()  # the IPv6 side refuses
            await servers[1].wait_closed()
        try:
            sampler = health.HealthSampler(
                [("international", f"https://{name}:{port}/")], 1.0,
                resolvers=[("127.0.0.1", dns_port)], use_system_resolver=False, ipv6=ipv6)
            return await sampler.round("before")
        finally:
            transport.close()
            for s in servers:
                s.close()

    samples = asyncio.run(go())
    assert samples[0].failure is None and sample_family(samples[0].target) == "ipv4"
    six = [s for s in samples if sample_family(s.target) == "ipv6"]
    if v6_failure == "none":
        assert len(samples) == 1 and not six
        return
    (s6,) = six
    assert s6.target.endswith(health.IPV6_MARK) and s6.scope.value == "international"
    assert s6.failure == v6_failure
    assert ipv6_state(samples) is (IPv6State.WORKS if v6_failure is None else IPv6State.BROKEN)


@pytest.mark.parametrize(("table", "expected"), [
    ("00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
     "fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0\n", True),
    ("fd000000000000000000000000000000 40 00000000000000000000000000000000 00 "
     "00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n", False),
    ("", False),
])
def test_ipv6_default_route(tmp_path, table, expected):
    path = tmp_path / "ipv6_route"
    path.write_text(table)
    assert health.has_ipv6_route(str(path)) is expected
    assert health.has_ipv6_route(str(tmp_path / "missing")) is False


# --- portal checks (captive portals) -------------------------------------------------------------

APPLE_BODY = b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"
_RESPONSES = {
    "/generate_204": b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    "/hotspot-detect.html": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                            + str(len(APPLE_BODY)).encode() + b"\r\n\r\n" + APPLE_BODY,
    "/connecttest.txt": b"HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\nMicrosoft Connect Test",
    "/redirect": b"HTTP/1.1 302 Found\r\nLocation: http://portal.test/login?mac=aa:bb:cc&ip="
                 b"10.1.2.3\r\nContent-Length: 0\r\n\r\n",
    "/page": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 44\r\n\r\n"
             b"<html><title>Log in</title>Welcome</html>\n\n\n",
    "/plain": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "/silent-close": b"",
}


async def _portal_round(answers, paths):
    async def serve(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ")[1].decode()
        writer.write(_RESPONSES[path])
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    urls = {p: f"http://127.0.0.1:{port}{p}" for p in paths}
    answers.update({urls["/generate_204"]: health.PortalAnswer(204, body=b""),
                    urls["/hotspot-detect.html"]: health.PortalAnswer(200, title="Success"),
                    urls["/connecttest.txt"]: health.PortalAnswer(
                        200, body=b"Microsoft Connect Test")})
    canaries = [("portal", urls[p]) for p in paths] + [("portal", "http://127.0.0.9:1/")]
    async with server:
        samples = await health.HealthSampler(canaries, 1.0).round("during")
    return {s.target.split("/", 3)[-1] if "127.0.0.1" in s.target else "dead":
            (s.failure, s.unexpected) for s in samples}


def test_portal_checks_record_the_unexpected_answer(monkeypatch):
    """The known answers are no signature; a redirect is its status and Location host (never
    the portal's query with the client's MAC and address); a page its title, else a digest;
    a failed check is an ordinary failure with no signature."""
    answers = dict(health.PORTAL_ANSWERS)
    monkeypatch.setattr(health, "PORTAL_ANSWERS", answers)
    got = asyncio.run(_portal_round(answers, list(_RESPONSES)))
    hello = "2cf24dba5fb0a30e"  # sha256("hello")
    assert got == {
        "generate_204": (None, None),
        "hotspot-detect.html": (None, None),
        "connecttest.txt": (None, None),
        "redirect": (None, "302 portal.test"),
        "page": (None, "200 title 'Log in'"),
        "plain": (None, f"200 sha256 {hello}"),
        "silent-close": (got["silent-close"][0], None),
        "dead": ("connection_refused", None),
    }
    assert got["silent-close"][0] is not None
