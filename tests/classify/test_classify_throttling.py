"""Throttling and frozen transfers (issue 12 §3): the baseline a slow-everywhere site cannot
poison, and the HTTP deadline hitting mid-body — a freeze after N bytes (``http.stall``), a
trickle (``throttle``), or not enough evidence (``slow_transfer``); never ``http.timeout``.
No network: observations in, verdict out.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from probe import failures as f
from probe.classify import Context, classify, classify_run, throttle_baseline
from probe.classify.throttling import froze
from probe.model import HTTPObservation, Measurement, VerdictKind
from tests.factories import URL, chttp, ctl, http, meas, sys_dns, target, tcp, tls

T = f.GENERIC_TIMEOUT
DEADLINE = 10.0
BIG = b"<html><title>Example Domain</title>" + b"x" * 300_000  # the control's whole page
#: The control fetched the whole 300 kB page at 50 Mbit/s.
CTL_WHOLE = ctl(http_=chttp(body=BIG, throughput_bps=50e6))
CTL_SMALL = ctl(http_=chttp(throughput_bps=50e6))  # a 1.3 kB page: no rate, size not larger
CTL_TIMEOUT = ctl(http_=chttp(None, T, body=None, title=None))
#: The control only 2x faster than a 150 kbit/s trickle: no proof the path is slow.
CTL_SLOWISH = ctl(http_=chttp(body=BIG, throughput_bps=300e3))
FAST = {"version": 2, "tls_handshake_s": 0.1, "throughput_bps": 80e6, "samples": [
    {"url": "https://a.test/", "tls_handshake_s": 0.1, "throughput_bps": 80e6},
    {"url": "https://b.test/", "tls_handshake_s": 0.1, "throughput_bps": 90e6}]}


def cut_off(body: int, received: int | None, last_byte: float | None,
            control: dict[str, Any] | None = CTL_WHOLE, status: int | None = 200,
            took: float = DEADLINE) -> Measurement:
    """The deadline hit after ``body`` bytes of body (``received`` on the wire); the last
    byte came ``last_byte`` s after the request (None = not recorded)."""
    h = http(failure=T, took=took, body=None, body_length=body, status=status)
    h = dataclasses.replace(h, received_bytes=received,
                            last_byte_t=None if last_byte is None else h.t0 + last_byte)
    return meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),), http_=(h,),
                control=(control,) if control is not None else ())


# (id, measurement, throttle baseline, verdict, method)
CASES: list[tuple[str, Measurement, Any, str, str | None]] = [
    # Russia 2025: ~16 kB through (TLS records, head, 12 kB of body), then nothing.
    ("freeze-after-16k", cut_off(12_000, 16_000, 0.1), FAST, "blocked", "http.stall"),
    ("freeze-after-16k-no-baseline", cut_off(12_000, 16_000, 0.1), None, "blocked",
     "http.stall"),
    ("freeze-control-page-small", cut_off(2_000, 2_300, 0.05, CTL_SMALL), FAST, "blocked",
     "http.stall"),
    ("freeze-right-after-the-head", cut_off(0, 400, 0.05), FAST, "blocked", "http.stall"),
    # The server itself hangs: the control timed out too — the site, not the path.
    ("freeze-everywhere-is-down", cut_off(12_000, 16_000, 0.1, CTL_TIMEOUT), FAST, "down",
     "down.http"),
    ("freeze-without-control", cut_off(12_000, 16_000, 0.1, None), FAST, "inconclusive",
     "no_control"),
    # Bytes kept coming until the deadline: a slow path.
    ("trickle-throttled", cut_off(187_000, 187_500, DEADLINE - 0.05), FAST, "throttled",
     "throttle"),
    ("trickle-throttled-control-only", cut_off(187_000, 187_500, DEADLINE - 0.05), None,
     "throttled", "throttle"),
    # A 1 s gap in a 10 s exchange is a bursty trickle, not a freeze.
    ("trickle-with-a-gap", cut_off(150_000, 150_500, DEADLINE - 1.0), FAST, "throttled",
     "throttle"),
    # Trickling, but the control was barely faster: slow everywhere or throttled? Unknown.
    ("slow-trickle-without-yardstick", cut_off(187_000, 187_500, DEADLINE - 0.05, CTL_SLOWISH),
     FAST, "inconclusive", "slow_transfer"),
    ("slow-trickle-too-small-for-a-rate", cut_off(9_000, 9_500, DEADLINE - 0.05), FAST,
     "inconclusive", "slow_transfer"),
    # Imported or older data: progress not recorded. A strong rate still says throttled;
    # otherwise the evidence is missing — never http.timeout.
    ("unrecorded-progress-throttled", cut_off(187_000, None, None), FAST, "throttled",
     "throttle"),
    ("unrecorded-progress-slow", cut_off(9_000, None, None), FAST, "inconclusive",
     "slow_transfer"),
    # No status: the classic HTTP timeout stays what it was.
    ("no-status-is-http-timeout", cut_off(0, 0, None, status=None), FAST, "blocked",
     "http.timeout"),
]


@pytest.mark.parametrize(("name", "m", "baseline", "kind", "method"), CASES,
                         ids=[c[0] for c in CASES])
def test_deadline_mid_body(name: str, m: Measurement, baseline: Any, kind: str,
                           method: str | None) -> None:
    v = classify(m, Context(throttle_baseline=baseline))
    assert (v.verdict.value, v.method) == (kind, method), v.evidence


def test_a_body_in_progress_is_never_http_timeout() -> None:
    for name, m, baseline, *_ in CASES:
        if m.http[-1].status is not None:
            v = classify(m, Context(throttle_baseline=baseline))
            assert v.method != "http.timeout", name


def test_stall_evidence_names_the_byte_count_and_the_silence() -> None:
    v = classify(cut_off(12_000, 16_000, 0.1), Context(throttle_baseline=FAST))
    assert v.details["stalled_after_bytes"] == 16_000
    assert v.details["body_length"] == 12_000
    assert v.details["control_body_length"] == len(BIG)
    assert v.details["silence_s"] == pytest.approx(DEADLINE - 0.1)
    assert "stalled after 16000 bytes" in v.evidence
    assert f"whole page ({len(BIG)} bytes)" in v.evidence
    assert v.confidence == 0.75
    weaker = classify(cut_off(2_000, 2_300, 0.05, CTL_SMALL), Context(throttle_baseline=FAST))
    assert weaker.confidence < v.confidence


def test_trickle_evidence_has_the_measured_rate() -> None:
    v = classify(cut_off(187_000, 187_500, DEADLINE - 0.05), Context(throttle_baseline=FAST))
    assert v.details["throughput_bps"] == pytest.approx(187_000 * 8 / (DEADLINE - 0.05), rel=1e-3)
    assert "kbit/s" in v.evidence


@pytest.mark.parametrize(("last_byte", "took", "frozen"), [
    (0.1, 10.0, True),     # silent for 9.9 s of 10
    (9.95, 10.0, False),   # bytes until the end
    (9.0, 10.0, False),    # a 1 s gap: shorter than STALL_SILENCE_S
    (1.0, 2.5, False),     # 1.5 s silent: under the 2 s floor
    (2.9, 6.0, True),      # 3.1 s of 6 s: over the floor and half the exchange
    (3.5, 6.0, False),     # 2.5 s of 6 s: over the floor, under half
    (None, 10.0, False),   # not recorded
])
def test_froze(last_byte: float | None, took: float, frozen: bool) -> None:
    h = HTTPObservation(1, URL, "GET", "1.2.3.4", 443, 0.0, took, T, status=200,
                        last_byte_t=last_byte)
    assert froze(h) is frozen


# --- the baseline a slow-everywhere site cannot poison ----------------------------------------


def done(url: str, body: int, seconds: float, control_bps: float | None,
         control_body: int = 300_000) -> Measurement:
    """A completed transfer of ``body`` bytes in ``seconds``; the control's rate for it."""
    control = (ctl(url, http_=chttp(body=b"y" * control_body, throughput_bps=control_bps,
                                    redirect_chain=(url,))),) if control_bps else ()
    m = meas(url, sys_dns(), (tcp(),), (tls(),),
             (http(url=url, took=seconds, body_length=body),), control)
    return dataclasses.replace(m, target=target(url))


