"""Shutdowns from the population (probe.classify.population): table-driven hours of one network.

Each case builds the measurements of one network-hour (domestic targets are ``.kz`` sites, the
vantage is in KZ; international ones are ``.de``), judges them with ``classify_run`` (our own
run) and checks every verdict; the reanalyze case stores imported measurements with their
provenance and checks that the AS's hour becomes a shutdown across imports.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from probe import failures as f
from probe.classify import Context, classify_run
from probe.classify import population as pop
from probe.classify.health import NetworkState
from probe.model import Measurement, Provenance, Verdict, VerdictKind
from probe.run.reanalyze import reanalyze
from probe.store import Store
from tests.factories import ctl, ctl_failed, health_round, http, meas, sys_dns, tcp, tls

HOUR = "2022-01-05T11"


def _at(m: Measurement, hour: str = HOUR, minute: int = 0) -> Measurement:
    return dataclasses.replace(m, started_at=f"{hour}:{minute:02d}:00.000000Z",
                               finished_at=f"{hour}:{minute:02d}:05.000000Z")


def reached(host: str, minute: int = 0, hour: str = HOUR) -> Measurement:
    """The site answered: a page over TLS that validates, the control agreeing."""
    url = f"https://{host}/"
    return _at(meas(url, sys_dns(host), (tcp(),), (tls(sni=host),), (http(url=url),),
                    control=(ctl(url),)), hour, minute)


def failed(host: str, failure: str = f.GENERIC_TIMEOUT, minute: int = 0, hour: str = HOUR,
           control: str = "up") -> Measurement:
    """Every connect failed with ``failure``; the control reached the site (``up``), did not
    (``down``) or did not answer (``none``)."""
    url = f"https://{host}/"
    answers = {"up": (ctl(url),), "down": (ctl(url, endpoints=(), http_=None) | {
        "http": {"status": None, "failure": f.GENERIC_TIMEOUT}},), "none": (ctl_failed(),)}
    return _at(meas(url, sys_dns(host), (tcp(failure=failure), tcp(11, failure=failure)),
                    control=answers[control]), hour, minute)


def dns_failed(host: str, failure: str) -> Measurement:
    url = f"https://{host}/"
    return _at(meas(url, sys_dns(host, failure=failure), control=(ctl(url),)))


def dom(n: int, start: int = 0) -> list[str]:
    return [f"news{i}.kz" for i in range(start, start + n)]


def intl(n: int, start: int = 0) -> list[str]:
    return [f"site{i}.de" for i in range(start, start + n)]


KZ = Context(probe_cc="KZ")


def judged(ms: list[Measurement], context: Context = KZ) -> dict[str, Verdict]:
    return {m.target.hostname: v for m, v in zip(ms, classify_run(ms, context), strict=True)}


# Each case: name, measurements, context, {host: (verdict, method)} for the hosts that matter.
CASES = [
    ("international cut", [reached(h) for h in dom(6)] + [failed(h) for h in intl(6)], KZ,
     {"site0.de": ("shutdown", "shutdown.international"),
      "site5.de": ("shutdown", "shutdown.international"), "news0.kz": ("ok", None)}),
    ("international cut, domestic resolver cannot recurse",
     [reached(h) for h in dom(6)] + [dns_failed(h, f.DNS_SERVFAIL) for h in intl(6)], KZ,
     {"site2.de": ("shutdown", "shutdown.international")}),
    ("allow-list: some domestic sites fail too (Jan 8 2022)",
     [reached(h) for h in dom(4)] + [failed(h) for h in dom(2, 4)]
     + [failed(h) for h in intl(6)], KZ,
     {"site0.de": ("shutdown", "shutdown.allowlist"),
      "news4.kz": ("shutdown", "shutdown.allowlist"), "news0.kz": ("ok", None)}),
    ("full cut with the control up", [failed(h) for h in dom(5) + intl(6)], KZ,
     {"news0.kz": ("shutdown", "shutdown.full"), "site0.de": ("shutdown", "shutdown.full")}),
    ("full cut, vantage country unknown", [failed(h) for h in dom(5) + intl(6)], Context(),
     {"site3.de": ("shutdown", "shutdown.full")}),
    ("everything fails, the control did not answer: no call",
     [failed(h, control="none") for h in dom(5) + intl(6)], KZ,
     {"site0.de": ("inconclusive", "control_failed")}),
    ("everything fails, the control saw the sites down too: no call",
     [failed(h, control="down") for h in dom(5) + intl(6)], KZ,
     {"site0.de": ("down", "down.tcp")}),
    ("a few blocked sites in an otherwise healthy hour",
     [reached(h) for h in dom(4) + intl(8)] + [failed(h) for h in intl(3, 8)], KZ,
     {"site8.de": ("blocked", "tcp.timeout"), "site0.de": ("ok", None)}),
    ("too few measurements for a call", [reached(h) for h in dom(2)]
     + [failed(h) for h in intl(5)], KZ, {"site0.de": ("blocked", "tcp.timeout")}),
    ("too few distinct international targets",
     [reached(h) for h in dom(6)] + [failed(h, minute=i) for i in range(3) for h in intl(4)],
     KZ, {"site0.de": ("blocked", "tcp.timeout")}),
    ("resets are a censor answering, not a cut",
     [reached(h) for h in dom(6)] + [failed(h, f.CONNECTION_RESET) for h in intl(6)], KZ,
     {"site0.de": ("blocked", "tcp.reset")}),
    ("one domestic site reached is not enough",
     [reached(h) for h in dom(1)] + [failed(h) for h in intl(9)], KZ,
     {"site0.de": ("blocked", "tcp.timeout")}),
    ("in a cut hour, a site reset by a censor keeps its verdict",
     [reached(h) for h in dom(6)] + [failed(h) for h in intl(6)]
     + [failed("blocked.kz", f.CONNECTION_RESET), failed("other.de", f.CONNECTION_RESET)],
     KZ, {"blocked.kz": ("blocked", "tcp.reset"), "other.de": ("blocked", "tcp.reset"),
          "site0.de": ("shutdown", "shutdown.international")}),
    ("canaries win: a whole network before the run",
     [reached(h) for h in dom(6)] + [failed(h) for h in intl(6)],
     dataclasses.replace(KZ, health=(health_round(NetworkState.WHOLE,
                                                  f"{HOUR}:00:00.000000Z"),)),
     {"site0.de": ("blocked", "tcp.timeout")}),
    ("other hours are another population",
     [reached(h, hour="2022-01-05T10") for h in dom(6)]
     + [failed(h) for h in intl(6)], KZ,
     {"site0.de": ("blocked", "tcp.timeout")}),
]


@pytest.mark.parametrize(("name", "ms", "context", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_population_hours(name: str, ms: list[Measurement], context: Context,
                          expected: dict[str, tuple[str, str | None]]) -> None:
    verdicts = judged(ms, context)
    got = {h: (verdicts[h].verdict.value, verdicts[h].method) for h in expected}
    assert got == expected
    for v in verdicts.values():
        if v.verdict is VerdictKind.SHUTDOWN:
            assert v.confidence < 0.9  # below the canaries': the inference is indirect
            assert "no canaries" in v.evidence and v.details["symptom"]
            assert v.details["population"]["measurements"] >= pop.MIN_MEASUREMENTS


def test_a_site_that_answered_is_never_a_shutdown() -> None:
    cut = pop.HourState("AS9198 KZ", HOUR, NetworkState.SHUTDOWN_FULL, 20, 20, why="test")
    answered = [
        failed("site0.de", f.CONNECTION_REFUSED),  # a refusal is an answer
        _at(meas("https://site1.de/", sys_dns("site1.de"), (tcp(),),
                 (tls(failure=f.CONNECTION_RESET, sni="site1.de"),), control=(ctl(),))),
        _at(meas("https://site2.de/", sys_dns("site2.de"), (tcp(),), (tls(sni="site2.de"),),
                 (http(url="https://site2.de/", status=503),), control=(ctl(),))),
    ]
    for m in answered:
        v = classify_run([m], KZ)[0]
        x = pop.fact(m, "AS9198 KZ", "KZ")
        assert x.reached
        assert pop.apply(v, x, cut) == v
    silent = failed("site3.de")
    x = pop.fact(silent, "AS9198 KZ", "KZ")
    v = classify_run([silent], KZ)[0]
    assert pop.apply(v, x, cut).verdict is VerdictKind.SHUTDOWN
    assert pop.apply(v, x, cut, canaries=NetworkState.WHOLE) == v  # canaries win
    # An international cut does not explain a domestic site's failure.
    international = dataclasses.replace(cut, state=NetworkState.SHUTDOWN_INTERNATIONAL)
    assert pop.apply(v, x, international).verdict is VerdictKind.SHUTDOWN
    home = failed("bank.kz")
    assert pop.apply(v, pop.fact(home, "AS9198 KZ", "KZ"), international) == v


def test_history_a_target_never_reached_elsewhere_does_not_count() -> None:
    """Six international sites that drop in every hour are blackholed, not cut."""
    def hour(h: str, reach_intl: bool) -> list[pop.Fact]:
        ms = ([reached(d, hour=h) for d in dom(6)] + [failed(s, hour=h) for s in intl(6)]
              + ([reached(s, hour=h) for s in intl(3, 6)] if reach_intl else []))
        return [pop.fact(m, "AS1 KZ", "KZ") for m in ms]

    blackholed = pop.infer(hour("2022-01-04T11", True) + hour("2022-01-05T11", False))
    assert blackholed[("AS1 KZ", "2022-01-05T11")].state is NetworkState.UNKNOWN or (
        not blackholed[("AS1 KZ", "2022-01-05T11")].is_cut)
    assert blackholed[("AS1 KZ", "2022-01-05T11")].international_silent == 0
    # The same hour alone (no history) is a cut.
    alone = pop.infer(hour("2022-01-05T11", False))
    assert alone[("AS1 KZ", "2022-01-05T11")].state is NetworkState.SHUTDOWN_INTERNATIONAL
    # History in which those very sites worked makes them count.
    worked = [pop.fact(reached(s, hour="2022-01-04T11"), "AS1 KZ", "KZ") for s in intl(6)]
    cut = pop.infer(worked + hour("2022-01-05T11", False))
    assert cut[("AS1 KZ", "2022-01-05T11")].state is NetworkState.SHUTDOWN_INTERNATIONAL


def _country(ip: str) -> str | None:
    return {"93.184.216.34": "DE", "2.72.0.1": "KZ", "2.72.0.2": "KZ"}.get(ip)


@pytest.mark.parametrize(("host", "cc", "addresses", "source", "expected"), [
    ("tengrinews.kz", "KZ", (), None, (pop.Scope.DOMESTIC, "cctld")),
    ("xn--80ao21a.xn--80ao21a", "KZ", (), None, (pop.Scope.DOMESTIC, "cctld")),
    ("bbc.co.uk", "KZ", (), None, (pop.Scope.INTERNATIONAL, "cctld")),
    ("example.io", "KZ", (), None, (pop.Scope.UNKNOWN, "")),
    ("kaspi.com", "KZ", ("2.72.0.1", "2.72.0.2"), None, (pop.Scope.DOMESTIC, "answers")),
    ("site.kz", "KZ", ("93.184.216.34",), None, (pop.Scope.INTERNATIONAL, "answers")),
    ("cdn.com", "KZ", ("93.184.216.34", "2.72.0.1"), None, (pop.Scope.UNKNOWN, "answers")),
    ("unknown.com", "KZ", ("10.0.0.1",), None, (pop.Scope.UNKNOWN, "")),
    ("local.com", "KZ", (), "targets/kz.csv:12", (pop.Scope.DOMESTIC, "list")),
    ("world.com", "KZ", (), "targets/global.csv:3", (pop.Scope.INTERNATIONAL, "list")),
    ("tengrinews.kz", None, (), None, (pop.Scope.UNKNOWN, "")),
])
def test_scope_of(host: str, cc: str | None, addresses: tuple[str, ...], source: str | None,
                  expected: tuple[pop.Scope, str]) -> None:
    assert pop.scope_of(host, cc, addresses, _country, source) == expected


def test_a_lying_resolver_does_not_make_a_site_domestic() -> None:
    """The probe's own unverified answers (a censor's domestic block-page address) are not
    evidence of where a site is; the control's answers are."""
    url = "https://foreign.com/"
    m = _at(meas(url, sys_dns("foreign.com", "2.72.0.1"), (tcp(ip="2.72.0.1", failure=f
                                                              .GENERIC_TIMEOUT),),
                 control=(ctl(url),)))
    assert pop.fact(m, "n", "KZ", _country).scope is pop.Scope.INTERNATIONAL
    no_control = dataclasses.replace(m, control=())
    assert pop.fact(no_control, "n", "KZ", _country).scope is pop.Scope.UNKNOWN


