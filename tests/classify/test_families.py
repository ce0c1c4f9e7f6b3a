"""IPv4/IPv6 per family: canaries per family, per-family results, and what an IPv6-only failure
means (issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from probe import failures as f
from probe.classify import classify
from probe.classify.context import Context
from probe.classify.health import (
    HealthRound,
    IPv6State,
    NetworkState,
    ipv6_during,
    ipv6_state,
    rounds,
    sample_family,
)
from probe.model import HealthSample, HealthScope, Measurement
from tests.factories import IP, IP6, asn_of, ctl, ep, http, meas, sys_dns, tcp, tls

T = f.GENERIC_TIMEOUT
BEFORE = "2026-11-21T10:14:50.000000Z"


def ctx(v6: IPv6State | None) -> Context:
    """One whole health round before the measurement whose IPv6 canaries say ``v6``."""
    if v6 is None:
        return Context(asn_of=asn_of)
    down = {"international": 1} if v6 is IPv6State.BROKEN else {}
    hr = HealthRound(BEFORE, NetworkState.WHOLE, {"gateway": 1, "international": 2}, down, v6)
    return Context(health=(hr,), asn_of=asn_of)


def dual(v6_tcp: str | None = None, v6_tls: str | None = None, v4_tcp: str | None = None,
         control: tuple[dict[str, Any], ...] | None = None) -> Measurement:
    """A dual-stack https target: IPv4 at tx 10, IPv6 at tx 11; HTTP over the first that works."""
    tcps = (tcp(10, IP, v4_tcp), tcp(11, IP6, v6_tcp))
    tlss = tuple(t for t in (tls(10, IP) if v4_tcp is None else None,
                             (tls(11, IP6, v6_tls) if v6_tcp is None else None)) if t)
    if v4_tcp is None:
        https = (http(10, ip=IP),)
    elif v6_tcp is None and v6_tls is None:
        https = (http(11, ip=IP6),)
    else:
        https = ()
    if control is None:
        control = (ctl(addrs=(IP, IP6)),)
    return meas(dns=sys_dns("example.test", IP, IP6), tcp_=tcps, tls_=tlss, http_=https,
                control=control)


CTL_V6_DOWN = ctl(addrs=(IP, IP6), endpoints=(ep(IP), ep(IP6, tcp_failure=T)))
W, B, U = IPv6State.WORKS, IPv6State.BROKEN, IPv6State.UNKNOWN

# name, measurement, IPv6 here, verdict, method, note, families
CASES: list[tuple[str, Measurement, IPv6State | None, str, str | None, str | None,
                  dict[str, str] | None]] = [
    ("both-work", dual(), W, "ok", None, None, {"ipv4": "ok", "ipv6": "ok"}),
    ("ipv4-only-site", meas(dns=sys_dns(), tcp_=(tcp(),), tls_=(tls(),), http_=(http(),),
                            control=(ctl(),)), W, "ok", None, None, None),
    # The volunteer's IPv6 is broken (canaries fail over v6, work over v4): never a block.
    ("v6-broken-here-timeout", dual(v6_tcp=T), B, "ok", None, "ipv6_broken_here",
     {"ipv4": "ok", "ipv6": "tcp.timeout"}),
    ("v6-broken-here-unreachable", dual(v6_tcp=f.NETWORK_UNREACHABLE), B, "ok", None,
     "ipv6_broken_here", {"ipv4": "ok", "ipv6": "tcp.unreachable"}),
    # IPv6 works here, the control reaches the same IPv6 address: blocked over IPv6 only.
    ("v6-only-ip-block", dual(v6_tcp=T), W, "blocked", "tcp.timeout", None,
     {"ipv4": "ok", "ipv6": "tcp.timeout"}),
    ("v6-only-sni-reset", dual(v6_tls=f.CONNECTION_RESET), W, "blocked", "tls.reset", None,
     {"ipv4": "ok", "ipv6": "tls.reset"}),
    # ... but the control cannot reach it over IPv6 either: the site's IPv6 is down.
    ("v6-down-at-control", dual(v6_tcp=T, control=(CTL_V6_DOWN,)), W, "ok", None,
     "ipv6_failed", {"ipv4": "ok", "ipv6": "tcp.timeout"}),
    # No IPv6 canary: nothing says whose fault it is.
    ("v6-fails-no-v6-canary", dual(v6_tcp=T), U, "ok", None, "ipv6_failed",
     {"ipv4": "ok", "ipv6": "tcp.timeout"}),
    ("v6-fails-no-health", dual(v6_tcp=T), None, "ok", None, "ipv6_failed",
     {"ipv4": "ok", "ipv6": "tcp.timeout"}),
    # IPv4 cut or blocked while IPv6 works: users get the page over IPv6.
    ("v4-fails-v6-works", dual(v4_tcp=T), W, "ok", None, "ipv4_failed",
     {"ipv4": "tcp.timeout", "ipv6": "ok"}),
    # Only IPv6 addresses, failing, while this network's IPv6 is broken: not a block.
    ("v6-only-site-broken-here", meas(dns=sys_dns("example.test", IP6), tcp_=(tcp(11, IP6, T),),
                                      control=(ctl(addrs=(IP6,)),)), B, "inconclusive",
     "local_ipv6", None, {"ipv6": "tcp.timeout"}),
    ("v6-only-site-v6-works", meas(dns=sys_dns("example.test", IP6), tcp_=(tcp(11, IP6, T),),
                                   control=(ctl(addrs=(IP6,)),)), W, "blocked", "tcp.timeout",
     None, {"ipv6": "tcp.timeout"}),
]


@pytest.mark.parametrize(("name", "m", "v6", "kind", "method", "note", "families"), CASES,
                         ids=[c[0] for c in CASES])
def test_family_verdicts(name: str, m: Measurement, v6: IPv6State | None, kind: str,
                         method: str | None, note: str | None,
                         families: dict[str, str] | None) -> None:
    v = classify(m, ctx(v6))
    assert (v.verdict.value, v.method) == (kind, method), v.evidence
    assert v.details.get("note_family") == note
    assert v.details.get("families") == families
    if kind == "blocked" and families and families.get("ipv4") == "ok":
        assert v.details["family"] == "ipv6" and "IPv6 only" in v.evidence


@pytest.mark.parametrize(("target", "family"), [
    ("https://www.example.com/", "ipv4"), ("93.184.216.34", "ipv4"), ("1.2.3.4:53", "ipv4"),
    ("2001:db8::1", "ipv6"), ("[2001:db8::1]:443", "ipv6"), ("https://[fd00::2]:8443/", "ipv6"),
    ("auto", "ipv4"),
])
def test_sample_family(target: str, family: str) -> None:
    assert sample_family(target) == family


def _s(scope: str, target: str, failure: str | None, at: str = BEFORE) -> HealthSample:
    return HealthSample(at, "before", HealthScope(scope), target, 0.1, failure)


V4 = "https://www.example.com/"
V6 = "https://[2001:db8:7::1]/"


@pytest.mark.parametrize(("samples", "state"), [
    ([_s("international", V4, None)], U),
    ([_s("international", V4, None), _s("international", V6, None)], W),
    ([_s("international", V4, None), _s("international", V6, T)], B),
    ([_s("international", V4, T), _s("international", V6, None)], W),  # an IPv4 cut, v6 up
    ([_s("international", V4, T), _s("international", V6, T)], U),  # everything cut
    ([_s("gateway", "fe80::1", None), _s("international", V4, None)], U),  # gateway says nothing
    ([_s("domestic", V4, None), _s("control", V6, f.NETWORK_UNREACHABLE)], B),
])
def test_ipv6_state(samples: list[HealthSample], state: IPv6State) -> None:
    assert ipv6_state(samples) is state


def test_rounds_carry_ipv6_and_broken_wins_the_window() -> None:
    later = "2026-11-21T10:15:10.000000Z"
    hs = rounds([_s("international", V4, None), _s("international", V6, None),
                 _s("international", V4, None, later), _s("international", V6, T, later)])
    assert [r.ipv6 for r in hs] == [W, B]
    assert [r.state for r in hs] == [NetworkState.WHOLE, NetworkState.WHOLE]
    state, r = ipv6_during(hs, "2026-11-21T10:15:00.000000Z", "2026-11-21T10:15:05.000000Z")
    assert state is B and r is hs[1]
    assert ipv6_during((), BEFORE, BEFORE) == (U, None)


V6_ONLY = meas(dns=sys_dns("example.test", IP6), tcp_=(tcp(11, IP6, T),),
               control=(ctl(addrs=(IP6,)),))


@pytest.mark.parametrize(("run", "v6", "expect"), [
    # three sites fail over IPv6 only, none works over IPv6, no IPv6 canary: broken here
    ([dual(v6_tcp=T)] * 3 + [V6_ONLY], None,
     [("ok", None, "ipv6_broken_here")] * 3 + [("inconclusive", "local_ipv6", None)]),
    # two are not enough (a site's broken AAAA is common)
    ([dual(v6_tcp=T)] * 2, None, [("ok", None, "ipv6_failed")] * 2),
    # one site worked over IPv6: IPv6 works here, the failures are the sites'
    ([dual(v6_tcp=T)] * 3 + [dual()], None,
     [("ok", None, "ipv6_failed")] * 3 + [("ok", None, None)]),
    # canaries without IPv6 samples say nothing about IPv6: the population speaks
    ([dual(v6_tcp=T)] * 3, U, [("ok", None, "ipv6_broken_here")] * 3),
    # IPv6 canaries that answer win over the population
    ([dual(v6_tcp=T)] * 3 + [V6_ONLY], W,
     [("blocked", "tcp.timeout", None)] * 3 + [("blocked", "tcp.timeout", None)]),
])
def test_ipv6_from_the_population(run: list[Measurement], v6: IPv6State | None,
                                  expect: list[tuple[str, str | None, str | None]]) -> None:
    from probe.classify import classify_run

    got = classify_run(run, ctx(v6))
    assert [(v.verdict.value, v.method, v.details.get("note_family")) for v in got] == expect
    if expect[-1][1] == "local_ipv6":
        assert got[-1].details["ipv6_by"] == "population"
        assert got[-1].details["symptom"] == "tcp.timeout"


def dual_stack_db(db: Path) -> None:
    """A database of imported dual-stack measurements (no canaries) whose IPv6 fails on every
    site while IPv4 works: the run-level inference says IPv6 is broken here. Also used by the
    Dask paths' test (tests/run/test_distributed_parquet.py)."""
    from probe.model import Provenance
    from probe.store import Store

    with Store.open(db) as store:
        run = store.start_run({"import": "ooni"}, 0)
        for i, m in enumerate([dual(v6_tcp=T)] * 3 + [V6_ONLY]):
            store.save_import(run, m, None, Provenance(
                source="ooni", origin=f"x.jsonl:{i}", dedup_key=f"uid-{i}",
                test_name="web_connectivity", measurement_uid=f"uid-{i}", probe_asn=64501,
                probe_cc="KZ", missing=("canaries",)))


def test_reanalyze_applies_the_run_population_of_ipv6(tmp_path: Path) -> None:
    """The stored path (probe/run/reanalyze.py, as the runner uses it) sees the same."""
    from probe.run.reanalyze import reanalyze
    from probe.store import Store

    db = tmp_path / "probe.db"
    dual_stack_db(db)
    reanalyze(str(db))
    with Store.open_readonly(db) as store:
        got = [store.current_verdict(mid) for mid, _ in store.iter_measurements()]
    assert [(v.verdict.value, v.method) for v in got if v is not None] == [
        ("ok", None)] * 3 + [("inconclusive", "local_ipv6")]
    assert all(v is not None and v.details["ipv6_by"] == "population" for v in got)
