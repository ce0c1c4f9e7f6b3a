"""Shared test builders: observations, measurements, control answers, health, small databases.

Holds no tests. Two families:

* classifier records (:func:`target`, :func:`sys_dns`, :func:`tcp`, :func:`tls`, :func:`http`,
  control answers, health rounds): every factory builds a plausible default, so a table row only
  states what matters for its rule;
* stored databases (:func:`build_db`, :func:`full_measurement`, :func:`listed_target`): two runs on
  two networks over three UTC days with every observation kind (DNS with an injected second
  response, TCP, TLS chains, HTTP redirects, a body that is not UTF-8), control answers in the
  helper's protocol-v1 shape, verdict history, a measurement without a verdict and health
  samples, for export, merge and report tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe import failures as f
from probe.classify import Context
from probe.classify.health import HealthRound, NetworkState
from probe.lab.synth import Cut, Episode, SynthNetwork, SynthSpec, SynthTarget
from probe.model import (
    Certificate,
    DNSAnswer,
    DNSObservation,
    HealthSample,
    HealthScope,
    HTTPObservation,
    Measurement,
    QUICHandshake,
    Target,
    TCPObservation,
    TLSObservation,
    TraceHop,
    TraceObservation,
    TraceProbe,
    Verdict,
    VerdictKind,
)
from probe.store import Store

# --- classifier records ---------------------------------------------------------------------

HOST = "example.test"
URL = f"https://{HOST}/"
HTTP_URL = f"http://{HOST}/"
IP = "93.184.216.34"  # the site's address, as the control's resolver sees it
IP2 = "93.184.216.35"
CDN_IP = "104.28.7.9"  # another valid address of the site (a CDN node on another AS)
IP6 = "2606:2800:220:1::1"
LIE = "5.188.10.66"  # a public address the site does not use
BOGON = "10.10.34.35"
BLOCKPAGE_IP = "178.89.0.10"  # the packaged fingerprint of the simulated block-page server
CONTROL = "https://control.measurement-sim.net"
STARTED = "2026-11-21T10:15:00.000000Z"
FINISHED = "2026-11-21T10:15:05.000000Z"

#: AS numbers of the test addresses (the classifier gets ``asn_of``, never a table).
ASNS = {IP: 64533, IP2: 64533, CDN_IP: 64530, LIE: 64999, BLOCKPAGE_IP: 64522,
        "104.28.7.10": 64530}


def asn_of(ip: str) -> int | None:
    return ASNS.get(ip)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cert(subject: str = f"CN={HOST}", issuer: str = "CN=Probe Test World Root CA",
         key: str | None = None, sans: tuple[str, ...] = (HOST,)) -> Certificate:
    ident = key or f"{subject}|{issuer}"
    return Certificate(b"\x30\x82", sha("cert:" + ident), sha("spki:" + ident), subject, issuer,
                       "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", sans)


REAL_CHAIN = (cert(), cert("CN=Probe Test World Root CA", "CN=Probe Test World Root CA"))
ROGUE_CHAIN = (cert(issuer="CN=Rogue Unknown CA", key="rogue-leaf"),
               cert("CN=Rogue Unknown CA", "CN=Rogue Unknown CA"))


def target(url: str = URL) -> Target:
    scheme, rest = url.split("://")
    hostname = rest.split("/")[0]
    return Target(url, hostname, scheme, 443 if scheme == "https" else 80, "/")


def sys_dns(host: str = HOST, *ips: str, failure: str | None = None, tx: int = 1,
            took: float = 0.05) -> tuple[DNSObservation, ...]:
    """The system resolver's pair of records (A and AAAA share a transaction)."""
    ips = ips or (() if failure else (IP,))
    out = []
    for qtype in ("A", "AAAA"):
        answers = tuple(DNSAnswer(qtype, i) for i in ips if (":" in i) == (qtype == "AAAA"))
        fail = failure or (None if answers else f.DNS_NO_ANSWER)
        out.append(DNSObservation(tx, host, qtype, "system", "system", 0.0, took, fail,
                                  answers=answers))
    return tuple(out)


