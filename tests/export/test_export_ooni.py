"""Tests for the OONI export: the field list of reference/ooni-methodology.md, types, the
verdict → blocking/accessible mapping, control translation, and a round trip of observations
(parsed back from the OONI objects, compared with the stored records)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from probe.export import export
from probe.export.ooni import (
    NO_CONTROL_FAILURE,
    answered_control,
    blocking_accessible,
    body_length_match,
    headers_match,
    record_to_ooni,
    title_match,
    translate_control,
)
from probe.export.source import Record
from probe.model import HTTPObservation, Measurement, Verdict, VerdictKind
from probe.store import Store
from tests.factories import (
    FAILED_HELPER,
    Built,
    build_db,
    control_answer,
    full_measurement,
)

NULL = type(None)
STR, INT, FLOAT, BOOL, LIST, DICT = str, int, (int, float), bool, list, dict
OONI_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")

#: reference/ooni-methodology.md "Their data format", plus the brief's additions.
ENVELOPE: dict[str, Any] = {
    "measurement_start_time": STR, "test_name": STR, "test_version": STR, "input": STR,
    "probe_asn": STR, "probe_cc": STR, "probe_ip": STR, "resolver_ip": STR,
    "software_name": STR, "software_version": STR, "test_runtime": FLOAT,
    "test_start_time": STR, "annotations": DICT, "data_format_version": STR,
    "report_id": STR, "measurement_uid": STR, "test_keys": DICT,
}
TEST_KEYS: dict[str, Any] = {
    "queries": LIST, "tcp_connect": LIST, "tls_handshakes": LIST, "requests": LIST,
    "network_events": LIST, "control": DICT, "control_failure": (STR, NULL),
    "dns_consistency": (STR, NULL), "body_length_match": (BOOL, NULL),
    "status_code_match": (BOOL, NULL), "headers_match": (BOOL, NULL),
    "title_match": (BOOL, NULL), "blocking": (STR, BOOL, NULL), "accessible": (BOOL, NULL),
    "x_probe": DICT,
}
QUERY: dict[str, Any] = {
    "hostname": STR, "query_type": STR, "engine": STR, "resolver_address": STR,
    "answers": LIST, "failure": (STR, NULL), "t0": FLOAT, "t": FLOAT, "transaction_id": INT,
}
ANSWER_IP: dict[str, Any] = {"answer_type": STR, "ttl": (INT, NULL), "asn": INT}
TCP: dict[str, Any] = {"ip": STR, "port": INT, "status": DICT, "t0": FLOAT, "t": FLOAT,
                       "transaction_id": INT}
TCP_STATUS: dict[str, Any] = {"success": BOOL, "failure": (STR, NULL), "blocked": (BOOL, NULL)}
TLS: dict[str, Any] = {
    "address": STR, "server_name": STR, "tls_version": STR, "cipher_suite": STR,
    "negotiated_protocol": STR, "peer_certificates": LIST, "failure": (STR, NULL),
    "t0": FLOAT, "t": FLOAT, "transaction_id": INT,
}
REQUEST: dict[str, Any] = {"request": DICT, "response": DICT, "failure": (STR, NULL),
                           "t0": FLOAT, "t": FLOAT, "transaction_id": INT}
REQ: dict[str, Any] = {"method": STR, "url": STR, "headers": DICT, "headers_list": LIST}
RESP: dict[str, Any] = {"code": INT, "headers": DICT, "headers_list": LIST,
                        "body": (STR, DICT), "body_is_truncated": BOOL}
CONTROL: dict[str, Any] = {"dns": DICT, "tcp_connect": DICT, "http_request": DICT}
CONTROL_DNS: dict[str, Any] = {"addrs": LIST, "failure": (STR, NULL)}
CONTROL_HTTP: dict[str, Any] = {"status_code": INT, "body_length": INT, "title": STR,
                                "headers": DICT, "failure": (STR, NULL)}
X_PROBE: dict[str, Any] = {"verdict": (STR, NULL), "method": (STR, NULL),
                           "confidence": (FLOAT, NULL), "evidence": (STR, NULL),
                           "analysis_version": (STR, NULL)}


def check(obj: Any, spec: dict[str, Any], where: str) -> None:
    assert isinstance(obj, dict), where
    for key, kind in spec.items():
        assert key in obj, f"{where}: missing {key}"
        value = obj[key]
        assert isinstance(value, kind), f"{where}.{key}: {type(value).__name__}"
        if kind in (INT, FLOAT) or kind == (INT, NULL):
            assert not isinstance(value, bool), f"{where}.{key} is a bool"


def validate(o: dict[str, Any]) -> None:
    """Every listed field present with the right type, at every level."""
    check(o, ENVELOPE, "envelope")
    assert o["test_name"] == "web_connectivity" and o["data_format_version"] == "0.2.0"
    assert o["software_name"] == "probe" and o["probe_ip"] == "127.0.0.1"
    assert OONI_TIME.match(o["measurement_start_time"]) and OONI_TIME.match(o["test_start_time"])
    assert re.fullmatch(r"AS\d+", o["probe_asn"]) and re.fullmatch(r"[A-Z]{2}", o["probe_cc"])
    assert all(isinstance(v, str) for v in o["annotations"].values())
    tk = o["test_keys"]
    check(tk, TEST_KEYS, "test_keys")
    assert tk["network_events"] == []
    assert tk["dns_consistency"] in ("consistent", "inconsistent", None)
    assert tk["blocking"] in ("dns", "tcp_ip", "http-failure", "http-diff", False, None)
    check(tk["x_probe"], X_PROBE, "x_probe")
    for i, q in enumerate(tk["queries"]):
        check(q, QUERY, f"queries[{i}]")
        for a in q["answers"]:
            if a["answer_type"] in ("A", "AAAA"):
                check(a, {**ANSWER_IP, "ipv4" if a["answer_type"] == "A" else "ipv6": STR},
                      "answer")
            else:
                check(a, {"answer_type": STR, "hostname": STR, "ttl": (INT, NULL)}, "answer")
    for i, c in enumerate(tk["tcp_connect"]):
        check(c, TCP, f"tcp_connect[{i}]")
        check(c["status"], TCP_STATUS, f"tcp_connect[{i}].status")
    for i, h in enumerate(tk["tls_handshakes"]):
        check(h, TLS, f"tls_handshakes[{i}]")
        for cert in h["peer_certificates"]:
            check(cert, {"format": STR, "data": STR}, "peer_certificates")
            assert cert["format"] == "base64"
    for i, r in enumerate(tk["requests"]):
        check(r, REQUEST, f"requests[{i}]")
        check(r["request"], REQ, f"requests[{i}].request")
        check(r["response"], RESP, f"requests[{i}].response")
        if isinstance(r["response"]["body"], dict):
            assert set(r["response"]["body"]) == {"format", "data"}
    if tk["control"]:
        check(tk["control"], CONTROL, "control")
        check(tk["control"]["dns"], CONTROL_DNS, "control.dns")
        check(tk["control"]["http_request"], CONTROL_HTTP, "control.http_request")
        for key, value in tk["control"]["tcp_connect"].items():
            assert re.fullmatch(r"(\[[0-9a-f:]+\]|[\d.]+):\d+", key)
            check(value, {"status": BOOL, "failure": (STR, NULL)}, "control.tcp_connect")
    else:
        assert tk["control_failure"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Built, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("ooni")
    built = build_db(tmp / "probe.db")
    export(built.path, "ooni", tmp / "out.jsonl")
    lines = (tmp / "out.jsonl").read_text(encoding="utf-8").splitlines()
    return built, [json.loads(line) for line in lines]


def by_name(exported: tuple[Built, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    built, objects = exported
    return {built.name_of(o["measurement_uid"]): o for o in objects}


def test_every_object_has_the_field_list(exported: tuple[Built, list[dict[str, Any]]]) -> None:
    built, objects = exported
    assert len(objects) == len(built.ids)
    for o in objects:
        validate(o)


def test_envelope_values(exported: tuple[Built, list[dict[str, Any]]]) -> None:
    built = exported[0]
    o = by_name(exported)
    assert o["ok"]["measurement_start_time"] == "2026-11-21 10:15:00"
    assert o["ok"]["test_runtime"] == 2.0 and o["ok"]["input"] == "https://news.test/"
    assert (o["ok"]["probe_asn"], o["ok"]["probe_cc"]) == ("AS9198", "KZ")
    assert (o["down"]["probe_asn"], o["down"]["probe_cc"]) == ("AS0", "ZZ")
    assert o["ok"]["report_id"].endswith(built.runs["A"].split("-")[1])
    assert "_webconnectivity_KZ_9198_n1_" in o["ok"]["report_id"]
    assert o["ok"]["report_id"] == o["nxdomain"]["report_id"] != o["down"]["report_id"]
    assert o["ok"]["annotations"]["category_code"] == "NEWS"
    assert o["ok"]["test_helpers"]["backend"]["address"] == "https://control.test:8443"


# --- round trip ---------------------------------------------------------------------------


def parse_back(o: dict[str, Any]) -> dict[str, Any]:
    """The observations an OONI reader sees, in our record order, as comparable tuples."""
    tk = o["test_keys"]

    def answer(a: dict[str, Any]) -> tuple[Any, ...]:
        value = a.get("ipv4") or a.get("ipv6") or a.get("hostname")
        return (a["answer_type"], value, a["ttl"])

    def body(b: str | dict[str, str]) -> bytes:
        return base64.b64decode(b["data"]) if isinstance(b, dict) else b.encode()

    return {
        "dns": [(q["transaction_id"], q["hostname"], q["query_type"], q["engine"], q["failure"],
                 q["t0"], q["t"], tuple(answer(a) for a in q["answers"]))
                for q in tk["queries"]],
        "tcp": [(c["transaction_id"], c["ip"], c["port"], c["status"]["failure"],
                 c["status"]["success"]) for c in tk["tcp_connect"]],
        "tls": [(h["transaction_id"], h["address"], h["server_name"],
                 h["x_probe"]["handshake_failure"],
                 tuple(base64.b64decode(c["data"]) for c in h["peer_certificates"]))
                for h in tk["tls_handshakes"]],
        "http": [(r["transaction_id"], r["request"]["url"], r["failure"],
                  r["response"]["code"] or None,
                  tuple(map(tuple, r["response"]["headers_list"])),
                  tuple(map(tuple, r["request"]["headers_list"])),
                  r["x_probe"]["body_sha256"], body(r["response"]["body"]),
                  r["response"]["body_is_truncated"])
                 for r in reversed(tk["requests"]) if r["request"]["x_transport"] == "tcp"],
        "quic": [(h["transaction_id"], h["address"], h["server_name"],
                  h["x_probe"]["handshake_failure"], h["negotiated_protocol"] or None,
                  tuple(base64.b64decode(c["data"]) for c in h["peer_certificates"]))
                 for h in tk["quic_handshakes"]],
        "http3": [(r["transaction_id"], r["request"]["url"], r["response"]["code"] or None,
                   r["network"])
                  for r in tk["requests"] if r["request"]["x_transport"] == "quic"],
    }


def stored_view(m: Measurement) -> dict[str, Any]:
    def ep(ip: str, port: int) -> str:
        return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"

    return {
        "dns": [(d.tx_id, d.hostname, d.query_type, d.engine, d.failure, d.t0, d.t,
                 tuple((a.rtype, a.value, a.ttl) for a in d.answers)) for d in m.dns],
        "tcp": [(c.tx_id, c.ip, c.port, c.failure, c.failure is None) for c in m.tcp],
        "tls": [(h.tx_id, ep(h.ip, h.port), h.server_name, h.failure,
                 tuple(c.der for c in h.certificates)) for h in m.tls],
        "http": [(h.tx_id, h.url, h.failure, h.status, h.headers, h.request_headers,
                  h.body_sha256, h.body or b"", h.body_truncated) for h in m.http],
        "quic": [(h.tx_id, ep(h.ip, h.port), h.server_name, h.failure, h.alpn,
                  tuple(c.der for c in h.certificates)) for h in m.quic],
        "http3": [(h.tx_id, h.url, h.status, "udp") for h in m.http3],
    }


def test_round_trip_carries_the_stored_observations(
    exported: tuple[Built, list[dict[str, Any]]],
) -> None:
    built, objects = exported
    with Store.open(built.path) as store:
        stored = dict(store.iter_measurements())
        for o in objects:
            m = stored[o["measurement_uid"]]
            assert parse_back(o) == stored_view(m)
            v = store.current_verdict(o["measurement_uid"])
            xp = o["test_keys"]["x_probe"]
            if v is None:
                assert xp["verdict"] is None
            else:
                assert (xp["verdict"], xp["method"], xp["confidence"], xp["evidence"],
                        xp["analysis_version"]) == (v.verdict.value, v.method, v.confidence,
                                                    v.evidence, v.analysis_version)
            assert xp["control_answers"] == list(m.control)


def test_requests_are_newest_first_and_bodies_keep_their_bytes(
    exported: tuple[Built, list[dict[str, Any]]],
) -> None:
    o = by_name(exported)
    urls = [(r["request"]["url"], r["request"]["x_transport"])
            for r in o["ok"]["test_keys"]["requests"]]
    # newest first over TCP; the HTTP/3 request last, so requests[0] stays the TCP final
    assert urls == [("https://www.news.test/", "tcp"), ("https://news.test/", "tcp"),
                    ("https://news.test/", "quic")]
    newest = o["ok"]["test_keys"]["requests"][0]
    assert newest["response"]["body"].startswith("<title>News of the day")  # UTF-8 → text
    assert newest["response"]["headers"] == {"Content-Type": "text/html; charset=utf-8",
                                             "X-Site": "news"}
    redirect = o["ok"]["test_keys"]["requests"][1]
    assert redirect["response"]["headers"]["Set-Cookie"] == "a=1"  # first value, as OONI
    assert redirect["response"]["code"] == 301
    page = o["blockpage"]["test_keys"]["requests"][0]["response"]["body"]
    assert page == {"format": "base64",
                    "data": base64.b64encode(b"\xff\xfe\x00blocked").decode()}


def test_tls_validation_failure_is_the_ooni_failure(
    exported: tuple[Built, list[dict[str, Any]]],
) -> None:
    tls = by_name(exported)["ok"]["test_keys"]["tls_handshakes"]
    assert [h["failure"] for h in tls] == [None, "ssl_unknown_authority",
                                           "generic_timeout_error"]
    assert tls[1]["x_probe"] == {"handshake_failure": None, "verified": False,
                                 "verify_error": "ssl_unknown_authority"}
    assert tls[2]["address"] == "[2001:db8::2]:443"
    assert tls[0]["negotiated_protocol"] == "h2" and tls[0]["tls_version"] == "TLSv1.3"


def test_queries_spell_answers_like_ooni(exported: tuple[Built, list[dict[str, Any]]]) -> None:
    queries = by_name(exported)["ok"]["test_keys"]["queries"]
    assert queries[0]["resolver_address"] == "" and queries[0]["engine"] == "system"
    assert queries[1]["answers"][0] == {"answer_type": "CNAME", "hostname": "edge.news.test",
                                        "ttl": 30}
    assert queries[1]["answers"][1]["ipv4"] == "10.10.34.35"
    assert queries[4]["answers"][0]["ipv6"] == "2001:db8::80"
    assert [q["x_probe"]["response_index"] for q in queries[1:3]] == [0, 1]


# --- analysis keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "blocking", "accessible", "dns"),
    [
        ("ok", False, True, "consistent"),
        ("nxdomain", "dns", False, "inconsistent"),
        ("tcp", "tcp_ip", False, "consistent"),
        ("blockpage", "http-diff", False, "consistent"),
        ("unjudged", None, None, None),
        ("down", False, False, "consistent"),
        ("shutdown", None, None, None),
    ],
)
def test_blocking_accessible_from_our_verdict(
    exported: tuple[Built, list[dict[str, Any]]], name: str, blocking: Any,
    accessible: Any, dns: Any,
) -> None:
    tk = by_name(exported)[name]["test_keys"]
    assert (tk["blocking"], tk["accessible"], tk["dns_consistency"]) == (blocking, accessible,
                                                                         dns)


def _v(kind: VerdictKind, method: str | None = None) -> Verdict:
    return Verdict(kind, method, 0.5, "e", "0.1.0")


@pytest.mark.parametrize(
    ("v", "expected"),
    [
        (None, (None, None)),
        (_v(VerdictKind.OK), (False, True)),
        (_v(VerdictKind.THROTTLED, "throttle"), (False, True)),
        (_v(VerdictKind.DOWN, "down.dns"), (False, False)),
        (_v(VerdictKind.SHUTDOWN, "shutdown.international"), (None, None)),
        (_v(VerdictKind.INCONCLUSIVE, "control_failed"), (None, None)),
        (_v(VerdictKind.INTERCEPTED, "tls.mitm"), ("http-failure", False)),
        *[(_v(VerdictKind.BLOCKED, m), ("dns", False))
          for m in ("dns.nxdomain", "dns.bogon", "dns.injected", "dns.inconsistent")],
        *[(_v(VerdictKind.BLOCKED, m), ("tcp_ip", False))
          for m in ("tcp.timeout", "tcp.reset", "tcp.unreachable")],
        *[(_v(VerdictKind.BLOCKED, m), ("http-failure", False))
          for m in ("tls.reset", "tls.timeout", "tls.eof", "http.reset", "http.timeout",
                    "http.eof")],
        *[(_v(VerdictKind.BLOCKED, m), ("http-diff", False))
          for m in ("http.blockpage", "http.diff", "http.status", "http.redirect")],
    ],
)
def test_verdict_mapping(v: Verdict | None, expected: tuple[Any, Any]) -> None:
    assert blocking_accessible(v) == expected


def test_control_translation() -> None:
    answer = control_answer("https://a.test/", addrs=("192.0.2.1", "2001:db8::1"))
    answer["endpoints"]["[2001:db8::1]:443"] = {
        "origin": "probe", "tcp_failure": None, "tls_failure": None, "verified": False,
        "verify_error": "ssl_invalid_hostname"}
    answer["endpoints"]["192.0.2.9:443"] = {"origin": "probe",
                                            "tcp_failure": "connection_refused"}
    got = translate_control(answer, "a.test")
    assert got["dns"] == {"addrs": ["192.0.2.1", "2001:db8::1"], "failure": None}
    assert got["tcp_connect"]["192.0.2.9:443"] == {"status": False,
                                                   "failure": "connection_refused"}
    assert got["tls_handshake"]["[2001:db8::1]:443"] == {
        "server_name": "a.test", "status": False, "failure": "ssl_invalid_hostname"}
    assert "192.0.2.9:443" not in got["tls_handshake"]
    assert got["http_request"]["status_code"] == 200
    assert got["http_request"]["headers"] == {"Content-Type": "text/html", "X-Site": "news"}
    failed = translate_control(control_answer("https://a.test/", status=None, body_length=None,
                                              title=None), "a.test")
    assert failed["http_request"]["status_code"] == -1
    assert failed["http_request"]["body_length"] == -1
    assert failed["http_request"]["failure"] == "connection_reset"
    assert translate_control(None, "a.test") == {}


@pytest.mark.parametrize(
    ("controls", "index", "failure"),
    [
        ((), None, NO_CONTROL_FAILURE),
        ((FAILED_HELPER,), None, "connection_refused"),
        ((FAILED_HELPER, control_answer("u")), 1, None),
        (({"control": "h", "failure": "port 8080 not allowed", "refused": True,
           "control_failure": None},), None, "unknown_failure: port 8080 not allowed"),
    ],
)
def test_answered_control(controls: tuple[dict[str, Any], ...], index: int | None,
                          failure: str | None) -> None:
    answer, why = answered_control(controls)
    assert why == failure
    assert answer is (None if index is None else controls[index])


def _final(**kw: Any) -> HTTPObservation:
    base: dict[str, Any] = dict(tx_id=1, url="u", method="GET", ip="1.2.3.4", port=80, t0=0.0,
                                t=1.0, failure=None, status=200, body_length=1000,
                                headers=(("Server", "x"), ("X-A", "1")),
                                title="Breaking news today")
    return HTTPObservation(**{**base, **kw})


CTRL = {"status_code": 200, "body_length": 800, "title": "Breaking news", "failure": None,
        "headers": {"Server": "y", "X-A": "2"}}


@pytest.mark.parametrize(
    ("fn", "final", "ctrl", "expected"),
    [
        (body_length_match, _final(), CTRL, True),  # 800/1000 > 0.7
        (body_length_match, _final(body_length=500), CTRL, False),
        (body_length_match, _final(body_truncated=True), CTRL, None),
        (body_length_match, _final(), {**CTRL, "body_length": -1}, None),
        (body_length_match, None, CTRL, None),
        (headers_match, _final(), CTRL, True),  # X-A is uncommon and in both
        (headers_match, _final(headers=(("Server", "x"), ("X-B", "1"))), CTRL, False),
        (headers_match, _final(headers=(("server", "x"), ("x-a", "1"))), CTRL, True),
        (headers_match, _final(status=None, headers=()), CTRL, None),
        (title_match, _final(), CTRL, True),
        (title_match, _final(title="Blocked by order"), CTRL, False),
        (title_match, _final(title=None), CTRL, None),
    ],
)
def test_ooni_comparison_keys(fn: Callable[..., Any], final: HTTPObservation | None,
                              ctrl: dict[str, Any], expected: bool | None) -> None:
    assert fn(final, ctrl) is expected


def test_measurement_without_any_observation() -> None:
    m = full_measurement(dns=(), tcp=(), tls=(), http=(), control=(), extra={}, quic=(),
                         http3=())
    run = {"run_id": "20261121T000000Z-00000000", "started_at": "2026-11-21T00:00:00Z",
           "probe_version": "0.1.0", "probe_asn": None, "probe_cc": None}
    o = record_to_ooni(Record("mid", run, m, None, None))
    validate(o)
    assert o["test_keys"]["control_failure"] == NO_CONTROL_FAILURE
    assert o["test_keys"]["control"] == {} and o["test_keys"]["requests"] == []


# --- x_doh (Web Connectivity 0.5's DoH block) ------------------------------------------------

DOH_URL = "https://dns.example/dns-query"


def _exchange(**kw: Any) -> dict[str, Any]:
    """One DoH exchange as probe.measure.dns.encrypted_lookup records it (a clean one)."""
    x: dict[str, Any] = {
        "tx_id": 40, "engine": "doh", "resolver": DOH_URL, "query_type": "A",
        "server_name": "dns.example", "address": "192.0.2.53", "port": 443,
        "bootstrap_failure": None, "tcp_failure": None, "tls_failure": None,
        "tls_version": "TLSv1.3", "verified": True, "verify_error": None, "http_status": 200,
        "failure": None, "t0": 0.1, "t": 0.5, "connect": [0.15, 0.2], "handshake": [0.2, 0.3],
        "cipher_suite": "TLS_AES_128_GCM_SHA256", "alpn": "http/1.1"}
    x.update(kw)
    return x


def _doh_export(exchanges: list[dict[str, Any]], doh_query: bool = True) -> dict[str, Any]:
    from probe.model import DNSObservation

    dns = (DNSObservation(tx_id=40, hostname="news.test", query_type="A", engine="doh",
                          resolver=DOH_URL, t0=0.1, t=0.5, failure=None),) if doh_query else ()
    m = full_measurement(dns=dns, extra={"hops": [{"dns_exchanges": exchanges}]})
    run = {"run_id": "20261121T000000Z-00000000", "started_at": "2026-11-21T00:00:00Z",
           "probe_version": "0.1.0", "probe_asn": None, "probe_cc": None}
    o = record_to_ooni(Record("mid", run, m, None, None))
    validate(o)
    return o["test_keys"]


@pytest.mark.parametrize(
    ("exchange", "queries", "tcp", "tls", "posts"),
    [
        # a clean lookup: connect, handshake (times of each step), the POST answered 200
        (_exchange(), [], [("192.0.2.53", True, None, 0.15, 0.2)],
         [(None, "TLSv1.3", 0.2, 0.3)], [(200, None, 0.3, 0.5)]),
        # the provider's name did not resolve: a failed bootstrap query, nothing else
        (_exchange(address=None, bootstrap_failure="dns_nxdomain_error",
                   failure="dns_nxdomain_error", connect=None, handshake=None),
         [("dns.example", "dns_nxdomain_error", 0.1, 0.5)], [], [], []),
        # blocked by address: the connect timed out, no handshake
        (_exchange(tcp_failure="generic_timeout_error", failure="generic_timeout_error",
                   handshake=None, http_status=None),
         [], [("192.0.2.53", False, "generic_timeout_error", 0.15, 0.2)], [], []),
        # reset by SNI during the handshake
        (_exchange(tls_failure="connection_reset", failure="connection_reset",
                   tls_version=None, verified=None, http_status=None),
         [], [("192.0.2.53", True, None, 0.15, 0.2)],
         [("connection_reset", "", 0.2, 0.3)], []),
        # an interception certificate: the handshake completed, OONI's failure = validation
        (_exchange(verified=False, verify_error="ssl_unknown_authority",
                   failure="ssl_unknown_authority", http_status=None),
         [], [("192.0.2.53", True, None, 0.15, 0.2)],
         [("ssl_unknown_authority", "TLSv1.3", 0.2, 0.3)], []),
        # the provider answered HTTP 403
        (_exchange(http_status=403, failure="unknown_failure: DoH answered HTTP 403"),
         [], [("192.0.2.53", True, None, 0.15, 0.2)], [(None, "TLSv1.3", 0.2, 0.3)],
         [(403, "unknown_failure: DoH answered HTTP 403", 0.3, 0.5)]),
        # recorded before the step times were kept: the exchange's own times
        (_exchange(connect=None, handshake=None), [],
         [("192.0.2.53", True, None, 0.1, 0.5)], [(None, "TLSv1.3", 0.1, 0.5)],
         [(200, None, 0.5, 0.5)]),
    ],
)
def test_x_doh_holds_what_the_doh_lookups_did_underneath(
        exchange: dict[str, Any], queries: list[tuple[Any, ...]], tcp: list[tuple[Any, ...]],
        tls: list[tuple[Any, ...]], posts: list[tuple[Any, ...]]) -> None:
    tk = _doh_export([exchange])
    x = tk["x_doh"]
    assert set(x) == {"network_events", "queries", "requests", "tcp_connect", "tls_handshakes"}
    assert x["network_events"] == []
    for q in x["queries"]:
        check(q, QUERY, "x_doh.queries")
    assert [(q["hostname"], q["failure"], q["t0"], q["t"]) for q in x["queries"]] == queries
    for c in x["tcp_connect"]:
        check(c, TCP, "x_doh.tcp_connect")
    assert [(c["ip"], c["status"]["success"], c["status"]["failure"], c["t0"], c["t"])
            for c in x["tcp_connect"]] == tcp
    for h in x["tls_handshakes"]:
        check(h, TLS, "x_doh.tls_handshakes")
        assert (h["network"], h["server_name"], h["address"]) == (
            "tcp", "dns.example", "192.0.2.53:443")
    assert [(h["failure"], h["tls_version"], h["t0"], h["t"])
            for h in x["tls_handshakes"]] == tls
    for r in x["requests"]:
        check(r, REQUEST, "x_doh.requests")
        assert (r["request"]["method"], r["request"]["url"]) == ("POST", DOH_URL)
    assert [(r["response"]["code"], r["failure"], r["t0"], r["t"])
            for r in x["requests"]] == posts
    # every entry is the exchange's transaction; the DoH query itself stays top-level
    assert {e["transaction_id"] for k in ("queries", "tcp_connect", "tls_handshakes",
                                          "requests") for e in x[k]} <= {40}
    assert [q["engine"] for q in tk["queries"]] == ["doh"]
    assert all(c["ip"] != "192.0.2.53" for c in tk["tcp_connect"])


@pytest.mark.parametrize(("exchanges", "doh_query", "present"), [
    ([], False, False),  # no --doh: no x_doh, as before
    ([_exchange(engine="dot", port=853)], False, False),  # DoT has no OONI counterpart
    ([], True, True),  # a DoH query whose exchange was not kept: the empty block
])
def test_x_doh_only_with_doh(exchanges: list[dict[str, Any]], doh_query: bool,
                             present: bool) -> None:
    tk = _doh_export(exchanges, doh_query)
    assert ("x_doh" in tk) is present
    if present:
        assert all(v == [] for v in tk["x_doh"].values())


def test_http3_request_and_quic_handshake_spell_oonis_keys(
        exported: tuple[Built, list[dict[str, Any]]]) -> None:
    """probe-cli's ArchivalTLSOrQUICHandshakeResult (network "quic") and an HTTP/3
    ArchivalHTTPRequestResult (network "udp", alpn "h3", request.x_transport "quic")."""
    seen = 0
    for o in exported[1]:
        tk = o["test_keys"]
        for h in tk.get("quic_handshakes", []):
            check(h, TLS, "quic_handshakes")
            assert h["network"] == "quic" and h["no_tls_verify"] is False
            seen += 1
        for r in tk["requests"]:
            quic = r["request"]["x_transport"] == "quic"
            assert (r["network"], r.get("alpn")) == (("udp", "h3") if quic else ("tcp", None))
    assert seen
