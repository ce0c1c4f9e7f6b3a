"""The ``ooni`` export: one measurement in OONI's ``web_connectivity`` data format (or its own
test's: the apps', :mod:`probe.export.ooni_apps`; Tor's, :mod:`probe.export.ooni_tor`).

Responsibility: translating one stored measurement (+ run, current verdict) into the JSON
object OONI's tools and pipelines read (ooni/spec data format 0.2.0, ``web_connectivity``
test keys as of v0.4), with no IO. The field list followed is the one in
``reference/ooni-methodology.md``; docs/data.md documents every choice below.

Rules:

* The envelope never carries the probe's address: ``probe_ip`` is OONI's scrubbed value
  ``127.0.0.1``; ``probe_asn``/``probe_cc`` are ``AS0``/``ZZ`` when the run does not know them;
  ``resolver_ip`` is OONI's "unknown" ``127.0.0.2`` (we never learn the resolver's egress).
* Observations keep their ids, times (``t0``/``t`` relative to the measurement start, as in
  OONI) and failure strings (ours already use OONI's df-007 names). ``requests`` is newest
  first (the reverse of the recorded order, which follows redirects), like OONI's.
* Where OONI records a different thing than we do, OONI's meaning is written in OONI's key and
  ours is kept under an ``x_probe`` key of the same entry: a TLS handshake that completed but
  whose chain did not validate has OONI ``failure`` = the validation error (OONI validates
  during the handshake), ``x_probe.handshake_failure`` None.
* ``blocking``/``accessible`` come from *our* verdict (:func:`blocking_accessible`), not from
  OONI's algorithm; the five ``*_match``/``dns_consistency`` keys are computed OONI's way from
  the probe's final response and the first control that answered. The verdict itself, its
  evidence, and the raw control answers are under the top-level ``x_probe`` key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from probe import failures
from probe.export.jsonl import b64
from probe.export.ooni_apps import app_test_keys
from probe.export.ooni_tor import tor_export
from probe.export.source import Record
from probe.model import (
    DNSCHECK,
    ENDPOINT_LIST_TESTS,
    TCP_CONNECT,
    TOR,
    DNSObservation,
    HTTPObservation,
    Measurement,
    QUICHandshake,
    TCPObservation,
    TLSObservation,
    Verdict,
    VerdictKind,
)

TEST_NAME = "web_connectivity"
#: The version of OONI's tcp_connect test whose test keys a ``tcp://`` input is exported as.
TCP_CONNECT_VERSION = "0.1.0"
#: The version of OONI's dnscheck spec (ts-028, 2020-12-02) whose test keys a ``doh://`` or
#: ``dot://`` input is exported as.
DNSCHECK_VERSION = "0.9.0"
#: The web_connectivity version whose test-key layout this export follows.
TEST_VERSION = "0.4.3"
DATA_FORMAT_VERSION = "0.2.0"
SOFTWARE_NAME = "probe"
#: OONI's values for a scrubbed probe address and an unknown resolver / network.
PROBE_IP = "127.0.0.1"
UNKNOWN_RESOLVER_IP = "127.0.0.2"
UNKNOWN_ASN = "AS0"
UNKNOWN_CC = "ZZ"
#: ``control_failure`` of a measurement made without any control helper.
NO_CONTROL_FAILURE = f"{failures.UNKNOWN_PREFIX}no control helper"

#: Methods of a response that arrived but differs from the control (OONI's "http-diff").
HTTP_DIFF_METHODS = frozenset({"http.blockpage", "http.diff", "http.status", "http.redirect"})

#: Header names OONI ignores when comparing header sets (ooni/probe-cli, webconnectivity).
COMMON_HEADERS = frozenset({
    "date", "content-type", "server", "cache-control", "vary", "set-cookie", "location",
    "expires", "x-powered-by", "content-encoding", "last-modified", "accept-ranges", "pragma",
    "x-frame-options", "etag", "x-content-type-options", "age", "via", "p3p",
    "x-xss-protection", "content-language", "cf-ray", "strict-transport-security", "link",
    "x-varnish",
})

#: The kinds exported in their own OONI test format, not ``web_connectivity``'s: test name →
#: ``(measurement, verdict, web test keys) -> (test_name, test_version, input, test_keys)``.
OWN_FORMATS: dict[str, Callable[[Measurement, Verdict | None, Mapping[str, Any]],
                                tuple[str, str, str | None, dict[str, Any]]]] = {
    **{name: app_test_keys for name in ENDPOINT_LIST_TESTS},
    TOR: tor_export,
}


# --- small spellings ------------------------------------------------------------------------


def ooni_time(iso: str) -> str:
    """An ISO 8601 instant as OONI's ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    when = dt.datetime.fromisoformat(iso)
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds_between(start: str, end: str) -> float:
    a, b = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
    return max(0.0, round((b - a).total_seconds(), 6))


