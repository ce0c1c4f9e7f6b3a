"""Shutdowns from the population: a network's state per hour, inferred from all of its measurements.

Responsibility: pure functions and one small accumulator that turn facts about many
measurements of one network (an AS and country for imported data, one run for ours) into a
state per (network, UTC hour), and the rule that replaces a failure verdict by ``shutdown``
when the hour it ran in was cut. No IO; the caller (:mod:`probe.run.reanalyze`) feeds the
facts and applies the states.

WHY: imported measurements (OONI's archive) have no canaries, so :mod:`probe.classify.health`
cannot see a shutdown, and OONI itself does not model shutdowns: during Kazakhstan's January
2022 cuts (/work/shared/reference/kazakhstan.md: nationwide data-plane cut from 2022-01-05
~10:30 UTC, windows of connectivity, an allow-list of domestic sites on Jan 8) every
international site failed at once while domestic sites such as tengrinews.kz stayed up.
A measurement alone cannot tell that from blocking; the population of the hour can.

Rules for one (network, hour), first match wins (docs/classification.md, "Shutdowns from the
population"):

* fewer than :data:`MIN_MEASUREMENTS` measurements, or any international target reached → no
  call (``unknown``) or ``whole``;
* at least :data:`MIN_TARGETS` distinct international targets failed *silently* (a drop:
  timeouts, unreachable, a resolver that cannot recurse — not a reset, an NXDOMAIN or a block
  page, which are a censor answering for one site), none reached, and at least
  :data:`MIN_DOMESTIC` distinct domestic targets reached → ``shutdown.international`` (no
  domestic target dropped) or ``shutdown.allowlist`` (some domestic ones dropped too);
* nothing at all reached, at least :data:`MIN_TARGETS` distinct targets failed silently, and
  the control (the test helper) reached at least :data:`MIN_TARGETS` of them (and
  :data:`MIN_CONTROL_UP_SHARE` of those it answered about) → ``shutdown.full``;
* else ``whole`` when something was reached, ``unknown`` otherwise.

History: when the population holds other hours of the same network in which targets were
reached, only international targets reached in one of those hours count towards a cut — a
site that fails in every hour is blocked (an IP blackhole also drops silently), not cut.

Applying a state (:func:`apply`): canaries win (a measurement with a health-round state keeps
its verdict); ``ok``, ``intercepted``, ``throttled`` and ``shutdown`` stand; a measurement whose
site answered (a TCP connection or a refusal, an HTTP status) is never turned into a shutdown;
only a silent failure is the cut's doing (a reset or a lying resolver in a cut hour is still
someone answering for that site, and keeps its verdict); in an international cut, a failing
domestic target keeps its verdict (the cut does not explain it). The confidence
(:data:`POPULATION_CONFIDENCE`) is below the canaries' because the inference is indirect.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

from probe import failures as f
from probe.classify import control as ctl
from probe.classify.base import ANALYSIS_VERSION
from probe.classify.context import Context
from probe.classify.health import NetworkState, state_during
from probe.model import Measurement, Verdict, VerdictKind

#: Fewest measurements of a network in one hour before any call. WHY: one OONI web
#: connectivity session tests dozens to hundreds of URLs; ten measurements is a small session,
#: enough that the silent failures below are not one person's three favourite blocked sites.
MIN_MEASUREMENTS = 10
#: Fewest distinct targets that must fail silently (international ones for an international
#: cut). WHY: national block lists hold a few dozen to a few thousand sites, and a hand-picked
#: list can make two or three international sites all fail in a healthy hour; five distinct
#: unrelated hosts that all drop, with none reached, is what a cut looks like (January 2022:
#: *every* international site failed).
MIN_TARGETS = 5
#: Fewest distinct domestic targets reached for an international cut: the domestic network
#: demonstrably worked (one could be a cache or the ISP's own site).
MIN_DOMESTIC = 2
#: Share of the failing targets the control answered about that it reached, for a full cut.
MIN_CONTROL_UP_SHARE = 0.8
#: Confidence of a shutdown inferred from the population (canaries give 0.9): indirect.
POPULATION_CONFIDENCE: dict[NetworkState, float] = {
    NetworkState.SHUTDOWN_FULL: 0.7,
    NetworkState.SHUTDOWN_INTERNATIONAL: 0.7,
    NetworkState.SHUTDOWN_ALLOWLIST: 0.6,
}

#: Failures that look like a cut: traffic dropped, or a resolver that cannot recurse (a
#: domestic resolver cut off from the world's authoritative servers answers SERVFAIL or
#: nothing). A reset, an NXDOMAIN, REFUSED, a bogon or a TLS error is someone answering.
SILENT_FAILURES: frozenset[str] = frozenset({
    f.GENERIC_TIMEOUT, f.HOST_UNREACHABLE, f.NETWORK_UNREACHABLE, f.DNS_SERVFAIL,
    f.DNS_TEMPORARY_FAILURE, f.DNS_SERVER_MISBEHAVING,
})

#: Country-code TLDs sold to anyone (a ``.io`` site says nothing about where it is).
GENERIC_CCTLDS: frozenset[str] = frozenset(
    "ac ad ai am as bz cc cd cf co cx dj fm ga gg gl gq gy im io je la li ly me ml ms mu nu "
    "pw sc sh so st su tk to tv vc vg ws".split())
#: ccTLDs whose code is not the ISO 3166 one, and IDN ccTLDs (A-labels).
CCTLD_COUNTRY: dict[str, str] = {"uk": "GB", "xn--80ao21a": "KZ", "xn--p1ai": "RU",
                                 "xn--90ais": "BY", "xn--j1amh": "UA"}


class Scope(enum.StrEnum):
    DOMESTIC = "domestic"
    INTERNATIONAL = "international"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Fact:
    """What the population inference needs from one measurement.

    ``network``: who measured (``AS9198 KZ``, ``run <id>``); "" = unknown (no inference).
    ``hour``: ``YYYY-MM-DDTHH`` (UTC) of ``started_at``. ``scope``/``scope_by``: the target's
    place relative to the vantage's country and the evidence (``answers``, ``cctld``,
    ``list``; "" = none). ``reached``: the site's host answered. ``failure``: the failure that
    stopped the measurement (None = none). ``silent``: that failure is a drop
    (:data:`SILENT_FAILURES`). ``control_up``: the control reached the site; None = no
    control answer.
    """

    network: str
    hour: str
    host: str
    scope: Scope
    scope_by: str
    reached: bool
    failure: str | None
    silent: bool
    control_up: bool | None


@dataclass(frozen=True, slots=True)
class HourState:
    """The state of one network in one hour and the counts behind it (distinct targets)."""

    network: str
    hour: str
    state: NetworkState
    measurements: int
    targets: int
    domestic_reached: int = 0
    domestic_failed: int = 0
    international_reached: int = 0
    international_silent: int = 0
    silent: int = 0
    control_up: int = 0
    why: str = ""

    @property
    def is_cut(self) -> bool:
        return self.state.value.startswith("shutdown.")

    def summary(self) -> str:
        return (f"{self.network} {self.hour}:00Z: {self.measurements} measurements of "
                f"{self.targets} targets; {self.why}")

    def details(self) -> dict[str, Any]:
        return {"network": self.network, "hour": self.hour, "state": self.state.value,
                "measurements": self.measurements, "targets": self.targets,
                "domestic_reached": self.domestic_reached,
                "domestic_failed": self.domestic_failed,
                "international_reached": self.international_reached,
                "international_silent": self.international_silent,
                "silent": self.silent, "control_up": self.control_up}


# --- facts ----------------------------------------------------------------------------------


def reached(m: Measurement) -> bool:
    """Did the site's host answer (a completed or refused TCP connection, an HTTP status)?
    A cut drops traffic, so any answer proves the path was up."""
    return any(t.failure is None or t.failure == f.CONNECTION_REFUSED for t in m.tcp) or any(
        h.status is not None for h in m.http)


def stopping_failure(m: Measurement) -> str | None:
    """The failure that stopped the measurement: the first TCP failure when every connect
    failed, else the DNS failure when no query got an address; None = neither."""
    if m.tcp:
        if all(t.failure is not None for t in m.tcp):
            return m.tcp[0].failure
        return None
    if m.dns and not any(d.addresses for d in m.dns):
        return next((d.failure for d in m.dns if d.failure), None)
    return None


def country_of_tld(host: str) -> str | None:
    """The country of ``host``'s country-code TLD; None = a generic or generic-use TLD."""
    tld = host.rstrip(".").lower().rsplit(".", 1)[-1]
    if tld in CCTLD_COUNTRY:
        return CCTLD_COUNTRY[tld]
    if len(tld) == 2 and tld.isalpha() and tld not in GENERIC_CCTLDS:
        return tld.upper()
    return None