def udp(host: str = HOST, *ips: str, failure: str | None = None, rcode: str | None = "NOERROR",
        index: int = 0, tx: int = 7, qtype: str = "A",
        resolver: str = "8.8.8.8:53") -> DNSObservation:
    return DNSObservation(tx, host, qtype, "udp", resolver, 0.0, 0.02 + index / 10, failure,
                          rcode=rcode, answers=tuple(DNSAnswer(qtype, i, 60) for i in ips),
                          response_index=index)


def tcp(tx: int = 10, ip: str = IP, failure: str | None = None, port: int = 443,
        took: float = 0.05) -> TCPObservation:
    return TCPObservation(tx, ip, port, 0.1, 0.1 + took, failure)


def tls(tx: int = 10, ip: str = IP, failure: str | None = None, verified: bool | None = True,
        sni: str = HOST, error: str | None = None, took: float = 0.08,
        chain: tuple[Certificate, ...] = REAL_CHAIN) -> TLSObservation:
    if failure:
        return TLSObservation(tx, ip, 443, sni, 0.2, 0.2 + took, failure)
    return TLSObservation(tx, ip, 443, sni, 0.2, 0.2 + took, None, "TLSv1.3",
                          "TLS_AES_128_GCM_SHA256", "http/1.1", chain, verified, error)


PAGE = b"<html><head><title>Example Domain</title></head><body>" + b"x" * 1200 + b"</body></html>"
SITE_HEADERS = (("Server", "probe-world"), ("Content-Type", "text/html"),
                ("X-Site-Build", "42"))


def http(tx: int = 10, url: str = URL, status: int | None = 200, failure: str | None = None,
         index: int = 0, location: str | None = None, ip: str | None = IP,
         body: bytes | None = PAGE, title: str | None = "Example Domain",
         headers: tuple[tuple[str, str], ...] = SITE_HEADERS, took: float = 0.05,
         body_length: int | None = None) -> HTTPObservation:
    port = 443 if url.startswith("https") else 80
    length = body_length if body_length is not None else (len(body) if body else None)
    digest = hashlib.sha256(body).hexdigest() if body else None
    return HTTPObservation(tx, url, "GET", ip, port, 0.4, 0.4 + took, failure,
                           redirect_index=index, status=status, headers=headers, body=body,
                           body_length=length, body_sha256=digest, title=title,
                           location=location)


# --- control answers (probe.control.protocol v1, as returned by the client) ----------------------


def ep(ip: str = IP, port: int = 443, origin: str = "both", tcp_failure: str | None = None,
       tls_failure: str | None = None, verified: bool | None = True,
       verify_error: str | None = None, chain: tuple[Certificate, ...] = REAL_CHAIN,
       time: float | None = 0.05, tls_done: bool = True) -> tuple[str, dict[str, Any]]:
    key = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    e: dict[str, Any] = {"origin": origin, "tcp_failure": tcp_failure}
    if tls_done and tcp_failure is None:
        ok = tls_failure is None
        e.update(tls_failure=tls_failure, verified=verified if ok else None,
                 verify_error=verify_error,
                 chain_sha256=[c.sha256 for c in chain] if ok else [],
                 spki_sha256=[c.spki_sha256 for c in chain] if ok else [],
                 issuers=[c.issuer for c in chain] if ok else [],
                 tls_handshake_time=time if ok else None)
    return key, e


def chttp(status: int | None = 200, failure: str | None = None, body: bytes | None = PAGE,
          title: str | None = "Example Domain",
          headers: tuple[tuple[str, str], ...] = SITE_HEADERS,
          redirect_chain: tuple[str, ...] = (URL,), elapsed: float = 0.1,
          throughput_bps: float | None = None) -> dict[str, Any]:
    return {"status": status, "failure": failure, "headers": [list(h) for h in headers],
            "body_length": len(body) if body else None,
            "body_sha256": hashlib.sha256(body).hexdigest() if body else None,
            "title": title, "redirect_chain": list(redirect_chain), "elapsed": elapsed,
            "throughput_bps": throughput_bps}


