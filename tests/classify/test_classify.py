"""Classifier rules, table-driven: observations (+ control, health, ASN data) in, verdict out.

One row per rule and per weak spot of OONI's method (reference/ooni-methodology.md): CDN DNS,
server-side blocking, bad certificates everywhere, control unreachable, site and control both
failing, broken IPv6, shutdowns, local outages, interception (KZ 2020 fingerprint and an
unknown rogue CA), throttling, 451, block pages, injected DNS. No network.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import probe.classify.verdict as verdict_module
from probe import failures as f
from probe.classify import ANALYSIS_VERSION, METHODS, Context, classify
from probe.classify.health import HealthRound, NetworkState
from probe.classify.observations import is_bogon
from probe.classify.verdict import METHODS_BY_VERDICT
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
from tests.factories import (
    BLOCKPAGE_IP,
    BOGON,
    CDN_IP,
    CONTROL,
    HOST,
    HTTP_URL,
    IP,
    IP2,
    IP6,
    LIE,
    PAGE,
    REAL_CHAIN,
    ROGUE_CHAIN,
    SITE_HEADERS,
    URL,
    cert,
    chttp,
    context,
    ctl,
    ctl_failed,
    ep,
    http,
    http_ok,
    https_ok,
    meas,
    sys_dns,
    tcp,
    tls,
    udp,
)

W = NetworkState
T = f.GENERIC_TIMEOUT
BLOCK_BODY = ("<html><head><title>Access restricted</title></head><body>Страница заблокирована."
              " (probe test block page)</body></html>").encode()
INJECTED = b"<html><body>probe-simnet-blockpage</body></html>"
CTX = context()  # ASN data, no health rounds
#: Whole before the measurement (10:15:00), every canary but the gateway dead right after it:
#: what a residual censor triggered by this request shows (issue 12).
SELF_TRIGGERED = Context(asn_of=CTX.asn_of, health=(
    HealthRound("2026-11-21T10:14:50.000000Z", W.WHOLE, {"gateway": 1, "international": 2}, {}),
    HealthRound("2026-11-21T10:15:06.000000Z", W.SHUTDOWN_FULL, {"gateway": 1},
                {"international": 2, "domestic": 2})))

# Controls for a plain-HTTP target (the helper does no TLS for http:// URLs).
HTTP_CTL = ctl(HTTP_URL, http_=chttp(redirect_chain=(HTTP_URL,)))
# The control saw the site down: nothing listens (refused), times out, or fails TLS.
CTL_TCP_DOWN = ctl(endpoints=(ep(IP, tcp_failure=f.CONNECTION_REFUSED),),
                   http_=chttp(None, f.CONNECTION_REFUSED, body=None, title=None))
CTL_TLS_TIMEOUT = ctl(endpoints=(ep(IP, tls_failure=T),),
                      http_=chttp(None, T, body=None, title=None))
CTL_BAD_CERT = ctl(endpoints=(ep(IP, verified=False, verify_error=f.SSL_INVALID_CERTIFICATE),),
                   http_=chttp(None, f.SSL_INVALID_CERTIFICATE, body=None, title=None))
CTL_NXDOMAIN = ctl(addrs=(), dns_failure=f.DNS_NXDOMAIN, endpoints=(),
                   http_=chttp(None, f.DNS_NXDOMAIN, body=None, title=None))

# KZ 2020: the root's published SHA-256; KZ 2019: the intermediate's name.
KZ2020_SHA = "61c0fc2e38b5b6f9071b42cee54a9013d858b6697c68b460948551b3249576a1"
KZ2020_ROOT = Certificate(b"\x30", KZ2020_SHA, "00" * 32, "CN=Root", "CN=Root",
                          "2020-12-01T00:00:00Z", "2030-12-01T00:00:00Z")
KZ2020_CHAIN = (cert(issuer="CN=Root", key="kz2020-leaf"), KZ2020_ROOT)
KZ2019_CHAIN = (cert(issuer="CN=Security Certificate,C=KZ", key="kz2019-leaf"),
                cert("CN=Security Certificate,C=KZ", "CN=Qaznet Trust Network"))


def blocked_tls(failure: str, control: tuple[dict[str, Any], ...] = (ctl(),),
                retry: bool = False) -> Measurement:
    """DNS and TCP fine, the handshake with SNI example.test fails (optionally an innocuous-SNI
    retry to the same address succeeds, as the measure step records it)."""
    tcps = (tcp(10),) + ((tcp(11),) if retry else ())
    tlss = (tls(10, failure=failure, took=10.0 if failure == T else 0.05),)
    if retry:
        tlss += (tls(11, sni="example.org", verified=False, error=f.SSL_INVALID_HOSTNAME),)
    return meas(dns=sys_dns(), tcp_=tcps, tls_=tlss, control=control)


def tcp_fail(failure: str, control: tuple[dict[str, Any], ...] = (ctl(),),
             ip: str = IP) -> Measurement:
    return meas(dns=sys_dns(HOST, ip), tcp_=(tcp(10, ip, failure, took=10.0 if failure == T
                                                 else 0.01),), control=control)


def http_fail(failure: str, control: tuple[dict[str, Any], ...] = (ctl(),),
              status: int | None = None) -> Measurement:
    return meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),),
                http_=(http(status=status, failure=failure, body=None, title=None),),
                control=control)


def redirect_to(location: str, final: tuple[HTTPObservation, ...] = (),
                dns: tuple[DNSObservation, ...] = (),
                control: tuple[dict[str, Any], ...] = (HTTP_CTL,)) -> Measurement:
    first = http(10, HTTP_URL, 302, location=location, body=b"moved", title=None, headers=())
    return meas(HTTP_URL, sys_dns() + dns, (tcp(10, port=80),) + tuple(
        tcp(h.tx_id, h.ip or IP, port=80) for h in final), (), (first, *final), control)


def slow(hs: float = 0.08, took: float = 0.05, length: int | None = None,
         control: dict[str, Any] | None = None) -> Measurement:
    return meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(took=hs),),
                http_=(http(took=took, body_length=length),),
                control=(control or ctl(),))


BASELINE = {"version": 1, "tls_handshake_s": 0.1, "throughput_bps": 80e6, "samples": [
    {"url": "https://a.test/", "tls_handshake_s": 0.1, "throughput_bps": 80e6},
    {"url": "https://b.test/", "tls_handshake_s": 0.12, "throughput_bps": 90e6},
    {"url": URL, "tls_handshake_s": 4.5, "throughput_bps": 150e3},  # the target itself
]}
SLOW_LINK = {**BASELINE, "samples": [
    {"url": "https://a.test/", "tls_handshake_s": 3.0, "throughput_bps": 200e3}]}
FAST_CTL = ctl(http_=chttp(throughput_bps=50e6))
SLOW_CTL = ctl(endpoints=(ep(IP, time=3.9),), http_=chttp(throughput_bps=120e3))

# (id, measurement, context, verdict, method)
CASES: list[tuple[str, Measurement, Context | None, str, str | None]] = [
    # --- ok ----------------------------------------------------------------------------------
    ("https-ok-control-agrees", https_ok((ctl(),)), CTX, "ok", None),
    ("https-ok-no-control", https_ok(), None, "ok", None),
    # OONI: an HTTPS success means accessible even when the control is unreachable.
    ("https-ok-control-unreachable", https_ok((ctl_failed(),)), CTX, "ok", None),
    ("http-ok-control-agrees", http_ok((HTTP_CTL,)), CTX, "ok", None),
    ("http-ok-no-control", http_ok(), None, "ok", None),
    ("ok-after-redirect", meas(
        HTTP_URL, sys_dns() + sys_dns("www.example.test", tx=2), (tcp(10, port=80), tcp(11)),
        (tls(11, sni="www.example.test"),),
        (http(10, HTTP_URL, 301, location="https://www.example.test/", body=None, title=None),
         http(11, "https://www.example.test/", index=1)),
        (ctl(HTTP_URL, http_=chttp(redirect_chain=(HTTP_URL, "https://www.example.test/"))),)),
     CTX, "ok", None),
    ("ok-one-address-failed", meas(
        dns=sys_dns(HOST, IP, IP2), tcp_=(tcp(10, failure=T), tcp(11, IP2)),
        tls_=(tls(11, IP2),), http_=(http(11, ip=IP2),), control=(ctl(addrs=(IP, IP2)),)),
     CTX, "ok", None),
    ("ok-403-everywhere", https_ok((ctl(http_=chttp(403)),), status=403), CTX, "ok", None),
    ("ok-duplicate-identical-udp-answers", meas(
        dns=(udp(HOST, IP), udp(HOST, IP, index=1)), tcp_=(tcp(),), tls_=(tls(),),
        http_=(http(),), control=(ctl(),)), CTX, "ok", None),
    ("ok-loopback-world-resolver", meas(
        dns=(udp(HOST, "127.0.0.2", resolver="127.0.0.1:5353"),), tcp_=(tcp(10, "127.0.0.2"),),
        tls_=(tls(10, "127.0.0.2"),), http_=(http(10, ip="127.0.0.2"),)), None, "ok", None),
    # OONI weak spot: CDN / geo-DNS answers read as tampering (ooni/probe#1735, #2235).
    ("cdn-dns-other-asn-valid-tls", meas(
        dns=sys_dns(HOST, CDN_IP), tcp_=(tcp(ip=CDN_IP),), tls_=(tls(ip=CDN_IP),),
        http_=(http(ip=CDN_IP),), control=(ctl(),)), CTX, "ok", None),
    ("cdn-dns-same-asn-plain-http", meas(
        HTTP_URL, sys_dns(HOST, CDN_IP), (tcp(ip=CDN_IP, port=80),), (),
        (http(url=HTTP_URL, ip=CDN_IP),), (ctl(HTTP_URL, addrs=("104.28.7.10",)),)),
     CTX, "ok", None),
    ("dns-to-transparent-proxy-serving-the-real-page", meas(
        HTTP_URL, sys_dns(HOST, LIE), (tcp(ip=LIE, port=80),), (), (http(url=HTTP_URL, ip=LIE),),
        (HTTP_CTL,)), CTX, "ok", None),
    # OONI weak spot: broken local IPv6 producing false "tcp_ip" (ooni/probe#2456, #2192).
    ("broken-ipv6-ipv4-works", meas(
        dns=sys_dns(HOST, IP, IP6), tcp_=(tcp(11, IP6, f.NETWORK_UNREACHABLE), tcp(10)),
        tls_=(tls(),), http_=(http(),), control=(ctl(addrs=(IP, IP6)),)), CTX, "ok", None),
    # Region-dependent content is not censorship.
    ("region-content-https", https_ok(
        (ctl(http_=chttp(body=b"<title>Kazakhstan edition</title>" + b"y" * 300,
                         title="Kazakhstan edition", headers=(("X-Region", "kz"),))),)),
     CTX, "ok", None),
    ("region-content-http-same-title", http_ok(
        (ctl(HTTP_URL, http_=chttp(body=b"<title>Example Domain</title>" + b"z" * 200,
                                   headers=(("X-Edition", "eu"),))),),
        headers=(("X-Edition", "kz"),)), CTX, "ok", None),
    ("cdn-rotation-two-consistent-responses", meas(
        dns=(udp(HOST, IP), udp(HOST, IP2, index=1)), tcp_=(tcp(),), tls_=(tls(),),
        http_=(http(),), control=(ctl(addrs=(IP, IP2)),)), CTX, "ok", None),
    ("news-story-quoting-a-blockpage", https_ok((ctl(http_=chttp(body=BLOCK_BODY,
                                                                 title="News")),),
                                                body=BLOCK_BODY, title="News"), CTX, "ok", None),
    ("451-everywhere", https_ok((ctl(http_=chttp(451)),), status=451), CTX, "ok", None),
    ("public-resolver-silence-alone-is-not-blocking", meas(
        dns=sys_dns() + (udp(HOST, failure=T, rcode=None),), tcp_=(tcp(),), tls_=(tls(),),
        http_=(http(),), control=(ctl(),)), CTX, "ok", None),
    ("slow-everywhere-is-not-throttling", slow(hs=4.0, took=10.0, length=200_000,
                                               control=SLOW_CTL),
     context(throttle_baseline=BASELINE), "ok", None),
    ("slow-link-is-not-throttling", slow(hs=4.5), context(throttle_baseline=SLOW_LINK),
     "ok", None),
    ("cut-but-the-page-arrived", https_ok((ctl_failed(),)), context(W.SHUTDOWN_INTERNATIONAL),
     "ok", None),
    # --- DNS ---------------------------------------------------------------------------------
    ("nxdomain", meas(dns=sys_dns(failure=f.DNS_NXDOMAIN), control=(ctl(),)), CTX,
     "blocked", "dns.nxdomain"),
    ("refused", meas(dns=(udp(failure=f.DNS_REFUSED, rcode="REFUSED"),), control=(ctl(),)),
     CTX, "blocked", "dns.refused"),
    ("servfail", meas(dns=(udp(failure=f.DNS_SERVFAIL, rcode="SERVFAIL"),), control=(ctl(),)),
     CTX, "blocked", "dns.servfail"),
    ("silence-udp", meas(dns=(udp(failure=T, rcode=None),), control=(ctl(),)), CTX,
     "blocked", "dns.timeout"),
    ("silence-system-resolver", meas(dns=sys_dns(failure=f.DNS_TEMPORARY_FAILURE, took=5.0),
                                     control=(ctl(),)), CTX, "blocked", "dns.timeout"),
    ("servfail-system-resolver", meas(dns=sys_dns(failure=f.DNS_TEMPORARY_FAILURE),
                                      control=(ctl(),)), CTX, "blocked", "dns.servfail"),
    ("no-answer-where-control-resolves", meas(
        dns=(udp(failure=f.DNS_NO_ANSWER), udp(failure=f.DNS_NO_ANSWER, qtype="AAAA")),
        control=(ctl(),)), CTX, "blocked", "dns.nxdomain"),
    ("isp-nxdomain-while-public-resolver-works", meas(
        dns=sys_dns(failure=f.DNS_NXDOMAIN) + (udp(HOST, IP),), tcp_=(tcp(),), tls_=(tls(),),
        http_=(http(),), control=(ctl(),)), CTX, "blocked", "dns.nxdomain"),
    ("encrypted-dns-failed-alone", meas(dns=(DNSObservation(
        3, HOST, "A", "doh", "https://dns.example/dns-query", 0.0, 0.2, f.CONNECTION_RESET),),
        control=(ctl(),)), CTX, "inconclusive", "encrypted_dns_failed"),
    ("nxdomain-everywhere", meas(dns=sys_dns(failure=f.DNS_NXDOMAIN), control=(CTL_NXDOMAIN,)),
     CTX, "down", "down.dns"),
    ("cname-without-a-everywhere", meas(
        dns=sys_dns(failure=f.DNS_NO_ANSWER),
        control=(ctl(addrs=(), dns_failure=f.DNS_NO_ANSWER, endpoints=(),
                     http_=chttp(None, f.DNS_NO_ANSWER, body=None, title=None)),)),
     CTX, "down", "down.dns"),
    ("servfail-here-nxdomain-there", meas(
        dns=(udp(failure=f.DNS_SERVFAIL, rcode="SERVFAIL"),), control=(CTL_NXDOMAIN,)),
     CTX, "down", "down.dns"),
    ("bogon", meas(dns=sys_dns(HOST, BOGON), tcp_=(tcp(ip=BOGON, failure=T),), control=(ctl(),)),
     CTX, "blocked", "dns.bogon"),
    ("spoofed-to-localhost", meas(dns=sys_dns(HOST, "127.0.0.1"), control=(ctl(),)), CTX,
     "blocked", "dns.bogon"),
    ("localhost-everywhere", meas(dns=sys_dns(HOST, "127.0.0.1"),
                                  control=(ctl(addrs=("127.0.0.1",), endpoints=()),)),
     CTX, "down", "down.dns"),
    ("bogon-serving-a-blockpage-no-control", meas(
        HTTP_URL, sys_dns(HOST, BOGON), (tcp(ip=BOGON, port=80),), (),
        (http(url=HTTP_URL, ip=BOGON, body=BLOCK_BODY, title="Access restricted"),)),
     None, "blocked", "dns.bogon"),
    ("blockpage-ip", meas(dns=sys_dns(HOST, BLOCKPAGE_IP),
                          tcp_=(tcp(ip=BLOCKPAGE_IP, failure=f.CONNECTION_REFUSED),),
                          control=(ctl(),)), CTX, "blocked", "dns.blockpage"),
    ("blockpage-ip-no-control", meas(dns=sys_dns(HOST, BLOCKPAGE_IP),
                                     tcp_=(tcp(ip=BLOCKPAGE_IP, failure=T),)),
     None, "blocked", "dns.blockpage"),
    ("blockpage-ip-serving-the-blockpage", meas(
        HTTP_URL, sys_dns(HOST, BLOCKPAGE_IP), (tcp(ip=BLOCKPAGE_IP, port=80),), (),
        (http(url=HTTP_URL, ip=BLOCKPAGE_IP, body=BLOCK_BODY, title="Access restricted"),),
        (HTTP_CTL,)), CTX, "blocked", "dns.blockpage"),
    ("target-is-the-blockpage-server", meas(
        "http://blocked.gov.kz/", sys_dns("blocked.gov.kz", BLOCKPAGE_IP),
        (tcp(ip=BLOCKPAGE_IP, port=80),), (),
        (http(url="http://blocked.gov.kz/", ip=BLOCKPAGE_IP, body=BLOCK_BODY,
              title="Access restricted"),),
        (ctl("http://blocked.gov.kz/", addrs=(BLOCKPAGE_IP,),
             http_=chttp(body=BLOCK_BODY, title="Access restricted")),)), CTX, "ok", None),
    ("ghost-domain-answered-locally", meas(
        HTTP_URL, sys_dns(HOST, LIE), (tcp(ip=LIE, port=80),), (),
        (http(url=HTTP_URL, ip=LIE, body=b"<title>Parked</title>", title="Parked"),),
        (CTL_NXDOMAIN,)), CTX, "down", "down.dns"),  # NXDOMAIN rewriting, not a block
    ("inconsistent-cert-fails-for-host", meas(
        dns=sys_dns(HOST, LIE), tcp_=(tcp(ip=LIE),),
        tls_=(tls(ip=LIE, verified=False, error=f.SSL_INVALID_HOSTNAME,
                  chain=(cert("CN=other.example", sans=("other.example",)),)),),
        control=(ctl(),)), CTX, "blocked", "dns.inconsistent"),
    ("inconsistent-control-cannot-reach-it", meas(
        HTTP_URL, sys_dns(HOST, LIE), (tcp(ip=LIE, port=80, failure=T),), (), (),
        (ctl(HTTP_URL, endpoints=(ep(IP, 80, tls_done=False),
                                  ep(LIE, 80, origin="probe", tcp_failure=T)),
             http_=chttp(redirect_chain=(HTTP_URL,))),)), CTX, "blocked", "dns.inconsistent"),
    ("other-address-unproven-layer-is-named", meas(
        dns=sys_dns(HOST, LIE), tcp_=(tcp(ip=LIE, failure=T),), control=(ctl(),)),
     CTX, "blocked", "tcp.timeout"),
    ("injected", meas(dns=(udp(HOST, LIE), udp(HOST, IP, index=1)),
                      tcp_=(tcp(ip=LIE, failure=T),), control=(ctl(),)),
     CTX, "blocked", "dns.injected"),
    ("injected-bogon-no-control", meas(dns=(udp(HOST, BOGON), udp(HOST, IP, index=1))),
     None, "blocked", "dns.injected"),
    ("injected-public-no-control", meas(dns=(udp(HOST, LIE), udp(HOST, IP, index=1))),
     None, "inconclusive", "no_control"),
    ("injected-nxdomain", meas(dns=(udp(failure=f.DNS_NXDOMAIN, rcode="NXDOMAIN"),
                                    udp(HOST, IP, index=1)), control=(ctl(),)),
     CTX, "blocked", "dns.injected"),
    ("injected-beats-an-https-success", meas(
        dns=sys_dns() + (udp(HOST, LIE), udp(HOST, IP, index=1)), tcp_=(tcp(),), tls_=(tls(),),
        http_=(http(),), control=(ctl(),)), CTX, "blocked", "dns.injected"),
    ("redirect-then-nxdomain", meas(
        HTTP_URL, sys_dns() + sys_dns("blocked.example", failure=f.DNS_NXDOMAIN, tx=2),
        (tcp(10, port=80),), (),
        (http(10, HTTP_URL, 302, location="https://blocked.example/", body=None, title=None),),
        (ctl(HTTP_URL, http_=chttp(redirect_chain=(HTTP_URL, "https://blocked.example/"))),)),
     CTX, "blocked", "dns.nxdomain"),
    ("dns-nxdomain-no-control", meas(dns=sys_dns(failure=f.DNS_NXDOMAIN)), None,
     "inconclusive", "no_control"),
    # --- TCP ---------------------------------------------------------------------------------
    ("tcp-timeout", tcp_fail(T), CTX, "blocked", "tcp.timeout"),
    ("tcp-rst-to-syn", tcp_fail(f.CONNECTION_REFUSED), CTX, "blocked", "tcp.reset"),
    ("tcp-reset", tcp_fail(f.CONNECTION_RESET), CTX, "blocked", "tcp.reset"),
    ("tcp-icmp-unreachable", tcp_fail(f.HOST_UNREACHABLE), CTX, "blocked", "tcp.unreachable"),
    ("tcp-timeout-everywhere", tcp_fail(T, (ctl(endpoints=(ep(IP, tcp_failure=T),),
                                                http_=chttp(None, T, body=None, title=None)),)),
     CTX, "down", "down.tcp"),
    ("nothing-listening-everywhere", tcp_fail(f.CONNECTION_REFUSED, (CTL_TCP_DOWN,)), CTX,
     "down", "down.tcp"),
    ("unroutable-everywhere", tcp_fail(T, (ctl(endpoints=(ep(IP, tcp_failure=T),),
                                               http_=chttp(None, T, body=None, title=None)),)),
     CTX, "down", "down.tcp"),
    ("only-ipv6-and-no-ipv6-route", meas(
        dns=sys_dns(HOST, IP6), tcp_=(tcp(ip=IP6, failure=f.NETWORK_UNREACHABLE),),
        control=(ctl(addrs=(IP6,)),)), CTX, "inconclusive", "local_ipv6"),
    ("broken-ipv6-and-ipv4-timeout", meas(
        dns=sys_dns(HOST, IP, IP6), tcp_=(tcp(10, IP, T), tcp(11, IP6, f.NETWORK_UNREACHABLE)),
        control=(ctl(addrs=(IP, IP6)),)), CTX, "blocked", "tcp.timeout"),
    ("tcp-timeout-control-fetched-only", tcp_fail(T, (ctl(endpoints=()),)), CTX,
     "blocked", "tcp.timeout"),
    ("tcp-timeout-no-control", tcp_fail(T, ()), None, "inconclusive", "no_control"),
    # Web Connectivity 0.5 also connects to 443 for an http:// URL, only to validate the
    # addresses with TLS (ooni/spec ts-017 "Extension E001"): port 80 failing while 443
    # answers is a failed fetch (real case: http://dns.google, Italy 2023, tests/data/ooni).
    ("http-port-80-timeout-everywhere-443-validates", meas(
        HTTP_URL, sys_dns(), (tcp(10, IP, T, port=80, took=10.0), tcp(11, IP)), (tls(11),),
        control=(ctl(HTTP_URL, endpoints=(ep(IP, 80, tcp_failure=T), ep(IP)),
                     http_=chttp(None, T, body=None, title=None)),)),
     CTX, "down", "down.tcp"),
    ("http-port-80-timeout-control-connects-443-validates", meas(
        HTTP_URL, sys_dns(), (tcp(10, IP, T, port=80, took=10.0), tcp(11, IP)), (tls(11),),
        control=(ctl(HTTP_URL, endpoints=(ep(IP, 80, tls_done=False), ep(IP)),
                     http_=chttp(redirect_chain=(HTTP_URL,))),)),
     CTX, "blocked", "tcp.timeout"),
    # OONI weak spot: control unreachable → unknown, never a guess.
    ("tcp-timeout-control-unreachable", tcp_fail(T, (ctl_failed(),)), CTX,
     "inconclusive", "control_failed"),
    ("no-route-anywhere-no-control", tcp_fail(f.NETWORK_UNREACHABLE, ()), None,
     "inconclusive", "local_outage"),
    ("tcp-unknown-failure", tcp_fail(f.unknown("odd"), (ctl(),)), CTX,
     "inconclusive", "unexplained"),
    # A control that failed later than the probe got past the probe's failing step; one that
    # failed earlier (its own trust store, its resolver) cannot vouch either way.
    ("control-failed-later-than-the-probe", tcp_fail(T, (ctl(
        endpoints=(), http_=chttp(None, f.SSL_UNKNOWN_AUTHORITY, body=None, title=None)),)),
     CTX, "blocked", "tcp.timeout"),
    ("control-failed-earlier-than-the-probe", http_fail(T, (ctl(
        http_=chttp(None, f.SSL_UNKNOWN_AUTHORITY, body=None, title=None)),)),
     CTX, "inconclusive", "control_failed"),
    # --- TLS ---------------------------------------------------------------------------------
    ("kz-sni-drop-after-clienthello", blocked_tls(T, retry=True), CTX, "blocked", "tls.timeout"),
    ("sni-reset", blocked_tls(f.CONNECTION_RESET), CTX, "blocked", "tls.reset"),
    ("sni-fin", blocked_tls(f.EOF_ERROR), CTX, "blocked", "tls.eof"),
    ("injected-tls-alert", blocked_tls(f.SSL_FAILED_HANDSHAKE), CTX, "blocked", "tls.handshake"),
    # the server itself ends the handshake with an alert (unrecognized_name…): the control sees
    # it too, so it is not a censor's alert (docs/simnet.md, "Censors we did not write")
    ("server-tls-alert-control-too", blocked_tls(f.SSL_FAILED_HANDSHAKE, (ctl(endpoints=(
        ep(IP, tls_failure=f.SSL_FAILED_HANDSHAKE),), http_=chttp(
        None, f.SSL_FAILED_HANDSHAKE, body=None, title=None)),)), CTX, "down", "down.tls"),
    ("tls-timeout-everywhere", blocked_tls(T, (CTL_TLS_TIMEOUT,)), CTX, "down", "down.tls"),
    ("sni-drop-control-unreachable-innocuous-sni-works", blocked_tls(T, (ctl_failed(),),
                                                                     retry=True), CTX,
     "blocked", "tls.timeout"),
    ("sni-drop-no-control-innocuous-sni-works", blocked_tls(T, (), retry=True), None,
     "blocked", "tls.timeout"),
    ("tls-timeout-no-control", blocked_tls(T, ()), None, "inconclusive", "no_control"),
    # OONI QA: bad certificate everywhere is down, not blocked.
    ("bad-cert-everywhere-expired", meas(
        dns=sys_dns(), tcp_=(tcp(),),
        tls_=(tls(verified=False, error=f.SSL_INVALID_CERTIFICATE),), control=(CTL_BAD_CERT,)),
     CTX, "down", "down.tls"),
    ("bad-cert-everywhere-unknown-ca", meas(
        dns=sys_dns(), tcp_=(tcp(),),
        tls_=(tls(verified=False, error=f.SSL_UNKNOWN_AUTHORITY, chain=ROGUE_CHAIN),),
        control=(ctl(endpoints=(ep(IP, verified=False, verify_error=f.SSL_UNKNOWN_AUTHORITY,
                                   chain=ROGUE_CHAIN),),
                     http_=chttp(None, f.SSL_UNKNOWN_AUTHORITY, body=None, title=None)),)),
     CTX, "down", "down.tls"),
    ("bad-cert-everywhere-wrong-host-control-http-only", meas(
        dns=sys_dns(), tcp_=(tcp(),),
        tls_=(tls(verified=False, error=f.SSL_INVALID_HOSTNAME),),
        control=(ctl(endpoints=(), http_=chttp(None, f.SSL_INVALID_HOSTNAME, body=None,
                                               title=None)),)),
     CTX, "down", "down.tls"),
    ("bad-cert-no-control", meas(dns=sys_dns(), tcp_=(tcp(),),
                                 tls_=(tls(verified=False, error=f.SSL_INVALID_HOSTNAME),)),
     None, "inconclusive", "no_control"),
    ("interception-kz-2020-root-fingerprint", meas(
        dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(verified=False, error=f.SSL_UNKNOWN_AUTHORITY,
                                                chain=KZ2020_CHAIN),), control=(ctl(),)),
     CTX, "intercepted", "tls.mitm"),
    ("interception-kz-2020-no-control", meas(
        dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(verified=False, error=f.SSL_UNKNOWN_AUTHORITY,
                                                chain=KZ2020_CHAIN),)),
     None, "intercepted", "tls.mitm"),
    ("interception-kz-2019-root-installed", meas(
        dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(chain=KZ2019_CHAIN),), http_=(http(),),
        control=(ctl(),)), CTX, "intercepted", "tls.mitm"),
    ("interception-unknown-rogue-ca", meas(
        dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(verified=False, error=f.SSL_UNKNOWN_AUTHORITY,
                                                chain=ROGUE_CHAIN),), control=(ctl(),)),
     CTX, "intercepted", "tls.mitm"),
    ("same-cert-as-control-but-not-trusted-here", meas(
        dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(verified=False, error=f.SSL_UNKNOWN_AUTHORITY),),
        control=(ctl(),)), CTX, "inconclusive", "trust_store"),
    # --- HTTP --------------------------------------------------------------------------------
    ("injected-blockpage", http_ok((HTTP_CTL,), body=INJECTED, title=None, headers=()), CTX,
     "blocked", "http.blockpage"),
    ("injected-blockpage-no-control", http_ok(body=INJECTED, title=None, headers=()), None,
     "blocked", "http.blockpage"),
    # a field fingerprint its source has not confirmed (a vague blocking word, Censored
    # Planet's cp.f_gen_blocked_14): not enough without the control's page
    ("unconfirmed-field-blockpage-no-control", http_ok(
        body=b"<html><p>URLBlocked by the filter</p></html>", title=None, headers=()), None,
     "inconclusive", "blockpage_unconfirmed"),
    ("unconfirmed-field-blockpage", http_ok(
        (HTTP_CTL,), body=b"<html><p>URLBlocked by the filter</p></html>", title=None,
        headers=()), CTX, "blocked", "http.blockpage"),
    ("redirect-to-the-blockpage-server", redirect_to(
        "http://blocked.gov.kz/",
        (http(11, "http://blocked.gov.kz/", index=1, ip=BLOCKPAGE_IP, body=BLOCK_BODY,
              title="Access restricted"),),
        sys_dns("blocked.gov.kz", BLOCKPAGE_IP, tx=2)), CTX, "blocked", "http.redirect"),
    ("redirect-to-an-unlisted-blockpage-host", redirect_to(
        "http://notice.isp.example/",
        (http(11, "http://notice.isp.example/", index=1, ip="5.188.10.7", body=BLOCK_BODY,
              title="Access restricted"),),
        sys_dns("notice.isp.example", "5.188.10.7", tx=2)), CTX, "blocked", "http.redirect"),
    ("redirect-to-the-blockpage-server-unreachable", redirect_to(
        "http://blocked.gov.kz/", dns=sys_dns("blocked.gov.kz", failure=T, tx=2)),
     CTX, "blocked", "http.redirect"),
    ("451-over-plain-http", http_ok((HTTP_CTL,), status=451, body=b"legal", title=None,
                                    headers=()), CTX, "blocked", "http.status"),
    ("451-from-the-site-itself", https_ok((ctl(),), status=451), CTX,
     "inconclusive", "server_side"),
    ("http-reset", http_fail(f.CONNECTION_RESET), CTX, "blocked", "http.reset"),
    ("http-timeout", http_fail(T), CTX, "blocked", "http.timeout"),
    ("http-eof", http_fail(f.EOF_ERROR), CTX, "blocked", "http.eof"),
    ("http-reset-mid-body", http_fail(f.CONNECTION_RESET, status=200), CTX,
     "blocked", "http.reset"),
    ("http-timeout-everywhere", http_fail(T, (ctl(http_=chttp(None, T, body=None,
                                                              title=None)),)),
     CTX, "down", "down.http"),
    ("http-reset-no-control", http_fail(f.CONNECTION_RESET, ()), None,
     "inconclusive", "no_control"),
    ("5xx-everywhere", https_ok((ctl(http_=chttp(503, title="Service Unavailable")),),
                                status=503, title="Service Unavailable"),
     CTX, "down", "down.http"),
    ("5xx-only-for-the-probe-over-https", https_ok((ctl(),), status=502, title="Bad gateway"),
     CTX, "inconclusive", "server_side"),
    ("5xx-no-control", https_ok(status=503), None, "inconclusive", "no_control"),
    ("http-diff-without-fingerprint", http_ok(
        (HTTP_CTL,), body=b"<title>Warning</title>short", title="Warning notice",
        headers=(("X-Filter", "1"),)), CTX, "blocked", "http.diff"),
    ("http-diff-longer-than-the-control", http_ok(
        (ctl(HTTP_URL, http_=chttp(redirect_chain=(HTTP_URL,), body=b"<title>Parked</title>",
                                   title="Parked", headers=())),),
        body=b"<title>Error</title>" + b"x" * 4000, title="Error page", headers=()),
     CTX, "inconclusive", "content_diff"),
    # OONI weak spot: server-side blocking (ooni/probe#1734, #2661, #2333).
    ("cloudflare-challenge-https", https_ok(
        (ctl(),), status=403, title="Just a moment...", body=b"<title>Just a moment...</title>",
        headers=(("Server", "cloudflare"), ("cf-mitigated", "challenge"))),
     CTX, "inconclusive", "server_side"),
    ("cloudflare-challenge-http", http_ok(
        (HTTP_CTL,), status=403, title="Just a moment...",
        body=b"<title>Just a moment...</title>",
        headers=(("Server", "cloudflare"), ("cf-mitigated", "challenge"))),
     CTX, "inconclusive", "server_side"),
    ("site-refuses-the-region", https_ok(
        (ctl(),), status=403, title="Not available in your region",
        body=b"This content is not available in your region."),
     CTX, "inconclusive", "server_side"),
    ("403-only-for-the-probe-over-https", https_ok(
        (ctl(),), status=403, title="Forbidden", body=b"nope", headers=()),
     CTX, "inconclusive", "server_side"),
    ("403-only-for-the-probe-with-the-sites-headers", http_ok(
        (HTTP_CTL,), status=403, title="Forbidden", body=b"nope"),
     CTX, "inconclusive", "server_side"),
    ("too-many-redirects-everywhere", http_fail(
        f.HTTP_TOO_MANY_REDIRECTS, (ctl(http_=chttp(302, f.HTTP_TOO_MANY_REDIRECTS)),), 302),
     CTX, "down", "down.http"),
    ("too-many-redirects-only-here-same-host", http_fail(f.HTTP_TOO_MANY_REDIRECTS, status=302),
     CTX, "inconclusive", "server_side"),
    ("broken-location-only-here-over-http", meas(
        HTTP_URL, sys_dns(), (tcp(port=80),), (),
        (http(url=HTTP_URL, status=302, failure=f.HTTP_INVALID_REDIRECT_LOCATION_HOST,
              body=None, title=None),), (HTTP_CTL,)), CTX, "blocked", "http.redirect"),
    ("http-protocol-error-control-fine", http_fail(f.HTTP_PROTOCOL_ERROR), CTX,
     "inconclusive", "unexplained"),
    # --- throttling --------------------------------------------------------------------------
    ("throttled-handshake-azattyq", slow(hs=4.5), context(throttle_baseline=BASELINE),
     "throttled", "throttle"),
    ("throttled-throughput", slow(took=10.0, length=200_000, control=FAST_CTL),
     context(throttle_baseline=BASELINE), "throttled", "throttle"),
    ("throttled-control-only", slow(took=10.0, length=200_000, control=FAST_CTL), CTX,
     "throttled", "throttle"),
    # With a fast baseline the control need only be 3x faster (its small-page rate is noisy).
    ("throttled-busy-control", slow(took=10.0, length=200_000,
                                    control=ctl(http_=chttp(throughput_bps=800e3))),
     context(throttle_baseline=BASELINE), "throttled", "throttle"),
    ("slow-at-the-control-too-is-not-throttling", slow(
        took=10.0, length=200_000, control=ctl(http_=chttp(throughput_bps=300e3))),
     context(throttle_baseline=BASELINE), "ok", None),
    ("throttled-stalled-body", meas(
        dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),),
        http_=(http(failure=T, took=10.0, body_length=150_000),), control=(FAST_CTL,)),
     context(throttle_baseline=BASELINE), "throttled", "throttle"),
    # Russia 2025: the first ~16 kB, then nothing until the deadline (issue 12).
    ("stall-after-16k", meas(
        dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),),
        http_=(dataclasses.replace(http(failure=T, took=10.0, body_length=12_000),
                                   received_bytes=16_000, last_byte_t=0.5),),
        control=(FAST_CTL,)), context(throttle_baseline=BASELINE), "blocked", "http.stall"),
    ("slow-trickle-without-yardstick-is-not-blocked", meas(
        dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),),
        http_=(dataclasses.replace(http(failure=T, took=10.0, body_length=150_000),
                                   received_bytes=150_500, last_byte_t=10.35),),
        control=(ctl(http_=chttp(throughput_bps=300e3)),)), CTX, "inconclusive",
     "slow_transfer"),
    # --- shutdowns and outages ---------------------------------------------------------------
    ("shutdown-international", tcp_fail(T, (ctl_failed(),)), context(W.SHUTDOWN_INTERNATIONAL),
     "shutdown", "shutdown.international"),
    # issue 12: the site's TCP connect succeeded, so the cut did not stop it (it is judged on
    # its own: here the control failed too, so nothing is known)
    ("site-answered-through-a-cut-is-not-a-shutdown", blocked_tls(T, (ctl_failed(),)),
     context(W.SHUTDOWN_INTERNATIONAL), "inconclusive", "control_failed"),
    # issue 12: a cut first seen right after the request that triggered a residual censor
    ("self-triggered-tls-blocking-stands", blocked_tls(T), SELF_TRIGGERED,
     "blocked", "tls.timeout"),
    ("self-triggered-http-blocking-stands", http_fail(T), SELF_TRIGGERED,
     "blocked", "http.timeout"),
    ("victim-of-the-residual-cut-is-still-a-shutdown-here", tcp_fail(T), SELF_TRIGGERED,
     "shutdown", "shutdown.full"),
    ("shutdown-full", meas(dns=sys_dns(failure=f.DNS_TEMPORARY_FAILURE, took=5.0),
                           control=(ctl_failed(),)),
     context(W.SHUTDOWN_FULL), "shutdown", "shutdown.full"),
    ("shutdown-allowlist", tcp_fail(T, (ctl_failed(),)), context(W.SHUTDOWN_ALLOWLIST),
     "shutdown", "shutdown.allowlist"),
    ("never-blocked-during-a-cut", tcp_fail(T), context(W.SHUTDOWN_INTERNATIONAL),
     "shutdown", "shutdown.international"),
    ("never-down-during-a-cut", tcp_fail(T, (ctl(endpoints=(ep(IP, tcp_failure=T),),
                                                 http_=chttp(None, T, body=None, title=None)),)),
     context(W.SHUTDOWN_FULL), "shutdown", "shutdown.full"),
    # a refusal comes from the site's own host: the path was up, so the cut did not do it
    ("down-stands-when-the-site-refused-during-a-cut", tcp_fail(f.CONNECTION_REFUSED, (ctl(
        endpoints=(ep(IP, tcp_failure=f.CONNECTION_REFUSED),),
        http_=chttp(None, f.CONNECTION_REFUSED, body=None, title=None)),)),
     context(W.SHUTDOWN_FULL), "down", "down.tcp"),
    ("local-outage-is-not-a-shutdown", tcp_fail(f.NETWORK_UNREACHABLE, (ctl_failed(),)),
     context(W.LOCAL_OUTAGE), "inconclusive", "local_outage"),
    ("whole-network-blocking-stands", tcp_fail(T), context(W.WHOLE), "blocked", "tcp.timeout"),
    # --- captive portals: the network's, not the site's -----------------------------------
    # the same redirect as redirect-to-an-unlisted-blockpage-host (blocked on a whole network)
    ("captive-redirect-is-not-blocked", redirect_to(
        "http://notice.isp.example/",
        (http(11, "http://notice.isp.example/", index=1, ip="5.188.10.7", body=BLOCK_BODY,
              title="Access restricted"),),
        sys_dns("notice.isp.example", "5.188.10.7", tx=2)), context(W.CAPTIVE),
     "inconclusive", "captive_portal"),
    ("captive-blockpage-is-not-blocked", http_ok(
        (HTTP_CTL,), body=BLOCK_BODY, title="Access restricted"), context(W.CAPTIVE),
     "inconclusive", "captive_portal"),
    ("captive-tls-reset-is-not-blocked", blocked_tls(f.CONNECTION_RESET), context(W.CAPTIVE),
     "inconclusive", "captive_portal"),
    ("captive-tcp-timeout-is-not-a-shutdown", tcp_fail(T), context(W.CAPTIVE),
     "inconclusive", "captive_portal"),
    ("captive-down-is-not-down", tcp_fail(T, (ctl(endpoints=(ep(IP, tcp_failure=T),),
                                                  http_=chttp(None, T, body=None,
                                                              title=None)),)),
     context(W.CAPTIVE), "inconclusive", "captive_portal"),
    ("captive-success-stays-ok", https_ok((ctl(),)), context(W.CAPTIVE), "ok", None),
    ("captive-confirmed-http-page-stays-ok", http_ok((HTTP_CTL,)), context(W.CAPTIVE), "ok",
     None),
    # the portal's login page at the end of its redirect, no control to say otherwise
    ("captive-unconfirmed-http-page-is-not-ok", http_ok(), context(W.CAPTIVE),
     "inconclusive", "captive_portal"),
    ("captive-control-cut-off-too", tcp_fail(f.CONNECTION_REFUSED, (ctl_failed(),)),
     context(W.CAPTIVE), "inconclusive", "captive_portal"),
    # A chain from a known national interception CA is proof on its own: a portal answers
    # HTTPS with its own certificate, never with Kazakhstan's.
    ("captive-known-interception-ca-stands", meas(
        dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(verified=False, error=f.SSL_UNKNOWN_AUTHORITY,
                                                chain=KZ2020_CHAIN),), control=(ctl(),)),
     context(W.CAPTIVE), "intercepted", "tls.mitm"),
    ("server-side-page-arrived-during-a-cut", https_ok(
        (ctl_failed(),), status=403, title="Just a moment...", body=b"x",
        headers=(("cf-mitigated", "challenge"),)), context(W.SHUTDOWN_ALLOWLIST),
     "inconclusive", "server_side"),
    ("isp-resolver-down-for-every-name", meas(
        dns=sys_dns(failure=f.DNS_TEMPORARY_FAILURE, took=5.0), control=(ctl(),)),
     Context(health=(HealthRound("2026-11-21T10:14:50.000000Z", W.WHOLE,
                                 {"gateway": 1, "domestic": 3, "international": 3},
                                 {"resolver": 1}),)),
     "inconclusive", "resolver_down"),
    # --- missing or contradictory evidence ------------------------------------------------------
    # OONI weak spot (ooni/explorer#764): site and control both failing.
    ("site-and-control-both-failing-control-blocked", blocked_tls(T, (ctl_failed(),)), CTX,
     "inconclusive", "control_failed"),
    ("site-and-control-both-failing-site-down", blocked_tls(T, (CTL_TLS_TIMEOUT,)), CTX,
     "down", "down.tls"),
    ("control-answer-with-a-failure", tcp_fail(T, ({"control": CONTROL, "version": 1,
                                                    "control_failure": None,
                                                    "failure": "target refused"},)),
     CTX, "inconclusive", "control_failed"),
    ("controls-disagree", tcp_fail(T, (ctl(endpoints=()), ctl(
        endpoints=(), helper="https://c2.test", http_=chttp(None, T, body=None, title=None)))),
     CTX, "inconclusive", "flaky"),
    ("interrupted", meas(dns=sys_dns(), tcp_=(tcp(failure=f.INTERRUPTED),), control=(ctl(),)),
     CTX, "inconclusive", "interrupted"),
    ("no-observations", meas(), None, "inconclusive", "incomplete"),
    ("redirect-not-followed", meas(
        HTTP_URL, sys_dns(), (tcp(port=80),), (),
        (http(url=HTTP_URL, status=302, location="http://other.example/"),)),
     None, "inconclusive", "incomplete"),
    # --- a test this version has no rules for (an imported OONI app test, issue 14) -----------
    ("imported-app-test-unsupported", Measurement(
        Target(url="ooni://whatsapp", hostname="whatsapp", scheme="ooni", port=443, path="",
               test_name="whatsapp"), "2024-01-01T00:00:00.000000Z",
        "2024-01-01T00:00:01.000000Z"), None, "inconclusive", "unsupported_test"),
]


@pytest.mark.parametrize(("m", "ctx", "kind", "method"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rules(m: Measurement, ctx: Context | None, kind: str, method: str | None) -> None:
    v = classify(m, ctx)
    assert (v.verdict.value, v.method) == (kind, method), v.evidence
    assert v.analysis_version == ANALYSIS_VERSION == "1.8.1"
    assert v.method is None or v.method in METHODS_BY_VERDICT[v.verdict]
    assert v.evidence and "\n" not in v.evidence
    assert 0.0 <= v.confidence <= 1.0
    json.dumps(v.details)  # structured fields must be storable as JSON
    if m.control:
        assert "control" in v.details, "every verdict with a control says what it saw"
    assert classify(m, ctx) == v  # pure: same observations, same verdict


def test_ids_are_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_every_method_is_covered_by_a_case() -> None:
    produced = {classify(c[1], c[2]).method for c in CASES}
    assert METHODS <= produced, sorted(METHODS - produced)


def test_no_outage_server_side_cdn_or_shutdown_row_is_blocked() -> None:
    """The issue's bar: these situations are never labelled blocked."""
    words = ("everywhere", "server-side", "cdn", "region", "shutdown", "outage", "cut",
             "challenge", "refuses", "slow-", "transparent-proxy", "ipv6-ipv4-works")
    rows = [c for c in CASES if any(w in c[0] for w in words) and "blocking-stands" not in c[0]]
    assert len(rows) >= 20
    for name, m, ctx, *_ in rows:
        assert classify(m, ctx).verdict != VerdictKind.BLOCKED, name