def _provenance(i: int, asn: int | None = 9198) -> Provenance:
    return Provenance(source="ooni", origin=f"corpus.jsonl:{i}", dedup_key=f"uid-{i}",
                      test_name="web_connectivity", measurement_uid=f"uid-{i}",
                      probe_asn=asn, probe_cc="KZ", ooni_blocking="tcp_ip",
                      ooni_accessible=False, missing=("canaries",))


def test_reanalyze_infers_the_hour_of_an_as_across_imports(tmp_path: Path) -> None:
    """Imported measurements of AS9198 in one hour, split over two imports (runs): the
    population spans both; the same hour of an unknown AS gets no call."""
    db = tmp_path / "probe.db"
    ms = [reached(h, minute=i) for i, h in enumerate(dom(6))] + [
        failed(h, minute=i) for i, h in enumerate(intl(6))]
    with Store.open(db) as store:
        runs = [store.start_run({"import": "ooni"}, 0) for _ in range(2)]
        for i, m in enumerate(ms):
            store.save_import(runs[i % 2], m, None, _provenance(i))
        unknown_as = store.start_run({"import": "ooni"}, 0)
        for i, m in enumerate(ms):
            store.save_import(unknown_as, m, None, _provenance(100 + i, asn=None))
    summary = reanalyze(str(db))
    assert "24 measurements" in summary
    with Store.open_readonly(db) as store:
        got: dict[tuple[str, str], str] = {}
        for mid, m in store.iter_measurements():
            prov = store.provenance(mid)
            assert prov is not None
            v = store.current_verdict(mid)
            assert v is not None
            got[(str(prov.probe_asn), m.target.hostname)] = (
                f"{v.verdict.value} {v.method}")
    assert got[("9198", "site0.de")] == "shutdown shutdown.international"
    assert got[("9198", "site5.de")] == "shutdown shutdown.international"
    assert got[("9198", "news0.kz")] == "ok None"
    assert got[("None", "site0.de")] == "blocked tcp.timeout"