def list_country(source: str | None) -> str | None:
    """The country of the target list a target came from (Citizen Lab lists are named by
    country code: ``kz.csv``; ``global.csv`` → ``global``); None = no list or another name."""
    if not source:
        return None
    stem = PurePosixPath(source.rsplit(":", 1)[0]).stem.lower()
    if stem == "global":
        return "global"
    return stem.upper() if len(stem) == 2 and stem.isalpha() else None


def scope_of(host: str, probe_cc: str | None, addresses: Sequence[str] = (),
             country_of: Callable[[str], str | None] | None = None,
             source: str | None = None) -> tuple[Scope, str]:
    """Is ``host`` domestic or international for a vantage in ``probe_cc``, and why.

    Evidence, strongest first: the countries of the site's addresses (``addresses``: the
    control's answers or addresses whose chain validated — never the probe's unverified
    answers, which a censor may point at a domestic block page), when ASN data is given and
    they agree; the country-code TLD; the target list's country (a ``kz.csv`` target is
    domestic for a KZ vantage, a ``global.csv`` one international — weakest: country lists hold
    sites hosted abroad). Unknown vantage country → unknown.
    """
    if not probe_cc:
        return Scope.UNKNOWN, ""
    cc = probe_cc.upper()
    if country_of is not None and addresses:
        countries = {c.upper() for c in (country_of(a) for a in addresses) if c}
        if countries == {cc}:
            return Scope.DOMESTIC, "answers"
        if countries and cc not in countries:
            return Scope.INTERNATIONAL, "answers"
        if countries:
            return Scope.UNKNOWN, "answers"  # a CDN with a domestic node: either
    tld = country_of_tld(host)
    if tld is not None:
        return (Scope.DOMESTIC if tld == cc else Scope.INTERNATIONAL), "cctld"
    listed = list_country(source)
    if listed == "global":
        return Scope.INTERNATIONAL, "list"
    if listed is not None:
        return (Scope.DOMESTIC if listed == cc else Scope.INTERNATIONAL), "list"
    return Scope.UNKNOWN, ""


