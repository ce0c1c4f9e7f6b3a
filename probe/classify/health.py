"""Pure inference of the network's state from canary samples (no IO).

A probe inside the country sees a shutdown layer by layer: its gateway, the ISP resolver,
domestic hosts on several networks, international hosts, the control helper. This module turns
one round of samples into a :class:`NetworkState`, and finds the state that applied while a
measurement ran. Rules, first match wins:

* two or more portal checks answered over HTTP alike, and not as expected → ``captive_portal``
  (a captive portal intercepts the network's plain HTTP: :func:`portal_signature`)
* gateway down (and nothing beyond it answers)      → ``local_outage`` (the volunteer's link)
* nothing beyond the gateway answers                 → ``shutdown.full``
* all domestic canaries up, no international/control → ``shutdown.international``
* some domestic canaries up, others down, no international/control → ``shutdown.allowlist``
* anything international (or the control) answers    → ``whole``
* no samples of the scopes needed                    → ``unknown``

Captive portals: a hotel Wi-Fi, or a mobile line whose prepaid balance ran out (the operator
sends every HTTP request to its top-up page and refuses or drops everything else), makes every
site look redirected or reset. The operating systems detect this with a URL whose answer is
known a priori (:data:`probe.measure.health.PORTAL_ANSWERS`); the ``portal`` canaries are
those URLs. A round is captive when at least :data:`CAPTIVE_MIN_CHECKS` of them answered over
HTTP with the *same* unexpected answer: a portal intercepts them all alike, whereas a national
censor that DNS-poisons one check to some unrelated address, or serves its block page for one,
does not make two identical answers. A check that failed (DNS, TCP, HTTP) says nothing. During
a captive window (the same window as the cuts, :func:`state_during`) a failure verdict becomes
``inconclusive``/``captive_portal`` (:func:`probe.classify.verdict.network_cut`). Limits: a
portal that lets the checks through is not seen; a censor that answers two checks with one
block page looks like a portal (its failures become inconclusive, never a false blocked).

A cut applies to a measurement only when the site's own host did not answer it
(:func:`probe.classify.verdict.network_cut`): a censor that keeps dropping a client's traffic
after a trigger (residual censorship) makes the canaries look cut right after the triggering
request, and :func:`cut_began_after` tells such a cut from one already in place.

IPv6 is judged on its own (issue 15): a canary whose target is an IPv6 literal (``[fd00::1]``,
``https://[2001:db8::1]/``), or a named canary's IPv6 sample (``https://name/#ipv6``: its AAAA
address dialled, :mod:`probe.measure.health`), is an IPv6 sample, every other one an IPv4
sample (names are dialled at their first, IPv4, address). :func:`ipv6_state` says whether
this network's IPv6 works
(an IPv6 canary beyond the gateway answered), is broken (IPv6 canaries beyond the gateway all
failed while IPv4 ones answered) or is unknown (no IPv6 canaries): a volunteer's broken IPv6
is a classic source of false "blocked" verdicts (ooni/probe#2456, #2192) and must never be
blamed on a site.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from probe.model import HealthSample, HealthScope, Measurement, Verdict, split_url


class NetworkState(enum.StrEnum):
    WHOLE = "whole"
    LOCAL_OUTAGE = "local_outage"
    SHUTDOWN_FULL = "shutdown.full"
    SHUTDOWN_INTERNATIONAL = "shutdown.international"
    SHUTDOWN_ALLOWLIST = "shutdown.allowlist"
    CAPTIVE = "captive_portal"
    UNKNOWN = "unknown"

    @property
    def is_cut(self) -> bool:
        return self.value.startswith("shutdown.") or self is NetworkState.LOCAL_OUTAGE


class IPv6State(enum.StrEnum):
    """Whether the volunteer's network carries IPv6, from the IPv6 canaries of one round."""

    WORKS = "works"
    BROKEN = "broken"
    UNKNOWN = "unknown"


#: Scopes whose answer proves a path beyond the volunteer's own link.
_BEYOND = (HealthScope.RESOLVER, HealthScope.DOMESTIC, HealthScope.INTERNATIONAL,
           HealthScope.CONTROL)


def sample_family(target: str) -> str:
    """``ipv6`` for a canary whose target is an IPv6 literal (bare, bracketed, with a port or
    in a URL) or a named canary's IPv6 sample (fragment ``#ipv6``:
    :data:`probe.measure.health.IPV6_MARK`), ``ipv4`` for everything else."""
    text = target.strip()
    if text.endswith("#ipv6"):
        return "ipv6"
    if "://" in text:
        text = split_url(text).netloc.rpartition("@")[2]
    if text.startswith("["):
        return "ipv6"
    return "ipv6" if text.count(":") >= 2 else "ipv4"