# --- confidence: a fingerprint is strong, a difference is weak ------------------------------------

@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("kz-sni-drop-after-clienthello", 0.9, 1.0),
     ("interception-kz-2020-root-fingerprint", 0.9, 1.0),
     ("injected-blockpage", 0.9, 1.0), ("blockpage-ip", 0.9, 1.0),
     ("http-diff-without-fingerprint", 0.3, 0.6), ("tcp-timeout", 0.8, 0.9),
     ("tcp-timeout-control-fetched-only", 0.6, 0.75), ("shutdown-international", 0.85, 1.0),
     ("tcp-timeout-no-control", 0.0, 0.4), ("https-ok-control-agrees", 0.9, 1.0),
     ("http-ok-no-control", 0.5, 0.7), ("throttled-handshake-azattyq", 0.75, 0.9),
     ("throttled-control-only", 0.5, 0.7), ("throttled-busy-control", 0.65, 0.75),
     ("control-failed-later-than-the-probe", 0.5, 0.65)],
)
def test_confidence(name: str, low: float, high: float) -> None:
    row = next(c for c in CASES if c[0] == name)
    assert low <= classify(row[1], row[2]).confidence <= high


# --- evidence and details -------------------------------------------------------------------------


def _row(name: str) -> tuple[Measurement, Context | None]:
    row = next(c for c in CASES if c[0] == name)
    return row[1], row[2]


