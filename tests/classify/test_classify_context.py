"""The classifier's inputs besides one measurement: control answers read defensively, the
throttling baseline, per-run classification."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from probe import failures as f
from probe.classify import Context, classify, classify_run, throttle_baseline
from probe.classify.control import read
from probe.classify.health import NetworkState
from probe.model import Measurement, VerdictKind
from tests.factories import (
    IP,
    IP6,
    URL,
    chttp,
    ctl,
    ctl_failed,
    ep,
    health_round,
    http,
    https_ok,
    meas,
    sys_dns,
    target,
    tcp,
    tls,
)

# --- control answers -------------------------------------------------------------------------


def test_a_full_answer_is_read() -> None:
    cv = read([ctl(addrs=(IP, IP6))])
    assert cv.available and cv.hostname == "example.test" and cv.resolved
    assert cv.dns_addrs == (IP, IP6)
    assert {e.ip for e in cv.endpoints} == {IP, IP6}
    assert all(e.valid for e in cv.endpoints)
    assert cv.at(f"[{IP6}]")[0].port == 443
    assert cv.fetched and cv.http is not None and cv.http.status == 200
    json.dumps(cv.summary())


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"control": "x", "control_failure": None},
        {"control": "x", "control_failure": None, "dns": "garbage", "endpoints": [1],
         "http": {"status": "200", "headers": "nope"}},
        {"control": "x", "control_failure": None,
         "endpoints": {"not-an-endpoint": {}, "1.2.3.4:443": "nope", "5.6.7.8:x": {}},
         "http": {"status": True, "elapsed": float("nan"), "throughput_bps": -1}},
        "not a dict",
    ],
)
def test_partial_or_garbled_answers_never_read_as_success(answer: Any) -> None:
    cv = read([answer])
    assert not cv.fetched and not cv.resolved
    assert not any(e.connected for e in cv.endpoints)
    h = cv.http
    assert h is None or (h.status is None and h.elapsed is None and h.throughput_bps is None)


def test_an_endpoint_without_tls_fields_did_not_do_tls() -> None:
    cv = read([ctl("http://example.test/")])
    (e,) = cv.endpoints
    assert e.connected and not e.tls_done and not e.valid


def test_failed_helpers_are_listed_and_answers_merged() -> None:
    cv = read([ctl_failed(f.CONNECTION_RESET, helper="https://a"),
               ctl(addrs=(IP,), helper="https://b"),
               ctl(addrs=("93.184.216.40",), helper="https://c",
                   http_=chttp(None, f.GENERIC_TIMEOUT))])
    assert cv.helpers == ("https://b", "https://c")
    assert cv.failed == (("https://a", f.CONNECTION_RESET),)
    assert set(cv.dns_addrs) == {IP, "93.184.216.40"}
    assert cv.http is not None and cv.http.ok  # the success is preferred
    assert cv.disagree


def test_helper_level_failure_field_counts_as_failed() -> None:
    cv = read([{"control": "https://a", "control_failure": None, "failure": "busy"}])
    assert not cv.available and cv.failed == (("https://a", "busy"),)


# --- throttling baseline ------------------------------------------------------------------------


def _fast(url: str, hs: float, took: float, length: int) -> Measurement:
    m = https_ok((ctl(url, http_=chttp(body=b"x" * length, throughput_bps=50e6,
                                       redirect_chain=(url,))),),
                 took=took, body_length=length)
    return dataclasses.replace(m, target=target(url),
                               tls=(tls(took=hs),))


def test_baseline_from_clean_transfers_only() -> None:
    ms = [
        _fast("https://a.test/", 0.1, 0.01, 100_000),
        _fast("https://b.test/", 0.3, 0.02, 1_000),  # too small for a rate
        meas(dns=sys_dns(), tcp_=(tcp(failure=f.GENERIC_TIMEOUT),)),  # failed: left out
        dataclasses.replace(_fast("https://c.test/", 0.2, 0.01, 50_000),
                            tls=(tls(verified=False),)),  # unverified: left out
    ]
    b = throttle_baseline(ms)
    assert b is not None
    assert [s["url"] for s in b["samples"]] == ["https://a.test/", "https://b.test/"]
    assert b["tls_handshake_s"] == pytest.approx(0.2)
    assert b["throughput_bps"] == pytest.approx(100_000 * 8 / 0.01)
    assert b["samples"][1]["throughput_bps"] is None
    json.dumps(b)


def test_baseline_leaves_out_measurements_during_a_cut() -> None:
    assert throttle_baseline([_fast("https://a.test/", 0.1, 0.01, 100_000)],
                             [health_round(NetworkState.SHUTDOWN_FULL)]) is None
    assert throttle_baseline([]) is None


def test_classify_run_computes_the_baseline_once_and_excludes_the_judged_target() -> None:
    # Five healthy sites with 4 s handshakes (a slow satellite link) and one more: nothing is
    # throttled, because the baseline says the link itself is slow.
    fast_ctl = ctl(endpoints=(ep(IP, time=0.05),), http_=chttp(throughput_bps=50e6))
    ms = [dataclasses.replace(_fast(f"https://s{i}.test/", 4.0, 0.01, 100),
                              control=(fast_ctl,)) for i in range(5)]
    assert all(v.verdict is VerdictKind.OK for v in classify_run(ms))
    # The same target alone in a run has no baseline but itself: it is judged against the
    # control only (and is then throttled, with the lower confidence).
    (v,) = classify_run(ms[:1])
    assert v.verdict is VerdictKind.THROTTLED and v.confidence < 0.7
    # A baseline the caller passes is used as is.
    ctx = Context(throttle_baseline={"version": 1, "samples": [], "tls_handshake_s": None,
                                     "throughput_bps": None})
    assert classify_run(ms[:1], ctx) == [classify(ms[0], ctx)]


def test_classify_run_keeps_order_and_context() -> None:
    ms = [https_ok((ctl(),)), meas(dns=sys_dns(), tcp_=(tcp(failure=f.GENERIC_TIMEOUT),),
                                   control=(ctl(),))]
    ctx = Context(health=(health_round(NetworkState.SHUTDOWN_INTERNATIONAL),))
    kinds = [v.verdict for v in classify_run(ms, ctx)]
    assert kinds == [VerdictKind.OK, VerdictKind.SHUTDOWN]


def test_asn_lookup_errors_are_unknown_not_crashes() -> None:
    def broken(ip: str) -> int | None:
        raise ValueError(ip)

    m = meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),), http_=(http(),), control=(ctl(),))
    assert classify(m, Context(asn_of=broken)).verdict is VerdictKind.OK
    assert URL in classify(m).evidence