def ipv6_state(samples: Iterable[HealthSample]) -> IPv6State:
    """Does IPv6 work here (see the module docstring)? ``broken`` needs an IPv4 canary beyond
    the gateway that answered in the same round: with nothing answering at all, the network
    is cut (or the link is down), which :func:`infer_state` says, not a broken IPv6."""
    v6_up = v6_seen = v4_up = False
    for s in samples:
        if s.scope not in _BEYOND:
            continue
        if sample_family(s.target) == "ipv6":
            v6_seen = True
            v6_up = v6_up or s.failure is None
        else:
            v4_up = v4_up or s.failure is None
    if v6_up:
        return IPv6State.WORKS
    if v6_seen and v4_up:
        return IPv6State.BROKEN
    return IPv6State.UNKNOWN


#: Portal checks that must answer alike (and not as expected) for a round to be captive.
CAPTIVE_MIN_CHECKS = 2


def portal_signature(samples: Iterable[HealthSample]) -> str | None:
    """The unexpected answer shared by at least :data:`CAPTIVE_MIN_CHECKS` distinct portal
    checks of one round (the most widely shared one), or None: the round is not captive.

    Only checks that answered over HTTP count (``failure`` None); a check whose answer was
    the expected one, or that failed at DNS/TCP/HTTP level, supports no portal.
    """
    checks: dict[str, set[str]] = {}
    for s in samples:
        if s.scope is HealthScope.PORTAL and s.failure is None and s.unexpected:
            checks.setdefault(s.unexpected, set()).add(s.target)
    best = max(checks.items(), key=lambda kv: (len(kv[1]), kv[0]), default=None)
    if best is None or len(best[1]) < CAPTIVE_MIN_CHECKS:
        return None
    return best[0]


@dataclass(frozen=True, slots=True)
class HealthRound:
    """The samples taken together at one instant and the state they show.

    ``ipv6``: what the round's IPv6 canaries say (:func:`ipv6_state`); ``unknown`` = none.
    ``portal``: the captive portal's signature when the round is captive
    (:func:`portal_signature`), else None.
    """

    at: str
    state: NetworkState
    up: dict[str, int]
    down: dict[str, int]
    ipv6: IPv6State = IPv6State.UNKNOWN
    portal: str | None = None

    def summary(self) -> str:
        parts = [f"{s} {self.up.get(s, 0)}/{self.up.get(s, 0) + self.down.get(s, 0)} up"
                 for s in (sc.value for sc in HealthScope)
                 if self.up.get(s, 0) + self.down.get(s, 0)]
        portal = f" [{self.portal}]" if self.portal else ""
        return f"{self.at}: {self.state.value}{portal} ({', '.join(parts)})"


def infer_state(samples: Iterable[HealthSample]) -> NetworkState:
    """The network state shown by one round of samples."""
    samples = list(samples)
    if portal_signature(samples) is not None:
        return NetworkState.CAPTIVE
    up: dict[HealthScope, int] = {}
    down: dict[HealthScope, int] = {}
    for s in samples:
        bucket = up if s.failure is None else down
        bucket[s.scope] = bucket.get(s.scope, 0) + 1

    def seen(scope: HealthScope) -> bool:
        return up.get(scope, 0) + down.get(scope, 0) > 0

    beyond = (HealthScope.RESOLVER, HealthScope.DOMESTIC, HealthScope.INTERNATIONAL,
              HealthScope.CONTROL)
    anything_beyond_up = any(up.get(sc, 0) for sc in beyond)
    if up.get(HealthScope.INTERNATIONAL, 0) or up.get(HealthScope.CONTROL, 0):
        return NetworkState.WHOLE
    if seen(HealthScope.GATEWAY) and not up.get(HealthScope.GATEWAY, 0) and not anything_beyond_up:
        return NetworkState.LOCAL_OUTAGE
    if not (seen(HealthScope.INTERNATIONAL) or seen(HealthScope.CONTROL)):
        return NetworkState.UNKNOWN
    dom_up, dom_down = up.get(HealthScope.DOMESTIC, 0), down.get(HealthScope.DOMESTIC, 0)
    if dom_up and not dom_down:
        return NetworkState.SHUTDOWN_INTERNATIONAL
    if dom_up and dom_down:
        return NetworkState.SHUTDOWN_ALLOWLIST
    return NetworkState.SHUTDOWN_FULL


def rounds(samples: Sequence[HealthSample]) -> list[HealthRound]:
    """Group samples into rounds (same ``at`` to the second and same phase), oldest first."""
    groups: dict[tuple[str, str], list[HealthSample]] = {}
    for s in samples:
        groups.setdefault((_round_key(s.at), s.phase), []).append(s)
    out = []
    for (_, _), group in sorted(groups.items(), key=lambda kv: min(s.at for s in kv[1])):
        up: dict[str, int] = {}
        down: dict[str, int] = {}
        for s in group:
            bucket = up if s.failure is None else down
            bucket[s.scope.value] = bucket.get(s.scope.value, 0) + 1
        out.append(HealthRound(min(s.at for s in group), infer_state(group), up, down,
                               ipv6_state(group), portal_signature(group)))
    return out


