"""The helper's address policy against every spelling of a non-public address (issue 13).

Each refused spelling is a case: as an address given in a request, as a resolved answer, and
as the host of the URL itself. Public spellings must pass (no over-blocking).
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from probe.addresses import embedded_ipv4, parse_host
from probe.control.measure import measure_request
from probe.control.policy import Policy
from probe.control.protocol import MeasureRequest
from probe.measure import dns
from probe.measure.settings import MeasureSettings, Resolver

#: (spelling, what it is). Every one must be refused by a default policy.
REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.1", "loopback, short form"),
    ("127.0.1", "loopback, three parts"),
    ("2130706433", "loopback, decimal"),
    ("0177.0.0.1", "loopback, octal"),
    ("0x7f.1", "loopback, hex + short"),
    ("0x7f000001", "loopback, one hex number"),
    ("017700000001", "loopback, one octal number"),
    ("127.0.0.1.", "loopback, trailing dot"),
    ("[::1]", "IPv6 loopback, bracketed"),
    ("::1", "IPv6 loopback"),
    ("0:0:0:0:0:0:0:1", "IPv6 loopback, expanded"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("[::ffff:7f00:1]", "IPv4-mapped loopback, hex, bracketed"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::ffff:0:127.0.0.1", "IPv4-translated loopback (RFC 2765)"),
    ("64:ff9b::127.0.0.1", "NAT64 of loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of the metadata address"),
    ("64:ff9b:1::a00:1", "NAT64 local-use prefix"),
    ("2002:7f00:1::", "6to4 of loopback"),
    ("2002:a9fe:a9fe::1", "6to4 of the metadata address"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo, client 127.0.0.1 obfuscated"),
    ("fe80::200:5efe:c0a8:101", "ISATAP link-local"),
    ("2001:db8:1::5efe:a00:1", "ISATAP embedding 10.0.0.1"),
    ("0.0.0.0", "unspecified"),
    ("0", "unspecified, one number"),
    ("::", "IPv6 unspecified"),
    ("10.0.0.1", "private"),
    ("012.0.0.1", "private, octal first byte (10.0.0.1)"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private, top of 172.16/12"),
    ("192.168.1.1", "private"),
    ("3232235777", "private, decimal 192.168.1.1"),
    ("0xc0.0xa8.1.1", "private, hex dotted"),
    ("169.254.169.254", "cloud metadata"),
    ("0xa9fea9fe", "cloud metadata, hex"),
    ("2852039166", "cloud metadata, decimal"),
    ("[::ffff:169.254.169.254]", "cloud metadata, mapped"),
    ("fe80::1", "IPv6 link-local"),
    ("fe80::1%eth0", "IPv6 link-local with a zone id"),
    ("[fe80::1%25eth0]", "IPv6 link-local, URL-encoded zone id"),
    ("fc00::1", "unique local"),
    ("fd12:3456:789a::1", "unique local"),
    ("fec0::1", "site-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast SSDP"),
    ("ff02::1", "IPv6 multicast"),
    ("ff05::1:3", "IPv6 multicast DHCP"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT top"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.1", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.1", "documentation"),
    ("203.0.113.1", "documentation"),
    ("2001:db8::1", "IPv6 documentation"),
    ("192.0.0.8", "IETF protocol assignment"),
    ("100::1", "discard-only"),
    ("2001:2::1", "IPv6 benchmarking"),
    ("4000::1", "IPv6 outside global unicast"),
]

#: Public spellings that must be allowed (no over-blocking).
ALLOWED = [
    "1.1.1.1", "8.8.8.8", "93.184.215.14", "1.0.0.1", "9.9.9.9", "185.199.108.153",
    "2606:4700:4700::1111", "2001:4860:4860::8888", "[2a00:1450:4001:80b::200e]",
    "16843009",            # 1.1.1.1, decimal
    "0x08080808",          # 8.8.8.8, hex
    "8.8.8.8.",            # trailing dot
    "::ffff:8.8.8.8",      # IPv4-mapped public
    "64:ff9b::808:808",    # NAT64 of a public address
    "2002:808:808::1",     # 6to4 of a public address
    "172.32.0.1", "172.15.255.1", "100.128.0.1", "192.169.0.1", "169.255.0.1",
    "198.20.0.1", "11.0.0.1", "126.255.255.255", "128.0.0.1", "223.255.255.1",
]

NO_SELF = None  # policies below do not read this host's interfaces (tested in test_helper_own)


@pytest.mark.parametrize(("spelling", "what"), REFUSED, ids=[w for _, w in REFUSED])
def test_refused_spellings(spelling, what):
    policy = Policy(own=NO_SELF)
    assert parse_host(spelling) is not None, f"{spelling} ({what}) is an address"
    assert policy.address_refusal(spelling) is not None, f"{spelling} ({what}) allowed"
    assert policy.refusal(spelling, 443) == "address not allowed"


def test_the_corpus_is_big_enough():
    assert len(REFUSED) >= 30 and len({s for s, _ in REFUSED}) == len(REFUSED)


@pytest.mark.parametrize("spelling", ALLOWED)
def test_public_spellings_pass(spelling):
    assert Policy(own=NO_SELF).address_refusal(spelling) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2130706433", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"),
     ("127.1", "127.0.0.1"), ("10.1", "10.0.0.1"), ("192.168.257", "192.168.1.1"),
     ("[::1]", "::1"), ("fe80::1%eth0", "fe80::1"), ("1.2.3.4.", "1.2.3.4"),
     ("example.org", None), ("1.2.3.4.5", None), ("256.1.1.1", None), ("08.1.1.1", None),
     ("0x", "0.0.0.0"), ("", None), ("１２７.0.0.1", None), ("127.0.0.1:80", None)],
)
def test_spellings_read_as_the_c_library_does(text, expected):
    addr = parse_host(text)
    assert (str(addr) if addr else None) == expected


@pytest.mark.parametrize(
    ("v6", "v4"),
    [("::ffff:10.0.0.1", ["10.0.0.1"]), ("::10.0.0.1", ["10.0.0.1"]),
     ("64:ff9b::10.0.0.1", ["10.0.0.1"]), ("2002:0a00:0001::", ["10.0.0.1"]),
     ("2001:0:4136:e378:8000:63bf:f5ff:fffe", ["65.54.227.120", "10.0.0.1"]),
     ("::1", []), ("::", []), ("2606:4700::1111", [])],
)
def test_embedded_ipv4(v6, v4):
    assert [str(a) for a in embedded_ipv4(ipaddress.ip_address(v6))] == v4


@pytest.mark.parametrize("spelling", ["127.0.0.1", "::ffff:127.0.0.1", "::127.0.0.1",
                                      "0.0.0.0", "::", "[::1]", "64:ff9b::7f00:1"])
def test_the_probe_never_dials_its_own_loopback_in_any_spelling(spelling):
    """The probe's own rule (measure.dns.is_loopback) is the same module's judgement."""
    assert dns.is_loopback(spelling)


def _settings() -> MeasureSettings:
    # a resolver that is not there (loopback discard port): nothing leaves the machine
    return MeasureSettings.with_timeout(0.5, use_system_resolver=False,
                                        resolvers=(Resolver("127.0.0.1", 9),))


URL_SPELLINGS = [s for s, _ in REFUSED if ":" not in s.strip("[]") and "%" not in s]


@pytest.mark.parametrize("host", URL_SPELLINGS)
def test_a_url_naming_a_refused_address_is_refused_before_any_dial(host):
    answer = asyncio.run(measure_request(MeasureRequest(f"http://{host}/"), Policy(own=NO_SELF),
                                         _settings()))
    assert answer["refused"] is True and "dns" not in answer


def _canonical(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


PROBE_SENT = [a for a in (_canonical(s) for s, _ in REFUSED) if a]


@pytest.mark.parametrize("start", range(0, len(PROBE_SENT), 8))
def test_refused_addresses_sent_by_the_probe_are_not_dialled(start):
    batch = tuple(PROBE_SENT[start:start + 8])
    answer = asyncio.run(measure_request(MeasureRequest("http://site.invalid/", batch),
                                         Policy(own=NO_SELF), _settings()))
    assert answer["refused_addresses"] == len(batch)
    assert answer["endpoints"] == {}


@pytest.mark.parametrize("url", ["http://１２７.0.0.1/", "http://127。0。0。1/",
                                 "http://0x7f.0.0.1:80/", "http://[::ffff:127.0.0.1]/",
                                 "https://2130706433/", "http://[fe80::1%25eth0]/"])
def test_unusual_url_hosts_are_refused(url):
    answer = asyncio.run(measure_request(MeasureRequest(url), Policy(own=NO_SELF), _settings()))
    assert answer.get("refused") is True, answer
