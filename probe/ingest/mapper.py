"""OONI measurements into our records: one document in, a Measurement and its Provenance out.

Responsibility: the pure mapping of one OONI measurement document (ooni/spec data formats:
df-000 base, df-002 dnst, df-005 tcpconnect, df-006 tlshandshake, df-001 httpt, df-007
errors; nettests/ts-017-web-connectivity.md) into :class:`probe.model.Measurement` and
:class:`probe.model.Provenance`. No IO: reading files is :mod:`probe.ingest.reader`'s job,
storing and judging :mod:`probe.ingest.importer`'s. docs/import.md has the mapping table.

Web Connectivity has one mapping function per family of versions
(:data:`WEB_CONNECTIVITY_VERSIONS`):
0.0.x (measurement-kit) and 0.1.x–0.3.x (ooniprobe 2.x, probe-cli before 0.4) record DNS,
TCP and HTTP but no TLS handshakes; 0.4.x records TLS handshakes with the presented chain;
0.5.x adds its own UDP/DoH resolvers, per-address HTTP and ``x_blocking_flags``. Every other
test (whatsapp, telegram, signal, tor, …) is stored with its provenance and no observations:
this version has no rules for it and judges it ``inconclusive``/``unsupported_test`` until
those kinds exist (issue 14).

What OONI's data does not say and our probe would have measured is named in
``Provenance.missing`` (:data:`probe.classify.context.MISSING_EVIDENCE`): the classifier
lowers its confidence instead of guessing.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from probe import failures as f
from probe.measure.certs import parse_certificate
from probe.measure.http import extract_title, resolve_location
from probe.model import (
    APP_TESTS,
    INPUT_SCHEMES,
    WEB_CONNECTIVITY,
    Certificate,
    DNSAnswer,
    DNSObservation,
    HTTPObservation,
    Measurement,
    Provenance,
    Target,
    TCPObservation,
    TLSObservation,
    split_url,
)
from probe.targets import parse_url

#: Who measured: the ``source`` of every Provenance this module makes.
SOURCE = "ooni"

#: ``isinstance(x, _MAPPING)`` is ``isinstance(x, Mapping)``, but a dict (every JSON object
#: the reader decodes) is recognised by the exact type check, without the ABC machinery
#: (~0.4 million ABC checks per 10,000 documents otherwise).
_MAPPING = (dict, Mapping)
#: Type tuples, not ``X | Y`` unions: ``isinstance`` on a union is ~5 × slower.
_SEQUENCE = (list, tuple)
_NUMBER = (int, float)

#: OONI failure strings older than df-007's current names (ooniprobe 1.x/2.x, measurement-kit,
#: the legacy test helper) → ours. Current df-007 names are ours already (probe.failures).
LEGACY_FAILURES: dict[str, str] = {
    "connection_refused_error": f.CONNECTION_REFUSED,
    "connection_reset_error": f.CONNECTION_RESET,
    "connection_lost_error": f.EOF_ERROR,
    "deferred_timeout_error": f.GENERIC_TIMEOUT,
    "tcp_timed_out_error": f.GENERIC_TIMEOUT,
    "response_never_received": f.GENERIC_TIMEOUT,
    "generic_timeout": f.GENERIC_TIMEOUT,
    "ssl_error": f.SSL_FAILED_HANDSHAKE,
    # Twisted's DNSLookupError (ooniprobe 1.x/2.x, the legacy helper): the lookup failed
    # without saying how, so the generic DNS failure, not NXDOMAIN.
    "dns_lookup_error": f.DNS_SERVER_MISBEHAVING,
    "dns_name_error": f.DNS_NXDOMAIN,
    "address_family_not_supported_error": f.NETWORK_UNREACHABLE,
}

#: TLS failures that are verification results, not handshake failures (our TLSObservation
#: keeps them in ``verify_error``; OONI aborts the handshake on them).
VERIFY_FAILURES = frozenset({f.SSL_INVALID_HOSTNAME, f.SSL_UNKNOWN_AUTHORITY,
                             f.SSL_INVALID_CERTIFICATE})

#: OONI's DNS engines → ours (``system`` = getaddrinfo).
ENGINES: dict[str, str] = {"system": "system", "getaddrinfo": "system", "go": "system",
                           "golang_net_resolver": "system", "udp": "udp", "doh": "doh"}

#: Failure → DNS rcode text, for UDP/DoH answers.
RCODES: dict[str, str] = {f.DNS_NXDOMAIN: "NXDOMAIN", f.DNS_REFUSED: "REFUSED",
                          f.DNS_SERVFAIL: "SERVFAIL"}


class MappingError(ValueError):
    """The document is not an OONI measurement we can store (one line says why)."""


@dataclass(frozen=True, slots=True)
class Mapped:
    """One OONI measurement as our records."""

    measurement: Measurement
    provenance: Provenance


def failure(value: Any) -> str | None:
    """An OONI failure string in our vocabulary (None = success)."""
    if value is None or value == "":
        return None
    text = str(value)
    if text in f.VOCABULARY or text.startswith(f.UNKNOWN_PREFIX):
        return text
    if text in LEGACY_FAILURES:
        return LEGACY_FAILURES[text]
    return f.unknown(text)


# --- header fields ------------------------------------------------------------------------------


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _num(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        return default
    return float(value) if value >= 0 else default


def asn(value: Any) -> int | None:
    """``AS1234`` (or 1234) → 1234; AS0 and anything else → None (unknown)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value or None
    text = _str(value)
    if text is None:
        return None
    digits = text[2:] if text.upper().startswith("AS") else text
    return int(digits) or None if digits.isdigit() else None