def _round_key(at: str) -> str:
    return at[:19]  # samples of one round start within the same second


def _parse(at: str) -> dt.datetime:
    return dt.datetime.fromisoformat(at.replace("Z", "+00:00"))


def state_during(
    health: Sequence[HealthRound], started_at: str, finished_at: str
) -> tuple[NetworkState, HealthRound | None]:
    """The worst state seen by the rounds around a measurement, and the round that showed it.

    The rounds considered are the last one that started before the measurement began, every
    round during it, and the first one after it ended. A captive portal seen by any of them
    wins (two checks answered alike by something else: the positive proof of an intercepted
    network, where the cut states rest on the absence of answers — a portal that drops
    HTTPS makes the canaries look cut); then a cut (a measurement overlapping a cut cannot be
    blamed on the site); else ``whole`` if any round was whole; else ``unknown``.
    """
    if not health:
        return NetworkState.UNKNOWN, None
    start, end = _parse(started_at), _parse(finished_at)
    before = [r for r in health if _parse(r.at) <= start]
    during = [r for r in health if start < _parse(r.at) <= end]
    after = [r for r in health if _parse(r.at) > end]
    window = before[-1:] + during + after[:1]
    for r in window:
        if r.state is NetworkState.CAPTIVE:
            return r.state, r
    for r in window:
        if r.state.is_cut and r.state is not NetworkState.LOCAL_OUTAGE:
            return r.state, r
    for r in window:
        if r.state is NetworkState.LOCAL_OUTAGE:
            return r.state, r
    for r in window:
        if r.state is NetworkState.WHOLE:
            return r.state, r
    return NetworkState.UNKNOWN, None


def ipv6_during(
    health: Sequence[HealthRound], started_at: str, finished_at: str
) -> tuple[IPv6State, HealthRound | None]:
    """What the rounds around a measurement (the same window as :func:`state_during`) say
    about IPv6, and the round that said it. ``broken`` in any of them wins (a failure over
    IPv6 then cannot be blamed on the site); else ``works`` if any round saw IPv6 work."""
    if not health:
        return IPv6State.UNKNOWN, None
    start, end = _parse(started_at), _parse(finished_at)
    before = [r for r in health if _parse(r.at) <= start]
    during = [r for r in health if start < _parse(r.at) <= end]
    after = [r for r in health if _parse(r.at) > end]
    window = before[-1:] + during + after[:1]
    for wanted in (IPv6State.BROKEN, IPv6State.WORKS):
        for r in window:
            if r.ipv6 is wanted:
                return wanted, r
    return IPv6State.UNKNOWN, None


def cut_began_after(health: Sequence[HealthRound], cut: HealthRound, started_at: str) -> bool:
    """Did the cut shown by ``cut`` begin only after ``started_at``?

    True when ``cut`` was taken after the measurement started and the last round before the
    measurement (if any) was not a cut: the network was whole (or unknown) when the request
    left, so the cut may be the censor's answer to this very request (residual censorship).
    """
    start = _parse(started_at)
    if _parse(cut.at) <= start:
        return False
    before = [r for r in health if _parse(r.at) <= start]
    return not (before and before[-1].state.is_cut)


def residual_note(m: Measurement, v: Verdict) -> Verdict:
    """Say so when ``m`` is a re-measurement after residual censorship (issue 12).

    The runner (:mod:`probe.run.residual`) measures a target again after a cool-down when its
    first attempt failed right after another target triggered the censor, and records why in
    ``m.extra["residual"]``. The verdict is this measurement's own (an ``ok`` stays ``ok``);
    the note goes to ``details["residual"]`` and one clause of evidence.
    """
    note = m.extra.get("residual")
    if not isinstance(note, dict):
        return v
    scope = "the same server" if note.get("scope") == "same_server" else "everything"
    if note.get("scope") == "self":
        clause = (f"; measured again after a {note.get('cooldown_s', 0):g} s cool-down: the "
                  f"first attempt failed ({note.get('first_failure')}) just before the canaries "
                  "were cut — a censor's residual block after this request fails it again, a "
                  "shutdown that began then does not")
        return dataclasses.replace(v, evidence=v.evidence + clause,
                                   details={**v.details, "residual": dict(note)})
    if note.get("control_again"):
        clause = (f"; the control was asked again after a {note.get('cooldown_s', 0):g} s "
                  "cool-down: its first request fell inside the censor's residual block of "
                  "this client, triggered by this very request (residual censorship)")
        return dataclasses.replace(v, evidence=v.evidence + clause,
                                   details={**v.details, "residual": dict(note)})
    clause = (f"; re-measured after a {note.get('cooldown_s', 0):g} s cool-down: the first "
              f"attempt failed ({note.get('first_failure')}) right after "
              f"{note.get('trigger_url')} triggered the censor, which then blocked {scope} for "
              "a while (residual censorship)")
    return dataclasses.replace(v, evidence=v.evidence + clause,
                               details={**v.details, "residual": dict(note)})
