"""The QUIC finding beside the web verdict (probe.classify.quic): a table of cases."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from probe import failures as f
from probe.classify import classify
from probe.model import Measurement, QUICHandshake, VerdictKind
from tests.factories import HOST, IP, REAL_CHAIN, ctl, http, https_ok, meas, sys_dns, tcp, tls

T = f.GENERIC_TIMEOUT


def q(tx: int = 30, ip: str = IP, failure: str | None = None, sni: str = HOST,
      verified: bool | None = True) -> QUICHandshake:
    if failure:
        return QUICHandshake(tx, ip, 443, sni, 1.0, 2.0, failure)
    return QUICHandshake(tx, ip, 443, sni, 1.0, 1.05, None, "QUICv1", "h3", REAL_CHAIN,
                         verified, None if verified else f.SSL_UNKNOWN_AUTHORITY)


def with_quic(m: Measurement, *handshakes: QUICHandshake, control_quic: Any = None,
              status: int | None = None) -> Measurement:
    control = m.control
    if control_quic is not None:
        control = ({**ctl(), "quic": control_quic},)
    http3 = (dataclasses.replace(http(tx=30), status=status),) if status else ()
    return dataclasses.replace(m, quic=handshakes, http3=http3, control=control,
                               extra={"http3": {"reason": "alt-svc", "port": 443}})


TLS_DROPPED = meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(failure=T),))

CASES = [
    # (id, measurement, web verdict, quic method, trigger, evidence mentions quic.blocked)
    ("quic-ok", with_quic(https_ok(), q(), status=200), VerdictKind.OK, "quic.ok", None, False),
    ("quic-cert-invalid", with_quic(https_ok(), q(verified=False)), VerdictKind.OK,
     "quic.cert_invalid", None, False),
    # the name in the Initial is filtered: an innocuous SNI to the same address gets through
    ("sni-filtered", with_quic(https_ok(), q(failure=T), q(31, sni="example.org")),
     VerdictKind.OK, "quic.blocked", ["sni"], True),
    # UDP to the address dropped, and a control reached it over QUIC
    ("address-dropped-control", with_quic(https_ok(), q(failure=T), q(31, sni="example.org",
                                                                     failure=T),
                                          control_quic=[{"ip": IP, "port": 443,
                                                         "failure": None}]),
     VerdictKind.OK, "quic.blocked", ["address"], True),
    # the same failure without any evidence that the address speaks QUIC: not a block
    ("address-dropped-no-control", with_quic(https_ok(), q(failure=T),
                                             q(31, sni="example.org", failure=T)),
     VerdictKind.OK, "quic.failed", None, False),
    ("control-quic-failed-too", with_quic(https_ok(), q(failure=T),
                                          control_quic=[{"ip": IP, "port": 443,
                                                         "failure": T}]),
     VerdictKind.OK, "quic.failed", None, False),
    # a control's QUIC to another address says nothing about this one
    ("control-other-address", with_quic(https_ok(), q(failure=T),
                                        control_quic=[{"ip": "192.0.2.1", "failure": None}]),
     VerdictKind.OK, "quic.failed", None, False),
    # TCP/TLS fails too: QUIC adds nothing, and the web verdict is the TCP path's own
    ("tcp-tls-fails-too", with_quic(TLS_DROPPED, q(failure=T), q(31, sni="example.org")),
     None, "quic.not_compared", None, False),
]


@pytest.mark.parametrize(("m", "kind", "method", "trigger", "noted"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_quic_finding_beside_the_verdict(m: Measurement, kind: VerdictKind | None, method: str,
                                         trigger: list[str] | None, noted: bool) -> None:
    v = classify(m)
    without = classify(dataclasses.replace(m, quic=(), http3=()))
    # the web verdict is what users get over TCP: QUIC never changes it
    assert (v.verdict, v.method, v.confidence) == (without.verdict, without.method,
                                                   without.confidence)
    if kind is not None:
        assert v.verdict is kind
    found = v.details["quic"]
    assert found["method"] == method
    assert found.get("trigger") == trigger
    assert ("quic.blocked" in v.evidence) is noted
    assert v.evidence.startswith(without.evidence)
    assert found["advertised"] is True
    assert [a["ip"] for a in found["addresses"]] == [IP]


def test_no_quic_attempt_leaves_the_verdict_as_it_was() -> None:
    m = https_ok()
    assert "quic" not in classify(m).details


def test_http3_status_is_reported() -> None:
    v = classify(with_quic(https_ok(), q(), status=200))
    assert v.details["quic"]["http3_status"] == 200
    assert v.details["quic"]["addresses"][0]["tcp_tls_ok"] is True


# --- the control's QUIC evidence: when to ask, and the run-level guard (issue 15) --------------

ADDRESS_ONLY = with_quic(https_ok(), q(failure=T), q(31, sni="example.org", failure=T),
                         control_quic=[{"ip": IP, "port": 443, "failure": None}])
SOME_QUIC_WORKS = with_quic(https_ok(), q(), status=200)


@pytest.mark.parametrize(("m", "wanted"), [
    # QUIC failed where TCP/TLS worked and nothing showed QUIC reaches it: ask
    (with_quic(https_ok(), q(failure=T), q(31, sni="example.org", failure=T)), [IP]),
    (with_quic(https_ok(), q(failure=T)), [IP]),
    # already decided: the innocuous SNI got through, a control said, QUIC worked
    (with_quic(https_ok(), q(failure=T), q(31, sni="example.org")), []),
    (ADDRESS_ONLY, []),
    (SOME_QUIC_WORKS, []),
    # TCP/TLS fails too (nothing to compare), or no QUIC attempt at all
    (with_quic(TLS_DROPPED, q(failure=T)), []),
    (https_ok(), []),
    # an Alt-Svc on another port: the helper tries only the target's port
    (with_quic(https_ok(), dataclasses.replace(q(failure=T), port=8443)), []),
])
def test_control_is_asked_only_where_it_decides(m: Measurement, wanted: list[str]) -> None:
    from probe.classify.quic import control_wanted

    assert control_wanted(m) == wanted


@pytest.mark.parametrize(("run", "method", "quic_here"), [
    # another target's QUIC handshake completed: QUIC leaves this network, the address is
    # blocked for this site
    ([SOME_QUIC_WORKS, ADDRESS_ONLY], "quic.blocked", None),
    # no QUIC handshake of the run completed (UDP dropped near the volunteer looks like
    # this, for every target): the control alone is not enough
    ([ADDRESS_ONLY, ADDRESS_ONLY], "quic.failed", "unproven"),
    ([ADDRESS_ONLY], "quic.failed", "unproven"),
])
def test_the_address_trigger_needs_quic_to_work_somewhere_in_the_run(
        run: list[Measurement], method: str, quic_here: str | None) -> None:
    from probe.classify.context import Context
    from probe.classify.families import apply_run

    context = Context()
    verdicts = apply_run(run, [classify(m, context) for m in run], context)
    v = verdicts[-1]
    assert v.verdict is VerdictKind.OK  # never the web verdict
    assert v.details["quic"]["method"] == method
    assert v.details["quic"].get("quic_here") == quic_here
    assert ("quic.blocked" in v.evidence) is (method == "quic.blocked")


def test_the_sni_trigger_stands_alone() -> None:
    from probe.classify.context import Context
    from probe.classify.families import apply_run

    m = with_quic(https_ok(), q(failure=T), q(31, sni="example.org"))
    (v,) = apply_run([m], [classify(m)], Context())
    assert v.details["quic"]["method"] == "quic.blocked"  # the innocuous SNI's handshake
    assert v.details["quic"]["trigger"] == ["sni"]         # completed: QUIC works from here


@pytest.mark.parametrize(("again", "quic"), [
    ({"quic": [{"ip": IP, "port": 443, "failure": None}], "quic_check": 1},
     [{"ip": IP, "port": 443, "failure": None}]),
    ({"control_failure": "generic_timeout_error"}, None),  # the second request failed
    ({"dns": {}, "http": {}}, None),  # a helper that predates the field: no "quic"
])
def test_the_second_answer_adds_only_its_quic_entries(again: dict[str, Any],
                                                      quic: Any) -> None:
    from probe.control.client import with_quic as merge

    first = ctl()
    merged = merge(first, again)
    assert merged.get("quic") == quic
    assert {k: v for k, v in merged.items() if k not in ("quic", "quic_check")} == first