@pytest.mark.parametrize(
    ("name", "evidence", "details"),
    [
        ("kz-sni-drop-after-clienthello",
         f"TLS handshake with {IP}:443 (SNI {HOST}) timed out after the ClientHello (10.0 s); "
         "the control completed it in 0.05 s with a valid certificate; an innocuous SNI "
         "(example.org) to the same address succeeded",
         {"step": "tls", "tx_id": 10, "failure": T, "ip": IP, "server_name": HOST,
          "innocuous_sni": "example.org", "innocuous_sni_tx_id": 11}),
        ("tcp-timeout",
         f"TCP connect to {IP}:443 timed out after 10.0 s; the control connected to the same "
         "address",
         {"step": "tcp", "tx_id": 10, "failure": T, "ip": IP, "port": 443}),
        ("nxdomain",
         f"DNS A lookup of {HOST} via the system resolver failed: dns_nxdomain_error; the "
         f"control resolved it to {IP}",
         {"step": "dns", "resolver": "system", "failure": f.DNS_NXDOMAIN, "tx_id": 1}),
        ("injected",
         f"two different DNS responses to one A query for {HOST} via 8.8.8.8:53 (udp): {LIE} "
         f"first, then {IP}; forged: {LIE}; the control resolved it to {IP}",
         {"step": "dns", "resolver": "8.8.8.8:53", "tx_id": 7, "forged": [LIE]}),
        ("blockpage-ip",
         f"DNS A answer for {HOST} via the system resolver is {BLOCKPAGE_IP}, a known "
         f"block-page server (probe-simnet-blockpage-ip); the control resolved it to {IP}",
         {"step": "dns", "ip": BLOCKPAGE_IP, "fingerprint": "probe-simnet-blockpage-ip"}),
        ("tcp-timeout-no-control",
         f"TCP connect to {IP}:443 timed out after 10.0 s; no control measurement to tell "
         "blocking from the site being down",
         {"step": "tcp", "symptom": "tcp.timeout"}),
        ("bad-cert-everywhere-expired", None,
         {"step": "tls", "verify_error": f.SSL_INVALID_CERTIFICATE,
          "leaf_sha256": REAL_CHAIN[0].sha256}),
        ("shutdown-international", None,
         {"symptom": "control_failed", "network": "shutdown.international",
          "health_round": "2026-11-21T10:14:50.000000Z", "step": "tcp"}),
        ("self-triggered-tls-blocking-stands", None,
         {"step": "tls", "network": "shutdown.full",
          "cut_after_answer": "2026-11-21T10:15:06.000000Z"}),
        ("cloudflare-challenge-https", None,
         {"fingerprint": "cloudflare-challenge", "status": 403}),
        ("injected-blockpage", None,
         {"fingerprint": "probe-simnet-blockpage", "step": "http", "status": 200}),
    ],
)
def test_evidence_and_details(name: str, evidence: str | None,
                              details: dict[str, object]) -> None:
    m, ctx = _row(name)
    v = classify(m, ctx)
    if evidence is not None:
        assert v.evidence == evidence
    assert details.items() <= v.details.items()


