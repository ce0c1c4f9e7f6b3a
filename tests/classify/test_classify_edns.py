"""Encrypted resolvers (DoH/DoT) in the web test's DNS rules: witnesses, never suspects.

An answer the system/UDP resolver lies about while DoH/DoT gets the control's answer is DNS
tampering with strong evidence naming both; a DoH/DoT failure or lie alone is never a block.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from probe import failures as f
from probe.classify import classify
from probe.model import DNSAnswer, DNSObservation, VerdictKind
from tests.factories import (
    BLOCKPAGE_IP,
    BOGON,
    HOST,
    IP,
    LIE,
    cert,
    context,
    ctl,
    http,
    meas,
    sys_dns,
    tcp,
    tls,
    udp,
)

CTX = context()
DOH = "https://dns.example/dns-query"
DOT = "1.1.1.1:853"
T = f.GENERIC_TIMEOUT


def enc(*ips: str, engine: str = "doh", failure: str | None = None,
        rcode: str | None = "NOERROR", tx: int = 40) -> tuple[DNSObservation, ...]:
    """An encrypted resolver's A and AAAA records."""
    resolver = DOH if engine == "doh" else DOT
    out = []
    for i, qtype in enumerate(("A", "AAAA")):
        answers = tuple(DNSAnswer(qtype, a, 60) for a in ips if (":" in a) == (qtype == "AAAA"))
        fail = failure or (None if answers else f.DNS_NO_ANSWER)
        out.append(DNSObservation(tx + i, HOST, qtype, engine, resolver, 0.0, 0.2, fail,
                                  rcode=None if failure else rcode, answers=answers))
    return tuple(out)


BAD_CERT = tls(ip=LIE, verified=False, error=f.SSL_INVALID_HOSTNAME,
               chain=(cert("CN=other.example", sans=("other.example",)),))


@dataclass(frozen=True)
class Row:
    name: str
    dns: tuple[DNSObservation, ...]
    verdict: str
    method: str | None
    low: float = 0.0
    high: float = 1.0
    names_encrypted: bool = False
    tcp_: tuple = ()  # type: ignore[type-arg]
    tls_: tuple = ()  # type: ignore[type-arg]
    http_: tuple = ()  # type: ignore[type-arg]


ROWS = [
    # plain DNS lies, encrypted DNS tells the truth: strong evidence naming both
    Row("bogon-doh-truth", sys_dns(HOST, BOGON) + enc(IP), "blocked", "dns.bogon", 0.95, 1.0,
        True),
    Row("bogon-dot-truth", sys_dns(HOST, BOGON) + enc(IP, engine="dot"), "blocked",
        "dns.bogon", 0.95, 1.0, True),
    Row("nxdomain-doh-truth", sys_dns(failure=f.DNS_NXDOMAIN) + enc(IP), "blocked",
        "dns.nxdomain", 0.95, 1.0, True),
    Row("udp-refused-doh-truth", (udp(failure=f.DNS_REFUSED, rcode="REFUSED"),) + enc(IP),
        "blocked", "dns.refused", 0.95, 1.0, True),
    Row("blockpage-ip-doh-truth", sys_dns(HOST, BLOCKPAGE_IP) + enc(IP), "blocked",
        "dns.blockpage", 0.95, 1.0, True),
    Row("inconsistent-doh-truth", sys_dns(HOST, LIE) + enc(IP), "blocked", "dns.inconsistent",
        0.95, 1.0, True, tcp_=(tcp(ip=LIE),), tls_=(BAD_CERT,)),
    # the same lies without a witness keep their usual confidence and name none
    Row("bogon-no-witness", sys_dns(HOST, BOGON), "blocked", "dns.bogon", 0.8, 0.9),
    Row("bogon-doh-also-lies", sys_dns(HOST, BOGON) + enc(LIE), "blocked", "dns.bogon", 0.8,
        0.9),
    Row("bogon-doh-unreachable", sys_dns(HOST, BOGON) + enc(failure=f.CONNECTION_RESET),
        "blocked", "dns.bogon", 0.8, 0.9),
    # an encrypted resolver alone failing or lying is never a site block
    Row("doh-unreachable-system-fine", sys_dns() + enc(failure=f.CONNECTION_RESET), "ok", None,
        tcp_=(tcp(),), tls_=(tls(),), http_=(http(),)),
    Row("dot-timeout-alone", enc(failure=T, engine="dot"), "inconclusive",
        "encrypted_dns_failed"),
    Row("doh-tls-failure-alone", enc(failure=f.SSL_INVALID_HOSTNAME), "inconclusive",
        "encrypted_dns_failed"),
    Row("doh-nxdomain-alone-provider-filter", enc(failure=f.DNS_NXDOMAIN), "inconclusive",
        "encrypted_dns_failed"),
    Row("doh-bogon-provider-filter-system-fine", sys_dns() + enc(BOGON), "ok", None,
        tcp_=(tcp(),), tls_=(tls(),), http_=(http(),)),
    Row("doh-blockpage-ip-provider-filter-system-fine", sys_dns() + enc(BLOCKPAGE_IP), "ok",
        None, tcp_=(tcp(),), tls_=(tls(),), http_=(http(),)),
    # a plain resolver failing as well as the encrypted one: the plain failure is judged
    Row("both-fail-plain-named", sys_dns(failure=f.DNS_NXDOMAIN) + enc(failure=T), "blocked",
        "dns.nxdomain", 0.8, 0.9),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_encrypted_resolvers_as_witnesses(row: Row) -> None:
    m = meas(dns=row.dns, tcp_=row.tcp_, tls_=row.tls_, http_=row.http_, control=(ctl(),))
    v = classify(m, CTX)
    assert (v.verdict.value, v.method) == (row.verdict, row.method), v.evidence
    assert row.low <= v.confidence <= row.high, (v.confidence, v.evidence)
    assert ("encrypted_resolver" in v.details) is row.names_encrypted
    if row.names_encrypted:
        assert v.details["encrypted_addresses"] == [IP]
        assert "encrypted resolver" in v.evidence and IP in v.evidence
    if v.verdict is VerdictKind.BLOCKED:
        assert v.details["engine"] in ("system", "udp")
