"""Pure conversion between the frozen records of :mod:`probe.model` and database rows.

Everything that decides how a record field is spelled in a column lives here, in both
directions, so that a measurement read back is *equal* to the one written: bytes stay bytes,
tuples stay tuples, ``None`` stays distinct from ``b""``/``()``/``False``. No IO here.

Rows are dicts keyed by column name. :func:`new_row` builds a complete row of any table from
the column list of :mod:`probe.store.schema` (defaults filled in, unknown names refused), so
no caller repeats the order or the defaults of a table's columns.

``Measurement.extra`` and ``Measurement.control`` are stored as JSON and must therefore hold
JSON-native values (dict, list, str, int, float, bool, None) to round-trip exactly.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from probe.model import (
    WEB_CONNECTIVITY,
    Certificate,
    DNSAnswer,
    DNSObservation,
    HealthSample,
    HTTPObservation,
    Measurement,
    Provenance,
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
from probe.store import schema

Row = dict[str, Any]


def to_json(value: Any) -> str:
    """Compact JSON text for a JSON column (UTF-8 kept readable)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def from_json(text: str | None, default: Any) -> Any:
    """Parse a JSON column; NULL gives ``default``."""
    return default if text is None else json.loads(text)


def _bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _unbool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _pairs(value: Iterable[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in value)


@functools.cache
def _names(table: str) -> frozenset[str]:
    return frozenset(c.name for c in schema.columns(table))


# --- any table ------------------------------------------------------------------------------


def new_row(table: str, **values: Any) -> Row:
    """A complete row of ``table``: every column of the current schema, in schema order, from
    ``values``; a missing column gets its schema default (NULL when it has none) and an
    ``INTEGER PRIMARY KEY`` left out is left for SQLite to assign.

    Raises ValueError for a column the table does not have, or a missing ``NOT NULL`` column
    without a default (a programming error, not a tool error).
    """
    cols = schema.columns(table)
    unknown = values.keys() - _names(table)
    if unknown:
        raise ValueError(f"table {table} has no column {', '.join(sorted(unknown))}")
    row: Row = {}
    for c in cols:
        if c.name in values:
            row[c.name] = values[c.name]
        elif c.assigned:
            continue
        elif c.not_null and c.default is None:
            raise ValueError(f"table {table}: column {c.name} is required")
        else:
            row[c.name] = c.default
    return row


# --- records → rows -------------------------------------------------------------------------


def run_row(run_id: str, started_at: str, probe_version: str, settings: Mapping[str, Any],
            total: int, *, status: str = "running", finished_at: str | None = None,
            last_seen_at: str | None = None, probe_asn: int | None = None,
            probe_cc: str | None = None, network_name: str | None = None) -> Row:
    """One ``runs`` row; ``last_seen_at`` None = the start."""
    return new_row(
        "runs", run_id=run_id, started_at=started_at, finished_at=finished_at,
        last_seen_at=started_at if last_seen_at is None else last_seen_at,
        probe_version=probe_version, settings=to_json(settings), status=status,
        targets_total=int(total), probe_asn=probe_asn, probe_cc=probe_cc,
        network_name=network_name)


def lease_row(run_id: str, owner: str, pid: int, host: str, boot_id: str, claimed_at: str,
              expires_at: str) -> Row:
    """One ``run_leases`` row: who owns a run being measured, until when (see
    :meth:`probe.store.Store.claim_run`)."""
    return new_row("run_leases", run_id=run_id, owner=owner, pid=int(pid), host=host,
                   boot_id=boot_id, claimed_at=claimed_at, expires_at=expires_at)


def health_row(run_id: str, s: HealthSample) -> Row:
    """One ``health_samples`` row."""
    return new_row("health_samples", run_id=run_id, at=s.at, phase=s.phase,
                   scope=s.scope.value, target=s.target, elapsed=s.elapsed, failure=s.failure,
                   unexpected=s.unexpected)



def import_row(measurement_id: str, p: Provenance, imported_at: str) -> Row:
    """One ``imports`` row: an imported measurement's provenance and its source's verdict."""
    return new_row("imports", measurement_id=measurement_id, source=p.source, origin=p.origin,
                   dedup_key=p.dedup_key, report_id=p.report_id,
                   measurement_uid=p.measurement_uid, software_name=p.software_name,
                   software_version=p.software_version, test_name=p.test_name,
                   test_version=p.test_version, probe_asn=p.probe_asn, probe_cc=p.probe_cc,
                   probe_network_name=p.probe_network_name, resolver_ip=p.resolver_ip,
                   resolver_asn=p.resolver_asn, ooni_blocking=json.dumps(p.ooni_blocking),
                   ooni_accessible=json.dumps(p.ooni_accessible), ooni_flags=p.ooni_flags,
                   missing=json.dumps(list(p.missing)), imported_at=imported_at)


def import_from_row(r: Mapping[str, Any]) -> Provenance:
    """The :class:`Provenance` of one ``imports`` row."""
    return Provenance(
        source=r["source"], origin=r["origin"], dedup_key=r["dedup_key"],
        test_name=r["test_name"], report_id=r["report_id"],
        measurement_uid=r["measurement_uid"], software_name=r["software_name"],
        software_version=r["software_version"], test_version=r["test_version"],
        probe_asn=r["probe_asn"], probe_cc=r["probe_cc"],
        probe_network_name=r["probe_network_name"], resolver_ip=r["resolver_ip"],
        resolver_asn=r["resolver_asn"], ooni_blocking=json.loads(r["ooni_blocking"] or "null"),
        ooni_accessible=json.loads(r["ooni_accessible"] or "null"),
        ooni_flags=r["ooni_flags"], missing=tuple(json.loads(r["missing"] or "[]")))


def measurement_row(measurement_id: str, run_id: str, m: Measurement) -> Row:
    t = m.target
    return new_row("measurements", **{
        "measurement_id": measurement_id,
        "run_id": run_id,
        "url": t.url,
        "hostname": t.hostname,
        "scheme": t.scheme,
        "port": t.port,
        "path": t.path,
        "category": t.category,
        "source": t.source,
        "test_name": t.test_name,
        "started_at": m.started_at,
        "finished_at": m.finished_at,
        "extra": to_json(m.extra),
    })


def dns_rows(measurement_id: str, m: Measurement) -> list[Row]:
    return [
        new_row("dns_queries", **{
            "measurement_id": measurement_id,
            "idx": i,
            "tx_id": d.tx_id,
            "hostname": d.hostname,
            "query_type": d.query_type,
            "engine": d.engine,
            "resolver": d.resolver,
            "t0": d.t0,
            "t": d.t,
            "failure": d.failure,
            "rcode": d.rcode,
            "answers": to_json(
                [{"rtype": a.rtype, "value": a.value, "ttl": a.ttl} for a in d.answers]
            ),
            "response_index": d.response_index,
        })
        for i, d in enumerate(m.dns)
    ]


def tcp_rows(measurement_id: str, m: Measurement) -> list[Row]:
    return [
        new_row("tcp_connects", **{
            "measurement_id": measurement_id,
            "idx": i,
            "tx_id": c.tx_id,
            "ip": c.ip,
            "port": c.port,
            "t0": c.t0,
            "t": c.t,
            "failure": c.failure,
        })
        for i, c in enumerate(m.tcp)
    ]


def tls_rows(measurement_id: str, m: Measurement) -> list[Row]:
    return [
        new_row("tls_handshakes", **{
            "measurement_id": measurement_id,
            "idx": i,
            "tx_id": h.tx_id,
            "ip": h.ip,
            "port": h.port,
            "server_name": h.server_name,
            "t0": h.t0,
            "t": h.t,
            "failure": h.failure,
            "tls_version": h.tls_version,
            "cipher_suite": h.cipher_suite,
            "alpn": h.alpn,
            "verified": _bool(h.verified),
            "verify_error": h.verify_error,
        })
        for i, h in enumerate(m.tls)
    ]


def certificate_rows(measurement_id: str, m: Measurement) -> list[Row]:
    return [
        new_row("certificates", **{
            "measurement_id": measurement_id,
            "tls_idx": i,
            "tx_id": h.tx_id,
            "position": position,
            "der": bytes(c.der),
            "sha256": c.sha256,
            "spki_sha256": c.spki_sha256,
            "subject": c.subject,
            "issuer": c.issuer,
            "not_before": c.not_before,
            "not_after": c.not_after,
            "san": to_json(list(c.san)),
        })
        for i, h in enumerate(m.tls)
        for position, c in enumerate(h.certificates)
    ]


def http_rows(measurement_id: str, m: Measurement) -> list[Row]:
    """HTTP/1.1 requests, then HTTP/3 ones (``transport`` 'quic'), numbered on."""
    tagged = [(h, "tcp") for h in m.http] + [(h, "quic") for h in m.http3]
    return [
        new_row("http_requests", **{
            "measurement_id": measurement_id,
            "idx": i,
            "tx_id": h.tx_id,
            "url": h.url,
            "method": h.method,
            "ip": h.ip,
            "port": h.port,
            "t0": h.t0,
            "t": h.t,
            "failure": h.failure,
            "redirect_index": h.redirect_index,
            "request_headers": to_json([list(p) for p in h.request_headers]),
            "status": h.status,
            "headers": to_json([list(p) for p in h.headers]),
            "body": None if h.body is None else bytes(h.body),
            "body_length": h.body_length,
            "body_sha256": h.body_sha256,
            "body_truncated": int(h.body_truncated),
            "title": h.title,
            "location": h.location,
            "received_bytes": h.received_bytes,
            "last_byte_t": h.last_byte_t,
            "transport": transport,
        })
        for i, (h, transport) in enumerate(tagged)
    ]


def _certificate_json(c: Certificate) -> dict[str, Any]:
    return {"der": bytes(c.der).hex(), "sha256": c.sha256, "spki_sha256": c.spki_sha256,
            "subject": c.subject, "issuer": c.issuer, "not_before": c.not_before,
            "not_after": c.not_after, "san": list(c.san)}


def quic_rows(measurement_id: str, m: Measurement) -> list[Row]:
    return [
        new_row("quic_handshakes", **{
            "measurement_id": measurement_id,
            "idx": i,
            "tx_id": h.tx_id,
            "ip": h.ip,
            "port": h.port,
            "server_name": h.server_name,
            "t0": h.t0,
            "t": h.t,
            "failure": h.failure,
            "quic_version": h.quic_version,
            "alpn": h.alpn,
            "verified": _bool(h.verified),
            "verify_error": h.verify_error,
            "certificates": to_json([_certificate_json(c) for c in h.certificates]),
        })
        for i, h in enumerate(m.quic)
    ]


def quic_from_row(r: Mapping[str, Any]) -> QUICHandshake:
    return QUICHandshake(
        tx_id=r["tx_id"], ip=r["ip"], port=r["port"], server_name=r["server_name"],
        t0=r["t0"], t=r["t"], failure=r["failure"], quic_version=r["quic_version"],
        alpn=r["alpn"], verified=_unbool(r["verified"]), verify_error=r["verify_error"],
        certificates=tuple(
            Certificate(der=bytes.fromhex(c["der"]), sha256=c["sha256"],
                        spki_sha256=c["spki_sha256"], subject=c["subject"],
                        issuer=c["issuer"], not_before=c["not_before"],
                        not_after=c["not_after"], san=tuple(c.get("san") or ()))
            for c in from_json(r["certificates"], [])),
    )


def control_rows(measurement_id: str, m: Measurement) -> list[Row]:
    return [
        new_row("controls", measurement_id=measurement_id, idx=i, data=to_json(c))
        for i, c in enumerate(m.control)
    ]


def verdict_row(measurement_id: str, v: Verdict, created_at: str) -> Row:
    return new_row("verdicts", **{
        "measurement_id": measurement_id,
        "verdict": v.verdict.value,
        "method": v.method,
        "confidence": float(v.confidence),
        "evidence": v.evidence,
        "details": to_json(v.details),
        "analysis_version": v.analysis_version,
        "created_at": created_at,
        "is_current": 1,
    })


# --- rows → records -------------------------------------------------------------------------


def dns_from_row(r: Mapping[str, Any]) -> DNSObservation:
    return DNSObservation(
        tx_id=r["tx_id"],
        hostname=r["hostname"],
        query_type=r["query_type"],
        engine=r["engine"],
        resolver=r["resolver"],
        t0=r["t0"],
        t=r["t"],
        failure=r["failure"],
        rcode=r["rcode"],
        answers=tuple(
            DNSAnswer(rtype=a["rtype"], value=a["value"], ttl=a.get("ttl"))
            for a in from_json(r["answers"], [])
        ),
        response_index=r["response_index"],
    )


def tcp_from_row(r: Mapping[str, Any]) -> TCPObservation:
    return TCPObservation(
        tx_id=r["tx_id"], ip=r["ip"], port=r["port"], t0=r["t0"], t=r["t"], failure=r["failure"]
    )


def certificate_from_row(r: Mapping[str, Any]) -> Certificate:
    return Certificate(
        der=bytes(r["der"]),
        sha256=r["sha256"],
        spki_sha256=r["spki_sha256"],
        subject=r["subject"],
        issuer=r["issuer"],
        not_before=r["not_before"],
        not_after=r["not_after"],
        san=tuple(from_json(r["san"], [])),
    )


def tls_from_row(r: Mapping[str, Any], certificates: Sequence[Certificate]) -> TLSObservation:
    return TLSObservation(
        tx_id=r["tx_id"],
        ip=r["ip"],
        port=r["port"],
        server_name=r["server_name"],
        t0=r["t0"],
        t=r["t"],
        failure=r["failure"],
        tls_version=r["tls_version"],
        cipher_suite=r["cipher_suite"],
        alpn=r["alpn"],
        certificates=tuple(certificates),
        verified=_unbool(r["verified"]),
        verify_error=r["verify_error"],
    )


def http_from_row(r: Mapping[str, Any]) -> HTTPObservation:
    return HTTPObservation(
        tx_id=r["tx_id"],
        url=r["url"],
        method=r["method"],
        ip=r["ip"],
        port=r["port"],
        t0=r["t0"],
        t=r["t"],
        failure=r["failure"],
        redirect_index=r["redirect_index"],
        request_headers=_pairs(from_json(r["request_headers"], [])),
        status=r["status"],
        headers=_pairs(from_json(r["headers"], [])),
        body=None if r["body"] is None else bytes(r["body"]),
        body_length=r["body_length"],
        body_sha256=r["body_sha256"],
        body_truncated=bool(r["body_truncated"]),
        title=r["title"],
        location=r["location"],
        received_bytes=r.get("received_bytes"),
        last_byte_t=r.get("last_byte_t"),
    )


def measurement_from_rows(
    m: Mapping[str, Any],
    dns: Iterable[Mapping[str, Any]] = (),
    tcp: Iterable[Mapping[str, Any]] = (),
    tls: Iterable[Mapping[str, Any]] = (),
    certificates: Iterable[Mapping[str, Any]] = (),
    http: Iterable[Mapping[str, Any]] = (),
    controls: Iterable[Mapping[str, Any]] = (),
    quic: Iterable[Mapping[str, Any]] = (),
) -> Measurement:
    """Rebuild one Measurement from its rows (each iterable already in ``idx`` order).
    ``http`` rows with ``transport`` 'quic' are the HTTP/3 requests (rows without the column,
    older databases, are HTTP/1.1)."""
    http = list(http)
    chains: dict[int, list[Certificate]] = {}
    for c in sorted(certificates, key=lambda r: (r["tls_idx"], r["position"])):
        chains.setdefault(c["tls_idx"], []).append(certificate_from_row(c))
    return Measurement(
        target=Target(
            url=m["url"],
            hostname=m["hostname"],
            scheme=m["scheme"],
            port=m["port"],
            path=m["path"],
            category=m["category"],
            source=m["source"],
            test_name=m.get("test_name") or WEB_CONNECTIVITY,
        ),
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        dns=tuple(dns_from_row(r) for r in dns),
        tcp=tuple(tcp_from_row(r) for r in tcp),
        tls=tuple(tls_from_row(r, chains.get(r["idx"], ())) for r in tls),
        http=tuple(http_from_row(r) for r in http if r.get("transport", "tcp") != "quic"),
        control=tuple(from_json(r["data"], {}) for r in controls),
        quic=tuple(quic_from_row(r) for r in quic),
        http3=tuple(http_from_row(r) for r in http if r.get("transport") == "quic"),
        extra=from_json(m["extra"], {}),
    )


def verdict_from_row(r: Mapping[str, Any]) -> Verdict:
    return Verdict(
        verdict=VerdictKind(r["verdict"]),
        method=r["method"],
        confidence=r["confidence"],
        evidence=r["evidence"],
        analysis_version=r["analysis_version"],
        details=from_json(r["details"], {}),
    )


# --- traces (issue 8) -------------------------------------------------------------------------


def trace_row(t: TraceObservation, url: str, measurement_id: str | None,
              run_id: str | None) -> Row:
    """One ``traces`` row; ``measurement_id``/``run_id`` None = not linked to a measurement."""
    return new_row("traces", **{
        "measurement_id": measurement_id,
        "run_id": run_id,
        "url": url,
        "kind": t.kind,
        "target": t.target,
        "port": t.port,
        "name": t.name,
        "innocuous": t.innocuous,
        "started_at": t.started_at,
        "elapsed": t.elapsed,
        "failure": t.failure,
        "result": t.result,
        "signature": t.signature,
        "trigger_ttl": t.trigger_ttl,
        "hop": t.hop,
        "hop_address": t.hop_address,
        "path": to_json([{"ttl": h.ttl, "address": h.address} for h in t.path]),
        "probes": to_json([
            {"ttl": p.ttl, "variant": p.variant, "outcome": p.outcome, "source": p.source,
             "reply_ttl": p.reply_ttl, "note": p.note, "cert_error": p.cert_error}
            for p in t.probes]),
        "answers": to_json(list(t.answers)),
        "details": to_json(t.details),
    })


def trace_from_row(r: Mapping[str, Any]) -> TraceObservation:
    return TraceObservation(
        kind=r["kind"],
        target=r["target"],
        port=r["port"],
        name=r["name"],
        innocuous=r["innocuous"],
        started_at=r["started_at"],
        elapsed=r["elapsed"],
        failure=r["failure"],
        result=r["result"],
        signature=r["signature"],
        trigger_ttl=r["trigger_ttl"],
        hop=r["hop"],
        hop_address=r["hop_address"],
        path=tuple(TraceHop(h["ttl"], h["address"]) for h in from_json(r["path"], [])),
        probes=tuple(TraceProbe(**p) for p in from_json(r["probes"], [])),
        answers=tuple(from_json(r["answers"], [])),
        details=from_json(r["details"], {}),
    )