def endpoint(ip: str, port: int) -> str:
    """``ip:port`` with IPv6 in brackets, as both OONI and our control helper spell it."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def probe_asn(run: Mapping[str, Any]) -> str:
    asn = run.get("probe_asn")
    return f"AS{int(asn)}" if asn is not None else UNKNOWN_ASN


def report_id(run: Mapping[str, Any]) -> str:
    """An OONI-style report id derived from the run id: one report per run.

    ``<start>_webconnectivity_<CC>_<ASN number>_n1_<run random part>``.
    """
    run_id = str(run["run_id"])
    start, _, rand = run_id.partition("-")
    cc = run.get("probe_cc") or UNKNOWN_CC
    asn = run.get("probe_asn") or 0
    return f"{start}_webconnectivity_{cc}_{asn}_n1_{rand or run_id}"


def maybe_binary(data: bytes | None) -> str | dict[str, str]:
    """OONI's MaybeBinaryValue: UTF-8 text as a string, anything else base64-wrapped."""
    if data is None:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"format": "base64", "data": b64(data)}


def _header_map(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """OONI's ``headers`` map: the first value of every name."""
    out: dict[str, str] = {}
    for name, value in pairs:
        out.setdefault(name, value)
    return out


# --- verdict → blocking / accessible --------------------------------------------------------


def blocking_for_method(method: str | None) -> str:
    """OONI's ``blocking`` reason for one of our interference methods."""
    family = (method or "").partition(".")[0]
    if family == "dns":
        return "dns"
    if family == "tcp":
        return "tcp_ip"
    if method in HTTP_DIFF_METHODS:
        return "http-diff"
    return "http-failure"  # tls.*, tls.mitm, http.reset / timeout / eof, anything else


def blocking_accessible(v: Verdict | None) -> tuple[str | bool | None, bool | None]:
    """``(blocking, accessible)`` from our verdict (the mapping docs/data.md tabulates).

    ok / throttled → (false, true): the site answered (throttling has no OONI value; it is in
    ``x_probe``); down → (false, false): OONI's "website down"; blocked / intercepted →
    (reason, false); shutdown / inconclusive / no verdict → (null, null): unknown.
    """
    if v is None:
        return None, None
    if v.verdict in (VerdictKind.OK, VerdictKind.THROTTLED):
        return False, True
    if v.verdict is VerdictKind.DOWN:
        return False, False
    if v.verdict in (VerdictKind.BLOCKED, VerdictKind.INTERCEPTED):
        return blocking_for_method(v.method), False
    return None, None


# --- control --------------------------------------------------------------------------------


def answered_control(controls: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any] | None,
                                                                      str | None]:
    """The first control answer that measured something, or None and OONI's control_failure."""
    if not controls:
        return None, NO_CONTROL_FAILURE
    for answer in controls:
        if answer.get("control_failure") is None and answer.get("failure") is None:
            return answer, None
    first = controls[0]
    why = first.get("control_failure") or str(first.get("failure"))
    if why not in failures.VOCABULARY and not why.startswith(failures.UNKNOWN_PREFIX):
        why = failures.UNKNOWN_PREFIX + why
    return None, why


