"""QUIC and HTTP/3 findings: is QUIC blocked where TCP/TLS works? Recorded beside the verdict.

Responsibility: judging the web test's HTTP/3 attempt (``Measurement.quic``/``http3``) against
its TCP path, per address, and writing the finding into the verdict's ``details["quic"]`` (and
its evidence when QUIC is blocked). It never changes the verdict itself: the site's web
verdict stays driven by what users get over TCP, because browsers fall back to TCP when QUIC
fails (RFC 9114 §3.1.1: a client that cannot reach an HTTP/3 alternative uses the origin's
TCP service), so a QUIC-only failure does not make an ``ok`` site ``blocked``.

Methods (``details["quic"]["method"]``), the first that applies:

``quic.ok``           a QUIC handshake with the site's name succeeded and its chain verified.
``quic.cert_invalid`` handshakes completed, but no chain verified (interception over QUIC).
``quic.blocked``      every handshake with the site's name failed on an address where TCP+TLS
                      with the same name worked, and something shows QUIC itself reaches that
                      address: an innocuous SNI's handshake to it succeeded (``trigger`` sni:
                      the name in the Initial is filtered, as China's QUIC SNI filter since
                      2024, USENIX Security 2025 "Exposing and Circumventing SNI-based QUIC
                      Censorship of the Great Firewall of China"), or a control reached it over
                      QUIC (``trigger`` address: UDP to the address is dropped).
``quic.failed``       the same failures, with nothing showing the address speaks QUIC (no
                      control over QUIC, the innocuous SNI failed too): a network dropping all
                      UDP 443 or a server without QUIC look the same. Not a block.
``quic.not_compared`` TCP/TLS did not work on those addresses either: QUIC adds nothing.

Control answers may carry ``"quic": [{"ip", "port", "failure"}]`` (the helper's own QUIC
handshakes to the probe's addresses, ``"quic": 1`` in the request: :mod:`probe.control.protocol`);
a helper without QUIC sends none. The probe asks for them only where they decide something
(:func:`control_wanted`: a ``quic.failed`` address), in a second request after the measurement.

The false-blocked guard: a control reaching an address over QUIC shows the *server* speaks
QUIC, not that QUIC can leave the volunteer's network. Where UDP (or QUIC) is dropped near the
volunteer, every QUIC handshake of the run fails, for every target, and each would look like a
site blocked by address. So the ``address`` trigger alone stands only when some QUIC handshake
of the same run completed (:class:`QUICPopulation`, applied in the run's final pass with the
IPv6 population); otherwise the finding is ``quic.failed`` with ``quic_here`` ``unproven``.
The ``sni`` trigger needs no such proof: the innocuous SNI's handshake to the same address
completed in the same measurement.

Imports only :mod:`probe.model` and :mod:`probe.failures` (pure, like the whole package).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from probe.model import Measurement, QUICHandshake, Verdict


def _host(name: str) -> str:
    return name.strip("[]").rstrip(".").lower()


def _tcp_tls_ok(m: Measurement, ip: str, name: str) -> bool:
    return any(t.ip == ip and _host(t.server_name) == name and t.failure is None
               and t.verified for t in m.tls)


def _control_reached(m: Measurement, ip: str, port: int) -> bool | None:
    """True/False: a control's QUIC handshake to ``ip:port`` succeeded/failed; None = no
    control said."""
    said: bool | None = None
    for answer in m.control:
        entries = answer.get("quic") if isinstance(answer, dict) else None
        for e in entries if isinstance(entries, list) else ():
            if isinstance(e, dict) and e.get("ip") == ip and e.get("port", port) == port:
                said = said or e.get("failure") is None
    return said


def finding(m: Measurement) -> dict[str, Any] | None:
    """The QUIC finding of one measurement (see the module docstring); None = no QUIC
    attempt."""
    if not m.quic:
        return None
    name = _host(m.target.hostname)
    main = [q for q in m.quic if _host(q.server_name) == name]
    others = [q for q in m.quic if _host(q.server_name) != name]
    addresses: list[dict[str, Any]] = []
    for q in main:
        innocuous = next((o for o in others if o.ip == q.ip and o.port == q.port), None)
        addresses.append({
            "ip": q.ip, "port": q.port, "tx_id": q.tx_id, "failure": q.failure,
            "verified": q.verified, "tcp_tls_ok": _tcp_tls_ok(m, q.ip, name),
            "innocuous_sni": None if innocuous is None else innocuous.server_name,
            "innocuous_sni_failure": None if innocuous is None else innocuous.failure,
            "control_quic": _control_reached(m, q.ip, q.port),
        })
    statuses = [h.status for h in m.http3 if h.status is not None]
    out: dict[str, Any] = {"method": _method(main, addresses), "addresses": addresses,
                           "advertised": (m.extra.get("http3") or {}).get("reason") == "alt-svc",
                           "http3_status": statuses[0] if statuses else None}
    blocked = [a for a in addresses if _blocked_trigger(a) is not None]
    if out["method"] == "quic.blocked":
        out["trigger"] = sorted({t for a in blocked if (t := _blocked_trigger(a))})
    return out


def _blocked_trigger(a: dict[str, Any]) -> str | None:
    if a["failure"] is None or not a["tcp_tls_ok"]:
        return None
    if a["innocuous_sni"] is not None and a["innocuous_sni_failure"] is None:
        return "sni"
    if a["control_quic"]:
        return "address"
    return None


def _method(main: list[QUICHandshake], addresses: list[dict[str, Any]]) -> str:
    done = [q for q in main if q.failure is None]
    if any(q.verified for q in done):
        return "quic.ok"
    if done:
        return "quic.cert_invalid"
    if any(_blocked_trigger(a) for a in addresses):
        return "quic.blocked"
    if any(a["tcp_tls_ok"] for a in addresses):
        return "quic.failed"
    return "quic.not_compared"


def _suffix(found: dict[str, Any]) -> str:
    a = next(x for x in found["addresses"] if _blocked_trigger(x) is not None)
    how = ("an innocuous SNI's handshake to it succeeded" if _blocked_trigger(a) == "sni"
           else "a control reached it over QUIC")
    return (f"; HTTP/3: QUIC handshake to {a['ip']}:{a['port']} failed ({a['failure']}) while "
            f"TCP/TLS to it works and {how} (quic.blocked)")


def control_wanted(m: Measurement) -> list[str]:
    """The addresses a control's QUIC handshake would decide: the site's QUIC failed there
    while TCP/TLS worked, nothing showed QUIC reaches them, no control said, at the target's
    own port (the helper tries only that one). Empty = nothing to ask."""
    found = finding(m)
    if found is None or found["method"] != "quic.failed":
        return []
    return list(dict.fromkeys(
        a["ip"] for a in found["addresses"]
        if a["failure"] is not None and a["tcp_tls_ok"] and a["control_quic"] is None
        and a["port"] == m.target.port))


class QUICPopulation:
    """Counts, over one run, the measurements in which some QUIC handshake completed: the
    proof that QUIC leaves this network, which the ``address`` trigger needs (module doc)."""

    def __init__(self) -> None:
        self.completed = 0

    def add(self, m: Measurement) -> None:
        if any(q.failure is None for q in m.quic):
            self.completed += 1

    def apply(self, v: Verdict) -> Verdict:
        """``v`` with a ``quic.blocked`` resting on the control alone turned into
        ``quic.failed`` when no QUIC handshake of the run completed."""
        found = v.details.get("quic")
        if (self.completed or not isinstance(found, dict)
                or found.get("method") != "quic.blocked" or found.get("trigger") != ["address"]):
            return v
        evidence = v.evidence.removesuffix(_suffix(found))
        kept = {k: val for k, val in found.items() if k != "trigger"}
        return dataclasses.replace(v, evidence=evidence, details={
            **v.details, "quic": {**kept, "method": "quic.failed", "quic_here": "unproven",
                                  "why": "a control reached the address over QUIC, but no QUIC "
                                         "handshake of this run completed: UDP/QUIC may be "
                                         "dropped near the volunteer, not for this site"}})


def annotate(m: Measurement, v: Verdict) -> Verdict:
    """``v`` with ``details["quic"]`` (and, when QUIC is blocked, a note in its evidence);
    the verdict, method and confidence are never changed. ``v`` itself when there was no
    QUIC attempt."""
    found = finding(m)
    if found is None:
        return v
    evidence = v.evidence + (_suffix(found) if found["method"] == "quic.blocked" else "")
    return dataclasses.replace(v, evidence=evidence, details={**v.details, "quic": found})
