"""The ``ooni`` export of a ``tor`` measurement: OONI's ``tor`` test keys (spec ts-023-tor).

Responsibility: one stored ``tor`` measurement into OONI's ``test_keys`` layout — per-protocol
``*_total``/``*_accessible`` counts and ``targets`` keyed by OONI's target id, each with
``agent``, ``failure``, ``summary`` (``connect`` and ``handshake`` failures, the keys OONI's
UI reads), ``target_address``/``target_name``/``target_protocol``/``target_source`` and its
``tcp_connect``/``tls_handshakes``/``requests`` entries (df-005, df-006, df-001 shapes), with
no IO. Version: ooni/probe-cli's ``tor`` experiment 0.4.0. OONI keeps a target "accessible"
when its ``failure`` is null; so do we (our verdict, judged against the control, is under
``x_probe`` like every export). The obfs4 handshake has no record of OONI's own: it is the
target's ``summary.handshake`` and ``x_probe.pt``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from probe.export.jsonl import b64
from probe.model import (
    TOR,
    HTTPObservation,
    Measurement,
    TCPObservation,
    TLSObservation,
    Verdict,
)

#: ooni/probe-cli internal/experiment/tor ``testVersion``.
TOR_VERSION = "0.4.0"
PROTOCOLS = ("dir_port", "obfs4", "or_port_dirauth", "or_port")


def _tcp(c: TCPObservation) -> dict[str, Any]:
    return {"ip": c.ip, "port": c.port, "t0": c.t0, "t": c.t, "transaction_id": c.tx_id,
            "status": {"success": c.failure is None, "failure": c.failure}}


def _tls(h: TLSObservation) -> dict[str, Any]:
    # Tor's link certificates are self-signed: nobody validates them, so the handshake's own
    # failure is OONI's failure (OONI's tor test skips verification too).
    return {"network": "tcp", "address": f"{h.ip}:{h.port}", "server_name": "",
            "tls_version": h.tls_version or "", "cipher_suite": h.cipher_suite or "",
            "negotiated_protocol": h.alpn or "", "no_tls_verify": True,
            "peer_certificates": [{"format": "base64", "data": b64(c.der)}
                                  for c in h.certificates],
            "failure": h.failure, "t0": h.t0, "t": h.t, "transaction_id": h.tx_id}


def _request(h: HTTPObservation) -> dict[str, Any]:
    body: Any = ""
    if h.body is not None:
        try:
            body = h.body.decode("utf-8")
        except UnicodeDecodeError:
            body = {"format": "base64", "data": b64(h.body)}
    return {"network": "tcp", "address": f"{h.ip}:{h.port}" if h.ip else "",
            "request": {"method": h.method, "url": h.url,
                        "headers_list": [list(p) for p in h.request_headers],
                        "headers": dict(h.request_headers), "body": "",
                        "body_is_truncated": False,
                        "tor": {"exit_ip": None, "exit_name": None, "is_tor": False}},
            "response": {"code": h.status if h.status is not None else 0,
                         "headers_list": [list(p) for p in h.headers],
                         "headers": dict(h.headers), "body": body,
                         "body_is_truncated": h.body_truncated},
            "failure": h.failure, "t0": h.t0, "t": h.t, "transaction_id": h.tx_id}


def _summary(t: Mapping[str, Any]) -> dict[str, dict[str, str | None]]:
    """OONI's per-target ``summary``: the connect's failure, then the handshake's (TLS or
    obfs4) for the protocols that have one."""
    step, failure = t.get("step"), t.get("failure")
    out: dict[str, dict[str, str | None]] = {
        "connect": {"failure": failure if step == "connect" else None}}
    if t.get("protocol") in ("or_port", "or_port_dirauth", "obfs4") and step != "connect":
        out["handshake"] = {"failure": failure}
    return out


def tor_test_keys(m: Measurement) -> dict[str, Any]:
    """OONI's ``tor`` test keys of ``m`` (without ``x_probe``; the caller adds it)."""
    info = m.extra.get("tor") if isinstance(m.extra.get("tor"), Mapping) else {}
    assert isinstance(info, Mapping)
    targets: dict[str, Any] = {}
    counts = {p: [0, 0] for p in PROTOCOLS}
    pt: Sequence[Mapping[str, Any]] = info.get("pt") or ()
    for t in info.get("targets") or ():
        if not isinstance(t, Mapping):
            continue
        tx = t.get("tx_id")
        proto = str(t.get("protocol"))
        if proto in counts:
            counts[proto][0] += 1
            counts[proto][1] += t.get("failure") is None
        handshake = [p for p in pt if p.get("address") == t.get("address")]
        targets[str(t.get("id"))] = {
            "agent": "redirect",
            "failure": t.get("failure"),
            "network_events": None,
            "queries": None,
            "requests": [_request(h) for h in m.http if h.tx_id == tx] or None,
            "summary": _summary(t),
            "target_address": t.get("address"),
            "target_name": t.get("name") or "",
            "target_protocol": proto,
            "target_source": t.get("source") or "",
            "tcp_connect": [_tcp(c) for c in m.tcp if c.tx_id == tx] or None,
            "tls_handshakes": [_tls(h) for h in m.tls if h.tx_id == tx] or None,
            "x_probe": {"step": t.get("step"), "pt": handshake or None,
                        "status": t.get("status")},
        }
    keys: dict[str, Any] = {}
    for proto, (total, accessible) in counts.items():
        keys[f"{proto}_total"] = total
        keys[f"{proto}_accessible"] = accessible
    keys["targets"] = targets
    return keys


def tor_export(m: Measurement, v: Verdict | None,
               observed: Mapping[str, Any]) -> tuple[str, str, str | None, dict[str, Any]]:
    """``(test_name, test_version, input, test_keys)`` of one ``tor`` measurement, the shape
    :func:`probe.export.ooni_apps.app_test_keys` has; ``observed``: the keys the web export
    built for it (its ``control_failure`` and ``x_probe`` ride along). OONI's tor has no input;
    ours names the list and is kept so each list's measurement stays apart."""
    keys = {**tor_test_keys(m), "control_failure": observed.get("control_failure"),
            "x_probe": observed.get("x_probe")}
    return TOR, TOR_VERSION, m.target.url, keys