def translate_control(answer: Mapping[str, Any] | None, hostname: str) -> dict[str, Any]:
    """Our control answer (protocol v1) in the shape of OONI's test-helper response.

    ``dns{addrs, failure}``, ``tcp_connect{"ip:port": {status, failure}}``,
    ``tls_handshake{"ip:port": {server_name, status, failure}}`` (a chain the helper could not
    validate is a failure, as in OONI) and ``http_request{status_code, body_length, title,
    headers, failure}`` with OONI's -1 for "no value". None → ``{}``.
    """
    if answer is None:
        return {}
    dns = answer.get("dns") or {}
    tcp: dict[str, Any] = {}
    tls: dict[str, Any] = {}
    for key, e in (answer.get("endpoints") or {}).items():
        tcp[key] = {"status": e.get("tcp_failure") is None, "failure": e.get("tcp_failure")}
        if e.get("tls_failure") is not None or e.get("verified") is not None:
            failure = e.get("tls_failure")
            if failure is None and e.get("verified") is False:
                failure = e.get("verify_error") or failures.SSL_INVALID_CERTIFICATE
            tls[key] = {"server_name": hostname, "status": failure is None, "failure": failure}
    http = answer.get("http") or {}
    status = http.get("status")
    body_length = http.get("body_length")
    return {
        "dns": {"addrs": list(dns.get("addrs") or []), "failure": dns.get("failure")},
        "tcp_connect": tcp,
        "tls_handshake": tls,
        "http_request": {
            "body_length": -1 if body_length is None else int(body_length),
            "discovered_h3_endpoint": "",
            "failure": http.get("failure"),
            "title": http.get("title") or "",
            "headers": _header_map([(str(k), str(v)) for k, v in http.get("headers") or []]),
            "status_code": -1 if status is None else int(status),
        },
    }


# --- observations ---------------------------------------------------------------------------


def _answer(rtype: str, value: str, ttl: int | None) -> dict[str, Any]:
    if rtype == "A":
        return {"answer_type": "A", "ipv4": value, "ttl": ttl, "asn": 0, "as_org_name": ""}
    if rtype == "AAAA":
        return {"answer_type": "AAAA", "ipv6": value, "ttl": ttl, "asn": 0, "as_org_name": ""}
    return {"answer_type": rtype, "hostname": value, "ttl": ttl}


def query_entry(d: DNSObservation) -> dict[str, Any]:
    return {
        "answers": [_answer(a.rtype, a.value, a.ttl) for a in d.answers],
        "engine": d.engine,
        "failure": d.failure,
        "hostname": d.hostname,
        "query_type": d.query_type,
        "resolver_address": "" if d.engine == "system" else d.resolver,
        "resolver_hostname": None,
        "resolver_port": None,
        "t0": d.t0,
        "t": d.t,
        "transaction_id": d.tx_id,
        "x_probe": {"resolver": d.resolver, "rcode": d.rcode,
                    "response_index": d.response_index},
    }


def tcp_entry(c: TCPObservation, control: Mapping[str, Any]) -> dict[str, Any]:
    """One connect; ``blocked`` = it failed where the control connected (None: no control)."""
    seen = control.get("tcp_connect", {}).get(endpoint(c.ip, c.port))
    blocked: bool | None
    if c.failure is None:
        blocked = False
    elif seen is None:
        blocked = None
    else:
        blocked = bool(seen["status"])
    return {
        "ip": c.ip,
        "port": c.port,
        "status": {"success": c.failure is None, "failure": c.failure, "blocked": blocked},
        "t0": c.t0,
        "t": c.t,
        "transaction_id": c.tx_id,
    }


def tls_failure(h: TLSObservation) -> str | None:
    """The handshake's failure as OONI records it (chain validation included)."""
    if h.failure is not None:
        return h.failure
    if h.verified is False:
        return h.verify_error or failures.SSL_INVALID_CERTIFICATE
    return None