def country(value: Any) -> str | None:
    """A two-letter country code; OONI's ``ZZ`` (unknown) → None."""
    text = _str(value)
    return text.upper() if text and len(text) == 2 and text.upper() != "ZZ" else None


def start_time(value: Any) -> dt.datetime:
    """OONI's ``measurement_start_time`` (``2025-05-27 23:31:08`` or ISO with ``Z``), UTC."""
    text = _str(value)
    if text is None:
        raise MappingError("no measurement_start_time")
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MappingError(f"bad measurement_start_time {text[:40]!r}") from None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dedup_key(doc: Mapping[str, Any]) -> str:
    """The measurement's identity: its ``measurement_uid``, else a hash of report id, input
    and start time (older documents have no uid)."""
    uid = _str(doc.get("measurement_uid"))
    if uid is not None:
        return uid
    parts = [str(doc.get("report_id") or ""), str(doc.get("input") or ""),
             str(doc.get("measurement_start_time") or _legacy_start(doc) or "")]
    return "sha256:" + hashlib.sha256("|".join(parts).encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _parse_url(text: str) -> Target:
    """:func:`probe.targets.parse_url` remembered by the input's text (a pure function; Target
    is frozen): a report measures the same test list again and again, and normalising a URL
    costs ~0.15 ms. A bad URL raises as before (exceptions are not remembered)."""
    return parse_url(text)


def _input_target(doc: Mapping[str, Any], test_name: str) -> Target:
    """The target of a test this probe does not run: its URL input, else ``ooni://TEST``."""
    text = _str(doc.get("input"))
    if text is not None and text.lower().startswith(("http://", "https://")):
        try:
            return dataclasses.replace(_parse_url(text), test_name=test_name)
        except ValueError:
            pass
    return Target(url=f"ooni://{test_name}", hostname=test_name, scheme="ooni", port=443,
                  path="", test_name=test_name)


#: OONI's own verdict keys of its app tests (ooni/spec ts-018 whatsapp, ts-020 telegram,
#: ts-019 facebook_messenger, ts-029 signal): stored as OONI published them, in place of Web
#: Connectivity's ``blocking`` (probe.report.ooni_compare reads them).
APP_VERDICT_KEYS: dict[str, tuple[str, ...]] = {
    "whatsapp": ("whatsapp_endpoints_status", "registration_server_status",
                 "whatsapp_web_status", "registration_server_failure", "whatsapp_web_failure"),
    "telegram": ("telegram_tcp_blocking", "telegram_http_blocking", "telegram_web_status",
                 "telegram_web_failure"),
    "facebook_messenger": ("facebook_dns_blocking", "facebook_tcp_blocking"),
    "signal": ("signal_backend_status", "signal_backend_failure"),
}


def _ooni_verdict(test_name: str, tk: Mapping[str, Any]) -> tuple[Any, Any]:
    """OONI's own verdict: Web Connectivity's ``blocking`` and ``accessible``; for an app
    test, the object of its verdict keys that the document has (None without any)."""
    keys = APP_VERDICT_KEYS.get(test_name)
    if keys is None:
        return tk.get("blocking"), tk.get("accessible")
    found = {k: tk[k] for k in keys if k in tk and isinstance(tk[k], (str, bool, type(None)))}
    return (found or None), None


def provenance(doc: Mapping[str, Any], origin: str, missing: Sequence[str]) -> Provenance:
    """The Provenance of one document (its header fields and OONI's own verdict)."""
    tk = doc.get("test_keys") if isinstance(doc.get("test_keys"), _MAPPING) else {}
    assert isinstance(tk, _MAPPING)
    flags = tk.get("x_blocking_flags")
    blocking, accessible = _ooni_verdict(str(doc.get("test_name")), tk)
    return Provenance(
        source=SOURCE, origin=origin, dedup_key=dedup_key(doc),
        test_name=str(doc.get("test_name")), report_id=_str(doc.get("report_id")),
        measurement_uid=_str(doc.get("measurement_uid")),
        software_name=_str(doc.get("software_name")),
        software_version=_str(doc.get("software_version")),
        test_version=_str(doc.get("test_version")), probe_asn=asn(doc.get("probe_asn")),
        probe_cc=country(doc.get("probe_cc")),
        probe_network_name=_str(doc.get("probe_network_name")),
        resolver_ip=_str(doc.get("resolver_ip")), resolver_asn=asn(doc.get("resolver_asn")),
        ooni_blocking=blocking, ooni_accessible=accessible,
        ooni_flags=flags if isinstance(flags, int) and not isinstance(flags, bool) else None,
        missing=tuple(sorted(set(missing))))


# --- observations -------------------------------------------------------------------------------


class _Ids:
    """Transaction ids: OONI's own when present, fresh ones (above any of OONI's) otherwise."""

    def __init__(self, start: int = 1_000_000) -> None:
        self.next = start

    def get(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1_000_000:
            return value
        self.next += 1
        return self.next


def _times(entry: Mapping[str, Any]) -> tuple[float, float]:
    t = _num(entry.get("t"))
    return _num(entry.get("t0"), t), t


def _ip(value: Any) -> str | None:
    text = _str(value)
    return None if text is None else _canonical_ip(text)


@functools.lru_cache(maxsize=16384)
def _canonical_ip(text: str) -> str | None:
    """The canonical spelling of an address (None = not one); cached: an archive names the
    same few thousand addresses again and again, and parsing one costs ~10 µs."""
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return None


def _split(address: Any) -> tuple[str, int] | None:
    text = _str(address)
    if text is None:
        return None
    host, sep, port = text.rpartition(":")
    ip = _ip(host)
    return (ip, int(port)) if sep and port.isdigit() and ip is not None else None


def dns_observations(tk: Mapping[str, Any], hostname: str, ids: _Ids
                     ) -> tuple[DNSObservation, ...]:
    """``queries`` (df-002) → DNSObservation, one per query; a document with no queries but a
    ``dns_experiment_failure`` (old versions) → one failed system lookup of ``hostname``."""
    out: list[DNSObservation] = []
    for q in tk.get("queries") or ():
        if not isinstance(q, _MAPPING):
            continue
        engine = ENGINES.get(str(q.get("engine") or "system"), str(q.get("engine")))
        address = _str(q.get("resolver_address"))
        if engine == "system":
            resolver = "system"
        elif engine == "udp" and address and _split(address) is None and _ip(address):
            resolver = f"{address}:{q.get('resolver_port') or 53}"
        else:
            resolver = address or _str(q.get("resolver_hostname")) or engine
        fail = failure(q.get("failure"))
        answers = []
        for a in q.get("answers") or ():
            if not isinstance(a, _MAPPING):
                continue
            rtype = a.get("answer_type")
            value = {"A": a.get("ipv4"), "AAAA": a.get("ipv6"),
                     "CNAME": a.get("hostname")}.get(str(rtype))
            if isinstance(value, str) and value:
                ttl = a.get("ttl")
                answers.append(DNSAnswer(str(rtype), value, ttl if isinstance(ttl, int)
                                         and not isinstance(ttl, bool) else None))
        rcode = None
        if engine != "system":
            rcode = RCODES.get(fail or "") or ("NOERROR" if fail is None else None)
        t0, t = _times(q)
        out.append(DNSObservation(
            tx_id=ids.get(q.get("transaction_id")), hostname=str(q.get("hostname") or hostname),
            query_type=str(q.get("query_type") or "A"), engine=engine, resolver=resolver,
            t0=t0, t=t, failure=fail, rcode=rcode, answers=tuple(answers)))
    if not out and tk.get("dns_experiment_failure"):
        out.append(DNSObservation(tx_id=ids.get(None), hostname=hostname, query_type="A",
                                  engine="system", resolver="system", t0=0.0, t=0.0,
                                  failure=failure(tk.get("dns_experiment_failure"))))
    return tuple(out)


def tcp_observations(tk: Mapping[str, Any], ids: _Ids) -> tuple[TCPObservation, ...]:
    """``tcp_connect`` (df-005) → TCPObservation."""
    out = []
    for c in tk.get("tcp_connect") or ():
        if not isinstance(c, _MAPPING) or _ip(c.get("ip")) is None:
            continue
        status = c.get("status") if isinstance(c.get("status"), _MAPPING) else {}
        assert isinstance(status, _MAPPING)
        fail = None if status.get("success") is True else (
            failure(status.get("failure")) or f.unknown("connect failed"))
        port = c.get("port")
        t0, t = _times(c)
        out.append(TCPObservation(tx_id=ids.get(c.get("transaction_id")),
                                  ip=str(_ip(c.get("ip"))),
                                  port=port if isinstance(port, int) else 0,
                                  t0=t0, t=t, failure=fail))
    return tuple(out)


def certificates(entries: Any) -> tuple[Certificate, ...]:
    """``peer_certificates`` (``{"format": "base64", "data": …}`` DER, leaf first)."""
    out = []
    for e in entries or ():
        data = e.get("data") if isinstance(e, _MAPPING) else None
        if not isinstance(data, str):
            continue
        cert = _certificate(data)
        if cert is not None:
            out.append(cert)
    return tuple(out)


@functools.lru_cache(maxsize=1024)
def _certificate(data: str) -> Certificate | None:
    """One base64 DER certificate parsed (None = not base64). Cached by its text, i.e. by
    the DER: a site presents the same chain to every measurement of it, and parsing one
    costs ~0.5 ms; Certificate is frozen, so sharing it is safe. The bound keeps memory flat."""
    try:
        der = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return parse_certificate(der)


def _only_connected(tcp: Sequence[TCPObservation]) -> tuple[str, int] | None:
    """The endpoint of a handshake that names none: early probe-cli 0.4.0 documents (the
    ooni/spec ts-017 example of 2021, miniooni 3.9) omit ``address`` in ``tls_handshakes``.
    It can only have run on a connection that was established, so when exactly one connect
    succeeded it is that one; otherwise the handshake cannot be placed and is left out."""
    connected = {(c.ip, c.port) for c in tcp if c.failure is None}
    return next(iter(connected)) if len(connected) == 1 else None


def tls_observations(tk: Mapping[str, Any], tcp: Sequence[TCPObservation], ids: _Ids
                     ) -> tuple[TLSObservation, ...]:
    """``tls_handshakes`` (df-006) → TLSObservation. A verification failure (unknown
    authority, invalid hostname or certificate) is a chain that does not validate, not a
    handshake failure, as in our own records."""
    by_address = {(c.ip, c.port): c.tx_id for c in tcp}
    out = []
    for h in tk.get("tls_handshakes") or ():
        if not isinstance(h, _MAPPING):
            continue
        where = _split(h.get("address")) or _only_connected(tcp)
        if where is None:
            continue
        fail = failure(h.get("failure"))
        verified: bool | None
        verify_error = None
        if fail in VERIFY_FAILURES:
            verified, verify_error, fail = False, fail, None
        elif fail is None:
            verified = None if h.get("no_tls_verify") is True else True
        else:
            verified = None
        tx = h.get("transaction_id")
        tx_id = ids.get(tx) if tx is not None else by_address.get(where) or ids.get(None)
        t0, t = _times(h)
        out.append(TLSObservation(
            tx_id=tx_id, ip=where[0], port=where[1],
            server_name=str(h.get("server_name") or ""), t0=t0, t=t, failure=fail,
            tls_version=_str(h.get("tls_version")), cipher_suite=_str(h.get("cipher_suite")),
            alpn=_str(h.get("negotiated_protocol")),
            certificates=certificates(h.get("peer_certificates")), verified=verified,
            verify_error=verify_error))
    return tuple(out)


def headers(value: Any, listed: Any = None) -> tuple[tuple[str, str], ...]:
    """Headers as ordered pairs: ``headers_list`` (``[[k, v], …]``) when present, else the
    ``headers`` dict (a value may be a list: one pair per item). A value that was not valid
    UTF-8 is ``{"format": "base64", "data": …}`` (OONI df-001-httpt, "binary data"), e.g. a
    captive portal's ``Location`` in backend fixture web_connectivity_b64_hdr: decoded,
    its undecodable bytes replaced, rather than kept as the dict's repr."""
    out: list[tuple[str, str]] = []
    # (type(x) is str: the usual case, decided without the calls of the general one)
    if isinstance(listed, list):
        for pair in listed:
            if isinstance(pair, _SEQUENCE) and len(pair) == 2:
                k, v = pair
                out.append((k if type(k) is str else str(k),
                            v if type(v) is str else _header_value(v)))
        return tuple(out)
    if isinstance(value, _MAPPING):
        for k, v in value.items():
            name = k if type(k) is str else str(k)
            if type(v) is str:
                out.append((name, v))
                continue
            for item in v if isinstance(v, list) else [v]:
                out.append((name, _header_value(item)))
    return tuple(out)


def _header_value(value: Any) -> str:
    if type(value) is str:  # the usual case, without the Mapping check
        return value
    if isinstance(value, _MAPPING) and value.get("format") == "base64":
        data = body(value)
        return data.decode("utf-8", "replace") if data is not None else ""
    return str(value)


def body(value: Any) -> bytes | None:
    """An HTTP body: a string, or ``{"format": "base64", "data": …}`` (df-001)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, _MAPPING) and value.get("format") == "base64":
        try:
            return base64.b64decode(str(value.get("data") or ""))
        except (binascii.Error, ValueError):
            return None
    return None


#: Page titles remembered by body digest and content type (:func:`_title`).
TITLE_MEMO = 4096
_titles: dict[tuple[str | None, str | None], str | None] = {}
_NOT_SEEN = object()


def _title(data: bytes, digest: str | None, content_type: str | None) -> str | None:
    """The page's title (:func:`probe.measure.http.extract_title`, a pure function of the
    body and its content type), remembered by the body's digest: lowering and decoding a
    100 kB page costs ~0.4 ms, and the same block page or landing page comes back again and
    again in an archive. Bounded (cleared when full)."""
    key = (digest, content_type)
    found = _titles.get(key, _NOT_SEEN)  # one lookup: another thread may clear it meanwhile
    if found is not _NOT_SEEN:
        return cast(str | None, found)
    if len(_titles) >= TITLE_MEMO:
        _titles.clear()
    title = _titles[key] = extract_title(data, content_type)
    return title


def _header(pairs: Sequence[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in pairs if k.lower() == name), None)


def http_observations(tk: Mapping[str, Any], tcp: Sequence[TCPObservation],
                      tls: list[TLSObservation], dns: Sequence[DNSObservation], ids: _Ids,
                      *, synthesize_tls: bool) -> tuple[HTTPObservation, ...]:
    """``requests`` (df-001, newest first) → HTTPObservation, oldest first.

    OONI's HTTP fetch (before 0.5) uses its own connections, so each hop is attributed to the
    first measured endpoint that fits (same name for TLS, an address the name resolved to for
    TCP); for versions that record no handshakes, a fetch over https that got a response had
    a chain that validated (OONI's client verifies), recorded as a TLSObservation with no
    certificates (``synthesize_tls``).
    """
    entries = [r for r in (tk.get("requests") or ()) if isinstance(r, _MAPPING)]
    entries.reverse()
    resolved: dict[str, set[str]] = {}
    for d in dns:
        resolved.setdefault(d.hostname.rstrip(".").lower(), set()).update(d.addresses)
    out = []
    for index, r in enumerate(entries):
        req = r.get("request") if isinstance(r.get("request"), _MAPPING) else {}
        resp = r.get("response") if isinstance(r.get("response"), _MAPPING) else {}
        assert isinstance(req, _MAPPING) and isinstance(resp, _MAPPING)
        url = str(req.get("url") or "")
        parts = split_url(url)
        name = (parts.hostname or "").rstrip(".").lower()
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = 0
        fail = failure(r.get("failure"))
        code = resp.get("code")
        status = code if isinstance(code, int) and not isinstance(code, bool) and code > 0 \
            else None
        pairs = headers(resp.get("headers"), resp.get("headers_list"))
        data = body(resp.get("body"))
        t0, t = _times(r)
        tx_id = None
        if parts.scheme == "https":
            hit = next((h for h in tls if h.server_name.lower() == name and h.port == port
                        and h.failure is None and h.verified is not False), None)
            tx_id = hit.tx_id if hit is not None else None
        if tx_id is None:
            addrs = resolved.get(name, set())
            hit_tcp = next((c for c in tcp if c.port == port and c.failure is None
                            and (not addrs or c.ip in addrs)), None)
            tx_id = hit_tcp.tx_id if hit_tcp is not None else ids.get(None)
            if (synthesize_tls and parts.scheme == "https" and fail is None
                    and status is not None):
                tls.append(TLSObservation(
                    tx_id=tx_id, ip=hit_tcp.ip if hit_tcp is not None else "0.0.0.0",
                    port=port, server_name=name, t0=t0, t=t0, failure=None, verified=True))
        location = None
        if status is not None and 300 <= status < 400:
            loc = _header(pairs, "location")
            location = resolve_location(url, loc) if loc else None
        truncated = resp.get("body_is_truncated") is True
        digest = hashlib.sha256(data).hexdigest() if data is not None else None
        out.append(HTTPObservation(
            tx_id=tx_id, url=url, method=str(req.get("method") or "GET"), ip=None, port=port,
            t0=t0, t=t, failure=fail, redirect_index=index,
            request_headers=headers(req.get("headers"), req.get("headers_list")),
            status=status, headers=pairs, body=data,
            body_length=len(data) if data is not None else None,
            body_sha256=digest, body_truncated=truncated,
            title=_title(data, digest, _header(pairs, "content-type")) if data else None,
            location=location))
    return tuple(out)


def control(doc: Mapping[str, Any], tk: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """OONI's test-helper answer (``control``, ``control_failure``) as one answer in our
    control protocol's shape (probe.classify.control reads it); () = no control."""
    helpers = doc.get("test_helpers") if isinstance(doc.get("test_helpers"), _MAPPING) else {}
    assert isinstance(helpers, _MAPPING)
    backend = helpers.get("backend")
    helper = (_str(backend.get("address")) if isinstance(backend, _MAPPING) else _str(backend)
              ) or "ooni-test-helper"
    why = failure(tk.get("control_failure"))
    if why is not None:
        return ({"control": helper, "control_failure": why},)
    c = tk.get("control")
    if not isinstance(c, _MAPPING) or not c:
        return ()
    answer: dict[str, Any] = {"control": helper, "url": _str(doc.get("input"))}
    d = c.get("dns")
    addrs: list[str] = []
    if isinstance(d, _MAPPING):
        addrs = [ip for ip in (_ip(a) for a in d.get("addrs") or ()) if ip]
        answer["dns"] = {"addrs": addrs, "failure": failure(d.get("failure"))}
    endpoints: dict[str, dict[str, Any]] = {}
    tcp = c.get("tcp_connect")
    for key, e in (tcp.items() if isinstance(tcp, _MAPPING) else ()):
        where = _split(key)
        if where is None or not isinstance(e, _MAPPING):
            continue
        ok = e.get("status") is True
        endpoints[str(key)] = {
            "origin": "both" if where[0] in addrs else "probe",
            "tcp_failure": None if ok else failure(e.get("failure")) or f.unknown(
                "connect failed")}
    tls = c.get("tls_handshake")
    for key, e in (tls.items() if isinstance(tls, _MAPPING) else ()):
        if str(key) not in endpoints or not isinstance(e, _MAPPING):
            continue
        ok = e.get("status") is True
        endpoints[str(key)].update(
            tls_failure=None if ok else failure(e.get("failure")) or f.unknown(
                "handshake failed"),
            verified=True if ok else None)
    if endpoints:
        answer["endpoints"] = endpoints
    h = c.get("http_request")
    if isinstance(h, _MAPPING):
        code, length = h.get("status_code"), h.get("body_length")
        answer["http"] = {
            "status": code if isinstance(code, int) and code > 0 else None,
            "failure": failure(h.get("failure")),
            "headers": [list(p) for p in headers(h.get("headers"))],
            "body_length": length if isinstance(length, int) and length >= 0 else None,
            "title": _str(h.get("title"))}
    return (answer,)


# --- per test and version -----------------------------------------------------------------------


def _web_target(doc: Mapping[str, Any]) -> Target:
    text = _str(doc.get("input"))
    if text is None:
        raise MappingError("web_connectivity measurement without an input URL")
    try:
        return _parse_url(text)
    except ValueError as exc:
        raise MappingError(f"input {text[:80]!r}: {exc}") from None


def _legacy_start(doc: Mapping[str, Any]) -> str | None:
    """The start of a measurement written before ``measurement_start_time`` existed.

    WHY: ooniprobe 1.x entries (data format 0.2.0, 2015-2016; e.g. the dns_consistency,
    http_host, header_field_manipulation and http_invalid_request_line examples in ooni/spec
    nettests/ts-002, ts-004, ts-006, ts-007) carry only the report's ``test_start_time`` and,
    in ``test_keys.start_time``, the entry's own start as seconds since the epoch. The
    entry's own start is the closer one; the report's start is the fallback. None for a
    document with neither (or with ``measurement_start_time``: the caller reads that first).
    """
    tk = doc.get("test_keys")
    epoch = tk.get("start_time") if isinstance(tk, _MAPPING) else None
    if isinstance(epoch, int | float) and not isinstance(epoch, bool) and 0 < epoch < 1e11:
        return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return _str(doc.get("test_start_time"))


def _times_of(doc: Mapping[str, Any]) -> tuple[str, str]:
    given = doc.get("measurement_start_time")
    start = start_time(given if given is not None else _legacy_start(doc))
    runtime = _num(doc.get("test_runtime"))
    return _iso(start), _iso(start + dt.timedelta(seconds=min(runtime, 86400.0)))


def _web(doc: Mapping[str, Any], origin: str, *, has_tls: bool, per_address_http: bool
         ) -> Mapped:
    target = _web_target(doc)
    started, finished = _times_of(doc)
    raw = doc.get("test_keys")
    tk: Mapping[str, Any] = raw if isinstance(raw, _MAPPING) else {}
    ids = _Ids()
    dns = dns_observations(tk, target.hostname, ids)
    tcp = tcp_observations(tk, ids)
    tls = list(tls_observations(tk, tcp, ids))
    recorded_tls = has_tls and tk.get("tls_handshakes") is not None
    http = http_observations(tk, tcp, tls, dns, ids, synthesize_tls=not recorded_tls)
    missing = ["canaries", "innocuous_sni_retry"]
    if "x_dns_late_replies" not in tk:
        missing.append("second_dns_answer")
    if not recorded_tls:
        missing.append("tls_chain")
    if not per_address_http:
        missing.append("per_address_http")
    extra: dict[str, Any] = {"source": SOURCE}
    if not isinstance(raw, _MAPPING):
        extra["note"] = "the document has no test_keys"
    m = Measurement(target=target, started_at=started, finished_at=finished, dns=dns,
                    tcp=tcp, tls=tuple(tls), http=http, control=control(doc, tk), extra=extra)
    return Mapped(m, provenance(doc, origin, missing))


def web_connectivity_legacy(doc: Mapping[str, Any], origin: str) -> Mapped:
    """Web Connectivity 0.0.x–0.3.x (measurement-kit, ooniprobe 2.x, early probe-cli): DNS
    queries, TCP connects, HTTP requests; no TLS handshakes, no chain."""
    return _web(doc, origin, has_tls=False, per_address_http=False)


def web_connectivity_04(doc: Mapping[str, Any], origin: str) -> Mapped:
    """Web Connectivity 0.4.x (probe-cli): adds ``tls_handshakes`` with the presented chain."""
    return _web(doc, origin, has_tls=True, per_address_http=False)


def web_connectivity_05(doc: Mapping[str, Any], origin: str) -> Mapped:
    """Web Connectivity 0.5.x (probe-cli): its own resolvers (system, UDP, DoH), per-address
    TCP/TLS/HTTP with transaction ids, ``x_blocking_flags`` and the helper's TLS results."""
    return _web(doc, origin, has_tls=True, per_address_http=True)


#: Web Connectivity version family (``MAJOR.MINOR``) → its mapping function.
WEB_CONNECTIVITY_VERSIONS: dict[str, Callable[[Mapping[str, Any], str], Mapped]] = {
    "0.0": web_connectivity_legacy,
    "0.1": web_connectivity_legacy,
    "0.2": web_connectivity_legacy,
    "0.3": web_connectivity_legacy,
    "0.4": web_connectivity_04,
    "0.5": web_connectivity_05,
}


def unsupported(doc: Mapping[str, Any], origin: str) -> Mapped:
    """Any other test: stored with its provenance and no observations (this version has no
    rules for it: ``inconclusive``/``unsupported_test``)."""
    name = str(doc.get("test_name"))
    # A name we run ourselves with other semantics (OONI's tcp_connect input is ip:port) is
    # kept apart so our rules never judge a document they were not written for. OONI's app
    # tests keep their names (ours are the same tests; without per-endpoint observations our
    # rules call them unsupported_test, as before issue 14).
    test_name = f"ooni_{name}" if name in INPUT_SCHEMES and name not in APP_TESTS else name
    started, finished = _times_of(doc)
    m = Measurement(target=_input_target(doc, test_name), started_at=started,
                    finished_at=finished, extra={"source": SOURCE, "test_name": name})
    return Mapped(m, provenance(doc, origin, ["canaries"]))


#: OONI's app tests (ooni/spec ts-018 whatsapp, ts-019 facebook_messenger, ts-020 telegram,
#: ts-029 signal) → (host pattern, role) in order: the roles our packaged lists
#: (targets/apps/*.toml) give the same hosts, so the app rules excuse the same failures
#: (one WhatsApp chat server down while another works). A host no pattern names keeps its
#: first label as its role: Signal's names (storage, cdn, sfu, the directory…) are separate
#: services, not replicas, so one working does not excuse another failing.
APP_ROLES: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    "whatsapp": ((re.compile(r"e\d+\.whatsapp\.net"), "chat"),
                 (re.compile(r"v\.whatsapp\.net"), "registration"),
                 (re.compile(r"web\.whatsapp\.com"), "web")),
    "telegram": ((re.compile(r"web\.telegram\.org"), "web"),
                 (re.compile(r"[0-9.]+|[0-9a-f:]+"), "dc")),
    "signal": (),
    "facebook_messenger": ((re.compile(r"b-api\.facebook\.com"), "b_api"),
                           (re.compile(r"b-graph\.facebook\.com"), "b_graph"),
                           (re.compile(r"edge-mqtt\.facebook\.com"), "edge"),
                           (re.compile(r"external\.xx\.fbcdn\.net"), "external_cdn"),
                           (re.compile(r"scontent\.xx\.fbcdn\.net"), "scontent_cdn"),
                           (re.compile(r"star(\.c10r)?\.facebook\.com"), "star")),
}


class _FreshIds(_Ids):
    """Transaction ids that are always fresh: an imported app endpoint's observations must
    form one contiguous range (probe.classify.apps cuts endpoints out by ``tx`` range)."""

    def get(self, value: Any) -> int:
        self.next += 1
        return self.next


def _role(app: str, host: str) -> str:
    for pattern, role in APP_ROLES.get(app, ()):
        if pattern.fullmatch(host):
            return role
    return re.sub(r"[^a-z0-9]+", "_", host.split(".")[0].lower()) or "other"


def _url_endpoint(url: str) -> tuple[str, int, str] | None:
    parts = split_url(url)
    name = (parts.hostname or "").strip("[]").rstrip(".").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return (name, port, parts.scheme) if name and parts.scheme in ("http", "https") else None


def _entries(tk: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """``tk[key]``'s objects without OONI's ``transaction_id`` (ours are fresh per endpoint;
    a handshake then joins its connect by address, as in the oldest layouts)."""
    return [{k: v for k, v in e.items() if k != "transaction_id"}
            for e in tk.get(key) or () if isinstance(e, _MAPPING)]


def _app_endpoint_keys(entries: Mapping[str, list[Mapping[str, Any]]],
                       names: Mapping[str, set[str]]
                       ) -> dict[tuple[str, int], tuple[str, str | None]]:
    """(host, port) → (protocol, URL) of every endpoint the document measured, in our lists'
    protocols: a fetched URL is ``https`` (a POST over plain HTTP, Telegram's data centres, is
    ``http_post``), a handshake without a fetch ``tls``, a connect without either ``tcp``; a
    name whose lookup failed and that nothing else names is ``tcp`` on 443 (the DNS rules
    judge it). A connect is credited to every name that resolved to its address (WhatsApp's
    chat names share addresses), or to the bare address."""
    keys: dict[tuple[str, int], tuple[str, str | None]] = {}
    for r in entries["requests"]:
        req = r.get("request") if isinstance(r.get("request"), _MAPPING) else {}
        assert isinstance(req, _MAPPING)
        url = str(req.get("url") or "")
        where = _url_endpoint(url)
        if where is None:
            continue
        post = str(req.get("method") or "GET").upper() == "POST" and where[2] == "http"
        keys.setdefault(where[:2], ("http_post" if post else "https", url))
    for h in entries["tls_handshakes"]:
        name = str(h.get("server_name") or "").lower()
        at = _split(h.get("address"))
        if name and at is not None:
            keys.setdefault((name, at[1]), ("tls", None))
    for c in entries["tcp_connect"]:
        ip, port = _ip(c.get("ip")), c.get("port")
        if ip is None or not isinstance(port, int):
            continue
        for name in sorted(n for n, addrs in names.items() if ip in addrs) or [ip]:
            keys.setdefault((name, port), ("tcp", None))
    hosts = {host for host, _ in keys}
    for q in entries["queries"]:
        name = str(q.get("hostname") or "").rstrip(".").lower()
        if name and name not in hosts and q.get("failure"):
            keys.setdefault((name, 443), ("tcp", None))
    return keys


def app_test(doc: Mapping[str, Any], origin: str) -> Mapped:
    """OONI's whatsapp, telegram, signal and facebook_messenger measurements (every layout
    with df-002/005/006/001 ``queries``/``tcp_connect``/``tls_handshakes``/``requests``) as
    our app measurement: one endpoint per (host, port) the document measured, with the
    observations that belong to it, judged by the app rules (probe.classify.apps). OONI's app
    tests ask no test helper, so no endpoint has a control: a failure is never ``blocked``
    unless its own evidence says so (a bogon answer, a block page), and OONI's own
    ``*_blocking``/``*_status`` keys are not read. A document with none of these keys (the
    oldest layouts, an empty run) keeps no endpoints: ``unsupported_test`` as before."""
    name = str(doc.get("test_name"))
    raw = doc.get("test_keys")
    tk: Mapping[str, Any] = raw if isinstance(raw, _MAPPING) else {}
    entries = {key: _entries(tk, key)
               for key in ("queries", "tcp_connect", "tls_handshakes", "requests")}
    names: dict[str, set[str]] = {}
    queries: dict[str, list[Mapping[str, Any]]] = {}
    for q in entries["queries"]:
        host = str(q.get("hostname") or "").rstrip(".").lower()
        queries.setdefault(host, []).append(q)
        for a in q.get("answers") or ():
            ip = _ip(a.get("ipv4") or a.get("ipv6")) if isinstance(a, _MAPPING) else None
            if host and ip:
                names.setdefault(host, set()).add(ip)
    # Replicas — names of one role that resolved to the same addresses (WhatsApp's e1…e16
    # share a few anycast addresses) — are one endpoint per port, named by the first and
    # listing the others, instead of every connect credited to all of them.
    groups: dict[tuple[str, frozenset[str]], list[str]] = {}
    for n in sorted(names):
        groups.setdefault((_role(name, n), frozenset(names[n])), []).append(n)
    members = {ns[0]: ns for ns in groups.values()}
    keys = _app_endpoint_keys(entries, {n: names[n] for n in members})
    if not keys:
        return unsupported(doc, origin)
    ids = _FreshIds(0)
    recorded_tls = tk.get("tls_handshakes") is not None
    dns_all: list[DNSObservation] = []
    tcp_all: list[TCPObservation] = []
    tls_all: list[TLSObservation] = []
    http_all: list[HTTPObservation] = []
    endpoints: list[dict[str, Any]] = []
    connects: dict[Any, list[tuple[str | None, Mapping[str, Any]]]] = {}
    for c in entries["tcp_connect"]:
        connects.setdefault(c.get("port"), []).append((_ip(c.get("ip")), c))
    handshakes: dict[tuple[str, int | None], list[Mapping[str, Any]]] = {}
    for h in entries["tls_handshakes"]:
        at = _split(h.get("address"))
        handshakes.setdefault((str(h.get("server_name") or "").lower(),
                               at[1] if at is not None else None), []).append(h)
    fetches: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for r in entries["requests"]:
        req = r.get("request")
        w = _url_endpoint(str(req.get("url") or "")) if isinstance(req, _MAPPING) else None
        if w is not None:
            fetches.setdefault(w[:2], []).append(r)
    for (host, port), (protocol, url) in keys.items():
        aliases = members.get(host, [host])
        addrs = names.get(host, set())
        sub = {
            "queries": [q for n in aliases for q in queries.get(n, [])],
            "tcp_connect": [c for ip, c in connects.get(port, [])
                            if ip is not None and (ip == host or ip in addrs)],
            "tls_handshakes": [*handshakes.get((host, port), []),
                               *handshakes.get((host, None), [])],
            "requests": fetches.get((host, port), [])}
        first = ids.next + 1
        dns = dns_observations(sub, host, ids)
        tcp = tcp_observations(sub, ids)
        tls = list(tls_observations(sub, tcp, ids))
        http = http_observations(sub, tcp, tls, dns, ids, synthesize_tls=not recorded_tls)
        if ids.next < first:
            continue
        role = _role(name, host)
        shown = f"[{host}]" if ":" in host else host
        if url is None:
            url = f"http://{shown}:{port}/" if protocol == "http_post" else \
                f"https://{shown}:{port}/"
        endpoints.append({"role": role, "host": host, "port": port, "protocol": protocol,
                          "url": url, "label": f"{role} {shown}:{port}/{protocol}",
                          "tx": [first, ids.next], "dt": 0.0, "control_url": None,
                          "addresses": sorted(addrs)})
        if len(aliases) > 1:
            endpoints[-1]["aliases"] = aliases[1:]
        dns_all += dns
        tcp_all += tcp
        tls_all += tls
        http_all += http
    started, finished = _times_of(doc)
    m = Measurement(target=_input_target(doc, name), started_at=started, finished_at=finished,
                    dns=tuple(dns_all), tcp=tuple(tcp_all), tls=tuple(tls_all),
                    http=tuple(http_all),
                    extra={"source": SOURCE, "test_name": name, "app": name, "list": "ooni",
                           "endpoints": endpoints})
    missing = ["canaries", "innocuous_sni_retry", "second_dns_answer"]
    if not recorded_tls:
        missing.append("tls_chain")
    return Mapped(m, provenance(doc, origin, missing))


def version_family(version: Any) -> str:
    """``0.4.3`` → ``0.4``; anything unparsable → ``""``."""
    parts = str(version or "").split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 and all(p.isdigit() for p in parts[:2]) \
        else ""


def mapper_for(doc: Mapping[str, Any]) -> Callable[[Mapping[str, Any], str], Mapped]:
    """The mapping function for one document's test name and version."""
    if doc.get("test_name") == WEB_CONNECTIVITY:
        family = version_family(doc.get("test_version"))
        fn = WEB_CONNECTIVITY_VERSIONS.get(family)
        if fn is None:
            # A newer version than this table knows: the newest mapping, which reads every
            # key it knows and ignores the rest.
            return web_connectivity_05
        return fn
    if doc.get("test_name") in APP_ROLES:
        return app_test
    return unsupported


def map_document(doc: Mapping[str, Any], origin: str) -> Mapped:
    """One OONI measurement document → :class:`Mapped`; :class:`MappingError` when it is
    not a measurement (no test name, no start time, a web test without a URL)."""
    if not _str(doc.get("test_name")):
        raise MappingError("no test_name: not an OONI measurement")
    return mapper_for(doc)(doc, origin)


__all__ = ["APP_ROLES", "LEGACY_FAILURES", "SOURCE", "WEB_CONNECTIVITY_VERSIONS", "Mapped",
           "MappingError", "app_test", "control", "dedup_key", "failure", "map_document",
           "mapper_for", "provenance", "unsupported", "web_connectivity_04", "web_connectivity_05",
           "web_connectivity_legacy"]