def _genuine_addresses(m: Measurement, view: ctl.ControlView) -> tuple[str, ...]:
    if view.dns_addrs:
        return view.dns_addrs
    return tuple(dict.fromkeys(t.ip for t in m.tls if t.verified is True))


def _control_up(view: ctl.ControlView) -> bool | None:
    if not view.available:
        return None
    if view.fetched:
        return True
    if any(e.tcp_done and e.tcp_failure is None for e in view.endpoints):
        return True
    return False if (view.http is not None or view.endpoints or view.dns_done) else None


def fact(m: Measurement, network: str, probe_cc: str | None,
         country_of: Callable[[str], str | None] | None = None) -> Fact:
    """The population fact of one measurement taken from ``network`` in ``probe_cc``."""
    view = ctl.read(m.control)
    host = m.target.hostname.rstrip(".").lower()
    scope, by = scope_of(host, probe_cc, _genuine_addresses(m, view), country_of,
                         m.target.source)
    was_reached = reached(m)
    failure = None if was_reached else stopping_failure(m)
    return Fact(network, m.started_at[:13], host, scope, by, was_reached, failure,
                failure in SILENT_FAILURES, _control_up(view))


# --- inference ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Bucket:
    measurements: int = 0
    hosts: set[str] = field(default_factory=set)
    reached: set[str] = field(default_factory=set)
    dom_reached: set[str] = field(default_factory=set)
    dom_failed: set[str] = field(default_factory=set)
    int_reached: set[str] = field(default_factory=set)
    int_silent: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    control_up: set[str] = field(default_factory=set)
    control_down: set[str] = field(default_factory=set)


