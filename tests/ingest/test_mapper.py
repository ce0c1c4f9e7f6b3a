"""The OONI mapping: one table per Web Connectivity version family, failures, control, others."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from probe import failures as f
from probe.classify import Context, classify
from probe.ingest.mapper import (
    WEB_CONNECTIVITY_VERSIONS,
    MappingError,
    dedup_key,
    failure,
    map_document,
    mapper_for,
    web_connectivity_04,
    web_connectivity_05,
    web_connectivity_legacy,
)
from probe.model import VerdictKind

CORPUS = Path(__file__).parent.parent / "data" / "ooni"


def _der(name: str = "example.org") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.DER)


DER = _der()


def doc(version: str, **test_keys: Any) -> dict[str, Any]:
    """A Web Connectivity document of ``version`` with ``test_keys``."""
    return {
        "test_name": "web_connectivity", "test_version": version,
        "input": "https://example.org/", "measurement_start_time": "2024-05-14 23:37:18",
        "test_runtime": 2.5, "report_id": "20240514T233700Z_webconnectivity_KZ_9198_n1_x",
        "measurement_uid": f"uid-{version}", "probe_asn": "AS9198", "probe_cc": "KZ",
        "probe_network_name": "JSC Kazakhtelecom", "resolver_ip": "92.47.0.1",
        "resolver_asn": "AS9198", "software_name": "ooniprobe-cli",
        "software_version": "3.21.0", "test_keys": test_keys,
    }


QUERY = {"engine": "system", "resolver_address": "", "hostname": "example.org",
         "query_type": "A", "failure": None, "t": 0.05,
         "answers": [{"answer_type": "A", "ipv4": "93.184.216.34", "ttl": None},
                     {"answer_type": "CNAME", "hostname": "example.org."}]}
TCP = {"ip": "93.184.216.34", "port": 443, "status": {"success": True, "failure": None},
       "t": 0.1}
TLS = {"address": "93.184.216.34:443", "server_name": "example.org", "failure": None,
       "tls_version": "TLSv1.3", "cipher_suite": "TLS_AES_128_GCM_SHA256",
       "negotiated_protocol": "h2", "no_tls_verify": False, "t0": 0.1, "t": 0.2,
       "peer_certificates": [{"format": "base64", "data": base64.b64encode(DER).decode()}]}
REQUEST = {"failure": None, "t0": 0.2, "t": 0.5,
           "request": {"url": "https://example.org/", "method": "GET", "headers": {}},
           "response": {"code": 200, "headers_list": [["Content-Type", "text/html"]],
                        "body": {"format": "base64",
                                 "data": base64.b64encode(b"<title>Example</title>").decode()}}}
CONTROL = {"dns": {"addrs": ["93.184.216.34"], "failure": None},
           "tcp_connect": {"93.184.216.34:443": {"status": True, "failure": None}},
           "http_request": {"status_code": 200, "body_length": 1256, "title": "Example",
                            "headers": {"Content-Type": "text/html"}, "failure": None}}


@pytest.mark.parametrize("version, fn", [
    ("0.0.1", web_connectivity_legacy), ("0.1.0", web_connectivity_legacy),
    ("0.2.0", web_connectivity_legacy), ("0.3.2", web_connectivity_legacy),
    ("0.4.1", web_connectivity_04), ("0.4.3", web_connectivity_04),
    ("0.5.26", web_connectivity_05), ("0.9.0", web_connectivity_05),
])
def test_each_version_has_its_mapping(version: str, fn) -> None:
    assert mapper_for(doc(version)) is fn
    assert set(WEB_CONNECTIVITY_VERSIONS) == {"0.0", "0.1", "0.2", "0.3", "0.4", "0.5"}


@pytest.mark.parametrize("version, tls_keys, has_chain, missing", [
    # before 0.4: no handshakes recorded; the https fetch that worked stands for a validated
    # handshake with no chain
    ("0.1.0", False, False, {"canaries", "innocuous_sni_retry", "second_dns_answer",
                             "tls_chain", "per_address_http"}),
    ("0.4.3", True, True, {"canaries", "innocuous_sni_retry", "second_dns_answer",
                           "per_address_http"}),
    ("0.5.26", True, True, {"canaries", "innocuous_sni_retry", "second_dns_answer"}),
])
def test_a_working_https_fetch_in_every_version(version: str, tls_keys: bool, has_chain: bool,
                                                missing: set[str]) -> None:
    keys: dict[str, Any] = dict(queries=[QUERY], tcp_connect=[TCP], requests=[REQUEST],
                                control=CONTROL, blocking=False, accessible=True)
    if tls_keys:
        keys["tls_handshakes"] = [TLS]
    mapped = map_document(doc(version, **keys), "x.jsonl:7")
    m, p = mapped.measurement, mapped.provenance
    assert m.target.url == "https://example.org/" and m.started_at == "2024-05-14T23:37:18.000000Z"
    assert m.finished_at == "2024-05-14T23:37:20.500000Z"
    (d,) = m.dns
    assert (d.engine, d.resolver, d.addresses) == ("system", "system", ("93.184.216.34",))
    assert [a.rtype for a in d.answers] == ["A", "CNAME"]
    (t,) = m.tcp
    assert (t.ip, t.port, t.failure) == ("93.184.216.34", 443, None)
    (tls,) = m.tls
    assert tls.verified is True and tls.failure is None
    assert bool(tls.certificates) is has_chain
    if has_chain:
        assert tls.certificates[0].san == ("example.org",) and tls.tls_version == "TLSv1.3"
    (h,) = m.http
    assert (h.status, h.title, h.body, h.tx_id) == (200, "Example", b"<title>Example</title>",
                                                    tls.tx_id)
    assert set(p.missing) == missing and p.origin == "x.jsonl:7"
    assert (p.probe_asn, p.probe_cc, p.resolver_asn, p.ooni_blocking, p.ooni_accessible) == (
        9198, "KZ", 9198, False, True)
    (c,) = m.control
    assert c["dns"]["addrs"] == ["93.184.216.34"] and c["http"]["status"] == 200
    v = classify(m, Context(missing=frozenset(p.missing)))
    assert v.verdict is VerdictKind.OK and v.details["missing"] == sorted(missing)


@pytest.mark.parametrize("ooni, ours", [
    (None, None), ("", None),
    ("generic_timeout_error", f.GENERIC_TIMEOUT), ("connection_reset", f.CONNECTION_RESET),
    ("dns_nxdomain_error", f.DNS_NXDOMAIN), ("ssl_unknown_authority", f.SSL_UNKNOWN_AUTHORITY),
    ("connection_refused_error", f.CONNECTION_REFUSED),
    ("deferred_timeout_error", f.GENERIC_TIMEOUT), ("response_never_received", f.GENERIC_TIMEOUT),
    ("ssl_error", f.SSL_FAILED_HANDSHAKE), ("dns_lookup_error", f.DNS_SERVER_MISBEHAVING),
    ("android_dns_cache_no_data", "unknown_failure: android_dns_cache_no_data"),
])
def test_failures_are_translated(ooni: str | None, ours: str | None) -> None:
    assert failure(ooni) == ours


@pytest.mark.parametrize("tls_failure, verified, verify_error, handshake_failure", [
    ("ssl_unknown_authority", False, f.SSL_UNKNOWN_AUTHORITY, None),
    ("ssl_invalid_hostname", False, f.SSL_INVALID_HOSTNAME, None),
    ("connection_reset", None, None, f.CONNECTION_RESET),
    ("generic_timeout_error", None, None, f.GENERIC_TIMEOUT),
])
def test_a_verification_failure_is_not_a_handshake_failure(tls_failure, verified, verify_error,
                                                           handshake_failure) -> None:
    m = map_document(doc("0.4.3", tcp_connect=[TCP], tls_handshakes=[
        dict(TLS, failure=tls_failure)]), "x:1").measurement
    (t,) = m.tls
    assert (t.verified, t.verify_error, t.failure) == (verified, verify_error, handshake_failure)
    assert t.tx_id == m.tcp[0].tx_id


def test_a_tls_reset_without_the_innocuous_sni_retry_is_less_certain() -> None:
    keys = dict(queries=[QUERY], tcp_connect=[TCP],
                tls_handshakes=[dict(TLS, failure="connection_reset", peer_certificates=None)],
                requests=[dict(REQUEST, failure="connection_reset", response=None)],
                control=CONTROL)
    mapped = map_document(doc("0.4.3", **keys), "x:1")
    full = classify(mapped.measurement)
    weak = classify(mapped.measurement, Context(missing=frozenset(mapped.provenance.missing)))
    assert (weak.verdict, weak.method) == (full.verdict, full.method)
    assert weak.confidence < full.confidence
    assert "innocuous_sni_retry" in weak.details["missing_effect"]


def test_control_failure_and_legacy_control() -> None:
    m = map_document(doc("0.4.1", control_failure="generic_timeout_error"), "x:1").measurement
    assert m.control == ({"control": "ooni-test-helper",
                          "control_failure": f.GENERIC_TIMEOUT},)
    assert map_document(doc("0.4.1", control={}), "x:1").measurement.control == ()


def test_a_legacy_document_from_the_corpus() -> None:
    """Web Connectivity 0.1.0 (ooniprobe-desktop 3.1.1): NXDOMAIN, legacy control failure."""
    raw = json.loads((CORPUS / "backend-requests_none.json").read_text())
    mapped = map_document(raw, "requests_none:1")
    m = mapped.measurement
    assert [(d.query_type, d.failure) for d in m.dns] == [("A", f.DNS_NXDOMAIN),
                                                          ("AAAA", f.DNS_NXDOMAIN)]
    (c,) = m.control
    assert c["dns"] == {"addrs": [], "failure": None}  # a name, not an address
    assert c["http"]["failure"] == f.DNS_SERVER_MISBEHAVING and c["http"]["status"] is None
    assert mapped.provenance.ooni_blocking == "dns"
    assert mapped.provenance.dedup_key.startswith("sha256:")


def test_body_as_string_and_headers_as_dict() -> None:
    req = dict(REQUEST, response={"code": 302, "headers": {"Location": "/moved"},
                                  "body": "<title>Moved</title>"})
    (h,) = map_document(doc("0.2.0", requests=[req]), "x:1").measurement.http
    assert (h.status, h.location, h.title, h.headers) == (
        302, "https://example.org/moved", "Moved", (("Location", "/moved"),))


def test_requests_are_stored_oldest_first() -> None:
    first = dict(REQUEST, request=dict(REQUEST["request"], url="http://example.org/"),
                 response={"code": 301, "headers": {"Location": "https://example.org/"}})
    m = map_document(doc("0.4.3", requests=[REQUEST, first]), "x:1").measurement
    assert [(h.redirect_index, h.url) for h in m.http] == [(0, "http://example.org/"),
                                                           (1, "https://example.org/")]


@pytest.mark.parametrize("name, text", [
    ("whatsapp", None), ("tor", None), ("http_requests", "https://cryptbin.com"),
    ("tcp_connect", "1.2.3.4:443"),
])
def test_other_tests_are_stored_unjudged(name: str, text: str | None) -> None:
    raw = dict(doc("0.2.0"), test_name=name, input=text, test_keys={"x": 1})
    mapped = map_document(raw, "x:1")
    m = mapped.measurement
    assert not (m.dns or m.tcp or m.tls or m.http or m.control)
    assert mapped.provenance.test_name == name and mapped.provenance.missing == ("canaries",)
    v = classify(m)
    assert (v.verdict, v.method) == (VerdictKind.INCONCLUSIVE, "unsupported_test")


@pytest.mark.parametrize("raw, why", [
    ({"input": "https://x.org/"}, "no test_name"),
    (dict(doc("0.4.3"), measurement_start_time=None), "no measurement_start_time"),
    (dict(doc("0.4.3"), measurement_start_time="yesterday"), "bad measurement_start_time"),
    (dict(doc("0.4.3"), input=None), "without an input URL"),
    (dict(doc("0.4.3"), input="ftp://x.org/"), "input"),
])
def test_documents_that_are_not_measurements(raw: dict, why: str) -> None:
    with pytest.raises(MappingError, match=why):
        map_document(raw, "x:1")


def _legacy(**fields: Any) -> dict[str, Any]:
    """An ooniprobe 1.x entry (data format 0.2.0, 2015) as in ooni/spec ts-002: no
    ``measurement_start_time``; the report's ``test_start_time`` and the entry's own
    ``test_keys.start_time`` (epoch seconds)."""
    raw: dict[str, Any] = {"test_name": "dns_consistency", "test_version": "0.6",
                           "input": "198.175.124.185", "report_id": "F1KI1Wus",
                           "probe_cc": "JO", "probe_asn": "AS8376", "test_runtime": 0.08,
                           "test_start_time": "2015-11-23 16:14:28",
                           "test_keys": {"start_time": 1448291668.0}}
    raw.update(fields)
    return raw


@pytest.mark.parametrize("raw, started", [
    # The entry's own start (epoch) wins over the report's start.
    (_legacy(test_keys={"start_time": 1448291700.0}), "2015-11-23T15:15:00.000000Z"),
    (_legacy(test_keys={}), "2015-11-23T16:14:28.000000Z"),  # only the report's start
    (_legacy(test_keys={"start_time": "soon"}), "2015-11-23T16:14:28.000000Z"),
    # A document that has measurement_start_time keeps it.
    (_legacy(measurement_start_time="2016-01-02 03:04:05"), "2016-01-02T03:04:05.000000Z"),
])
def test_an_entry_older_than_measurement_start_time_is_dated(raw: dict[str, Any],
                                                              started: str) -> None:
    assert map_document(raw, "x:1").measurement.started_at == started


def test_two_legacy_entries_of_one_report_are_two_measurements() -> None:
    a = _legacy(test_keys={"start_time": 1448291668.0})
    b = _legacy(test_keys={"start_time": 1448291669.0})
    assert dedup_key(a) != dedup_key(b)


@pytest.mark.parametrize("connects,placed", [
    ([("93.184.216.34", 443, None)], ("93.184.216.34", 443)),
    ([("93.184.216.34", 443, None), ("2606:2800:220:1::1", 443, "host_unreachable")],
     ("93.184.216.34", 443)),
    ([("93.184.216.34", 443, None), ("93.184.216.35", 443, None)], None),  # which one?
    ([("93.184.216.34", 443, "generic_timeout_error")], None),  # never connected
    ([], None),
])
def test_a_handshake_without_address_is_placed_only_when_unambiguous(connects, placed) -> None:
    from probe.ingest.mapper import _Ids, tls_observations
    from probe.model import TCPObservation

    tcp = [TCPObservation(i + 1, ip, port, 0.0, 0.1, fail)
           for i, (ip, port, fail) in enumerate(connects)]
    tk = {"tls_handshakes": [{"server_name": "example.com", "failure": None, "t": 0.2,
                              "tls_version": "TLSv1.3", "peer_certificates": []}]}
    got = tls_observations(tk, tcp, _Ids())
    assert [(h.ip, h.port) for h in got] == ([placed] if placed else [])


# --- OONI's app tests into per-endpoint observations (corp3) ------------------------------------


def app_doc(name: str, **test_keys: Any) -> dict[str, Any]:
    return dict(doc("0.2.0"), test_name=name, input=None, test_keys=test_keys)


def q(host: str, *ips: str, fail: str | None = None) -> dict[str, Any]:
    return {"engine": "system", "hostname": host, "query_type": "A", "failure": fail,
            "answers": [{"answer_type": "A", "ipv4": ip} for ip in ips]}


def conn(ip: str, port: int, fail: str | None = None) -> dict[str, Any]:
    return {"ip": ip, "port": port, "transaction_id": 7,
            "status": {"success": fail is None, "failure": fail}}


def req(url: str, method: str = "GET", code: int | None = 200,
        fail: str | None = None) -> dict[str, Any]:
    return {"failure": fail, "request": {"url": url, "method": method, "headers": {}},
            "response": {"code": code or 0, "headers": {}, "body": "x"}}


@pytest.mark.parametrize("name, keys, want", [
    # Telegram's data centres: a POST over plain HTTP on 80 and 443, role dc (the POST
    # rides its connect's transaction: one id per endpoint).
    ("telegram", {"tcp_connect": [conn("149.154.175.50", 80), conn("149.154.175.50", 443)],
                  "requests": [req("http://149.154.175.50/", "POST", 404),
                               req("http://149.154.175.50:443/", "POST", 404)]},
     {("dc", "149.154.175.50", 80, "http_post", 1), ("dc", "149.154.175.50", 443,
                                                     "http_post", 1)}),
    # WhatsApp's chat names share addresses: replicas (same role, same answers) are one
    # endpoint per port named by the first (both queries and the connect); a name with other
    # answers is its own endpoint, and a connect goes to every name that resolved to it.
    ("whatsapp", {"queries": [q("e1.whatsapp.net", "3.33.221.48"),
                              q("e2.whatsapp.net", "3.33.221.48"),
                              q("e3.whatsapp.net", "3.33.221.48", "15.197.210.208")],
                  "tcp_connect": [conn("3.33.221.48", 5222)]},
     {("chat", "e1.whatsapp.net", 5222, "tcp", 3), ("chat", "e3.whatsapp.net", 5222, "tcp", 2)}),
    # Signal's names are separate services (role = first label); a failed lookup nothing
    # else names becomes a tcp:443 endpoint the DNS rules judge; a successful lookup alone
    # (Facebook's stun name) is no endpoint.
    ("signal", {"queries": [q("storage.signal.org", fail="dns_nxdomain_error"),
                            q("uptime.signal.org", fail="dns_nxdomain_error"),
                            q("stun.example.org", "1.2.3.4")],
                "requests": [req("https://storage.signal.org/", code=None,
                                 fail="dns_nxdomain_error")]},
     {("storage", "storage.signal.org", 443, "https", 2),
      ("uptime", "uptime.signal.org", 443, "tcp", 1)}),
])
def test_app_tests_map_into_endpoints(name: str, keys: dict[str, Any],
                                      want: set[tuple[str, str, int, str, int]]) -> None:
    m = map_document(app_doc(name, **keys), "x:1").measurement
    eps = m.extra["endpoints"]
    tx = sorted({o.tx_id for o in (*m.dns, *m.tcp, *m.tls, *m.http)})
    got = set()
    for e in eps:
        lo, hi = e["tx"]
        got.add((e["role"], e["host"], e["port"], e["protocol"], hi - lo + 1))
        assert e["control_url"] is None  # OONI's app tests ask no test helper
    assert got == want
    if name == "whatsapp":
        assert [e.get("aliases") for e in eps] == [["e2.whatsapp.net"], None]
    ranges = sorted(e["tx"] for e in eps)
    # Contiguous and disjoint: one range of ids each.
    assert [i for lo, hi in ranges for i in range(lo, hi + 1)] == tx


@pytest.mark.parametrize("keys, verdict, method", [
    # Everything answered: ok.
    ({"tcp_connect": [conn("149.154.175.50", 80)],
      "requests": [req("http://149.154.175.50/", "POST", 404)]}, VerdictKind.OK, None),
    # A refused connect with no control is never blocked.
    ({"tcp_connect": [conn("149.154.175.50", 80, "connection_refused")]},
     VerdictKind.INCONCLUSIVE, "no_control"),
    # A bogon answer without a control (a local filter answers the same): inconclusive.
    ({"queries": [q("web.telegram.org", "127.0.0.1")],
      "tcp_connect": [conn("127.0.0.1", 443, "connection_refused")]},
     VerdictKind.INCONCLUSIVE, "no_control"),
    # No df-00x keys at all: nothing to judge, as before.
    ({"telegram_tcp_blocking": False}, VerdictKind.INCONCLUSIVE, "unsupported_test"),
])
def test_imported_app_tests_are_judged_without_a_control(keys: dict[str, Any],
                                                         verdict: VerdictKind,
                                                         method: str | None) -> None:
    v = classify(map_document(app_doc("telegram", **keys), "x:1").measurement)
    assert (v.verdict, v.method) == (verdict, method)
