"""Small factories for classifier tests: observations, control answers, health rounds.

Shared by the ``test_classify*`` modules; holds no tests itself. Every factory builds a
plausible default so a table row only states what matters for its rule.
"""

from __future__ import annotations

import hashlib
from typing import Any

from probe import failures as f
from probe.classify import Context
from probe.classify.health import HealthRound, NetworkState
from probe.model import (
    Certificate,
    DNSAnswer,
    DNSObservation,
    HTTPObservation,
    Measurement,
    Target,
    TCPObservation,
    TLSObservation,
)

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
    return HealthRound(at, state, up, down)


def context(state: NetworkState | None = None, **kw: Any) -> Context:
    """A context with ASN data and, when given, one health round in ``state`` before the
    measurement."""
    health = (health_round(state),) if state is not None else ()
    return Context(health=health, asn_of=asn_of, **kw)