@pytest.mark.parametrize("name", ["interception-kz-2020-root-fingerprint",
                                  "interception-unknown-rogue-ca"])
def test_interception_evidence_names_issuer_and_fingerprints(name: str) -> None:
    m, ctx = _row(name)
    v = classify(m, ctx)
    chain = m.tls[0].certificates
    assert v.details["issuers"] == [c.issuer for c in chain]
    assert v.details["chain_sha256"] == [c.sha256 for c in chain]
    assert chain[0].issuer in v.evidence
    assert "control saw issuer CN=Probe Test World Root CA" in v.evidence


def test_kz_2020_match_names_the_fingerprint() -> None:
    v = classify(*_row("interception-kz-2020-root-fingerprint"))
    assert v.details["fingerprint"] == "kz-isca-2020"
    assert "61c0fc2e" in v.details["fingerprint_match"]


def test_ooni_keys_of_the_comparison_are_kept_on_ok() -> None:
    v = classify(*_row("region-content-http-same-title"))
    assert v.details["title_match"] is True and v.details["status_match"] is True


def test_classify_without_context_uses_stored_control() -> None:
    assert classify(tcp_fail(T)).verdict is VerdictKind.BLOCKED


@pytest.mark.parametrize(
    ("ip", "bogon"),
    [("10.10.34.35", True), ("127.0.0.1", True), ("192.168.1.1", True), ("172.16.0.1", True),
     ("100.64.0.1", True), ("169.254.1.1", True), ("0.0.0.0", True), ("192.0.2.1", True),
     ("224.0.0.1", True), ("240.0.0.1", True), ("::1", True), ("fd00::1", True),
     ("fe80::1", True), ("::ffff:10.0.0.1", True), ("2001:db8::1", True),
     ("93.184.216.34", False), ("8.8.8.8", False), ("2606:2800:220:1::1", False),
     ("::ffff:8.8.8.8", False), ("not an ip", False),
     # IPv6 that carries a private IPv4 (6to4, NAT64) and the RFC 9637 documentation block
     ("2002:c0a8:101::1", True), ("64:ff9b::a00:1", True), ("3fff::1", True),
     ("2002:808:808::1", False), ("64:ff9b::808:808", False)],
)
def test_is_bogon(ip: str, bogon: bool) -> None:
    assert is_bogon(ip) is bogon


