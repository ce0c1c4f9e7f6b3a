"""The ``ooni`` export of the app kinds: each app's OONI test keys (whatsapp, telegram, signal,
facebook_messenger), built from our per-endpoint verdicts.

Responsibility: for one stored app measurement and its current verdict, the OONI
``test_name``, ``test_version``, ``input`` (None: OONI's app tests take none) and
``test_keys`` (ooni/spec nettests ts-018, ts-019, ts-020, ts-029: the key names and types
follow the spec's field lists; the versions are the spec's examples). No IO.

Semantics: OONI writes ``"blocked"`` (or ``true``) whenever an app's endpoints fail, so a
shutdown or an outage reads as blocking. Here the per-role status comes from *our* verdict of
that role (:mod:`probe.classify.apps`): ``"ok"`` for ok/throttled, ``"blocked"`` for
blocked/intercepted, and ``null`` where our verdict is neither (down, shutdown, inconclusive)
— we do not claim blocking we did not find. Booleans likewise (``null`` = not judged).
The observations (``queries``, ``tcp_connect``, ``tls_handshakes``, ``requests``) and our
verdict (``x_probe``) ride along as for the other tests. The ``endpoint`` kind is not OONI's:
it keeps its own name with the observation keys and ``x_probe``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from probe.classify.apps import endpoint_measurements
from probe.model import (
    FACEBOOK_MESSENGER,
    SIGNAL,
    TELEGRAM,
    WHATSAPP,
    Measurement,
    Verdict,
)

#: The OONI test version whose keys each app is exported as (the spec's examples).
VERSIONS: dict[str, str] = {WHATSAPP: "0.10.0", TELEGRAM: "0.3.0", SIGNAL: "0.2.5",
                            FACEBOOK_MESSENGER: "0.4.0", "endpoint": "0.1.0"}
_OK = ("ok", "throttled")
_BLOCKED = ("blocked", "intercepted")


def _status(verdict: str | None) -> str | None:
    if verdict in _OK:
        return "ok"
    if verdict in _BLOCKED:
        return "blocked"
    return None


def _endpoints(v: Verdict | None) -> list[Mapping[str, Any]]:
    return list(v.details.get("endpoints", [])) if v is not None else []


def _role(v: Verdict | None, role: str) -> str | None:
    return v.details.get("roles", {}).get(role) if v is not None else None


def _first_failure(m: Measurement, role: str) -> str | None:
    for e, sub in endpoint_measurements(m):
        if e.get("role") != role:
            continue
        found = [*(o.failure for o in sub.dns), *(o.failure for o in sub.tcp),
                 *(o.failure for o in sub.tls), *(o.failure for o in sub.http)]
        failure = next((x for x in found if x is not None), None)
        if failure is not None:
            return failure
    return None


def _whatsapp(m: Measurement, v: Verdict | None) -> dict[str, Any]:
    chat = [e for e in _endpoints(v) if e.get("role") == "chat"]
    blocked_hosts = list(dict.fromkeys(
        str(e["label"]).split()[1].rsplit(":", 1)[0] for e in chat
        if e.get("verdict") in _BLOCKED))
    dns_hosts = list(dict.fromkeys(
        str(e["label"]).split()[1].rsplit(":", 1)[0] for e in chat
        if e.get("verdict") in _BLOCKED and str(e.get("method") or "").startswith("dns.")))
    reg, web = _role(v, "registration"), _role(v, "web")
    return {
        "registration_server_status": _status(reg),
        "registration_server_failure": None if reg in _OK else _first_failure(m, "registration"),
        "whatsapp_endpoints_status": _status(_role(v, "chat")),
        "whatsapp_endpoints_blocked": blocked_hosts,
        "whatsapp_endpoints_dns_inconsistent": dns_hosts,
        "whatsapp_web_status": _status(web),
        "whatsapp_web_failure": None if web in _OK else _first_failure(m, "web"),
    }


def _telegram(m: Measurement, v: Verdict | None) -> dict[str, Any]:
    dc = [e for e in _endpoints(v) if e.get("role") == "dc"]
    role = _role(v, "dc")
    methods = {str(e.get("method") or "") for e in dc if e.get("verdict") in _BLOCKED}
    web = _role(v, "web")
    return {
        "telegram_tcp_blocking": False if role in _OK else (
            any(x.startswith("tcp.") for x in methods) or None),
        "telegram_http_blocking": False if role in _OK else (
            any(x.startswith("http.") for x in methods) or None),
        "telegram_web_status": _status(web),
        "telegram_web_failure": None if web in _OK else _first_failure(m, "web"),
    }


def _signal(m: Measurement, v: Verdict | None) -> dict[str, Any]:
    overall = v.verdict.value if v is not None else None
    return {
        "signal_backend_status": _status(overall),
        "signal_backend_failure": None if overall in _OK else _first_failure(m, "service"),
    }


def _facebook(m: Measurement, v: Verdict | None) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    tcp_ok = {str(e.get("role")): any(c.failure is None for c in sub.tcp)
              for e, sub in endpoint_measurements(m)}
    any_dns = any_tcp = False
    judged = v is not None and v.verdict.value in (*_OK, *_BLOCKED)
    for e in _endpoints(v):
        role, verdict, method = str(e.get("role")), e.get("verdict"), str(e.get("method") or "")
        dns_lie = verdict in _BLOCKED and method.startswith("dns.")
        any_dns |= dns_lie
        any_tcp |= verdict in _BLOCKED and method.startswith("tcp.")
        keys[f"facebook_{role}_dns_consistent"] = (not dns_lie) if verdict in (
            *_OK, *_BLOCKED) else None
        keys[f"facebook_{role}_reachable"] = tcp_ok.get(role)
    keys["facebook_dns_blocking"] = any_dns if judged else None
    keys["facebook_tcp_blocking"] = any_tcp if judged else None
    return keys


_KEYS: dict[str, Callable[[Measurement, Verdict | None], dict[str, Any]]] = {
    WHATSAPP: _whatsapp, TELEGRAM: _telegram, SIGNAL: _signal, FACEBOOK_MESSENGER: _facebook}


def app_test_keys(m: Measurement, v: Verdict | None,
                  observed: Mapping[str, Any]) -> tuple[str, str, str | None, dict[str, Any]]:
    """``(test_name, test_version, input, test_keys)`` of one app measurement; ``observed``:
    the observation keys and ``x_probe`` the web export built for it."""
    keys: dict[str, Any] = {
        "failure": None, "failed_operation": None, "network_events": [],
        "queries": observed["queries"], "tcp_connect": observed["tcp_connect"],
        "tls_handshakes": observed["tls_handshakes"], "requests": observed["requests"],
    }
    if m.test_name == FACEBOOK_MESSENGER:  # OONI's facebook keys carry no TLS/HTTP/events
        keys = {"socksproxy": None, "queries": observed["queries"],
                "tcp_connect": observed["tcp_connect"]}
    make = _KEYS.get(m.test_name)
    if make is not None:
        keys.update(make(m, v))
    keys["x_probe"] = observed["x_probe"]
    return m.test_name, VERSIONS.get(m.test_name, "0.1.0"), None, keys
