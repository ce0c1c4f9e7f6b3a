"""The tcp_connect rules, table-driven: ok, blocked, down, shutdown, inconclusive.

A false ``blocked`` is the worst error a probe can make: a failing connect without a control
(or with a control that failed) must stay inconclusive.
"""

from __future__ import annotations

from typing import Any

import pytest

from probe import failures as f
from probe.classify import TEST_NAMES, classify, classify_run
from probe.classify.health import NetworkState
from probe.model import Measurement, VerdictKind
from probe.targets import parse_input
from tests.factories import (
    FINISHED,
    HOST,
    IP,
    IP2,
    STARTED,
    context,
    ctl_failed,
    sys_dns,
    tcp,
)

PORT = 5222
INPUT = f"tcp://{HOST}:{PORT}"


def _ep(ip: str = IP, failure: str | None = None, origin: str = "both") -> tuple[str, Any]:
    return f"{ip}:{PORT}", {"origin": origin, "tcp_failure": failure, "tls_failure": None,
                            "verified": None, "verify_error": None, "chain_sha256": [],
                            "spki_sha256": [], "issuers": [], "tls_handshake_time": None}


def _control(*endpoints: tuple[str, Any], addrs: tuple[str, ...] = (IP,),
             dns_failure: str | None = None) -> dict[str, Any]:
    """A v1 answer to a ``tcp://`` request (no http)."""
    return {"version": 1, "url": INPUT, "failure": None, "control": "https://helper.test",
            "control_failure": None, "test_name": "tcp_connect", "http": None,
            "dns": {"resolver": "149.112.0.10:53", "addrs": list(addrs), "cnames": [],
                    "failure": dns_failure},
            "endpoints": dict(endpoints or (_ep(),))}


def _m(*connects: Any, dns: Any = None, control: tuple[dict[str, Any], ...] = ()
       ) -> Measurement:
    return Measurement(parse_input(INPUT), STARTED, FINISHED,
                       dns=sys_dns(HOST, IP) if dns is None else dns,
                       tcp=tuple(connects), control=control)


def _connect(failure: str | None = None, ip: str = IP, tx: int = 10) -> Any:
    return tcp(tx, ip, failure, port=PORT)