def tls_entry(h: TLSObservation) -> dict[str, Any]:
    return {
        "network": "tcp",
        "address": endpoint(h.ip, h.port),
        "server_name": h.server_name,
        "tls_version": h.tls_version or "",
        "cipher_suite": h.cipher_suite or "",
        "negotiated_protocol": h.alpn or "",
        "no_tls_verify": False,
        "peer_certificates": [{"format": "base64", "data": b64(c.der)} for c in h.certificates],
        "failure": tls_failure(h),
        "t0": h.t0,
        "t": h.t,
        "transaction_id": h.tx_id,
        "x_probe": {"handshake_failure": h.failure, "verified": h.verified,
                    "verify_error": h.verify_error},
    }


def quic_entry(h: QUICHandshake) -> dict[str, Any]:
    """A QUIC handshake as OONI's ``quic_handshakes`` entry (probe-cli's archival TLS-or-QUIC
    handshake: the TLS fields, ``network`` ``quic``); failure as for TLS."""
    failure = h.failure
    if failure is None and h.verified is False:
        failure = h.verify_error or failures.SSL_INVALID_CERTIFICATE
    return {
        "network": "quic",
        "address": endpoint(h.ip, h.port),
        "server_name": h.server_name,
        "tls_version": "TLSv1.3" if h.failure is None else "",  # QUIC always carries TLS 1.3
        "cipher_suite": "",
        "negotiated_protocol": h.alpn or "",
        "no_tls_verify": False,
        "peer_certificates": [{"format": "base64", "data": b64(c.der)} for c in h.certificates],
        "failure": failure,
        "t0": h.t0,
        "t": h.t,
        "transaction_id": h.tx_id,
        "x_probe": {"handshake_failure": h.failure, "verified": h.verified,
                    "verify_error": h.verify_error, "quic_version": h.quic_version},
    }


def request_entry(h: HTTPObservation, transport: str = "tcp") -> dict[str, Any]:
    """One request; ``transport`` ``quic`` = an HTTP/3 request: ``network`` ``udp``, ``alpn``
    ``h3``, ``request.x_transport`` ``quic``, as probe-cli's ``NewArchivalHTTPRequestResult``
    (measurexlite) records one."""
    return {
        "network": "udp" if transport == "quic" else "tcp",
        "address": endpoint(h.ip, h.port) if h.ip else "",
        **({"alpn": "h3"} if transport == "quic" else {}),
        "request": {
            "method": h.method,
            "url": h.url,
            "headers": _header_map(h.request_headers),
            "headers_list": [list(p) for p in h.request_headers],
            "body": "",
            "body_is_truncated": False,
            "tor": {"exit_ip": None, "exit_name": None, "is_tor": False},
            "x_transport": transport,
        },
        "response": {
            "code": h.status if h.status is not None else 0,
            "headers": _header_map(h.headers),
            "headers_list": [list(p) for p in h.headers],
            "body": maybe_binary(h.body),
            "body_is_truncated": h.body_truncated,
        },
        "failure": h.failure,
        "t0": h.t0,
        "t": h.t,
        "transaction_id": h.tx_id,
        "x_probe": {"redirect_index": h.redirect_index, "ip": h.ip, "port": h.port,
                    "body_length": h.body_length, "body_sha256": h.body_sha256,
                    "body_stored": h.body is not None, "title": h.title,
                    "location": h.location},
    }


# --- DoH underneath (OONI's x_doh) -------------------------------------------------------------


def encrypted_exchanges(m: Measurement, engine: str) -> list[Mapping[str, Any]]:
    """The per-query exchange dicts of ``engine`` (``doh``/``dot``) the measurement recorded
    (:func:`probe.measure.dns.encrypted_lookup`): per hop for the web test, at the top for
    ``tcp_connect``."""
    hops = m.extra.get("hops") or []
    found = [x for hop in hops if isinstance(hop, Mapping)
             for x in hop.get("dns_exchanges") or []]
    found += list(m.extra.get("dns_exchanges") or [])
    return [x for x in found if isinstance(x, Mapping) and x.get("engine") == engine]


