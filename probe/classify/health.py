"""Pure inference of the network's state from canary samples (no IO).

A probe inside the country sees a shutdown layer by layer: its gateway, the ISP resolver,
domestic hosts on several networks, international hosts, the control helper. This module turns
one round of samples into a :class:`NetworkState`, and finds the state that applied while a
measurement ran. Rules, first match wins:

* gateway down (and nothing beyond it answers)      → ``local_outage`` (the volunteer's link)
* nothing beyond the gateway answers                 → ``shutdown.full``
* all domestic canaries up, no international/control → ``shutdown.international``
* some domestic canaries up, others down, no international/control → ``shutdown.allowlist``
* anything international (or the control) answers    → ``whole``
* no samples of the scopes needed                    → ``unknown``

A cut applies to a measurement only when the site's own host did not answer it
(:func:`probe.classify.verdict.network_cut`): a censor that keeps dropping a client's traffic
after a trigger (residual censorship) makes the canaries look cut right after the triggering
request, and :func:`cut_began_after` tells such a cut from one already in place.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from probe.model import HealthSample, HealthScope, Measurement, Verdict


class NetworkState(enum.StrEnum):
    WHOLE = "whole"
    LOCAL_OUTAGE = "local_outage"
    SHUTDOWN_FULL = "shutdown.full"
    SHUTDOWN_INTERNATIONAL = "shutdown.international"
    SHUTDOWN_ALLOWLIST = "shutdown.allowlist"
    UNKNOWN = "unknown"

    @property
    def is_cut(self) -> bool:
        return self.value.startswith("shutdown.") or self is NetworkState.LOCAL_OUTAGE


@dataclass(frozen=True, slots=True)
class HealthRound:
    """The samples taken together at one instant and the state they show."""

    at: str
    state: NetworkState
    up: dict[str, int]
    down: dict[str, int]

    def summary(self) -> str:
        parts = [f"{s} {self.up.get(s, 0)}/{self.up.get(s, 0) + self.down.get(s, 0)} up"
                 for s in (sc.value for sc in HealthScope)
                 if self.up.get(s, 0) + self.down.get(s, 0)]
        return f"{self.at}: {self.state.value} ({', '.join(parts)})"


def infer_state(samples: Iterable[HealthSample]) -> NetworkState:
    """The network state shown by one round of samples."""
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
        out.append(HealthRound(min(s.at for s in group), infer_state(group), up, down))
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
    round during it, and the first one after it ended. A cut seen by any of them wins (a
    measurement overlapping a cut cannot be blamed on the site); else ``whole`` if any round
    was whole; else ``unknown``.
    """
    if not health:
        return NetworkState.UNKNOWN, None
    start, end = _parse(started_at), _parse(finished_at)
    before = [r for r in health if _parse(r.at) <= start]
    during = [r for r in health if start < _parse(r.at) <= end]
    after = [r for r in health if _parse(r.at) > end]
    window = before[-1:] + during + after[:1]
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
