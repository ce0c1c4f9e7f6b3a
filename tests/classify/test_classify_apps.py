"""The app verdict (probe/classify/apps.py): per-endpoint verdicts → one verdict per app, and
the endpoints cut back out of an app measurement. Table-driven."""

from __future__ import annotations

import pytest

from probe.classify import classify
from probe.classify.apps import EndpointVerdict, aggregate, endpoint_measurements
from probe.classify.base import make_case
from probe.classify.context import Context
from probe.model import (
    WHATSAPP,
    Measurement,
    Target,
    TCPObservation,
    Verdict,
    VerdictKind,
)

T0 = "2026-12-07T01:00:00.000000Z"
T1 = "2026-12-07T01:00:05.000000Z"
APP = Target("whatsapp://whatsapp", "whatsapp", "whatsapp", 443, "", test_name=WHATSAPP)


def _v(kind: str, method: str | None = None, confidence: float = 0.85) -> Verdict:
    return Verdict(VerdictKind(kind), method, confidence, f"{kind} {method}", "test")


def _ev(label: str, kind: str, method: str | None = None) -> EndpointVerdict:
    role = label.split()[0]
    return EndpointVerdict(label, role, "tcp", _v(kind, method))


CASES = [
    # (endpoint verdicts, app verdict, method, scope, failing roles)
    ([_ev("chat e1", "ok"), _ev("registration v", "ok"), _ev("web w", "ok")],
     "ok", None, "all", None),
    ([_ev("chat e1", "ok"), _ev("registration v", "blocked", "tcp.timeout"),
      _ev("web w", "ok")], "blocked", "tcp.timeout", "partial", ["registration"]),
    ([_ev("chat e1", "blocked", "tcp.timeout"), _ev("chat e2", "blocked", "tcp.timeout"),
      _ev("web w", "blocked", "tls.reset")], "blocked", "tcp.timeout", "all",
     ["chat", "web"]),
    # a dead chat server while another works: the app works
    ([_ev("chat e1", "down", "down.tcp"), _ev("chat e2", "ok"), _ev("web w", "ok")],
     "ok", None, "all", None),
    # the whole registration role down, the rest works: down, partial
    ([_ev("chat e1", "ok"), _ev("registration v", "down", "down.tcp")],
     "down", "down.tcp", "partial", ["registration"]),
    # every endpoint cut by a shutdown: shutdown, never blocked
    ([_ev("chat e1", "shutdown", "shutdown.full"), _ev("web w", "shutdown", "shutdown.full")],
     "shutdown", "shutdown.full", "all", ["chat", "web"]),
    ([_ev("chat e1", "inconclusive", "local_outage"),
      _ev("web w", "inconclusive", "local_outage")],
     "inconclusive", "local_outage", "all", ["chat", "web"]),
    # no control: failures stay inconclusive, whatever works
    ([_ev("chat e1", "ok"), _ev("web w", "inconclusive", "no_control")],
     "inconclusive", "no_control", "partial", ["web"]),
    ([_ev("service s", "intercepted", "tls.mitm"), _ev("service t", "ok")],
     "intercepted", "tls.mitm", "partial", ["service"]),
]


@pytest.mark.parametrize(("endpoints", "kind", "method", "scope", "roles"), CASES)
def test_aggregate(endpoints, kind, method, scope, roles) -> None:
    case = make_case(Measurement(APP, T0, T1, extra={"endpoints": []}), Context())
    v = aggregate(case, endpoints, "whatsapp")
    assert (v.verdict.value, v.method) == (kind, method)
    assert v.details["scope"] == scope
    assert v.details.get("failing_roles") == roles
    assert len(v.details["endpoints"]) == len(endpoints)


def _app_measurement(failures: list[str | None], control_ok: bool | None) -> Measurement:
    """Two TCP endpoints of one role, e1 and e2 (one connect each)."""
    eps, tcp, control = [], [], []
    for i, failure in enumerate(failures, 1):
        host = f"e{i}.whatsapp.net"
        ip = f"192.0.2.{i}"
        tcp.append(TCPObservation(i, ip, 443, 0.0, 0.1, failure))
        url = f"tcp://{host}:443"
        eps.append({"role": "chat", "host": host, "port": 443, "protocol": "tcp",
                    "url": url, "label": f"chat {host}:443/tcp", "tx": [i, i], "dt": 0.0,
                    "addresses": [ip], "control_url": url})
        if control_ok is not None:
            control.append({"control": "http://helper", "control_failure": None,
                            "url": url, "request_url": url, "version": 1,
                            "dns": {"addrs": [ip], "failure": None},
                            "endpoints": {f"{ip}:443": {
                                "origin": "both",
                                "tcp_failure": None if control_ok else "connection_refused"}},
                            "http": None, "test_name": "tcp_connect"})
    return Measurement(APP, T0, T1, tcp=tuple(tcp), control=tuple(control),
                       extra={"app": "whatsapp", "endpoints": eps})


@pytest.mark.parametrize(("failures", "control_ok", "kind", "method"), [
    ([None, None], True, "ok", None),
    (["generic_timeout_error", "generic_timeout_error"], True, "blocked", "tcp.timeout"),
    (["connection_refused", "connection_refused"], False, "down", "down.tcp"),
    # all endpoints fail and no control: never blocked
    (["generic_timeout_error", "generic_timeout_error"], None, "inconclusive", "no_control"),
    (["generic_timeout_error", None], True, "blocked", "tcp.timeout"),
])
def test_classify_app_measurement(failures, control_ok, kind, method) -> None:
    m = _app_measurement(failures, control_ok)
    assert len(endpoint_measurements(m)) == 2
    v = classify(m)
    assert (v.verdict.value, v.method) == (kind, method), v.evidence


def test_imported_app_measurements_stay_unsupported() -> None:
    m = Measurement(Target("ooni://whatsapp", "whatsapp", "ooni", 443, "",
                           test_name=WHATSAPP), T0, T1)
    v = classify(m)
    assert (v.verdict.value, v.method) == ("inconclusive", "unsupported_test")