def ctl(url: str = URL, addrs: tuple[str, ...] = (IP,), dns_failure: str | None = None,
        endpoints: tuple[tuple[str, dict[str, Any]], ...] | None = None,
        http_: dict[str, Any] | None = None, helper: str = CONTROL) -> dict[str, Any]:
    """A control answer that saw the site working (override what differs)."""
    if endpoints is None:
        port = 443 if url.startswith("https") else 80
        endpoints = tuple(ep(a, port, tls_done=port == 443) for a in addrs)
    return {"version": 1, "url": url, "failure": None, "control": helper,
            "control_failure": None,
            "dns": {"resolver": "149.112.0.10:53", "addrs": list(addrs), "cnames": [],
                    "failure": dns_failure},
            "endpoints": dict(endpoints), "http": http_ if http_ is not None else chttp(),
            "elapsed": 0.3}


def ctl_failed(why: str = f.GENERIC_TIMEOUT, helper: str = CONTROL) -> dict[str, Any]:
    return {"control": helper, "version": 1, "control_failure": why}


def meas(url: str = URL, dns: tuple[DNSObservation, ...] = (),
         tcp_: tuple[TCPObservation, ...] = (), tls_: tuple[TLSObservation, ...] = (),
         http_: tuple[HTTPObservation, ...] = (),
         control: tuple[dict[str, Any], ...] = ()) -> Measurement:
    return Measurement(target(url), STARTED, FINISHED, dns=dns, tcp=tcp_, tls=tls_, http=http_,
                       control=control)


def https_ok(control: tuple[dict[str, Any], ...] = (), **kw: Any) -> Measurement:
    return meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),), http_=(http(**kw),),
                control=control)


def http_ok(control: tuple[dict[str, Any], ...] = (), **kw: Any) -> Measurement:
    return meas(HTTP_URL, sys_dns(), (tcp(port=80),), (), (http(url=HTTP_URL, **kw),),
                control=control)


# --- health -------------------------------------------------------------------------------------


def health_round(state: NetworkState, at: str = "2026-11-21T10:14:50.000000Z") -> HealthRound:
    up: dict[str, int] = {"gateway": 1}
    down: dict[str, int] = {}
    if state is NetworkState.WHOLE:
        up.update(resolver=1, domestic=3, international=3, control=1)
    elif state is NetworkState.SHUTDOWN_INTERNATIONAL:
        up.update(resolver=1, domestic=3)
        down.update(international=3, control=1)
    elif state is NetworkState.SHUTDOWN_ALLOWLIST:
        up.update(resolver=1, domestic=1)
        down.update(domestic=2, international=3, control=1)
    elif state is NetworkState.SHUTDOWN_FULL:
        down.update(resolver=1, domestic=3, international=3, control=1)
    elif state is NetworkState.LOCAL_OUTAGE:
        up = {}
        down.update(gateway=1, resolver=1, domestic=3, international=3, control=1)
    elif state is NetworkState.CAPTIVE:  # HTTP answered by the portal, HTTPS dropped
        up.update(resolver=1, portal=3)
        down.update(domestic=3, international=3, control=1)
        return HealthRound(at, state, up, down, portal=PORTAL_SIGNATURE)
    return HealthRound(at, state, up, down)


#: The signature of the portal in :func:`health_round`'s captive round.
PORTAL_SIGNATURE = "302 portal.isp.test"


def context(state: NetworkState | None = None, **kw: Any) -> Context:
    """A context with ASN data and, when given, one health round in ``state`` before the
    measurement."""
    health = (health_round(state),) if state is not None else ()
    return Context(health=health, asn_of=asn_of, **kw)


# --- stored databases -------------------------------------------------------------------

HELPER = "https://control.test:8443"
CERT_LEAF = Certificate(
    der=bytes(range(256)) + b"\x00\xff leaf",
    sha256="aa" * 32,
    spki_sha256="bb" * 32,
    subject="CN=news.test",
    issuer="CN=Test CA",
    not_before="2026-01-01T00:00:00Z",
    not_after="2027-01-01T00:00:00Z",
    san=("news.test", "www.news.test"),
)
CERT_CA = Certificate(
    der=b"\x30\x82\x01\x00 ca \xfe\xff",
    sha256="cc" * 32,
    spki_sha256="dd" * 32,
    subject="CN=Test CA",
    issuer="CN=Test CA",
    not_before="2025-01-01T00:00:00Z",
    not_after="2035-01-01T00:00:00Z",
)
ROGUE_LEAF = dataclasses.replace(CERT_LEAF, der=b"\x30rogue", sha256="ee" * 32,
                                 issuer="CN=National CA")


