"""Per-family results: what the probe got over IPv4 and over IPv6, and what IPv6 failures mean.

Responsibility (web measurements; other kinds judge their own endpoints): the outcome of the
last URL tried per address family (:func:`results`, e.g.
``{"ipv4": "ok", "ipv6": "tcp.timeout"}``, carried in every verdict's ``details["families"]``
once IPv6 was tried) and the one decision that depends on the family (:func:`apply`), taken
after the ordered rules of :mod:`probe.classify.verdict`.

WHY (issue 15): the web measurement dials a site's IPv4 and IPv6 addresses (IPv4 first) and
fetches over the first usable one, so a site that works over IPv4 is ``ok`` whatever IPv6 did.
What IPv6 did still matters, and only the canaries can say who is to blame:

* IPv6 broken *here* (IPv6 canaries fail while IPv4 ones answer,
  :func:`probe.classify.health.ipv6_during`) — a failure over IPv6 is never a block (OONI's
  tracker has several such false positives: ooni/probe#2456, #2192). An ``ok`` stays ``ok``
  with the note ``ipv6_broken_here``; a failure verdict whose failing address is IPv6 becomes
  ``inconclusive``/``local_ipv6``.
* IPv6 working here (an IPv6 canary answered) and the control connected to the very IPv6
  address that failed — the site is blocked over IPv6 only: ``blocked`` with the failing
  step's technique, ``family: ipv6`` and the IPv4 result in the evidence.
* anything else (no IPv6 canary, no control at that address) — ``ok`` with the note
  ``ipv6_failed``: not enough to blame anyone.

Without IPv6 canaries the run's own measurements may speak (:func:`apply_run`): when at least
:data:`MIN_V6_FAILURES` dual-stack targets worked over IPv4 and failed over IPv6 and none worked
over IPv6, this network's IPv6 is broken — the same conclusion, reached from the population
(the way :mod:`probe.classify.population` infers shutdowns without canaries).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from probe import failures as f
from probe.classify import quic
from probe.classify.base import SAME_ADDRESS, Case, blocked, inconclusive, make_case
from probe.classify.context import Context
from probe.classify.endpoint import TCP_METHODS, TLS_METHODS
from probe.classify.health import IPv6State, ipv6_during
from probe.classify.observations import endpoint, is_ipv6, resolver_ip
from probe.model import WEB_CONNECTIVITY, Measurement, Verdict, VerdictKind

#: Dual-stack targets that worked over IPv4 and failed over IPv6 (none working over IPv6)
#: before the run's population says IPv6 is broken here. WHY 3: one or two sites with a broken
#: AAAA record are common (the site's fault); every site of a run failing alike is the network.
MIN_V6_FAILURES = 3

IPV4 = "ipv4"
IPV6 = "ipv6"
OK = "ok"

_HTTP_METHODS = {f.GENERIC_TIMEOUT: "http.timeout", f.CONNECTION_RESET: "http.reset",
                 f.EOF_ERROR: "http.eof"}


def family(ip: str) -> str:
    """``ipv6`` or ``ipv4`` for an address as stored."""
    return IPV6 if is_ipv6(ip) else IPV4


def _address_result(case: Case, ip: str) -> str:
    """``ok`` or the method-like name of the first step that failed at ``ip``."""
    a = case.attempt
    tcp = [c for c in a.tcp if c.ip == ip]
    if tcp and not any(c.failure is None for c in tcp):
        failure = next((c.failure for c in reversed(tcp)), None)
        return TCP_METHODS.get(failure or "", "tcp.error")
    if a.scheme == "https":
        tls = [t for t in a.tls if t.ip == ip]
        if tls and not any(t.failure is None for t in tls):
            return TLS_METHODS.get(tls[-1].failure or "", "tls.handshake")
        if tls and not any(t.failure is None and t.verified for t in tls):
            return "tls.invalid"
    http = [h for h in a.http if h.ip == ip]
    if http and all(h.failure is not None for h in http):
        return _HTTP_METHODS.get(http[-1].failure or "", "http.error")
    return OK


def results(case: Case) -> dict[str, str]:
    """Per family that was tried for the last URL: ``ok`` when one of its addresses worked,
    else the result of its first failing address (in the order dialled)."""
    out: dict[str, str] = {}
    seen: list[str] = []
    for c in case.attempt.tcp:
        if c.ip not in seen:
            seen.append(c.ip)
    for ip in seen:
        fam, res = family(ip), _address_result(case, ip)
        if fam not in out or res == OK:
            out[fam] = res
    return out


def _first_failing(case: Case, fam: str) -> str | None:
    for c in case.attempt.tcp:
        if family(c.ip) == fam and _address_result(case, c.ip) != OK:
            return c.ip
    return None


def _text(fams: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(fams.items()))


def apply(case: Case, v: Verdict) -> Verdict:
    """The verdict once the address families are taken into account (module docstring)."""
    if case.m.test_name != WEB_CONNECTIVITY:
        return v  # other kinds judge their own endpoints (docs/kinds.md)
    fams = results(case)
    if IPV6 not in fams:
        return v  # an IPv4-only site (or no connection at all): nothing to add
    state, hround = ipv6_during(case.ctx.health, case.m.started_at, case.m.finished_at)
    details = {**v.details, "families": fams, "ipv6_here": state.value}
    v6_failed = fams[IPV6] != OK
    if v.verdict is VerdictKind.OK:
        if not v6_failed:
            if fams.get(IPV4, OK) != OK:
                return dataclasses.replace(
                    v, evidence=v.evidence + f"; over IPv4 it failed ({fams[IPV4]}), over "
                    "IPv6 it worked", details={**details, "note_family": "ipv4_failed"})
            return dataclasses.replace(v, details=details)
        ip = _first_failing(case, IPV6) or ""
        where = endpoint(ip, case.m.target.port)
        if state is IPv6State.BROKEN:
            seen = f" (health round at {hround.at})" if hround is not None else ""
            return dataclasses.replace(
                v, evidence=v.evidence + f"; over IPv6 {where} failed ({fams[IPV6]}), but the "
                f"IPv6 canaries fail here too{seen}: this network's IPv6 is broken, not the "
                "site", details={**details, "note_family": "ipv6_broken_here"})
        control = [e for e in case.control.at(ip) if e.connected]
        if (state is IPv6State.WORKS and control and case.control_about(case.attempt.hostname)
                and fams[IPV6] in {*TCP_METHODS.values(), *TLS_METHODS.values()}):
            e = control[0]
            if fams[IPV6].startswith("tls.") and not e.handshake_ok:
                pass  # the control did not complete a handshake there: no evidence
            else:
                reached = ("completed a TLS handshake with" if fams[IPV6].startswith("tls.")
                           else "connected to")
                return blocked(
                    case, fams[IPV6], SAME_ADDRESS - 0.05,
                    f"over IPv6 {where} failed ({fams[IPV6]}) while IPv4 works; the IPv6 "
                    f"canaries answer here and the control {reached} the same address: "
                    "blocked over IPv6 only",
                    step=fams[IPV6].split(".")[0], ip=ip, port=case.m.target.port,
                    family=IPV6, families=fams, ipv6_here=state.value,
                    control_endpoint=e.summary(), **case.attempt.location_details())
        return dataclasses.replace(
            v, evidence=v.evidence + f"; over IPv6 {where} failed ({fams[IPV6]}) and nothing "
            "says whose fault that is (no IPv6 canary answered, or the control did not reach "
            "that address)", details={**details, "note_family": "ipv6_failed"})
    at = v.details.get("ip")
    if (state is IPv6State.BROKEN and isinstance(at, str) and is_ipv6(resolver_ip(at))
            and v.verdict in (VerdictKind.BLOCKED, VerdictKind.DOWN)):
        return inconclusive(
            case, "local_ipv6",
            f"{v.evidence.split('; ')[0]}; the IPv6 canaries fail here too: this network's "
            "IPv6 is broken, so an IPv6 failure says nothing about the site",
            symptom=v.method, symptom_verdict=v.verdict.value,
            **{k: val for k, val in details.items() if k != "symptom"})
    return dataclasses.replace(v, details=details)


class IPv6Population:
    """Counts, over one run's measurements, the dual-stack targets that worked over IPv6 and
    those that worked over IPv4 but failed over IPv6 (module docstring); and, in the same pass,
    whether any QUIC handshake of the run completed (:class:`quic.QUICPopulation`)."""

    def __init__(self) -> None:
        self.ok6 = 0
        self.fail6 = 0
        # the run's other whole-network question of issue 15, counted in the same pass:
        # does QUIC leave this network at all (probe.classify.quic, the false-blocked guard)
        self.quic = quic.QUICPopulation()

    def add(self, m: Measurement, context: Context) -> None:
        self.quic.add(m)
        if m.test_name != WEB_CONNECTIVITY:
            return
        fams = results(make_case(m, context))
        if fams.get(IPV6) == OK:
            self.ok6 += 1
        elif IPV6 in fams and fams.get(IPV4) == OK:
            self.fail6 += 1

    @property
    def broken(self) -> bool:
        """IPv6 is broken here, by the population: enough failures and no success."""
        return not self.ok6 and self.fail6 >= MIN_V6_FAILURES

    def apply(self, v: Verdict, m: Measurement, context: Context) -> Verdict:
        """``v`` with the population's IPv6 state applied where the canaries said nothing
        about IPv6 around ``m`` (and the run's QUIC state: :class:`quic.QUICPopulation`)."""
        v = self.quic.apply(v)
        if not self.broken or m.test_name != WEB_CONNECTIVITY:
            return v
        if ipv6_during(context.health, m.started_at, m.finished_at)[0] is not IPv6State.UNKNOWN:
            return v
        return _broken_by_population(v, self.fail6)


def apply_run(measurements: Sequence[Measurement], verdicts: Sequence[Verdict],
              context: Context) -> list[Verdict]:
    """The verdicts of one run with the population's view of IPv6 applied
    (:class:`IPv6Population`)."""
    population = IPv6Population()
    for m in measurements:
        population.add(m, context)
    return [population.apply(v, m, context)
            for m, v in zip(measurements, verdicts, strict=True)]


def _broken_by_population(v: Verdict, fail6: int) -> Verdict:
    why = (f"no IPv6 canary, but {fail6} targets of this run worked over IPv4 and failed over "
           "IPv6 and none worked over IPv6: this network's IPv6 is broken")
    if v.verdict is VerdictKind.OK and v.details.get("note_family") == "ipv6_failed":
        evidence = v.evidence.split("; over IPv6 ")[0]
        return dataclasses.replace(
            v, evidence=f"{evidence}; over IPv6 it failed ({v.details['families'][IPV6]}); "
            f"{why}, not the site",
            details={**v.details, "note_family": "ipv6_broken_here", "ipv6_here": "broken",
                     "ipv6_by": "population"})
    at = v.details.get("ip")
    if (v.verdict in (VerdictKind.BLOCKED, VerdictKind.DOWN) and isinstance(at, str)
            and is_ipv6(resolver_ip(at))):
        keep = {k: val for k, val in v.details.items() if k not in ("symptom", "note_family")}
        return Verdict(VerdictKind.INCONCLUSIVE, "local_ipv6", 0.4,
                       f"{v.evidence.split('; ')[0]}; {why}, so an IPv6 failure says nothing "
                       "about the site", v.analysis_version,
                       {**keep, "symptom": v.method, "symptom_verdict": v.verdict.value,
                        "ipv6_here": "broken", "ipv6_by": "population"})
    return v