def test_baseline_takes_throughput_only_from_transfers_the_control_saw_fast() -> None:
    ms = [
        done("https://fast.test/", 200_000, 0.03, 50e6),
        done("https://slow1.test/", 200_000, 16.0, 100e3),  # slow for everyone
        done("https://slow2.test/", 200_000, 16.0, 100e3),
        done("https://nocontrol.test/", 200_000, 16.0, None),
    ]
    b = throttle_baseline(ms)
    assert b is not None
    rates = {s["url"]: s["throughput_bps"] for s in b["samples"]}
    assert rates["https://fast.test/"] == pytest.approx(200_000 * 8 / 0.03)
    assert rates["https://slow1.test/"] is None and rates["https://slow2.test/"] is None
    assert rates["https://nocontrol.test/"] is None
    assert b["throughput_bps"] == pytest.approx(200_000 * 8 / 0.03)
    # Canaries count as they are: they have no control but are chosen to be fast.
    canary = done("https://canary.test/", 200_000, 0.02, None)
    b2 = throttle_baseline(ms, canaries=[canary])
    assert b2 is not None
    assert {s["url"]: s["throughput_bps"] for s in b2["samples"]}["https://canary.test/"]


def test_slow_everywhere_sites_do_not_make_a_throttled_page_blocked() -> None:
    """The issue's case: two sites slow for the control too sat in the baseline, dragged its
    median to their rate, and the throttled big page (deadline mid-body) became
    ``blocked``/``http.timeout``."""
    throttled_page = dataclasses.replace(
        cut_off(187_000, 187_500, DEADLINE - 0.05), target=target(URL))
    ms = [
        done("https://fast.test/", 200_000, 0.03, 50e6),
        done("https://slow1.test/", 200_000, 16.0, 100e3),
        done("https://slow2.test/", 200_000, 16.0, 100e3),
        throttled_page,
    ]
    verdicts = {m.target.url: classify_run(ms)[i] for i, m in enumerate(ms)}
    v = verdicts[URL]
    assert (v.verdict, v.method) == (VerdictKind.THROTTLED, "throttle"), v.evidence
    assert v.details["baseline_throughput_bps"] == pytest.approx(200_000 * 8 / 0.03)
    for url in ("https://slow1.test/", "https://slow2.test/"):
        assert verdicts[url].verdict is VerdictKind.OK, verdicts[url].evidence
    # The same run judged with the old, poisoned baseline (every clean transfer's rate)
    # would have had a median of 100 kbit/s: the throttled page is not 10x below it, so the
    # mid-body deadline is at worst inconclusive — never blocked.
    poisoned = {"version": 1, "tls_handshake_s": None, "throughput_bps": 100e3, "samples": [
        {"url": u, "tls_handshake_s": None, "throughput_bps": r}
        for u, r in (("https://fast.test/", 53e6), ("https://slow1.test/", 100e3),
                     ("https://slow2.test/", 100e3))]}
    weak = classify(throttled_page, Context(throttle_baseline=poisoned))  # type: ignore[arg-type]
    assert weak.verdict is not VerdictKind.BLOCKED


def test_a_few_throttled_pages_do_not_set_their_own_yardstick() -> None:
    """`make bench`'s case: 40 latency-bound small pages (the control gets them at ~1.3 Mbit/s,
    as the probe does) and 3 throttled pages the control fetches at 37 Mbit/s. With the
    fastest control rate as the reference (1.2.0) only the throttled pages qualified for the
    baseline, its median became their own rate, and they were judged ok."""
    healthy = [done(f"https://ok{i}.test/", 32_000, 0.2, 1.3e6, control_body=32_000)
               for i in range(40)]
    throttled = [done(f"https://thr{i}.test/", 20_000, 1.7, 37e6, control_body=20_000)
                 for i in range(3)]
    ms = healthy + throttled
    b = throttle_baseline(ms)
    assert b is not None and b["throughput_bps"] == pytest.approx(32_000 * 8 / 0.2)
    verdicts = classify_run(ms)
    for m, v in zip(ms, verdicts, strict=True):
        want = VerdictKind.THROTTLED if "thr" in m.target.url else VerdictKind.OK
        assert v.verdict is want, (m.target.url, v.evidence)
