"""Shared builders for the export and merge tests: hand-made records and small databases.

``build_db`` writes two runs on two networks over three UTC days, with every observation kind
(DNS with an injected second response, TCP, TLS with certificate chains, HTTP redirects, a
body that is not UTF-8), control answers in the helper's protocol-v1 shape, verdict history,
a measurement without a verdict and health samples. The tests at the bottom check the
builders themselves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.model import (
    Certificate,
    DNSAnswer,
    DNSObservation,
    HealthSample,
    HealthScope,
    HTTPObservation,
    Measurement,
    Target,
    TCPObservation,
    TLSObservation,
    Verdict,
    VerdictKind,
)
from probe.store import Store

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


def target(url: str, category: str | None = "NEWS") -> Target:
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
        target=target(url),
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
        target=target(nx_url, "HUMR"), started_at="", finished_at="",
        dns=(DNSObservation(1, "blocked.test", "A", "system", "system", 0.0, 0.02,
                            "dns_nxdomain_error"),
             DNSObservation(2, "blocked.test", "A", "udp", "8.8.8.8:53", 0.0, 0.03,
                            "dns_nxdomain_error", rcode="NXDOMAIN")),
        control=(control_answer(nx_url, addrs=("198.51.100.7",)),),
    ), 21, 10, 16)
    tcp_url = "https://vpn.test/"
    tcp_blocked = _timed(Measurement(
        target=target(tcp_url, "ANON"), started_at="", finished_at="",
        dns=(DNSObservation(1, "vpn.test", "A", "system", "system", 0.0, 0.01, None,
                            answers=(DNSAnswer("A", "198.51.100.9"),)),),
        tcp=(TCPObservation(5, "198.51.100.9", 443, 0.01, 10.01, "generic_timeout_error"),),
        control=(control_answer(tcp_url, addrs=("198.51.100.9",)),),
    ), 22, 0, 5, 10.5)
    page_url = "http://media.test/"
    blockpage = _timed(Measurement(
        target=target(page_url, None), started_at="", finished_at="",
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
    unjudged = _timed(Measurement(target=target("https://quiet.test/"), started_at="",
                                  finished_at=""), 22, 12, 0)
    down_url = "https://gone.test/"
    down = _timed(Measurement(
        target=target(down_url, "GRP"), started_at="", finished_at="",
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
        target=target("https://news.test/"), started_at="", finished_at="",
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


# --- the builders themselves ----------------------------------------------------------------


def test_built_database_round_trips_through_the_store(tmp_path: Path) -> None:
    built = build_db(tmp_path / "a.db")
    with Store.open(built.path) as store:
        got = dict(store.iter_measurements())
        assert {built.name_of(mid): m for mid, m in got.items()} == built.measurements
        assert store.current_verdict(built.ids["ok"]) == built.verdicts["ok"]
        assert len(store.verdict_history(built.ids["ok"])) == 2
        assert store.current_verdict(built.ids["unjudged"]) is None
        assert len(store.health_samples(built.runs["B"])) == 4


def test_fixture_covers_every_observation_kind() -> None:
    m = full_measurement()
    assert m.dns and m.tcp and m.tls and m.http and m.control
    assert any(d.response_index == 1 for d in m.dns)
    assert any(h.certificates for h in m.tls) and any(h.verified is False for h in m.tls)
    assert any(h.redirect_index == 1 for h in m.http)
