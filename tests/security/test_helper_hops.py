"""Every hop of a redirect, and the helper's own addresses, pass the same policy (issue 13).

Before: the port rule was checked on the first URL only, so an allowed site redirecting to
``http://<address>:<any port>/`` made the helper fetch that service and return its status,
headers and title; the helper's own public addresses were measured like any other.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os

import dns.message
import dns.rdatatype
import dns.rrset
import pytest

from probe.control.measure import measure_request
from probe.control.policy import OwnAddresses, Policy
from probe.control.protocol import MeasureRequest
from probe.control.service import make_policy
from probe.measure.settings import MeasureSettings, Resolver
from tests.security.helper_servers import fixed_http, http_response

SECRET = b"<title>internal admin console</title>"


def _settings() -> MeasureSettings:
    return MeasureSettings.with_timeout(1.0, use_system_resolver=False,
                                        resolvers=(Resolver("127.0.0.1", 9),))


@pytest.mark.parametrize(
    ("location", "allow", "why"),
    [
        ("http://127.0.0.1:{secret}/", "127.0.0.0/8", "port {secret} not allowed"),
        ("http://127.0.0.2:{site}/", "127.0.0.1/32", "address not allowed"),
        ("http://[::ffff:127.0.0.2]:{site}/", "127.0.0.1/32", "address not allowed"),
        ("//127.0.0.1:{secret}/admin", "127.0.0.0/8", "port {secret} not allowed"),
        ("http://name.invalid:{secret}/", "127.0.0.0/8", "port {secret} not allowed"),
    ],
    ids=["other-port", "other-address", "mapped-address", "scheme-relative", "name-other-port"],
)
def test_a_redirect_is_judged_like_the_first_url(location, allow, why):
    async def go():
        secret = await fixed_http("127.0.0.1", http_response("200 OK", {}, SECRET))
        secret2 = await fixed_http("127.0.0.2", http_response("200 OK", {}, SECRET))
        secret_port = secret.sockets[0].getsockname()[1]
        # the same port on 127.0.0.2 serves the secret too
        site_port = secret2.sockets[0].getsockname()[1]
        loc = location.format(secret=secret_port, site=site_port)
        site = await asyncio.start_server(
            _redirector(loc), "127.0.0.1", site_port)
        policy = Policy(allow=(ipaddress.ip_network(allow),), ports=frozenset({site_port}),
                        own=None)
        try:
            return await measure_request(MeasureRequest(f"http://127.0.0.1:{site_port}/"),
                                         policy, _settings()), secret_port
        finally:
            for s in (secret, secret2, site):
                s.close()

    answer, secret_port = asyncio.run(go())
    assert answer.get("refused") is True, answer
    assert answer["failure"] == why.format(secret=secret_port)
    assert b"internal" not in json.dumps(answer).encode()


def _redirector(location: str):
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(http_response("302 Found", {"location": location}))
        await writer.drain()
        writer.close()
    return handle


def test_a_redirect_within_the_policy_is_still_followed():
    async def go():
        page = await fixed_http("127.0.0.1", http_response("200 OK", {}, b"<title>ok</title>"))
        port = page.sockets[0].getsockname()[1]
        site = await asyncio.start_server(_redirector(f"http://127.0.0.1:{port}/next"),
                                          "127.0.0.1", 0)
        site_port = site.sockets[0].getsockname()[1]
        policy = Policy(allow=(ipaddress.ip_network("127.0.0.0/8"),),
                        ports=frozenset({port, site_port}), own=None)
        try:
            return await measure_request(MeasureRequest(f"http://127.0.0.1:{site_port}/"),
                                         policy, _settings())
        finally:
            page.close()
            site.close()

    answer = asyncio.run(go())
    assert answer["http"]["status"] == 200 and answer["http"]["title"] == "ok"
    assert len(answer["http"]["redirect_chain"]) == 2


OWN = frozenset({ipaddress.ip_address("8.8.4.4"), ipaddress.ip_address("2001:4860::8844")})


@pytest.mark.parametrize("spelling", ["8.8.4.4", "::ffff:8.8.4.4", "64:ff9b::808:404",
                                      "2002:808:404::1", "134743044", "[2001:4860::8844]"])
def test_the_helper_never_measures_its_own_addresses(spelling):
    policy = Policy(own=OwnAddresses(lambda: OWN))
    assert policy.refusal(spelling, 443) == "address not allowed"
    assert Policy(own=None).refusal(spelling, 443) is None  # --allow-self


def test_own_addresses_are_read_again_after_their_ttl():
    calls = []

    def reader():
        calls.append(1)
        return OWN

    cached, fresh = OwnAddresses(reader, ttl=60), OwnAddresses(reader, ttl=0)
    for _ in range(3):
        cached.get()
    assert len(calls) == 1
    for _ in range(3):
        fresh.get()
    assert len(calls) == 4


def test_allow_self_is_the_only_way_to_measure_oneself():
    assert make_policy([], [], None, 8, 1.0).own is not None
    assert make_policy([], [], None, 8, 1.0, allow_self=True).own is None


def test_this_hosts_addresses_are_found_secondary_ones_included():
    """A secondary address (what SIOCGIFADDR never shows) on an interface inside a
    private network namespace is found; loopback is never in the list."""
    import subprocess
    import sys

    if os.geteuid() != 0:
        pytest.skip("needs root to make a network namespace")
    code = ("from probe.control.policy import interface_addresses as f; "
            "print(' '.join(sorted(str(a) for a in f())))")
    script = ("set -e; ip link add d0 type veth peer name d1; ip link set d0 up; "
              "ip addr add 198.51.100.7/24 dev d0; ip addr add 198.51.100.8/24 dev d0; "
              "ip addr add 2001:db8::7/64 dev d0 nodad; "
              f"{sys.executable} -c \"{code}\"")
    out = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True,
                         text=True, timeout=30, check=True).stdout.split()
    assert {"198.51.100.7", "198.51.100.8", "2001:db8::7"} <= set(out)
    assert not any(ipaddress.ip_address(a).is_loopback for a in out)


class _RebindingDNS(asyncio.DatagramProtocol):
    """A resolver whose A answer for every name changes after the first query (DNS
    rebinding: TTL 0, first an allowed address, then a refused one)."""

    def __init__(self, first: str, then: str) -> None:
        self.answers = [first, then]
        self.asked = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        question = q.question[0]
        if question.rdtype == dns.rdatatype.A:
            ip = self.answers[min(self.asked, 1)]
            self.asked += 1
            r.answer.append(dns.rrset.from_text(question.name, 0, "IN", "A", ip))
        self.transport.sendto(r.to_wire(), addr)


@pytest.mark.parametrize("where", ["redirect to the same name", "the next request"])
def test_dns_rebinding_is_judged_at_every_resolution_and_the_checked_address_is_dialled(where):
    """The name first resolves to an allowed address, then (TTL 0) to a refused one: every
    resolution is judged and only the addresses judged are dialled (no second lookup at
    connect time), so the refused service is never reached."""
    async def go():
        loop = asyncio.get_running_loop()
        reached: list[int] = []

        async def secret_handler(reader, writer):
            reached.append(1)
            writer.write(http_response("200 OK", {}, SECRET))
            await writer.drain()
            writer.close()

        secret = await asyncio.start_server(secret_handler, "127.0.0.1", 0)
        port = secret.sockets[0].getsockname()[1]
        location = (f"http://rebind.test:{port}/next" if where.startswith("redirect")
                    else "/next")
        if where.startswith("redirect"):
            site = await asyncio.start_server(_redirector(location), "127.0.0.2", port)
        else:
            site = await asyncio.start_server(
                lambda r, w: fixed_answer(r, w, b"<title>ok</title>"), "127.0.0.2", port)
        resolver = _RebindingDNS("127.0.0.2", "127.0.0.1")
        transport, _ = await loop.create_datagram_endpoint(lambda: resolver,
                                                           local_addr=("127.0.0.1", 0))
        settings = MeasureSettings.with_timeout(
            1.0, use_system_resolver=False,
            resolvers=(Resolver("127.0.0.1", transport.get_extra_info("sockname")[1]),))
        policy = Policy(allow=(ipaddress.ip_network("127.0.0.2/32"),),
                        ports=frozenset({port}), own=None)
        try:
            answers = [await measure_request(MeasureRequest(f"http://rebind.test:{port}/"),
                                             policy, settings)]
            if not where.startswith("redirect"):
                answers.append(await measure_request(
                    MeasureRequest(f"http://rebind.test:{port}/"), policy, settings))
            return answers, reached, resolver.asked
        finally:
            transport.close()
            for s in (secret, site):
                s.close()

    answers, reached, asked = asyncio.run(go())
    assert asked >= 2, "the name was resolved once: nothing was rebound"
    assert answers[-1].get("refused") is True and answers[-1]["failure"] == (
        "address not allowed"), answers[-1]
    if len(answers) == 2:
        assert answers[0]["http"]["title"] == "ok"  # before the rebinding: measured
    assert reached == []
    assert b"internal" not in json.dumps(answers).encode()


async def fixed_answer(reader, writer, body: bytes) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(http_response("200 OK", {}, body))
    await writer.drain()
    writer.close()