def _span(x: Mapping[str, Any], key: str, end: float) -> tuple[float, float]:
    """``[t0, t]`` of one step of an exchange; older records without it: the exchange's."""
    got = x.get(key)
    if isinstance(got, (list, tuple)) and len(got) == 2:
        return float(got[0]), float(got[1])
    return float(x.get("t0") or 0.0), end


def x_doh(m: Measurement) -> dict[str, Any] | None:
    """OONI's ``x_doh``: what the DoH lookups did underneath, or None when the measurement used
    no DoH resolver.

    Shape of probe-cli's Web Connectivity 0.5 (``webconnectivitylte``: ``TestKeysDoH`` in
    ``testkeys.go``, filled by ``lookupHostDNSOverHTTPS`` in ``dnsresolvers.go``; e.g. the
    ts-017 example ``tests/data/ooni/spec-ts-017-2024.json``): ``network_events``, ``queries``,
    ``requests``, ``tcp_connect``, ``tls_handshakes``. As there, the DoH queries themselves
    (engine ``doh``) are in the top-level ``queries``; ``x_doh`` holds the rest: the bootstrap
    lookup of the provider's name (ours only when it failed: a successful one is not kept
    apart, its address is the connect's), the connect and TLS handshake to the provider, and
    (ours; probe-cli records none) the ``POST`` with the HTTP status it got — no headers or
    body are kept. The provider's certificates are not kept (only whether they validated:
    ``failure`` as in ``tls_handshakes``), and there are no network events. Every entry keeps
    the exchange's transaction id; the connect's ``x_probe`` the exchange as recorded.
    """
    exchanges = encrypted_exchanges(m, "doh")
    if not exchanges and not any(d.engine == "doh" for d in m.dns):
        return None
    out: dict[str, Any] = {"network_events": [], "queries": [], "requests": [],
                           "tcp_connect": [], "tls_handshakes": []}
    for x in exchanges:
        tx, end = x.get("tx_id"), float(x.get("t") or 0.0)
        name, port, ip = str(x.get("server_name") or ""), int(x.get("port") or 443), x.get(
            "address")
        if x.get("bootstrap_failure"):
            out["queries"].append({
                "answers": [], "engine": "system", "failure": x["bootstrap_failure"],
                "hostname": name, "query_type": "ANY", "resolver_address": "",
                "resolver_hostname": None, "resolver_port": None, "t0": x.get("t0"), "t": end,
                "transaction_id": tx})
        if not ip:
            continue
        t0, t = _span(x, "connect", end)
        out["tcp_connect"].append({
            "ip": ip, "port": port,
            "status": {"success": x.get("tcp_failure") is None, "failure": x.get("tcp_failure"),
                       "blocked": None},
            "t0": t0, "t": t, "transaction_id": tx, "x_probe": {"exchange": dict(x)}})
        if x.get("tcp_failure") is not None:
            continue
        t0, t = _span(x, "handshake", end)
        failure = x.get("tls_failure")
        if failure is None and x.get("verified") is False:
            failure = x.get("verify_error") or failures.SSL_INVALID_CERTIFICATE
        out["tls_handshakes"].append({
            "network": "tcp", "address": endpoint(str(ip), port), "server_name": name,
            "tls_version": x.get("tls_version") or "", "cipher_suite": x.get("cipher_suite") or "",
            "negotiated_protocol": x.get("alpn") or "", "no_tls_verify": False,
            "peer_certificates": [], "failure": failure, "t0": t0, "t": t,
            "transaction_id": tx})
        if failure is not None:
            continue
        status = x.get("http_status")
        out["requests"].append({
            "network": "tcp", "address": endpoint(str(ip), port), "alpn": x.get("alpn") or "",
            "request": {"method": "POST", "url": x.get("resolver"), "headers": {},
                        "headers_list": [], "body": "", "body_is_truncated": False,
                        "tor": {"exit_ip": None, "exit_name": None, "is_tor": False},
                        "x_transport": "tcp"},
            "response": {"code": status or 0, "headers": {}, "headers_list": [], "body": "",
                         "body_is_truncated": False},
            "failure": x.get("failure") if status != 200 else None,
            "t0": t, "t": end, "transaction_id": tx})
    return out