def listed_target(url: str, category: str | None = "NEWS") -> Target:
    scheme, rest = url.split("://", 1)
    host = rest.split("/", 1)[0]
    port = 443 if scheme == "https" else 80
    return Target(url=url, hostname=host, scheme=scheme, port=port, path="/",
                  category=category, source="kz.csv:3")


def control_answer(url: str, *, addrs: tuple[str, ...] = ("93.184.216.34",),
                   endpoints: dict[str, dict[str, Any]] | None = None,
                   status: int | None = 200, title: str | None = "News of the day",
                   body_length: int | None = 1000,
                   headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/html"),
                                                           ("X-Site", "news"))
                   ) -> dict[str, Any]:
    """A control helper answer (protocol v1) as the client stores it."""
    return {
        "version": 1, "url": url, "failure": None,
        "dns": {"resolver": "9.9.9.9:53", "addrs": list(addrs), "cnames": [], "failure": None},
        "endpoints": endpoints if endpoints is not None else {
            f"{a}:443": {"origin": "both", "tcp_failure": None, "tls_failure": None,
                         "verified": True, "verify_error": None, "chain_sha256": ["aa" * 32],
                         "spki_sha256": ["bb" * 32], "issuers": ["CN=Test CA"],
                         "tls_handshake_time": 0.01}
            for a in addrs
        },
        "http": {"status": status, "failure": None if status else "connection_reset",
                 "headers": [list(h) for h in headers], "body_length": body_length,
                 "body_sha256": "12" * 32, "body_truncated": False, "title": title,
                 "redirect_chain": [url], "elapsed": 0.2, "throughput_bps": None},
        "elapsed": 0.5, "refused_addresses": 0,
        "control": HELPER, "control_failure": None,
    }


FAILED_HELPER = {"control": "https://down.test", "version": 1,
                 "control_failure": "connection_refused"}


