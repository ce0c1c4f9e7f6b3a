"""The tor rules, table-driven: per target against the control, then one verdict per list.

A false ``blocked`` is the worst error: a failing target without a control answer for it stays
inconclusive, one the control cannot reach either is down, and a cut network is a shutdown.
"""

from __future__ import annotations

from typing import Any

import pytest

from probe import failures as f
from probe.classify import TEST_NAMES, classify
from probe.classify.health import NetworkState
from probe.model import Measurement, TCPObservation, VerdictKind
from probe.targets import parse_input
from tests.factories import FINISHED, STARTED, context, ctl_failed

AUTH_OR = {"id": "185.61.250.1:443", "name": "auth1", "protocol": "or_port_dirauth",
           "address": "185.61.250.1:443"}
AUTH_DIR = {"id": "185.61.250.1:80", "name": "auth1", "protocol": "dir_port",
            "address": "185.61.250.1:80"}
AUTH2_OR = {"id": "185.61.250.2:443", "name": "auth2", "protocol": "or_port_dirauth",
            "address": "185.61.250.2:443"}
OBFS4 = {"id": "ab" * 32, "name": "obfs4bridge", "protocol": "obfs4",
         "address": "64.90.250.31:443"}


def _t(base: dict[str, Any], step: str = "handshake", failure: str | None = None,
       tx: int = 1) -> dict[str, Any]:
    if base["protocol"] == "dir_port" and step == "handshake":
        step = "http"
    return {**base, "step": step, "failure": failure, "tx_id": tx}


def _ctl(*targets: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "url": "tor://tor", "failure": None, "control": "https://helper.test",
            "control_failure": None, "test_name": "tor", "http": None, "endpoints": {},
            "tor": {"targets": [{"id": t["id"], "protocol": t["protocol"], "step": t["step"],
                                 "failure": t["failure"]} for t in targets]}}


def _m(*targets: dict[str, Any], control: tuple[dict[str, Any], ...] = (),
       tcp: tuple[TCPObservation, ...] = (), extra: dict[str, Any] | None = None
       ) -> Measurement:
    info = extra if extra is not None else {"list": "tor", "targets": list(targets)}
    return Measurement(parse_input("tor://tor"), STARTED, FINISHED, tcp=tcp,
                       control=control, extra={"tor": info})