# --- OONI's comparison keys -----------------------------------------------------------------


def status_code_match(final: HTTPObservation | None, ctrl: Mapping[str, Any]) -> bool | None:
    code = ctrl.get("status_code", -1)
    if final is None or final.status is None or code is None or code <= 0:
        return None
    return bool(final.status == code)


def body_length_match(final: HTTPObservation | None, ctrl: Mapping[str, Any]) -> bool | None:
    """OONI: only for untruncated bodies; lengths match if min/max > 0.7."""
    control = ctrl.get("body_length", -1)
    if final is None or final.body_truncated or control is None or control <= 0:
        return None
    ours = final.body_length
    if ours is None or ours <= 0:
        return None
    return bool(min(ours, control) / max(ours, control) > 0.7)


def headers_match(final: HTTPObservation | None, ctrl: Mapping[str, Any]) -> bool | None:
    """OONI: same header names, or some uncommon header name in both."""
    if final is None or final.status is None or ctrl.get("failure") is not None:
        return None
    theirs = {k.lower() for k in ctrl.get("headers") or {}}
    ours = {k.lower() for k, _ in final.headers}
    if not theirs or not ours:
        return None
    if ours == theirs:
        return True
    return bool((ours - COMMON_HEADERS) & (theirs - COMMON_HEADERS))


def title_match(final: HTTPObservation | None, ctrl: Mapping[str, Any]) -> bool | None:
    """OONI: every word of 5+ characters of the control's title is in the probe's title."""
    if final is None or not final.title or ctrl.get("status_code", -1) <= 0:
        return None
    words = str(ctrl.get("title") or "").split(" ")
    return all(w in final.title for w in words if len(w) >= 5)


def dns_consistency(m: Measurement, v: Verdict | None,
                    control: Mapping[str, Any]) -> str | None:
    """``inconsistent`` when our verdict blames DNS; ``consistent`` when the probe and the
    control share an address or our verdict accepted the probe's answers (ok, throttled,
    interference at a later step, the site down); else None (no control or no answers)."""
    if v is not None and v.verdict is VerdictKind.BLOCKED and (v.method or "").startswith("dns."):
        return "inconsistent"
    if v is not None and v.verdict is VerdictKind.DOWN and v.method == "down.dns":
        return "consistent"  # OONI's "expected failure": the control fails the same way
    ours = {a for d in m.dns for a in d.addresses}
    theirs = set(control.get("dns", {}).get("addrs") or [])
    if not control or not ours:
        return None
    if ours & theirs:
        return "consistent"
    if v is not None and v.verdict in (VerdictKind.OK, VerdictKind.THROTTLED, VerdictKind.DOWN,
                                       VerdictKind.BLOCKED, VerdictKind.INTERCEPTED):
        return "consistent"
    return None


def _dns_experiment_failure(m: Measurement) -> str | None:
    mine = [d for d in m.dns if d.hostname == m.target.hostname]
    if not mine or any(d.addresses for d in mine):
        return None
    return next((d.failure for d in mine if d.failure), failures.DNS_NO_ANSWER)


def _http_experiment_failure(m: Measurement) -> str | None:
    if m.http:
        return m.http[-1].failure
    tls = [f for f in (tls_failure(h) for h in m.tls) if f]
    if tls:
        return tls[0]
    tcp = [c.failure for c in m.tcp if c.failure]
    return tcp[0] if tcp and len(tcp) == len(m.tcp) else None


# --- dnscheck (ts-028) ----------------------------------------------------------------------