def test_classify_imports_only_model_failures_and_stdlib() -> None:
    """DESIGN's import rule: classify imports only probe.model, probe.failures, its own data
    (and never probe.run.asn: ASN data arrives as a function)."""
    allowed_probe = {"probe", "probe.model", "probe.failures", "probe.errors", "probe.classify"}
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
                    assert name.split(".")[0] in sys.stdlib_module_names, (path.name, name)


# --- robustness: any combination of observations and control answers gets a verdict -------------

_FAILURES = st.sampled_from([None, *sorted(f.VOCABULARY), f.unknown("odd 1.2.3.4")])
_IPS = st.sampled_from([IP, IP2, IP6, LIE, BOGON, BLOCKPAGE_IP, "127.0.0.1", "not-an-ip"])
_HOSTS = st.sampled_from([HOST, "www.example.test", "other.example", "example.org"])
_URLS = st.sampled_from([URL, HTTP_URL, "https://www.example.test/", "http://other.example/x"])
_TX = st.integers(1, 4)
_T = st.floats(0, 20, allow_nan=False)
_CHAINS = st.sampled_from([(), REAL_CHAIN, ROGUE_CHAIN, KZ2020_CHAIN])


@st.composite
def _dns(draw: st.DrawFn) -> DNSObservation:
    qtype = draw(st.sampled_from(["A", "AAAA"]))
    return DNSObservation(
        draw(_TX), draw(_HOSTS), qtype, draw(st.sampled_from(["system", "udp", "doh"])),
        draw(st.sampled_from(["system", "8.8.8.8:53", "127.0.0.1:5353", "[::1]:53"])),
        0.0, draw(_T), draw(_FAILURES), draw(st.sampled_from([None, "NOERROR", "NXDOMAIN"])),
        tuple(DNSAnswer(draw(st.sampled_from(["A", "AAAA", "CNAME"])), a)
              for a in draw(st.lists(_IPS, max_size=2))),
        draw(st.integers(0, 2)))


