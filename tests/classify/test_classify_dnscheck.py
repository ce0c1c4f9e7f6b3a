"""The ``dnscheck`` rules: a resolver that answers is ok; one kept out of reach is blocked with
the technique as its method (the provider's name, its address, its SNI) only where the
control reaches it; a provider down everywhere is down; without a control never blocked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from probe import failures as f
from probe.classify import classify
from probe.model import (
    DNSAnswer,
    DNSObservation,
    HTTPObservation,
    Measurement,
    TCPObservation,
    TLSObservation,
    VerdictKind,
)
from probe.targets import parse_input
from tests.factories import BOGON, context, ep, sys_dns, tcp, tls

CTX = context()
PROVIDER = "dns.example"
PIP = "93.184.216.34"  # the provider's address, as the control's resolver sees it
DOH = f"doh://{PROVIDER}/dns-query"
DOT = f"dot://{PROVIDER}:853"
T = f.GENERIC_TIMEOUT


def query(tx: int = 10, engine: str = "dot", failure: str | None = None,
          rcode: str | None = "NOERROR") -> DNSObservation:
    resolver = f"https://{PROVIDER}/dns-query" if engine == "doh" else f"{PROVIDER}:853"
    answers = (DNSAnswer("A", "192.0.2.80", 60),) if rcode == "NOERROR" and not failure else ()
    return DNSObservation(tx, "example.org", "A", engine, resolver, 0.3, 0.35,
                          failure, rcode=None if failure else rcode, answers=answers)


def control(url: str, addrs: tuple[str, ...] = (PIP,), **endpoint: Any) -> dict[str, Any]:
    port = 443 if url.startswith("doh") else 853
    return {"version": 1, "url": url, "failure": None, "control": "https://control.test",
            "control_failure": None, "test_name": "dnscheck",
            "dns": {"resolver": "149.112.0.10:53", "addrs": list(addrs), "cnames": [],
                    "failure": None},
            "endpoints": dict([ep(PIP, port, **endpoint)]), "http": None, "elapsed": 0.2}


def m(url: str = DOT, dns: tuple[DNSObservation, ...] = (), tcp_: tuple[TCPObservation, ...] = (),
      tls_: tuple[TLSObservation, ...] = (), http_: tuple[HTTPObservation, ...] = (),
      ctl: tuple[dict[str, Any], ...] = ()) -> Measurement:
    return Measurement(parse_input(url), "2026-11-21T10:15:00.000000Z",
                       "2026-11-21T10:15:05.000000Z", dns=dns, tcp=tcp_, tls=tls_, http=http_,
                       control=ctl)


BOOT = sys_dns(PROVIDER, PIP)
TCP_OK = (tcp(10, PIP, port=853),)
TLS_OK = (tls(10, PIP, sni=PROVIDER),)


def doh_http(status: int) -> HTTPObservation:
    return HTTPObservation(10, f"https://{PROVIDER}/dns-query", "POST", PIP, 443, 0.3, 0.35,
                           None, status=status)


@dataclass(frozen=True)
class Row:
    name: str
    m: Measurement
    verdict: str
    method: str | None


ROWS = [
    Row("dot-answers", m(dns=BOOT + (query(),), tcp_=TCP_OK, tls_=TLS_OK,
                         ctl=(control(DOT),)), "ok", None),
    Row("dot-answers-nxdomain-still-works", m(dns=BOOT + (query(rcode="NXDOMAIN"),),
                                              tcp_=TCP_OK, tls_=TLS_OK), "ok", None),
    Row("doh-answers-ip-literal-no-control", m(
        f"doh://{PIP}/dns-query", dns=(query(engine="doh"),), tcp_=(tcp(10, PIP),),
        tls_=(tls(10, PIP, sni=PIP),), http_=(doh_http(200),)), "ok", None),
    # technique: the provider's name
    Row("provider-name-bogon", m(dns=sys_dns(PROVIDER, BOGON), ctl=(control(DOT),)),
        "blocked", "dns.bogon"),
    Row("provider-name-nxdomain", m(dns=sys_dns(PROVIDER, failure=f.DNS_NXDOMAIN),
                                    ctl=(control(DOT),)), "blocked", "dns.nxdomain"),
    # technique: the address
    Row("address-dropped-control-connects", m(
        dns=BOOT + (query(failure=T),), tcp_=(tcp(10, PIP, T, port=853),),
        ctl=(control(DOT),)), "blocked", "tcp.timeout"),
    Row("address-dropped-no-control", m(
        dns=BOOT + (query(failure=T),), tcp_=(tcp(10, PIP, T, port=853),)),
        "inconclusive", "no_control"),
    Row("provider-down-everywhere", m(
        dns=BOOT + (query(failure=f.CONNECTION_REFUSED),),
        tcp_=(tcp(10, PIP, f.CONNECTION_REFUSED, port=853),),
        ctl=(control(DOT, tcp_failure=f.CONNECTION_REFUSED),)), "down", "down.tcp"),
    # technique: the SNI
    Row("sni-reset-control-handshakes", m(
        DOH, dns=BOOT + (query(engine="doh", failure=f.CONNECTION_RESET),),
        tcp_=(tcp(10, PIP),), tls_=(tls(10, PIP, f.CONNECTION_RESET, sni=PROVIDER),),
        ctl=(control(DOH),)), "blocked", "tls.reset"),
    Row("dot-sni-timeout-control-handshakes", m(
        dns=BOOT + (query(failure=T),), tcp_=TCP_OK,
        tls_=(tls(10, PIP, T, sni=PROVIDER),), ctl=(control(DOT),)), "blocked", "tls.timeout"),
    # after a validated handshake nobody on the path can forge the provider's refusal
    Row("doh-404-is-the-provider", m(
        DOH, dns=BOOT + (query(engine="doh", failure="unknown_failure: DoH answered HTTP 404"),),
        tcp_=(tcp(10, PIP),), tls_=TLS_OK, http_=(doh_http(404),), ctl=(control(DOH),)),
        "down", "down.http"),
    Row("silence-after-handshake", m(
        dns=BOOT + (query(failure=T),), tcp_=TCP_OK, tls_=TLS_OK, ctl=(control(DOT),)),
        "inconclusive", "incomplete"),
    Row("nothing", m(), "inconclusive", "incomplete"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_dnscheck_rules(row: Row) -> None:
    v = classify(row.m, CTX)
    assert (v.verdict.value, v.method) == (row.verdict, row.method), v.evidence
    if v.verdict is VerdictKind.BLOCKED:
        assert v.confidence >= 0.7


def test_no_blocked_row_without_a_control_or_with_one_failing_too() -> None:
    for row in ROWS:
        if not row.m.control or "everywhere" in row.name:
            assert classify(row.m, CTX).verdict is not VerdictKind.BLOCKED, row.name