CASES = [
    # name, measurement, health state, expected verdict, expected method
    ("ok with the control connecting too",
     _m(_connect(), control=(_control(),)), None, VerdictKind.OK, None),
    ("ok without a control",
     _m(_connect()), None, VerdictKind.OK, None),
    ("ok when one of two addresses connects",
     _m(_connect(f.GENERIC_TIMEOUT), _connect(ip=IP2, tx=11), dns=sys_dns(HOST, IP, IP2)),
     None, VerdictKind.OK, None),
    ("timeout where the control connects: blocked",
     _m(_connect(f.GENERIC_TIMEOUT), control=(_control(),)), None,
     VerdictKind.BLOCKED, "tcp.timeout"),
    ("reset where the control connects: blocked",
     _m(_connect(f.CONNECTION_RESET), control=(_control(),)), None,
     VerdictKind.BLOCKED, "tcp.reset"),
    ("refused where the control connects: an injected RST",
     _m(_connect(f.CONNECTION_REFUSED), control=(_control(),)), None,
     VerdictKind.BLOCKED, "tcp.reset"),
    ("the control fails the same way: down",
     _m(_connect(f.CONNECTION_REFUSED),
        control=(_control(_ep(failure=f.CONNECTION_REFUSED)),)), None,
     VerdictKind.DOWN, "down.tcp"),
    ("the control times out too: down",
     _m(_connect(f.GENERIC_TIMEOUT), control=(_control(_ep(failure=f.GENERIC_TIMEOUT)),)),
     None, VerdictKind.DOWN, "down.tcp"),
    ("NXDOMAIN here and at the control: down",
     _m(dns=sys_dns(HOST, failure=f.DNS_NXDOMAIN),
        control=(_control(_ep(), addrs=(), dns_failure=f.DNS_NXDOMAIN),)), None,
     VerdictKind.DOWN, "down.dns"),
    ("NXDOMAIN here, the control resolves: blocked",
     _m(dns=sys_dns(HOST, failure=f.DNS_NXDOMAIN), control=(_control(),)), None,
     VerdictKind.BLOCKED, "dns.nxdomain"),
    ("a failing connect during a full shutdown: shutdown",
     _m(_connect(f.GENERIC_TIMEOUT)), NetworkState.SHUTDOWN_FULL,
     VerdictKind.SHUTDOWN, "shutdown.full"),
    ("a failing connect while the control connects, during a cut: shutdown wins",
     _m(_connect(f.GENERIC_TIMEOUT), control=(_control(),)),
     NetworkState.SHUTDOWN_INTERNATIONAL, VerdictKind.SHUTDOWN, "shutdown.international"),
    ("the volunteer's own link is down: inconclusive",
     _m(_connect(f.GENERIC_TIMEOUT)), NetworkState.LOCAL_OUTAGE,
     VerdictKind.INCONCLUSIVE, "local_outage"),
    ("a connect that works during a cut stays ok",
     _m(_connect()), NetworkState.SHUTDOWN_INTERNATIONAL, VerdictKind.OK, None),
    ("timeout without a control: inconclusive, never blocked",
     _m(_connect(f.GENERIC_TIMEOUT)), None, VerdictKind.INCONCLUSIVE, "no_control"),
    ("reset without a control: inconclusive, never blocked",
     _m(_connect(f.CONNECTION_RESET)), None, VerdictKind.INCONCLUSIVE, "no_control"),
    ("the control helper did not answer: inconclusive",
     _m(_connect(f.GENERIC_TIMEOUT), control=(ctl_failed(),)), None,
     VerdictKind.INCONCLUSIVE, "control_failed"),
    ("the control helper refused the scheme (an old helper): inconclusive",
     _m(_connect(f.CONNECTION_RESET),
        control=({"control": "https://old.test", "version": 1,
                  "control_failure": "unknown_failure: http status 403"},)), None,
     VerdictKind.INCONCLUSIVE, "control_failed"),
    ("NXDOMAIN without a control: inconclusive",
     _m(dns=sys_dns(HOST, failure=f.DNS_NXDOMAIN)), None,
     VerdictKind.INCONCLUSIVE, "no_control"),
    ("interrupted mid-connect",
     _m(_connect(f.INTERRUPTED)), None, VerdictKind.INCONCLUSIVE, "interrupted"),
    ("nothing dialled, nothing failed",
     _m(dns=()), None, VerdictKind.INCONCLUSIVE, "incomplete"),
]


@pytest.mark.parametrize(("name", "m", "state", "kind", "method"), CASES,
                         ids=[c[0] for c in CASES])
def test_tcp_connect_rules(name: str, m: Measurement, state: NetworkState | None,
                           kind: VerdictKind, method: str | None) -> None:
    v = classify(m, context(state))
    assert (v.verdict, v.method) == (kind, method), v.evidence
    assert v.evidence and 0.0 <= v.confidence <= 1.0


def test_no_failure_without_a_control_is_ever_blocked() -> None:
    for failure in (f.GENERIC_TIMEOUT, f.CONNECTION_RESET, f.CONNECTION_REFUSED,
                    f.HOST_UNREACHABLE, f.NETWORK_UNREACHABLE):
        for control in ((), (ctl_failed(),)):
            v = classify(_m(_connect(failure), control=control))
            assert v.verdict is not VerdictKind.BLOCKED, (failure, v.evidence)


def test_both_kinds_are_judged_and_runs_mix_them() -> None:
    assert {"web_connectivity", "tcp_connect"} <= TEST_NAMES
    from tests.factories import https_ok
    verdicts = classify_run([https_ok(), _m(_connect())])
    assert [v.verdict for v in verdicts] == [VerdictKind.OK, VerdictKind.OK]


def test_an_unknown_kind_is_inconclusive_not_an_error() -> None:
    m = _m(_connect())
    object.__setattr__(m.target, "test_name", "from_the_future")
    v = classify(m)
    assert (v.verdict, v.method) == (VerdictKind.INCONCLUSIVE, "unsupported_test")