@st.composite
def _control(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return ctl_failed(draw(st.sampled_from([T, f.CONNECTION_RESET])))
    eps = tuple(ep(draw(_IPS.filter(lambda x: x != "not-an-ip")),
                   tcp_failure=draw(_FAILURES), tls_failure=draw(_FAILURES),
                   verified=draw(st.sampled_from([None, True, False])),
                   chain=draw(_CHAINS), time=draw(st.one_of(st.none(), _T)))
                for _ in range(draw(st.integers(0, 2))))
    answer = ctl(draw(_URLS), tuple(draw(st.lists(_IPS, max_size=2))),
                 draw(_FAILURES), eps,
                 chttp(draw(st.sampled_from([None, 200, 403, 451, 503])), draw(_FAILURES),
                       throughput_bps=draw(st.one_of(st.none(), st.floats(0, 1e9)))))
    if draw(st.booleans()):  # drop or garble fields: a partial answer must not crash
        answer[draw(st.sampled_from(["dns", "endpoints", "http", "url"]))] = draw(
            st.sampled_from([None, [], "x", 3]))
    return answer


@st.composite
def _measurement(draw: st.DrawFn) -> Measurement:
    return meas(
        draw(_URLS),
        tuple(draw(st.lists(_dns(), max_size=4))),
        tuple(draw(st.lists(st.builds(TCPObservation, _TX, _IPS, st.just(443), _T, _T,
                                      _FAILURES), max_size=3))),
        tuple(draw(st.lists(st.builds(
            TLSObservation, _TX, _IPS, st.just(443), _HOSTS, _T, _T, _FAILURES,
            certificates=_CHAINS, verified=st.sampled_from([None, True, False]),
            verify_error=st.sampled_from([None, f.SSL_UNKNOWN_AUTHORITY])), max_size=3))),
        tuple(draw(st.lists(st.builds(
            HTTPObservation, _TX, _URLS, st.just("GET"), st.one_of(st.none(), _IPS),
            st.just(443), _T, _T, _FAILURES, redirect_index=st.integers(0, 11),
            status=st.sampled_from([None, 200, 302, 403, 451, 503]),
            headers=st.sampled_from([(), SITE_HEADERS, (("cf-mitigated", "challenge"),)]),
            body=st.sampled_from([None, PAGE, BLOCK_BODY, INJECTED]),
            body_length=st.one_of(st.none(), st.integers(0, 300_000)),
            location=st.one_of(st.none(), _URLS)), max_size=4))),
        tuple(draw(st.lists(_control(), max_size=2))),
    )


_CONTEXTS = st.sampled_from([None, CTX, context(W.SHUTDOWN_FULL), context(W.LOCAL_OUTAGE),
                             context(W.CAPTIVE),
                             context(W.WHOLE, throttle_baseline=BASELINE)])


@settings(max_examples=400, deadline=None)
@given(_measurement(), _CONTEXTS)
def test_any_observations_get_a_well_formed_verdict(m: Measurement, ctx: Context | None) -> None:
    v = classify(m, ctx)
    assert v.method is None or v.method in METHODS_BY_VERDICT[v.verdict]
    assert (v.method is None) == (v.verdict == VerdictKind.OK)
    assert v.evidence and "\n" not in v.evidence
    json.dumps(v.details)
    if ctx is not None and ctx.health and ctx.health[0].state is W.CAPTIVE:
        # a captive portal's network: no site is blocked, down or intercepted there
        assert v.verdict not in (VerdictKind.BLOCKED, VerdictKind.DOWN, VerdictKind.INTERCEPTED)
    if ctx is not None and ctx.health and ctx.health[0].state.is_cut:
        # blocked or down during a cut only when the site's own host answered (issue 12)
        site_answered = any(t.failure in (None, "connection_refused") for t in m.tcp) or any(
            h.status is not None for h in m.http)
        assert v.verdict is not VerdictKind.BLOCKED or site_answered
        assert v.verdict is not VerdictKind.DOWN or site_answered