def dnscheck_input(m: Measurement) -> str:
    """OONI's dnscheck input: ``https://host[:port]/path`` for DoH, ``dot://host:port`` for DoT."""
    t = m.target
    host = f"[{t.hostname}]" if ":" in t.hostname else t.hostname
    if t.scheme == "doh":
        return f"https://{host}{'' if t.port == 443 else f':{t.port}'}{t.path}"
    return f"dot://{host}:{t.port}"


def dnscheck_keys(m: Measurement, control: Mapping[str, Any], control_failure: str | None,
                  blocking: str | bool | None, accessible: bool | None,
                  x_probe: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The input and ts-028 test keys: ``domain``, ``bootstrap`` (the provider's name resolved,
    None for an IP literal), ``bootstrap_failure``, and ``lookups`` keyed by the endpoint URL
    (``dot://ip:port``, ``https://ip[:port]/path``), each with the observations of its
    transaction; the verdict keys ride along as for the other tests."""
    t = m.target
    encrypted = {d.tx_id for d in m.dns if d.engine in ("doh", "dot")}
    boot = [d for d in m.dns if d.tx_id not in encrypted]
    try:
        ipaddress.ip_address(t.hostname.strip("[]"))
        literal = True
    except ValueError:
        literal = False
    lookups: dict[str, Any] = {}
    for d in m.dns:
        if d.tx_id not in encrypted:
            continue
        tcps = [c for c in m.tcp if c.tx_id == d.tx_id]
        ip = tcps[0].ip if tcps else "?"
        where = endpoint(ip, t.port)
        key = f"dot://{where}" if t.scheme == "dot" else f"https://{where}{t.path}"
        lookups[key] = {
            "failure": d.failure,
            "queries": [query_entry(d)],
            "tcp_connect": [tcp_entry(c, control) for c in tcps],
            "tls_handshakes": [tls_entry(h) for h in m.tls if h.tx_id == d.tx_id],
            "requests": [request_entry(h) for h in m.http if h.tx_id == d.tx_id] or None,
        }
    boot_failure = next((d.failure for d in boot if d.failure and not d.addresses), None)
    if any(d.addresses for d in boot):
        boot_failure = None
    keys = {
        "domain": m.extra.get("domain", "example.org"),
        "bootstrap": None if literal else {
            "failure": boot_failure, "queries": [query_entry(d) for d in boot]},
        "bootstrap_failure": boot_failure,
        "lookups": lookups,
        "control": control,
        "control_failure": control_failure,
        "blocking": blocking,
        "accessible": accessible,
        "x_probe": x_probe,
    }
    return dnscheck_input(m), keys


# --- the whole object -----------------------------------------------------------------------


def record_to_ooni(record: Record) -> dict[str, Any]:
    """The OONI ``web_connectivity`` measurement object of one stored measurement."""
    m, run, v = record.measurement, record.run, record.verdict
    answer, control_failure = answered_control(m.control)
    control = translate_control(answer, m.target.hostname)
    final = m.http[-1] if m.http else None
    ctrl_http = control.get("http_request", {})
    blocking, accessible = blocking_accessible(v)
    addresses = list(dict.fromkeys(
        a for d in m.dns if d.hostname == m.target.hostname for a in d.addresses))
    helpers = [str(c["control"]) for c in ([answer] if answer else m.control)
               if c.get("control")]
    annotations = {
        "engine_name": SOFTWARE_NAME,
        "run_id": str(run["run_id"]),
        "category_code": m.target.category,
        "network_name": run.get("network_name"),
    }
    x_probe = {
        "measurement_id": record.measurement_id,
        "run_id": str(run["run_id"]),
        "verdict": v.verdict.value if v else None,
        "method": v.method if v else None,
        "confidence": v.confidence if v else None,
        "evidence": v.evidence if v else None,
        "analysis_version": v.analysis_version if v else None,
        "details": v.details if v else {},
        "control_answers": list(m.control),
        "extra": m.extra,
    }
    test_keys: dict[str, Any] = {
        "agent": "redirect",
        "client_resolver": UNKNOWN_RESOLVER_IP,
        "retries": None,
        "socksproxy": None,
        "network_events": [],
        "queries": [query_entry(d) for d in m.dns],
        "dns_experiment_failure": _dns_experiment_failure(m),
        "tcp_connect": [tcp_entry(c, control) for c in m.tcp],
        "tls_handshakes": [tls_entry(h) for h in m.tls],
        # HTTP/3 requests last: requests[0] stays the final response over TCP, as OONI reads it
        "requests": [request_entry(h) for h in reversed(m.http)]
        + [request_entry(h, "quic") for h in m.http3],
        "quic_handshakes": [quic_entry(h) for h in m.quic],
        **({"x_doh": doh} if (doh := x_doh(m)) is not None else {}),
        "http_experiment_failure": _http_experiment_failure(m),
        "control_request": {
            "http_request": m.target.url,
            "http_request_headers": {},
            "tcp_connect": [endpoint(a, m.target.port) for a in addresses],
        },
        "control": control,
        "control_failure": control_failure,
        "dns_consistency": dns_consistency(m, v, control),
        "body_length_match": body_length_match(final, ctrl_http),
        "status_code_match": status_code_match(final, ctrl_http),
        "headers_match": headers_match(final, ctrl_http),
        "title_match": title_match(final, ctrl_http),
        "blocking": blocking,
        "accessible": accessible,
        "x_probe": x_probe,
    }
    test_name, test_version = TEST_NAME, TEST_VERSION
    ooni_input: str | None = m.target.url
    if m.test_name == TCP_CONNECT:
        # OONI's tcp_connect (ts-008): input ``host:port``, ``connection`` = "success" or the
        # failure string of the (last) connect; our per-address records ride along.
        test_name, test_version = TCP_CONNECT, TCP_CONNECT_VERSION
        ooni_input = m.target.url.partition("://")[2]
        connected = any(c.failure is None for c in m.tcp)
        last = m.tcp[-1].failure if m.tcp else _dns_experiment_failure(m)
        test_keys = {
            "connection": "success" if connected else last,
            "queries": test_keys["queries"],
            "tcp_connect": test_keys["tcp_connect"],
            "control": control,
            "control_failure": control_failure,
            "blocking": blocking,
            "accessible": accessible,
            "x_probe": x_probe,
        }
    elif m.test_name in OWN_FORMATS:
        # the apps (ts-018/019/020/029, from our per-role verdicts) and tor (ts-023, test keys
        # per target) in OONI's own test formats
        test_name, test_version, ooni_input, test_keys = OWN_FORMATS[m.test_name](
            m, v, test_keys)
    if m.test_name == DNSCHECK:
        test_name, test_version = DNSCHECK, DNSCHECK_VERSION
        ooni_input, test_keys = dnscheck_keys(m, control, control_failure, blocking,
                                              accessible, x_probe)
    return {
        "annotations": {k: str(val) for k, val in annotations.items() if val is not None},
        "data_format_version": DATA_FORMAT_VERSION,
        "input": ooni_input,
        "input_hashes": [],
        "measurement_start_time": ooni_time(m.started_at),
        "measurement_uid": record.measurement_id,
        "options": [],
        "probe_asn": probe_asn(run),
        "probe_cc": run.get("probe_cc") or UNKNOWN_CC,
        "probe_ip": PROBE_IP,
        "probe_network_name": run.get("network_name") or "",
        "report_id": report_id(run),
        "resolver_asn": UNKNOWN_ASN,
        "resolver_ip": UNKNOWN_RESOLVER_IP,
        "resolver_network_name": "",
        "software_name": SOFTWARE_NAME,
        "software_version": str(run.get("probe_version") or ""),
        "test_helpers": {"backend": {"address": helpers[0], "type": helpers[0].partition(":")[0]}}
        if helpers else {},
        "test_keys": test_keys,
        "test_name": test_name,
        "test_runtime": _seconds_between(m.started_at, m.finished_at),
        "test_start_time": ooni_time(str(run["started_at"])),
        "test_version": test_version,
    }