def full_measurement(**changes: Any) -> Measurement:
    """An https measurement with every observation kind: redirect, injection, two chains."""
    url = "https://news.test/"
    m = Measurement(
        target=listed_target(url),
        started_at="2026-11-21T10:15:00.123456Z",
        finished_at="2026-11-21T10:15:02.623456Z",
        dns=(
            DNSObservation(1, "news.test", "A", "system", "system", 0.0, 0.01, None,
                           answers=(DNSAnswer("A", "93.184.216.34"),)),
            DNSObservation(2, "news.test", "A", "udp", "8.8.8.8:53", 0.0, 0.02, None,
                           rcode="NOERROR",
                           answers=(DNSAnswer("CNAME", "edge.news.test", 30),
                                    DNSAnswer("A", "10.10.34.35", 0)),
                           response_index=0),
            DNSObservation(2, "news.test", "A", "udp", "8.8.8.8:53", 0.0, 0.05, None,
                           rcode="NOERROR", answers=(DNSAnswer("A", "93.184.216.34", 300),),
                           response_index=1),
            DNSObservation(3, "news.test", "AAAA", "udp", "8.8.8.8:53", 0.0, 5.0,
                           "generic_timeout_error"),
            DNSObservation(4, "www.news.test", "AAAA", "udp", "[2001:db8::53]:53", 0.6, 0.61,
                           None, rcode="NOERROR",
                           answers=(DNSAnswer("AAAA", "2001:db8::80", 60),)),
        ),
        tcp=(
            TCPObservation(10, "93.184.216.34", 443, 0.1, 0.2, None),
            TCPObservation(11, "2001:db8::1", 443, 0.1, 0.1001, "network_unreachable"),
            TCPObservation(12, "93.184.216.35", 443, 0.1, 0.15, None),
        ),
        tls=(
            TLSObservation(10, "93.184.216.34", 443, "news.test", 0.2, 0.4, None,
                           tls_version="TLSv1.3", cipher_suite="TLS_AES_128_GCM_SHA256",
                           alpn="h2", certificates=(CERT_LEAF, CERT_CA), verified=True),
            TLSObservation(12, "93.184.216.35", 443, "news.test", 0.15, 0.3, None,
                           tls_version="TLSv1.2", cipher_suite="ECDHE-RSA-AES128-GCM-SHA256",
                           certificates=(ROGUE_LEAF,), verified=False,
                           verify_error="ssl_unknown_authority"),
            TLSObservation(13, "2001:db8::2", 443, "news.test", 0.2, 10.2,
                           "generic_timeout_error"),
        ),
        http=(
            HTTPObservation(10, "https://news.test/", "GET", "93.184.216.34", 443, 0.4, 0.5,
                            None, redirect_index=0,
                            request_headers=(("Host", "news.test"), ("Accept", "*/*")),
                            status=301,
                            headers=(("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                     ("Location", "https://www.news.test/")),
                            body=b"", body_length=0, body_sha256="e3" * 32,
                            location="https://www.news.test/"),
            HTTPObservation(14, "https://www.news.test/", "GET", "2001:db8::80", 443, 0.7, 0.9,
                            None, redirect_index=1,
                            request_headers=(("Host", "www.news.test"),),
                            status=200,
                            headers=(("Content-Type", "text/html; charset=utf-8"),
                                     ("X-Site", "news")),
                            body="<title>News of the day — Жаңалықтар</title>\x00".encode(),
                            body_length=1100, body_sha256="ff" * 32, body_truncated=False,
                            title="News of the day — Жаңалықтар"),
        ),
        control=(FAILED_HELPER, control_answer(url, body_length=1000)),
        quic=(
            QUICHandshake(20, "93.184.216.34", 443, "news.test", 0.5, 0.55, None,
                          quic_version="QUICv1", alpn="h3", certificates=(CERT_LEAF, CERT_CA),
                          verified=True),
            QUICHandshake(21, "93.184.216.35", 443, "news.test", 0.5, 10.5,
                          "generic_timeout_error"),
        ),
        http3=(
            HTTPObservation(20, "https://news.test/", "GET", "93.184.216.34", 443, 0.55, 0.6,
                            None, request_headers=((":authority", "news.test"),), status=200,
                            headers=(("content-type", "text/html"),), body=b"<title>h3</title>",
                            body_length=17, body_sha256="aa" * 32, title="h3",
                            received_bytes=40, last_byte_t=0.59),
        ),
        extra={"hops": [{"url": url, "dns": [1, 2, 3], "endpoints": [10, 11, 12, 13]}],
               "note": "ünïcode"},
    )
    return dataclasses.replace(m, **changes)


def verdict(kind: VerdictKind, method: str | None = None, version: str = "0.1.0",
            confidence: float = 0.8, **details: Any) -> Verdict:
    return Verdict(kind, method, confidence, f"{kind.value} {method or ''}".strip(), version,
                   details=dict(details))


@dataclass
class Built:
    """What :func:`build_db` wrote: run ids, measurement ids per name, and the records."""

    path: Path
    runs: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    measurements: dict[str, Measurement] = field(default_factory=dict)
    verdicts: dict[str, Verdict | None] = field(default_factory=dict)

    def name_of(self, measurement_id: str) -> str:
        return {v: k for k, v in self.ids.items()}[measurement_id]


def _at(day: int, hh: int, mm: int) -> str:
    return f"2026-11-{day:02d}T{hh:02d}:{mm:02d}:00.000000Z"


def _timed(m: Measurement, day: int, hh: int, mm: int, seconds: float = 2.0) -> Measurement:
    return dataclasses.replace(m, started_at=_at(day, hh, mm),
                               finished_at=_at(day, hh, mm).replace(":00.000000Z",
                                                                    f":{seconds:09.6f}Z"))


def measurements() -> dict[str, tuple[str, Measurement, list[Verdict]]]:
    """name → (run, measurement, verdict history oldest first; empty = no verdict)."""
    ok = _timed(full_measurement(), 21, 10, 15)
    nx_url = "http://blocked.test/"
    nxdomain = _timed(Measurement(
        target=listed_target(nx_url, "HUMR"), started_at="", finished_at="",
        dns=(DNSObservation(1, "blocked.test", "A", "system", "system", 0.0, 0.02,
                            "dns_nxdomain_error"),
             DNSObservation(2, "blocked.test", "A", "udp", "8.8.8.8:53", 0.0, 0.03,
                            "dns_nxdomain_error", rcode="NXDOMAIN")),
        control=(control_answer(nx_url, addrs=("198.51.100.7",)),),
    ), 21, 10, 16)
    tcp_url = "https://vpn.test/"
    tcp_blocked = _timed(Measurement(
        target=listed_target(tcp_url, "ANON"), started_at="", finished_at="",
        dns=(DNSObservation(1, "vpn.test", "A", "system", "system", 0.0, 0.01, None,
                            answers=(DNSAnswer("A", "198.51.100.9"),)),),
        tcp=(TCPObservation(5, "198.51.100.9", 443, 0.01, 10.01, "generic_timeout_error"),),
        control=(control_answer(tcp_url, addrs=("198.51.100.9",)),),
    ), 22, 0, 5, 10.5)
    page_url = "http://media.test/"
    blockpage = _timed(Measurement(
        target=listed_target(page_url, None), started_at="", finished_at="",
        dns=(DNSObservation(1, "media.test", "A", "system", "system", 0.0, 0.01, None,
                            answers=(DNSAnswer("A", "203.0.113.5"),)),),
        tcp=(TCPObservation(7, "203.0.113.5", 80, 0.01, 0.02, None),),
        http=(HTTPObservation(7, page_url, "GET", "203.0.113.5", 80, 0.02, 0.05, None,
                              request_headers=(("Host", "media.test"),), status=200,
                              headers=(("Server", "censor"), ("Content-Length", "9")),
                              body=b"\xff\xfe\x00blocked", body_length=10,
                              body_sha256="ab" * 32, title=None),),
        control=(control_answer(page_url, addrs=("203.0.113.5",),
                                endpoints={"203.0.113.5:80": {"origin": "both",
                                                              "tcp_failure": None}}),),
    ), 22, 23, 59)
    unjudged = _timed(Measurement(target=listed_target("https://quiet.test/"), started_at="",
                                  finished_at=""), 22, 12, 0)
    down_url = "https://gone.test/"
    down = _timed(Measurement(
        target=listed_target(down_url, "GRP"), started_at="", finished_at="",
        dns=(DNSObservation(1, "gone.test", "A", "system", "system", 0.0, 0.01, None,
                            answers=(DNSAnswer("A", "192.0.2.10"),)),),
        tcp=(TCPObservation(3, "192.0.2.10", 443, 0.01, 0.02, "connection_refused"),),
        control=(control_answer(down_url, addrs=("192.0.2.10",), status=None, title=None,
                                body_length=None,
                                endpoints={"192.0.2.10:443": {"origin": "both",
                                                              "tcp_failure":
                                                                  "connection_refused"}}),),
    ), 23, 8, 0)
    cut = _timed(Measurement(
        target=listed_target("https://news.test/"), started_at="", finished_at="",
        dns=(DNSObservation(1, "news.test", "A", "system", "system", 0.0, 5.0,
                            "generic_timeout_error"),),
        control=(dict(FAILED_HELPER, control_failure="generic_timeout_error"),),
    ), 23, 8, 1)
    return {
        "ok": ("A", ok, [verdict(VerdictKind.INCONCLUSIVE, "no_control", "0.1.0", 0.3),
                         verdict(VerdictKind.OK, None, "0.2.0", 0.9, control="agrees")]),
        "nxdomain": ("A", nxdomain, [verdict(VerdictKind.BLOCKED, "dns.nxdomain",
                                             resolver="system")]),
        "tcp": ("A", tcp_blocked, [verdict(VerdictKind.BLOCKED, "tcp.timeout")]),
        "blockpage": ("A", blockpage, [verdict(VerdictKind.BLOCKED, "http.blockpage", "0.1.0",
                                               0.95, fingerprint="censor-page")]),
        "unjudged": ("A", unjudged, []),
        "down": ("B", down, [verdict(VerdictKind.DOWN, "down.tcp")]),
        "shutdown": ("B", cut, [verdict(VerdictKind.SHUTDOWN, "shutdown.full", confidence=0.7)]),
    }


HEALTH: dict[str, list[HealthSample]] = {
    "A": [
        HealthSample(_at(21, 10, 14), "before", HealthScope.GATEWAY, "192.168.1.1", 0.01, None),
        HealthSample(_at(21, 10, 14), "before", HealthScope.INTERNATIONAL, "https://c.test/",
                     0.2, None),
        HealthSample(_at(22, 23, 58), "during", HealthScope.DOMESTIC, "https://kz.test/", 0.1,
                     None),
    ],
    "B": [
        HealthSample(_at(23, 7, 59), "before", HealthScope.GATEWAY, "192.168.1.1", 0.01, None),
        HealthSample(_at(23, 7, 59), "before", HealthScope.INTERNATIONAL, "https://c.test/",
                     3.0, "generic_timeout_error"),
        HealthSample(_at(23, 7, 59), "before", HealthScope.DOMESTIC, "https://kz.test/", 3.0,
                     "generic_timeout_error"),
        HealthSample(_at(23, 8, 2), "after", HealthScope.INTERNATIONAL, "https://c.test/", 3.0,
                     "generic_timeout_error"),
    ],
}


def build_db(path: Path, runs: tuple[str, ...] = ("A", "B")) -> Built:
    """Write the scenario into a fresh database at ``path``."""
    built = Built(path)
    with Store.open(path) as store:
        for run in runs:
            built.runs[run] = store.start_run({"timeout": 10.0, "resolvers": ["8.8.8.8:53"]},
                                              5, "0.1.0")
        if "A" in runs:
            store.set_run_network(built.runs["A"], probe_asn=9198, probe_cc="KZ",
                                  network_name="JSC Kazakhtelecom")
        for name, (run, m, history) in measurements().items():
            if run not in runs:
                continue
            mid = store.save_measurement(built.runs[run], m, history[0] if history else None)
            for later in history[1:]:
                store.save_verdict(mid, later)
            built.ids[name] = mid
            built.measurements[name] = m
            built.verdicts[name] = history[-1] if history else None
        for run in runs:
            store.save_health(built.runs[run], HEALTH[run])
            store.finish_run(built.runs[run], "completed")
    return built


# --- synthetic report databases -------------------------------------------------------------


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def tiny_spec(health: bool = True) -> SynthSpec:
    """2 networks × 6 hourly runs × 4 targets (48 verdicts), numbers worked out in the tests.

    Net 0 runs at 00:00…05:00, net 1 at 00:30…05:30 (2024-03-10 UTC). Net 0 is fully cut at
    01:00, net 1's own link is down at 02:30.
    """
    n0, n1 = frozenset({0}), frozenset({1})
    return SynthSpec(
        start=utc("2024-03-10T00:00:00"),
        runs_per_network=6,
        interval=dt.timedelta(hours=1),
        networks=(
            SynthNetwork(100, "KZ", "NET-A"),
            SynthNetwork(200, "KZ", "NET-B", dt.timedelta(minutes=30)),
        ),
        targets=(
            SynthTarget(
                "https://a.test/",
                "NEWS",
                (
                    Episode(
                        utc("2024-03-10T03:00"),
                        None,
                        "blocked",
                        "tls.timeout",
                        "TLS to 192.0.2.1 timed out; asked from 203.0.113.9",
                    ),
                ),
                address="192.0.2.1",
            ),
            SynthTarget(
                "https://b.test/",
                "NEWS",
                (
                    Episode(None, None, "blocked", "dns.nxdomain", "NXDOMAIN", n0),
                    Episode(utc("2024-03-10T04:00"), None, "blocked", "tcp.reset", "reset", n0),
                ),
            ),
            SynthTarget(
                "https://c.test/",
                "GRP",
                (Episode(None, utc("2024-03-10T02:00"), "down", "down.tcp", "down too", n1),),
            ),
            SynthTarget("https://d.test/", None, domestic=True),
        ),
        cuts=(
            Cut(utc("2024-03-10T01:00"), utc("2024-03-10T02:00"), "shutdown.full", n0),
            Cut(utc("2024-03-10T02:30"), utc("2024-03-10T03:30"), "local_outage", n1),
        ),
        seed=5,
        health=health,
        observations=True,
        history=True,
    )


# --- records naming the volunteer's own address (privacy tests) -------------------------------

def cert_naming(ip: str) -> Certificate:
    """A certificate naming ``ip`` in its subject, SANs and DER (a home router's)."""
    der = b"0\x82..." + ipaddress.ip_address(ip).packed + b"...rest"
    return Certificate(der=der, sha256="a" * 64, spki_sha256="b" * 64,
                       subject=f"CN={ip}", issuer="CN=Router CA", not_before="2024-01-01T00:00Z",
                       not_after="2030-01-01T00:00Z", san=(ip, "router.lan"))


def measurement_naming(me: str, site: str = "203.0.113.5") -> Measurement:
    """A measurement whose every field can hold the volunteer's address ``me`` (DNS answer,
    failure, certificate, URL, headers, body, title, redirect, control answer with the
    helper's ``client_address``, extra); ``site`` is the measured site's address."""
    body = f"<html><title>Hello {me}</title>Your IP address is {me}</html>".encode()
    target = Target(url="https://site.example/", hostname="site.example", scheme="https",
                    port=443, path="/")
    return Measurement(
        target=target, started_at="2024-01-01T00:00:00.000000Z",
        finished_at="2024-01-01T00:00:01.000000Z",
        dns=(DNSObservation(1, "site.example", "A", "udp", f"{site}:53", 0.0, 0.1, None,
                            "NOERROR", (DNSAnswer("A", site), DNSAnswer("A", me))),),
        tcp=(TCPObservation(2, site, 443, 0.1, 0.2, None),
             TCPObservation(3, site, 443, 0.1, 0.2, f"unknown_failure: bind {me} failed")),
        tls=(TLSObservation(2, site, 443, "site.example", 0.2, 0.3, None,
                            certificates=(cert_naming(me), cert_naming(site))),),
        http=(HTTPObservation(
            2, f"https://site.example/echo?ip={me}", "GET", site, 443, 0.3, 0.4, None,
            request_headers=(("Host", "site.example"),), status=200,
            headers=(("X-Client-IP", me), (f"X-{me}", "v")), body=body,
            body_length=len(body), body_sha256=hashlib.sha256(body).hexdigest(),
            title=f"Hello {me}", location=f"https://site.example/?from={me}"),),
        control=({"control": "https://helper.example", "client_address": me,
                  "http": {"headers": [["X-Client-IP", me]]}},),
        quic=(QUICHandshake(4, site, 443, "site.example", 0.2, 0.3, None, quic_version="QUICv1",
                            alpn="h3", certificates=(cert_naming(me),)),),
        http3=(HTTPObservation(4, f"https://site.example/echo?ip={me}", "GET", site, 443, 0.3,
                               0.4, None, status=200, headers=(("x-client-ip", me),), body=body,
                               body_length=len(body),
                               body_sha256=hashlib.sha256(body).hexdigest()),),
        extra={"note": [me, 1, None, True]},
    )


def verdict_naming(me: str, site: str = "203.0.113.5") -> Verdict:
    """A verdict whose evidence and details hold the volunteer's address ``me``."""
    return Verdict(VerdictKind.BLOCKED, "tcp.reset", 0.9,
                   f"connection from {me} to {site}:443 reset", "0.1.0",
                   details={"client": me, me: [me]})


def trace_naming(me: str, site: str = "203.0.113.5") -> TraceObservation:
    """A trace whose hops, probes, answers, failure and details hold ``me``."""
    return TraceObservation(
        kind="tcp", target=site, port=443, name=None, innocuous=me,
        started_at="2024-01-01T00:00:00.000000Z", elapsed=1.0,
        failure=f"unknown_failure: bind {me}", result="located", signature="reset",
        trigger_ttl=3, hop=3, hop_address=me, path=(TraceHop(1, me), TraceHop(2, site)),
        probes=(TraceProbe(ttl=1, variant="trigger", outcome="time_exceeded", source=me,
                           reply_ttl=64, note=f"from {me}"),),
        answers=(me,), details={"source": me})


# --- reading a database back --------------------------------------------------------------


def every_stored_value(db: Path) -> list[tuple[str, str, object]]:
    """Every (table, column, value) of every row of every table: what a privacy test scans."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        out = []
        for table in tables:
            cols = [r[1] for r in con.execute(f"pragma table_info('{table}')")]
            for row in con.execute(f"select * from '{table}'"):
                out += [(table, col, value) for col, value in zip(cols, row, strict=True)]
        return out
    finally:
        con.close()
