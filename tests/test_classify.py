"""Tests for probe.classify: observations in, verdict + method out, one row per rule."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import probe.classify.verdict as verdict_module
from probe import failures as f
from probe.classify import ANALYSIS_VERSION, METHODS, classify
from probe.classify.verdict import is_bogon
from probe.model import (
    Certificate,
    DNSAnswer,
    DNSObservation,
    HTTPObservation,
    Measurement,
    Target,
    TCPObservation,
    TLSObservation,
    VerdictKind,
)

IP = "93.184.216.34"
IP2 = "93.184.216.35"
IP6 = "2606:2800:220:1::1"
LIE = "10.10.34.35"

# --- builders ---------------------------------------------------------------------------------


def target(url: str) -> Target:
    scheme, rest = url.split("://")
    host = rest.split("/")[0]
    return Target(url, host, scheme, 443 if scheme == "https" else 80, "/")


def sys_dns(host: str = "example.test", *ips: str, failure: str | None = None,
            tx: int = 1) -> tuple[DNSObservation, ...]:
    """The system resolver's pair of records (A and AAAA share a transaction)."""
    ips = ips or (() if failure else (IP,))
    out = []
    for qtype in ("A", "AAAA"):
        answers = tuple(DNSAnswer(qtype, i) for i in ips if (":" in i) == (qtype == "AAAA"))
        fail = failure or (None if answers else f.DNS_NO_ANSWER)
        out.append(DNSObservation(tx, host, qtype, "system", "system", 0.0, 0.05, fail,
                                  answers=answers))
    return tuple(out)


def udp(host: str, *ips: str, failure: str | None = None, rcode: str | None = "NOERROR",
        index: int = 0, tx: int = 7, qtype: str = "A",
        resolver: str = "8.8.8.8:53") -> DNSObservation:
    return DNSObservation(tx, host, qtype, "udp", resolver, 0.0, 0.02 + index / 10, failure,
                          rcode=rcode, answers=tuple(DNSAnswer(qtype, i, 60) for i in ips),
                          response_index=index)


def tcp(tx: int, ip: str = IP, failure: str | None = None, port: int = 443,
        took: float = 0.1) -> TCPObservation:
    return TCPObservation(tx, ip, port, 0.1, 0.1 + took, failure)


CERT = Certificate(b"\x30\x82", "aa" * 32, "bb" * 32, "CN=example.test", "CN=Rogue National CA",
                   "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", ("example.test",))


def tls(tx: int, ip: str = IP, failure: str | None = None, verified: bool | None = True,
        sni: str = "example.test", error: str | None = None, took: float = 0.2) -> TLSObservation:
    if failure:
        return TLSObservation(tx, ip, 443, sni, 0.2, 0.2 + took, failure)
    return TLSObservation(tx, ip, 443, sni, 0.2, 0.2 + took, None, "TLSv1.3",
                          "TLS_AES_128_GCM_SHA256", "http/1.1", (CERT,), verified, error)


def http(tx: int, url: str = "https://example.test/", status: int | None = 200,
         failure: str | None = None, index: int = 0, location: str | None = None,
         ip: str | None = IP) -> HTTPObservation:
    port = 443 if url.startswith("https") else 80
    return HTTPObservation(tx, url, "GET", ip, port, 0.4, 0.6, failure, redirect_index=index,
                           status=status, location=location, body=b"<title>x</title>",
                           title="x")


def meas(url: str = "https://example.test/", dns: tuple[DNSObservation, ...] = (),
         tcp_: tuple[TCPObservation, ...] = (), tls_: tuple[TLSObservation, ...] = (),
         http_: tuple[HTTPObservation, ...] = ()) -> Measurement:
    return Measurement(target(url), "2026-11-21T10:15:00.000000Z", "2026-11-21T10:15:01.0Z",
                       dns=dns, tcp=tcp_, tls=tls_, http=http_)


def https_ok() -> Measurement:
    return meas(dns=sys_dns(), tcp_=(tcp(10),), tls_=(tls(10),), http_=(http(10),))


HTTP_URL = "http://example.test/"

# --- the table ------------------------------------------------------------------------------

