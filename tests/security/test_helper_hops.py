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