class Population:
    """Accumulates facts per (network, hour) — counts and distinct hosts, never the facts —
    and infers each hour's state (:meth:`states`)."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def add(self, x: Fact) -> None:
        if not x.network:
            return
        b = self._buckets.setdefault((x.network, x.hour), _Bucket())
        b.measurements += 1
        b.hosts.add(x.host)
        if x.reached:
            b.reached.add(x.host)
        if x.scope is Scope.DOMESTIC:
            if x.reached:
                b.dom_reached.add(x.host)
            elif x.silent:
                b.dom_failed.add(x.host)
        elif x.scope is Scope.INTERNATIONAL:
            if x.reached:
                b.int_reached.add(x.host)
            elif x.silent:
                b.int_silent.add(x.host)
        if x.silent:
            b.silent.add(x.host)
            if x.control_up is True:
                b.control_up.add(x.host)
            elif x.control_up is False:
                b.control_down.add(x.host)

    def extend(self, facts: Iterable[Fact]) -> Population:
        for x in facts:
            self.add(x)
        return self

    def merge(self, other: Population) -> Population:
        """Add the counts of ``other`` (facts gathered elsewhere, e.g. by another task of the
        Dask path) as if its facts had been added here."""
        for key, b in other._buckets.items():
            mine = self._buckets.setdefault(key, _Bucket())
            mine.measurements += b.measurements
            for name in ("hosts", "reached", "dom_reached", "dom_failed", "int_reached",
                         "int_silent", "silent", "control_up", "control_down"):
                getattr(mine, name).update(getattr(b, name))
        return self

    def states(self) -> dict[tuple[str, str], HourState]:
        """The state of every (network, hour) seen."""
        history: dict[str, dict[str, set[str]]] = {}
        for (net, hour), b in self._buckets.items():
            if b.reached:
                history.setdefault(net, {})[hour] = b.reached
        return {(net, hour): _infer(net, hour, b, _reached_elsewhere(history.get(net, {}), hour))
                for (net, hour), b in self._buckets.items()}


def _reached_elsewhere(by_hour: Mapping[str, set[str]], hour: str) -> set[str] | None:
    """Hosts reached in other hours of the network; None = no other hour reached anything."""
    others = [hosts for h, hosts in by_hour.items() if h != hour]
    return set().union(*others) if others else None


def _infer(net: str, hour: str, b: _Bucket, known_good: set[str] | None) -> HourState:
    int_silent = b.int_silent if known_good is None else b.int_silent & known_good
    base = HourState(net, hour, NetworkState.UNKNOWN, b.measurements, len(b.hosts),
                     domestic_reached=len(b.dom_reached), domestic_failed=len(b.dom_failed),
                     international_reached=len(b.int_reached),
                     international_silent=len(int_silent), silent=len(b.silent),
                     control_up=len(b.control_up))
    if b.measurements < MIN_MEASUREMENTS:
        return replace(base, why=f"too few measurements for a call (< {MIN_MEASUREMENTS})")
    if b.int_reached:
        return replace(base, state=NetworkState.WHOLE,
                       why=f"{len(b.int_reached)} international targets reached")
    if len(int_silent) >= MIN_TARGETS and len(b.dom_reached) >= MIN_DOMESTIC:
        state = (NetworkState.SHUTDOWN_ALLOWLIST if b.dom_failed
                 else NetworkState.SHUTDOWN_INTERNATIONAL)
        why = (f"0 international targets reached, {len(int_silent)} dropped silently; "
               f"{len(b.dom_reached)} domestic reached"
               + (f", {len(b.dom_failed)} domestic failed" if b.dom_failed else ""))
        return replace(base, state=state, why=why)
    answered = len(b.control_up) + len(b.control_down)
    if (not b.reached and len(b.silent) >= MIN_TARGETS and len(b.control_up) >= MIN_TARGETS
            and len(b.control_up) >= MIN_CONTROL_UP_SHARE * answered):
        return replace(base, state=NetworkState.SHUTDOWN_FULL,
                       why=f"0 targets reached, {len(b.silent)} dropped silently; the control "
                           f"reached {len(b.control_up)} of them")
    if b.reached:
        return replace(base, state=NetworkState.WHOLE,
                       why=f"{len(b.reached)} targets reached; no cut pattern")
    return replace(base, why="nothing reached, but too little evidence of a cut")


def infer(facts: Iterable[Fact]) -> dict[tuple[str, str], HourState]:
    """The state of every (network, hour) in ``facts`` (pure; see the module docstring)."""
    return Population().extend(facts).states()


# --- applying a state ----------------------------------------------------------------------


def apply(v: Verdict, x: Fact, state: HourState | None,
          canaries: NetworkState = NetworkState.UNKNOWN) -> Verdict:
    """``v`` with the hour's population state applied (see the module docstring).

    ``canaries``: the state the health rounds around the measurement showed; anything but
    ``unknown`` means canaries decided and win.
    """
    if (state is None or not state.is_cut or canaries is not NetworkState.UNKNOWN
            or v.verdict not in (VerdictKind.BLOCKED, VerdictKind.DOWN,
                                 VerdictKind.INCONCLUSIVE)
            or x.reached or not x.silent):
        return v
    if v.verdict is VerdictKind.INCONCLUSIVE and v.method == "interrupted":
        return v
    if state.state is NetworkState.SHUTDOWN_INTERNATIONAL and x.scope is Scope.DOMESTIC:
        return v  # domestic sites worked that hour: the cut does not explain this one
    keep = {k: val for k, val in v.details.items()
            if k in ("step", "tx_id", "failure", "ip", "port", "url", "hostname", "control")}
    first = v.evidence.split("; ")[0]
    return Verdict(
        VerdictKind.SHUTDOWN, state.state.value, POPULATION_CONFIDENCE[state.state],
        f"{first}; no canaries, but the population of {state.summary()}: the network was cut, "
        "not this site",
        ANALYSIS_VERSION,
        {**keep, "symptom": v.method, "symptom_verdict": v.verdict.value,
         "symptom_evidence": v.evidence, "network": state.state.value,
         "population": state.details(), "scope": x.scope.value,
         "scope_by": x.scope_by or None, "missing": ["canaries"]})


def canaries_state(m: Measurement, context: Context) -> NetworkState:
    """The state the run's health rounds show around ``m`` (``unknown`` = no canaries, or
    none conclusive: the population may speak)."""
    return state_during(context.health, m.started_at, m.finished_at)[0]


def apply_run(measurements: Sequence[Measurement], verdicts: Sequence[Verdict],
              context: Context, network: str = "run") -> list[Verdict]:
    """The verdicts of one run of ours with the population of the run's own measurements
    applied where the canaries said nothing (the vantage's country is ``context.probe_cc``)."""
    facts = [fact(m, network, context.probe_cc, context.country_of) for m in measurements]
    states = infer(facts)
    return [apply(v, x, states.get((x.network, x.hour)), canaries_state(m, context))
            for m, v, x in zip(measurements, verdicts, facts, strict=True)]


__all__ = ["MIN_DOMESTIC", "MIN_MEASUREMENTS", "MIN_TARGETS", "Fact", "HourState",
           "Population", "Scope", "apply", "apply_run", "canaries_state", "fact", "infer",
           "scope_of"]