CASES = [
    # --- ok ---
    ("https-200", https_ok(), "ok", None),
    ("http-200", meas(HTTP_URL, sys_dns(), (tcp(10, port=80),), (), (http(10, HTTP_URL),)),
     "ok", None),
    ("ok-after-redirect", meas(HTTP_URL, sys_dns() + sys_dns("www.example.test", tx=2),
                               (tcp(10, port=80), tcp(11)), (tls(11, sni="www.example.test"),),
                               (http(10, HTTP_URL, 301, location="https://www.example.test/"),
                                http(11, "https://www.example.test/", index=1))), "ok", None),
    ("ok-one-address-failed", meas(dns=sys_dns("example.test", IP, IP2),
                                   tcp_=(tcp(10, failure=f.GENERIC_TIMEOUT), tcp(11, IP2)),
                                   tls_=(tls(11, IP2),), http_=(http(11, ip=IP2),)), "ok", None),
    ("ok-403-is-still-a-response", meas(dns=sys_dns(), tcp_=(tcp(10),), tls_=(tls(10),),
                                        http_=(http(10, status=403),)), "ok", None),
    ("ok-duplicate-identical-udp-answers", meas(
        dns=(udp("example.test", IP), udp("example.test", IP, index=1)),
        tcp_=(tcp(10),), tls_=(tls(10),), http_=(http(10),)), "ok", None),
    ("ok-loopback-world-resolver", meas(
        dns=(udp("example.test", "127.0.0.2", resolver="127.0.0.1:5353"),),
        tcp_=(tcp(10, "127.0.0.2"),), tls_=(tls(10, "127.0.0.2"),),
        http_=(http(10, ip="127.0.0.2"),)), "ok", None),
    # --- DNS ---
    ("nxdomain", meas(dns=sys_dns(failure=f.DNS_NXDOMAIN)), "inconclusive", "dns.nxdomain"),
    ("refused", meas(dns=(udp("example.test", failure=f.DNS_REFUSED, rcode="REFUSED"),)),
     "inconclusive", "dns.refused"),
    ("servfail", meas(dns=(udp("example.test", failure=f.DNS_SERVFAIL, rcode="SERVFAIL"),)),
     "inconclusive", "dns.servfail"),
    ("dns-timeout", meas(dns=sys_dns(failure=f.GENERIC_TIMEOUT)), "inconclusive", "dns.timeout"),
    ("no-answer", meas(dns=(udp("example.test", failure=f.DNS_NO_ANSWER),
                            udp("example.test", failure=f.DNS_NO_ANSWER, qtype="AAAA"))),
     "inconclusive", "dns.no_answer"),
    ("specific-dns-failure-wins", meas(dns=sys_dns(failure=f.DNS_TEMPORARY_FAILURE)
                                       + (udp("example.test", failure=f.DNS_NXDOMAIN,
                                              rcode="NXDOMAIN"),)),
     "inconclusive", "dns.nxdomain"),
    ("dns-misbehaving", meas(dns=sys_dns(failure=f.DNS_SERVER_MISBEHAVING)),
     "inconclusive", "dns.error"),
    ("bogon-then-tcp-timeout", meas(dns=sys_dns("example.test", LIE),
                                    tcp_=(tcp(10, LIE, f.GENERIC_TIMEOUT),)),
     "inconclusive", "dns.bogon"),
    ("bogon-serving-a-blockpage", meas(HTTP_URL, sys_dns("example.test", LIE),
                                       (tcp(10, LIE, port=80),), (), (http(10, HTTP_URL, ip=LIE),)),
     "inconclusive", "dns.bogon"),
    ("loopback-answer-not-dialled", meas(dns=sys_dns("example.test", "127.0.0.1")),
     "inconclusive", "dns.bogon"),
    ("injected", meas(dns=(udp("example.test", LIE), udp("example.test", IP, index=1)),
                      tcp_=(tcp(10, LIE, f.GENERIC_TIMEOUT),)),
     "inconclusive", "dns.injected"),
    ("injected-public-address-beats-https-success", meas(
        dns=sys_dns() + (udp("example.test", "203.0.114.9"), udp("example.test", IP, index=1)),
        tcp_=(tcp(10),), tls_=(tls(10),), http_=(http(10),)), "inconclusive", "dns.injected"),
    ("injected-nxdomain", meas(dns=(udp("example.test", failure=f.DNS_NXDOMAIN, rcode="NXDOMAIN"),
                                    udp("example.test", IP, index=1))),
     "inconclusive", "dns.injected"),
    # --- TCP ---
    ("tcp-timeout", meas(dns=sys_dns(), tcp_=(tcp(10, failure=f.GENERIC_TIMEOUT, took=10.0),)),
     "inconclusive", "tcp.timeout"),
    ("tcp-reset", meas(dns=sys_dns(), tcp_=(tcp(10, failure=f.CONNECTION_RESET),)),
     "inconclusive", "tcp.reset"),
    ("tcp-refused", meas(dns=sys_dns(), tcp_=(tcp(10, failure=f.CONNECTION_REFUSED),)),
     "inconclusive", "tcp.refused"),
    ("tcp-unreachable", meas(dns=sys_dns(), tcp_=(tcp(10, failure=f.HOST_UNREACHABLE),)),
     "inconclusive", "tcp.unreachable"),
    ("tcp-broken-ipv6-is-not-the-story", meas(
        dns=sys_dns("example.test", IP, IP6),
        tcp_=(tcp(10, failure=f.GENERIC_TIMEOUT), tcp(11, IP6, f.NETWORK_UNREACHABLE))),
     "inconclusive", "tcp.timeout"),
    ("tcp-unknown-failure", meas(dns=sys_dns(), tcp_=(tcp(10, failure=f.unknown("odd")),)),
     "inconclusive", "tcp.error"),
    ("tcp-ip-literal-url", meas("http://93.184.216.34/", (),
                                (tcp(10, port=80, failure=f.CONNECTION_REFUSED),)),
     "inconclusive", "tcp.refused"),
    # --- TLS ---
    ("tls-reset", meas(dns=sys_dns(), tcp_=(tcp(10),), tls_=(tls(10, failure=f.CONNECTION_RESET),)),
     "inconclusive", "tls.reset"),
    ("tls-timeout", meas(dns=sys_dns(), tcp_=(tcp(10),),
                         tls_=(tls(10, failure=f.GENERIC_TIMEOUT),)),
     "inconclusive", "tls.timeout"),
    ("tls-eof", meas(dns=sys_dns(), tcp_=(tcp(10),), tls_=(tls(10, failure=f.EOF_ERROR),)),
     "inconclusive", "tls.eof"),
    ("tls-handshake", meas(dns=sys_dns(), tcp_=(tcp(10),),
                           tls_=(tls(10, failure=f.SSL_FAILED_HANDSHAKE),)),
     "inconclusive", "tls.handshake"),
    ("tls-unknown-failure", meas(dns=sys_dns(), tcp_=(tcp(10),),
                                 tls_=(tls(10, failure=f.unknown("weird")),)),
     "inconclusive", "tls.handshake"),
    ("cert-invalid-no-http-sent", meas(dns=sys_dns(), tcp_=(tcp(10),),
                                       tls_=(tls(10, verified=False,
                                                 error=f.SSL_UNKNOWN_AUTHORITY),)),
     "inconclusive", "tls.cert_invalid"),
    ("cert-invalid-but-http-answered", meas(dns=sys_dns(), tcp_=(tcp(10),),
                                            tls_=(tls(10, verified=False,
                                                      error=f.SSL_INVALID_HOSTNAME),),
                                            http_=(http(10),)),
     "inconclusive", "tls.cert_invalid"),
    ("one-valid-chain-is-enough", meas(
        dns=sys_dns("example.test", IP, IP2), tcp_=(tcp(10), tcp(11, IP2)),
        tls_=(tls(10, verified=False, error=f.SSL_UNKNOWN_AUTHORITY), tls(11, IP2)),
        http_=(http(11, ip=IP2),)), "ok", None),
    # --- HTTP ---
    ("http-reset", meas(dns=sys_dns(), tcp_=(tcp(10),), tls_=(tls(10),),
                        http_=(http(10, status=None, failure=f.CONNECTION_RESET),)),
     "inconclusive", "http.reset"),
    ("http-timeout", meas(dns=sys_dns(), tcp_=(tcp(10),), tls_=(tls(10),),
                          http_=(http(10, status=None, failure=f.GENERIC_TIMEOUT),)),
     "inconclusive", "http.timeout"),
    ("http-eof", meas(dns=sys_dns(), tcp_=(tcp(10),), tls_=(tls(10),),
                      http_=(http(10, status=None, failure=f.EOF_ERROR),)),
     "inconclusive", "http.eof"),
    ("http-reset-mid-body", meas(dns=sys_dns(), tcp_=(tcp(10),), tls_=(tls(10),),
                                 http_=(http(10, status=200, failure=f.CONNECTION_RESET),)),
     "inconclusive", "http.reset"),
    ("http-too-many-redirects", meas(dns=sys_dns(), tcp_=(tcp(10),), tls_=(tls(10),),
                                     http_=(http(10, status=302,
                                                 failure=f.HTTP_TOO_MANY_REDIRECTS),)),
     "inconclusive", "http.too_many_redirects"),
    ("http-protocol-error", meas(dns=sys_dns(), tcp_=(tcp(10),), tls_=(tls(10),),
                                 http_=(http(10, status=None, failure=f.HTTP_PROTOCOL_ERROR),)),
     "inconclusive", "http.error"),
    ("http-bad-location", meas(dns=sys_dns(), tcp_=(tcp(10),), tls_=(tls(10),),
                               http_=(http(10, status=302,
                                           failure=f.HTTP_INVALID_REDIRECT_LOCATION_HOST),)),
     "inconclusive", "http.error"),
    ("http-no-status-no-failure", meas(dns=sys_dns(), tcp_=(tcp(10),), tls_=(tls(10),),
                                       http_=(http(10, status=None),)),
     "inconclusive", "http.error"),
    # --- redirects: the hop that broke is judged, not the first one ---
    ("redirect-then-nxdomain", meas(
        HTTP_URL, sys_dns() + sys_dns("blocked.example", failure=f.DNS_NXDOMAIN, tx=2),
        (tcp(10, port=80),), (),
        (http(10, HTTP_URL, 302, location="https://blocked.example/"),)),
     "inconclusive", "dns.nxdomain"),
    ("redirect-then-refused-on-shared-ip", meas(
        HTTP_URL, sys_dns() + sys_dns("www.example.test", tx=2),
        (tcp(10, port=80), tcp(11, failure=f.CONNECTION_REFUSED)), (),
        (http(10, HTTP_URL, 301, location="https://www.example.test/"),)),
     "inconclusive", "tcp.refused"),
    ("redirect-then-sni-reset", meas(
        HTTP_URL, sys_dns() + sys_dns("www.example.test", tx=2),
        (tcp(10, port=80), tcp(11)), (tls(11, sni="www.example.test",
                                          failure=f.CONNECTION_RESET),),
        (http(10, HTTP_URL, 301, location="https://www.example.test/"),)),
     "inconclusive", "tls.reset"),
    ("redirect-hop-failure-from-httpx", meas(
        HTTP_URL, sys_dns(), (tcp(10, port=80),), (),
        (http(10, HTTP_URL, 302, location="http://gone.example/"),
         http(11, "http://gone.example/", None, f.DNS_NXDOMAIN, index=1, ip=None))),
     "inconclusive", "dns.nxdomain"),
    ("redirect-loop", meas(
        HTTP_URL, sys_dns(), (tcp(10, port=80), tcp(11, port=80)), (),
        (http(10, HTTP_URL, 302, location="http://example.test/a"),
         http(11, "http://example.test/a", 302, index=1, location=HTTP_URL))),
     "inconclusive", "http.too_many_redirects"),
    ("redirect-not-followed", meas(
        HTTP_URL, sys_dns(), (tcp(10, port=80),), (),
        (http(10, HTTP_URL, 302, location="http://other.example/"),)),
     "inconclusive", "incomplete"),
    # --- nothing to go on ---
    ("no-observations", meas(), "inconclusive", "incomplete"),
    ("interrupted", meas(dns=sys_dns(), tcp_=(tcp(10, failure=f.INTERRUPTED),)),
     "inconclusive", "interrupted"),
]


