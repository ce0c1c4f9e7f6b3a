"""The ``jsonl`` export: one lossless JSON object per measurement, and its inverse.

Responsibility: the spelling of a stored measurement as JSON, in both directions. Every field
of every record of :mod:`probe.model` is written under its own name; ``bytes`` (certificate
DER, HTTP bodies) become base64 text, tuples become arrays, ``None`` stays ``null``, so
:func:`measurement_from_json` rebuilds a Measurement *equal* to the stored one. Each object
also carries the run's metadata and the measurement's current verdict. Nothing is added that
the database does not hold: in particular no address of the probe (the store never has one).

Object layout (``schema`` names the version of this layout)::

    {"schema": "probe.jsonl/1", "measurement_id": ..., "run": {run_id, started_at,
     finished_at, status, probe_version, targets_total, probe_asn, probe_cc, network_name,
     settings}, "target": {url, hostname, scheme, port, path, category, source},
     "started_at": ..., "finished_at": ..., "dns": [...], "tcp": [...], "tls": [...],
     "http": [...], "quic": [...], "http3": [...], "control": [...], "extra": {...},
     "verdict": {verdict, method, confidence, evidence, analysis_version, details,
                 created_at} | null}
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
from collections.abc import Mapping
from typing import Any

from probe.export.source import Record
from probe.model import (
    Certificate,
    DNSAnswer,
    DNSObservation,
    HTTPObservation,
    Measurement,
    QUICHandshake,
    Target,
    TCPObservation,
    TLSObservation,
)

SCHEMA = "probe.jsonl/1"
#: The run columns exported with every measurement.
RUN_FIELDS: tuple[str, ...] = (
    "run_id", "started_at", "finished_at", "status", "probe_version", "targets_total",
    "probe_asn", "probe_cc", "network_name", "settings",
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


_FIELDS: dict[type, tuple[str, ...]] = {}
_SCALARS = (str, int, float, bool, type(None))


def to_jsonable(value: Any) -> Any:
    """A record (or any nesting of records, tuples, dicts) as JSON-native values."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    names = _FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(kind):
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    if names is not None:
        return {name: to_jsonable(getattr(value, name)) for name in names}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes | bytearray | memoryview):
        return b64(bytes(value))
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def record_to_json(record: Record) -> dict[str, Any]:
    """The export object of one stored measurement."""
    m = record.measurement
    verdict: dict[str, Any] | None = None
    if record.verdict is not None and record.verdict_row is not None:
        v = record.verdict
        verdict = {
            "verdict": v.verdict.value,
            "method": v.method,
            "confidence": v.confidence,
            "evidence": v.evidence,
            "analysis_version": v.analysis_version,
            "details": v.details,
            "created_at": record.verdict_row["created_at"],
        }
    return {
        "schema": SCHEMA,
        "measurement_id": record.measurement_id,
        "run": {k: record.run.get(k) for k in RUN_FIELDS},
        "target": to_jsonable(m.target),
        "started_at": m.started_at,
        "finished_at": m.finished_at,
        "dns": to_jsonable(m.dns),
        "tcp": to_jsonable(m.tcp),
        "tls": to_jsonable(m.tls),
        "http": to_jsonable(m.http),
        "quic": to_jsonable(m.quic),
        "http3": to_jsonable(m.http3),
        "control": list(m.control),  # JSON-native already (stored as JSON)
        "extra": m.extra,
        "verdict": verdict,
    }


def dumps(obj: Mapping[str, Any]) -> str:
    """One line of standard JSON (UTF-8 kept readable, no spaces); NaN/±inf become null."""
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_finite(obj), ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# --- the inverse ----------------------------------------------------------------------------


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in value)


def _certificate(d: Mapping[str, Any]) -> Certificate:
    return Certificate(
        der=unb64(d["der"]), sha256=d["sha256"], spki_sha256=d["spki_sha256"],
        subject=d["subject"], issuer=d["issuer"], not_before=d["not_before"],
        not_after=d["not_after"], san=tuple(d["san"]),
    )


def _http(h: Mapping[str, Any]) -> HTTPObservation:
    return HTTPObservation(**{
        **h,
        "request_headers": _pairs(h["request_headers"]),
        "headers": _pairs(h["headers"]),
        "body": None if h["body"] is None else unb64(h["body"]),
    })


def measurement_from_json(obj: Mapping[str, Any]) -> Measurement:
    """Rebuild the Measurement of one export object (raises KeyError/ValueError if malformed)."""
    if obj.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} object: schema {obj.get('schema')!r}")
    return Measurement(
        target=Target(**obj["target"]),
        started_at=obj["started_at"],
        finished_at=obj["finished_at"],
        dns=tuple(
            DNSObservation(**{**d, "answers": tuple(DNSAnswer(**a) for a in d["answers"])})
            for d in obj["dns"]
        ),
        tcp=tuple(TCPObservation(**c) for c in obj["tcp"]),
        tls=tuple(
            TLSObservation(**{**h, "certificates": tuple(_certificate(c)
                                                         for c in h["certificates"])})
            for h in obj["tls"]
        ),
        http=tuple(_http(h) for h in obj["http"]),
        quic=tuple(
            QUICHandshake(**{**h, "certificates": tuple(_certificate(c)
                                                        for c in h["certificates"])})
            for h in obj.get("quic", ())  # absent in exports written before QUIC
        ),
        http3=tuple(_http(h) for h in obj.get("http3", ())),
        control=tuple(obj["control"]),
        extra=dict(obj["extra"]),
    )