TIMEOUT = f.GENERIC_TIMEOUT
CASES = [
    # name, measurement, health state, verdict, method, scope
    ("every target answers", _m(_t(AUTH_OR), _t(AUTH_DIR), _t(OBFS4),
                                control=(_ctl(_t(AUTH_OR), _t(AUTH_DIR), _t(OBFS4)),)),
     None, VerdictKind.OK, None, "all"),
    ("ok without any control: a handshake completed",
     _m(_t(AUTH_OR)), None, VerdictKind.OK, None, "all"),
    ("connect timeouts the control does not see: blocked tcp.timeout",
     _m(_t(AUTH_OR, "connect", TIMEOUT), _t(AUTH_DIR, "connect", TIMEOUT),
        control=(_ctl(_t(AUTH_OR), _t(AUTH_DIR)),)),
     NetworkState.WHOLE, VerdictKind.BLOCKED, "tcp.timeout", "all"),
    ("authorities blocked, the obfs4 bridge works: blocked, scope partial",
     _m(_t(AUTH_OR, "connect", TIMEOUT), _t(OBFS4),
        control=(_ctl(_t(AUTH_OR), _t(OBFS4)),)),
     NetworkState.WHOLE, VerdictKind.BLOCKED, "tcp.timeout", "partial"),
    ("a refused connect the control completes: blocked tcp.reset",
     _m(_t(AUTH_OR, "connect", f.CONNECTION_REFUSED), control=(_ctl(_t(AUTH_OR)),)),
     None, VerdictKind.BLOCKED, "tcp.reset", "all"),
    ("an obfs4 handshake that times out after the connect: blocked tls.timeout",
     _m(_t(OBFS4, "handshake", TIMEOUT), control=(_ctl(_t(OBFS4)),)),
     None, VerdictKind.BLOCKED, "tls.timeout", "all"),
    ("a Dir port reset mid-response: blocked http.reset",
     _m(_t(AUTH_DIR, "http", f.CONNECTION_RESET), control=(_ctl(_t(AUTH_DIR)),)),
     None, VerdictKind.BLOCKED, "http.reset", "all"),
    ("the control fails the same way: down.tcp, not blocked",
     _m(_t(AUTH_OR, "connect", TIMEOUT),
        control=(_ctl(_t(AUTH_OR, "connect", TIMEOUT)),)),
     None, VerdictKind.DOWN, "down.tcp", "all"),
    ("no control: inconclusive, never blocked",
     _m(_t(AUTH_OR, "connect", TIMEOUT)), None, VerdictKind.INCONCLUSIVE, "no_control", "all"),
    ("the control helper failed: inconclusive control_failed",
     _m(_t(AUTH_OR, "connect", TIMEOUT), control=(ctl_failed(),)),
     None, VerdictKind.INCONCLUSIVE, "control_failed", "all"),
    ("the control's list lacks this target: no evidence, inconclusive",
     _m(_t(AUTH_OR, "connect", TIMEOUT), control=(_ctl(_t(AUTH2_OR)),)),
     None, VerdictKind.INCONCLUSIVE, "no_control", "all"),
    ("one authority down while another works: the authorities work",
     _m(_t(AUTH_OR, "connect", TIMEOUT), _t(AUTH2_OR),
        control=(_ctl(_t(AUTH_OR, "connect", TIMEOUT), _t(AUTH2_OR)),)),
     None, VerdictKind.OK, None, "all"),
    ("every target failing during a full shutdown: shutdown, never blocked",
     _m(_t(AUTH_OR, "connect", TIMEOUT), _t(OBFS4, "connect", TIMEOUT),
        control=(_ctl(_t(AUTH_OR), _t(OBFS4)),),
        tcp=(TCPObservation(1, "185.61.250.1", 443, 0.0, 3.0, TIMEOUT),)),
     NetworkState.SHUTDOWN_FULL, VerdictKind.SHUTDOWN, "shutdown.full", None),
    ("the volunteer's own link down: inconclusive local_outage",
     _m(_t(AUTH_OR, "connect", f.NETWORK_UNREACHABLE), control=(_ctl(_t(AUTH_OR)),)),
     NetworkState.LOCAL_OUTAGE, VerdictKind.INCONCLUSIVE, "local_outage", None),
    ("the transport could not start: inconclusive, nothing known",
     _m(_t(OBFS4, "transport", "unknown_failure: obfs4proxy did not start"),
        control=(_ctl(_t(OBFS4)),)),
     None, VerdictKind.INCONCLUSIVE, "incomplete", "all"),
    ("an interrupted run", _m(_t(AUTH_OR, "connect", f.INTERRUPTED)),
     None, VerdictKind.INCONCLUSIVE, "interrupted", "all"),
    ("a list that could not be read",
     _m(extra={"list": "tor", "list_error": "tor.toml:3: bad", "targets": []}),
     None, VerdictKind.INCONCLUSIVE, "incomplete", None),
    ("no per-target data (imported)", Measurement(
        parse_input("tor://tor"), STARTED, FINISHED), None, VerdictKind.INCONCLUSIVE,
     "unsupported_test", None),
]


@pytest.mark.parametrize(("name", "m", "state", "kind", "method", "scope"), CASES,
                         ids=[c[0] for c in CASES])
def test_tor_rules(name: str, m: Measurement, state: NetworkState | None, kind: VerdictKind,
                   method: str | None, scope: str | None) -> None:
    v = classify(m, context(state))
    assert (v.verdict, v.method) == (kind, method), v.evidence
    if scope is not None:
        assert v.details.get("scope") == scope, v.details
    if kind is VerdictKind.BLOCKED:
        assert v.details["failing"] and all("auth" in x or "obfs4" in x
                                            for x in v.details["failing"])


def test_tor_is_a_judged_test_name() -> None:
    assert "tor" in TEST_NAMES


def test_partial_evidence_names_what_fails_and_what_works() -> None:
    m = _m(_t(AUTH_OR, "connect", TIMEOUT), _t(OBFS4), control=(_ctl(_t(AUTH_OR), _t(OBFS4)),))
    v = classify(m, context(NetworkState.WHOLE))
    assert v.details["roles"] == {"or_port_dirauth": "blocked", "obfs4": "ok"}
    assert v.details["failing"] == ["auth1 or_port_dirauth 185.61.250.1:443"]
    assert "partly blocked" in v.evidence and "obfs4 work" in v.evidence