@pytest.mark.parametrize(("m", "kind", "method"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rules(m: Measurement, kind: str, method: str | None) -> None:
    v = classify(m)
    assert (v.verdict.value, v.method) == (kind, method), v.evidence
    assert v.analysis_version == ANALYSIS_VERSION
    assert v.method is None or v.method in METHODS
    assert v.evidence and "\n" not in v.evidence
    json.dumps(v.details)  # structured fields must be storable as JSON
    if v.verdict == VerdictKind.OK:
        assert v.confidence >= 0.8
    else:
        assert v.confidence <= 0.5 and v.details.get("step", "http") in (
            "dns", "tcp", "tls", "http")
    assert classify(m) == v  # pure: same observations, same verdict


def test_every_method_in_the_brief_is_covered_by_a_case() -> None:
    produced = {classify(c[1]).method for c in CASES}
    assert METHODS <= produced, METHODS - produced


# --- evidence and details -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("m", "evidence", "details"),
    [
        (meas("https://x/", sys_dns("x", "1.2.3.4"), (tcp(3, "1.2.3.4"),),
              (tls(3, "1.2.3.4", f.GENERIC_TIMEOUT, sni="x", took=10.0),)),
         "TLS handshake with 1.2.3.4:443 (SNI x) failed: generic_timeout_error after 10.0 s",
         {"step": "tls", "tx_id": 3, "failure": f.GENERIC_TIMEOUT, "ip": "1.2.3.4",
          "server_name": "x"}),
        (https_ok(),
         f"HTTP 200 for https://example.test/ from {IP}:443",
         {"step": "http", "status": 200, "url": "https://example.test/", "ip": IP}),
        (meas(dns=sys_dns(failure=f.DNS_NXDOMAIN)),
         "DNS A lookup of example.test via system resolver failed: dns_nxdomain_error after "
         "0.1 s (all 2 queries failed)",
         {"step": "dns", "resolver": "system", "query_type": "A", "tx_id": 1}),
        (meas(dns=sys_dns("example.test", IP6), tcp_=(tcp(5, IP6, f.CONNECTION_RESET),)),
         f"TCP connect to [{IP6}]:443 failed: connection_reset after 0.1 s",
         {"step": "tcp", "ip": IP6, "port": 443, "tx_id": 5}),
        (meas(dns=sys_dns(), tcp_=(tcp(10),),
              tls_=(tls(10, verified=False, error=f.SSL_UNKNOWN_AUTHORITY),)),
         f"TLS certificate from {IP}:443 (SNI example.test) does not validate: "
         "ssl_unknown_authority (issuer CN=Rogue National CA)",
         {"step": "tls", "verify_error": f.SSL_UNKNOWN_AUTHORITY,
          "issuer": "CN=Rogue National CA", "leaf_sha256": "aa" * 32}),
        (meas(dns=(udp("example.test", LIE), udp("example.test", IP, index=1))),
         f"two different DNS responses to one A query for example.test via 8.8.8.8:53 (udp): "
         f"{LIE} first, then {IP}",
         {"step": "dns", "resolver": "8.8.8.8:53", "tx_id": 7}),
        (meas(dns=sys_dns("example.test", LIE)),
         f"DNS A answer for example.test via system resolver is a bogon address: {LIE}",
         {"step": "dns", "bogons": [LIE]}),
        (meas(HTTP_URL, sys_dns() + sys_dns("blocked.example", failure=f.DNS_NXDOMAIN, tx=2),
              (tcp(10, port=80),), (),
              (http(10, HTTP_URL, 302, location="https://blocked.example/"),)),
         "DNS A lookup of blocked.example via system resolver failed: dns_nxdomain_error after "
         "0.1 s (all 2 queries failed)",
         {"url": "https://blocked.example/", "redirect_index": 1, "hostname": "blocked.example"}),
    ],
    ids=["tls-timeout", "ok", "dns", "tcp-ipv6", "cert", "injected", "bogon", "redirect-dns"],
)
def test_evidence_and_details(m: Measurement, evidence: str, details: dict[str, object]) -> None:
    v = classify(m)
    assert v.evidence == evidence
    assert details.items() <= v.details.items()


@pytest.mark.parametrize(
    ("ip", "bogon"),
    [("10.10.34.35", True), ("127.0.0.1", True), ("192.168.1.1", True), ("172.16.0.1", True),
     ("100.64.0.1", True), ("169.254.1.1", True), ("0.0.0.0", True), ("192.0.2.1", True),
     ("224.0.0.1", True), ("240.0.0.1", True), ("::1", True), ("fd00::1", True),
     ("fe80::1", True), ("::ffff:10.0.0.1", True), ("2001:db8::1", True),
     ("93.184.216.34", False), ("8.8.8.8", False), ("2606:2800:220:1::1", False),
     ("::ffff:8.8.8.8", False), ("not an ip", False)],
)
def test_is_bogon(ip: str, bogon: bool) -> None:
    assert is_bogon(ip) is bogon


def test_classify_imports_only_model_failures_and_stdlib() -> None:
    """DESIGN's import rule: classify imports only probe.model, probe.failures, its own data."""
    allowed_probe = {"probe", "probe.model", "probe.failures", "probe.classify"}
    for path in Path(verdict_module.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("probe"):
                    assert name in allowed_probe or name.startswith("probe.classify"), (
                        path.name, name)
                else:
                    top = name.split(".")[0]
                    assert top in sys.stdlib_module_names, (path.name, name)


# --- robustness: any combination of observations gets a verdict -----------------------------

_FAILURES = st.sampled_from([None, *sorted(f.VOCABULARY), f.unknown("odd 1.2.3.4")])
_IPS = st.sampled_from([IP, IP2, IP6, LIE, "127.0.0.1", "::1", "not-an-ip"])
_HOSTS = st.sampled_from(["example.test", "www.example.test", "other.example"])
_URLS = st.sampled_from(["https://example.test/", "http://example.test/",
                         "https://www.example.test/", "http://other.example/x"])
_TX = st.integers(1, 4)
_T = st.floats(0, 20, allow_nan=False)


@st.composite
def _dns(draw: st.DrawFn) -> DNSObservation:
    qtype = draw(st.sampled_from(["A", "AAAA"]))
    return DNSObservation(
        draw(_TX), draw(_HOSTS), qtype, draw(st.sampled_from(["system", "udp"])),
        draw(st.sampled_from(["system", "8.8.8.8:53", "127.0.0.1:5353", "[::1]:53"])),
        0.0, draw(_T), draw(_FAILURES), draw(st.sampled_from([None, "NOERROR", "NXDOMAIN"])),
        tuple(DNSAnswer(draw(st.sampled_from(["A", "AAAA", "CNAME"])), a)
              for a in draw(st.lists(_IPS, max_size=2))),
        draw(st.integers(0, 2)))


@st.composite
def _measurement(draw: st.DrawFn) -> Measurement:
    return meas(
        draw(_URLS),
        tuple(draw(st.lists(_dns(), max_size=4))),
        tuple(draw(st.lists(st.builds(TCPObservation, _TX, _IPS, st.just(443), _T, _T,
                                      _FAILURES), max_size=3))),
        tuple(draw(st.lists(st.builds(
            TLSObservation, _TX, _IPS, st.just(443), _HOSTS, _T, _T, _FAILURES,
            certificates=st.lists(st.just(CERT), max_size=1).map(tuple),
            verified=st.sampled_from([None, True, False]),
            verify_error=st.sampled_from([None, f.SSL_UNKNOWN_AUTHORITY])), max_size=3))),
        tuple(draw(st.lists(st.builds(
            HTTPObservation, _TX, _URLS, st.just("GET"), st.one_of(st.none(), _IPS),
            st.just(443), _T, _T, _FAILURES, redirect_index=st.integers(0, 11),
            status=st.sampled_from([None, 200, 302, 403]),
            location=st.one_of(st.none(), _URLS)), max_size=4))),
    )


@settings(max_examples=300, deadline=None)
@given(_measurement())
def test_any_observations_get_a_well_formed_verdict(m: Measurement) -> None:
    v = classify(m)
    assert v.method is None or v.method in METHODS
    assert (v.method is None) == (v.verdict == VerdictKind.OK)
    assert v.evidence and "\n" not in v.evidence
    json.dumps(v.details)
